"""VGG16 backbone: taps, strides, parameter count, and first-kernel tiling from a weights file."""

import hypothesis
import hypothesis.strategies as st
import keras
import numpy as np
import pytest

from tfcovid.errors import WeightsError
from tfcovid.models.backbones.vgg import VGG16Backbone, tile_first_kernel, vgg16, vgg16_tiny
from tfcovid.registry import BACKBONES
from tests.models import checks


def count(weights):
    return sum(int(np.prod(weight.shape)) for weight in weights)


def test_tiny_taps_have_the_pool_strides_and_channels():
    backbone = vgg16_tiny(input_channels=6)
    images = np.random.default_rng(0).normal(size=(2, 64, 96, 6)).astype("float32")
    shapes = {key: tuple(value.shape) for key, value in backbone(images).items()}
    # vgg16_tiny filters (4, 8, 16, 16, 32): pool3, pool4, pool5 at strides 8, 16, 32
    assert shapes == {"s8": (2, 8, 12, 16), "s16": (2, 4, 6, 16), "s32": (2, 2, 3, 32)}
    # PyTorch's pools floor odd sizes: 50 -> 25 -> 12 -> 6 -> 3 -> 1, 70 -> 35 -> 17 -> 8 -> 4 -> 2
    shapes = {key: tuple(value.shape)[1:3] for key, value in backbone(images[:, :50, :70]).items()}
    assert shapes == {"s8": (6, 8), "s16": (3, 4), "s32": (1, 2)}


def test_full_width_parameter_count_matches_keras_applications():
    backbone = vgg16()  # symbolic graph only
    reference = keras.applications.VGG16(weights=None, include_top=False)
    assert count(backbone.trainable_weights) == count(reference.trainable_weights) == 14_714_688
    convs = [layer.name for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    # torchvision vgg16().features: conv layers at these indices
    assert convs == [f"features_{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)]
    assert count(vgg16(input_channels=6).trainable_weights) == 14_714_688 + 3 * 3 * 3 * 64


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(channels=st.integers(1, 4), input_channels=st.integers(1, 13))
def test_tiled_kernel_channel_c_is_source_channel_c_mod_channels(channels, input_channels):
    kernel = np.random.default_rng(channels).normal(size=(3, 2, channels, 5))
    tiled = tile_first_kernel(kernel, input_channels)
    assert tiled.shape == (3, 2, input_channels, 5)
    for c in range(input_channels):
        np.testing.assert_array_equal(tiled[:, :, c], kernel[:, :, c % channels])


def test_six_channel_backbone_tiles_a_three_channel_weights_file(tmp_path):
    keras.utils.set_random_seed(0)
    source = vgg16_tiny()
    path = tmp_path / "vgg16_tiny.weights.h5"
    source.save_weights(path)
    widened = BACKBONES.build("vgg16_tiny", input_channels=6, weights_path=path)
    first, *rest = source.get_weights()
    widened_first, *widened_rest = widened.get_weights()
    np.testing.assert_array_equal(widened_first, np.concatenate([first, first], axis=2))
    assert all(np.array_equal(a, b) for a, b in zip(rest, widened_rest))
    # an image in the first three channels and zeros in the rest sees the source network
    images = np.random.default_rng(1).normal(size=(2, 32, 64, 3)).astype("float32")
    padded = np.concatenate([images, np.zeros_like(images)], axis=-1)
    for key, value in source(images).items():
        np.testing.assert_allclose(widened(padded)[key].numpy(), value.numpy(), atol=1e-5)


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, before it raises
def test_a_six_channel_weights_file_is_a_weights_error(tmp_path):
    path = tmp_path / "six.weights.h5"
    vgg16_tiny(input_channels=6).save_weights(path)
    with pytest.raises(WeightsError, match=r"six\.weights\.h5: does not fit vgg16_tiny \(1 layers "
                       r"differ, e\.g\. features_0/kernel has shape \(3, 3, 3, 4\), the file "
                       r"\(3, 3, 6, 4\)\)"):
        vgg16_tiny(input_channels=6, weights_path=path)


def test_config_round_trip_rebuilds_the_same_graph():
    restored = checks.assert_config_round_trip(vgg16_tiny(input_channels=6))
    assert isinstance(restored, VGG16Backbone) and restored.input_channels == 6


def test_invalid_stages_echo_the_values():
    with pytest.raises(ValueError, match=r"Received: stackwise_filters=\(4, 8\)"):
        VGG16Backbone(stackwise_filters=(4, 8))
