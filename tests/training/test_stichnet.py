"""StichNet's semi-supervised loop on a tiny phantom store: training, logs, resumption."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcovid import config
from tfcovid.data.phantom import write_phantom
from tfcovid.errors import ConfigError
from tfcovid.training import stichnet


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "phantom.h5"
    # 3 labelled cases (2 train, 1 validate) and 1 unlabelled case
    write_phantom(path, num_cases=4, num_slices=3, size=64, seed=0, progress=False,
                  unlabelled_cases=1)
    return str(path)


def experiment(store, *overrides):
    return config.load_experiment("stichnet_phantom_tiny", [
        f"data.store={store}", "train.run_eagerly=true", "train.steps_per_epoch=1",
        *overrides])


@pytest.mark.slow
def test_trains_logs_and_resumes(store, tmp_path):
    # one eager step per epoch: on 2 busy CPU cores a step of the tiny model takes ~10 s
    workdir = tmp_path / "run"
    final = stichnet.train(experiment(store, "train.epochs=1"), workdir, progress=False)
    history = json.loads((workdir / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1]
    record = history[0]
    assert set(record) >= {"j_lab", "j_un", "elbo", "kl", "kl/z1", "kl/k5", "val_dice"}
    assert all(np.isfinite(record[name]) for name in ("loss", "j_lab", "j_un", "kl"))
    # the reported ELBO is the batch mean of the two bounds (2 labelled, 1 unlabelled image)
    assert record["elbo"] == pytest.approx((2 * record["j_lab"] + record["j_un"]) / 3,
                                           rel=1e-4)
    assert final["best_epoch"] == 1 and 0 <= final["best_val_dice"] <= 1
    for name in ("config.yaml", "model.keras", "best.weights.h5"):
        assert (workdir / name).is_file(), name
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    # every network variable is in the checkpoint, batch-norm statistics of listed sublayers too
    saved = tf.train.load_checkpoint(str(workdir / "checkpoints")).get_variable_to_shape_map()
    listed = [key for key in saved if key.startswith("network_variables/")]
    network = keras.saving.load_model(workdir / "model.keras")
    assert len(listed) == len(network.weights)
    # started again with more epochs: resumes after epoch 1, the earlier record kept
    stichnet.train(experiment(store, "train.epochs=2"), workdir, progress=False)
    resumed = json.loads((workdir / "history.json").read_text())
    assert [record["epoch"] for record in resumed] == [1, 2]
    assert resumed[0] == record


def test_settings_the_loop_cannot_use_are_config_errors(store):
    with pytest.raises(ConfigError, match="data.channels: 3, data.normalisation: 'imagenet'"):
        stichnet.check_experiment(experiment(store, "data.channels=3",
                                             "data.normalisation=imagenet"))
    with pytest.raises(ConfigError, match=r"labelled_per_batch: 4; must lie in \[1, "):
        stichnet.check_experiment(experiment(store, "stichnet.labelled_per_batch=4"))
    with pytest.raises(ConfigError, match="model.name: 'infnet'"):
        stichnet.check_experiment(config.load_experiment("infnet_phantom_tiny"))
    with pytest.raises(ConfigError, match="train.recompute_backbone: applies to tfcovid train"):
        stichnet.check_experiment(experiment(store, "train.recompute_backbone=true"))


def test_unlabelled_cases_are_the_stores_cases_without_labels(store):
    assert stichnet.unlabelled_cases(store) == ["phantom_003"]


def test_patch_mode_cuts_image_label_and_lung_alike():
    image = np.arange(128 * 64, dtype="float32").reshape(128, 64, 1)
    label = (np.arange(128 * 64).reshape(128, 64) % 3).astype("int32")
    lung = (np.arange(128 * 64).reshape(128, 64) % 2).astype("int32")
    tiles = list(stichnet.tile_element({"image": image, "label": label, "lung": lung}, 64))
    assert len(tiles) == 2  # rows 0-63 and 64-127, one column
    np.testing.assert_array_equal(tiles[1]["image"].numpy(), image[64:, :])
    np.testing.assert_array_equal(tiles[1]["label"].numpy(), label[64:, :])
    np.testing.assert_array_equal(tiles[1]["lung"].numpy(), lung[64:, :])
