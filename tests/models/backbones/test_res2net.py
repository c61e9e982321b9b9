"""Res2Net-50 v1b backbone: feature keys, strides, channels, parameter count, weights files."""

import numpy as np
import pytest

from tfcovid.errors import WeightsError
from tfcovid.models.backbones.res2net import (Res2NetBackbone, res2net50_v1b_26w_4s,
                                              res2net_tiny)
from tfcovid.registry import BACKBONES
from tests.models import checks


def test_tiny_features_have_the_stage_strides_and_channels():
    backbone = res2net_tiny(input_channels=1)
    images = np.random.default_rng(0).normal(size=(2, 64, 96, 1)).astype("float32")
    features = backbone(images)
    # res2net_tiny planes (8, 16, 32, 64) -> 4 p channels at strides 4, 8, 16, 32
    expected = {"s4": (2, 16, 24, 32), "s8": (2, 8, 12, 64), "s16": (2, 4, 6, 128),
                "s32": (2, 2, 3, 256)}
    assert {key: tuple(value.shape) for key, value in features.items()} == expected
    assert all(np.isfinite(value.numpy()).all() for value in features.values())


def test_full_width_parameter_counts_match_the_spec():
    backbone = res2net50_v1b_26w_4s()  # symbolic graph only, no forward pass
    trainable = sum(int(np.prod(weight.shape)) for weight in backbone.trainable_weights)
    statistics = sum(int(np.prod(weight.shape)) for weight in backbone.non_trainable_weights)
    assert trainable == 23_669_352  # spec 1.1, without the 2048 -> 1000 classifier
    assert statistics == 59_620  # spec 1.1: BN running-statistic values
    channels = {key: value.shape[-1] for key, value in backbone.output.items()}
    assert channels == {"s4": 256, "s8": 512, "s16": 1024, "s32": 2048}


def test_config_round_trip_rebuilds_the_same_graph():
    assert isinstance(checks.assert_config_round_trip(res2net_tiny()), Res2NetBackbone)


def test_weights_file_round_trip(tmp_path):
    backbone = res2net_tiny()
    path = tmp_path / "tiny.weights.h5"
    backbone.save_weights(path)
    loaded = BACKBONES.build("res2net_tiny", weights_path=path)
    images = np.random.default_rng(1).normal(size=(2, 32, 64, 3)).astype("float32")
    for key, value in backbone(images).items():
        np.testing.assert_array_equal(loaded(images)[key].numpy(), value.numpy())


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, before it raises
def test_missing_or_foreign_weights_files_are_weights_errors(tmp_path):
    with pytest.raises(WeightsError, match=r"absent\.weights\.h5: no such weights file$"):
        res2net_tiny(weights_path=tmp_path / "absent.weights.h5")
    with pytest.raises(WeightsError, match=r"model\.pth: not a Keras weights file"):
        res2net_tiny(weights_path=tmp_path / "model.pth")
    path = tmp_path / "grey.weights.h5"
    res2net_tiny(input_channels=1).save_weights(path)
    with pytest.raises(WeightsError, match=r"grey\.weights\.h5: does not fit res2net_tiny \(1 "
                       r"layers differ, e\.g\. conv1_0/kernel has shape \(3, 3, 3, 8\), the "
                       r"file \(3, 3, 1, 8\)\)"):
        res2net_tiny(weights_path=path)


def test_invalid_widths_echo_the_values():
    with pytest.raises(ValueError, match=r"Received: stem_filters=\(8, 16\)"):
        Res2NetBackbone(stem_filters=(8, 16))
    with pytest.raises(ValueError, match=r"stackwise_num_blocks=\(3, 4, 6\)"):
        Res2NetBackbone(stackwise_num_blocks=(3, 4, 6))
