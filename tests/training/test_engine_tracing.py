"""The training engine traces its step once per scale, not once per batch or epoch (issue 7)."""

import collections

import numpy as np
import pytest

from tfcovid import config
from tfcovid.data import phantom, pipeline
from tfcovid.training import engine
from tfcovid.training.tasks import LogitsTask


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True])
def test_one_trace_per_scale_over_epochs_of_several_batches(tmp_path, monkeypatch, jit_compile):
    # with XLA too, whose compiled step must not receive the batches' "case_id" strings
    store = tmp_path / "phantom.h5"
    phantom.write_phantom(store, num_cases=2, num_slices=4, size=64, progress=False)
    experiment = config.Experiment(
        model=config.ModelConfig("unet_multiclass", {"input_channels": 3,
                                                     "stackwise_filters": (4, 8, 8, 16)}),
        data=pipeline.DataConfig(store=str(store), image_size=(64, 64)),
        optimizer=config.OptimizerConfig(schedule="constant"),
        train=config.TrainConfig(epochs=2, batch_size=2, scales=(0.5, 1.0), steps_per_epoch=3,
                                 validation_fraction=0.0, jit_compile=jit_compile))
    # Python runs a traced step's body only while tracing: count those runs per image size.
    traced_sizes = collections.Counter()
    original = LogitsTask.train_step

    def counting_train_step(self, data, update_metrics=True):
        traced_sizes[tuple(data["image"].shape[1:3])] += 1
        return original(self, data, update_metrics=update_metrics)

    monkeypatch.setattr(LogitsTask, "train_step", counting_train_step)
    final = engine.train(experiment, tmp_path / "run", progress=False)
    # 2 epochs x 3 batches x 2 scales = 12 steps; sizes round(64 * rate / 32) * 32
    assert traced_sizes == {(32, 32): 1, (64, 64): 1}
    assert np.isfinite(final["loss"])
