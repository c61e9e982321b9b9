"""Shared layers: bilinear resizing against NumPy and TensorFlow, ConvBN, PyTorch initialisers."""

import json

import hypothesis
import hypothesis.strategies as st
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcovid.models.layers import (BilinearResize, ConvBN, resize_bilinear,
                                   torch_bias_initializer)


def numpy_resize(images, size, align_corners):
    """Separable bilinear interpolation with PyTorch's source coordinates, in float64."""
    out = images.astype(np.float64)
    for axis, out_size in zip((1, 2), size):
        in_size = out.shape[axis]
        dst = np.arange(out_size, dtype=np.float64)
        if align_corners:
            src = dst * (in_size - 1) / max(out_size - 1, 1)
        else:
            src = np.maximum((dst + 0.5) * in_size / out_size - 0.5, 0.0)
        lower = np.minimum(np.floor(src).astype(int), in_size - 1)
        upper = np.minimum(lower + 1, in_size - 1)
        shape = [1, 1, 1, 1]
        shape[axis] = out_size
        weight = (src - lower).reshape(shape)
        out = np.take(out, lower, axis) * (1 - weight) + np.take(out, upper, axis) * weight
    return out


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(in_height=st.integers(1, 9), in_width=st.integers(1, 9),
                  out_height=st.integers(1, 20), out_width=st.integers(1, 20),
                  align_corners=st.booleans(), seed=st.integers(0, 2**16))
def test_resize_matches_numpy_reference(in_height, in_width, out_height, out_width,
                                        align_corners, seed):
    images = np.random.default_rng(seed).normal(size=(2, in_height, in_width, 3)).astype("float32")
    resized = resize_bilinear(images, (out_height, out_width), align_corners=align_corners)
    expected = numpy_resize(images, (out_height, out_width), align_corners)
    np.testing.assert_allclose(resized.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("size", [(11, 22), (44, 6), (5, 5)])
def test_align_corners_matches_tensorflow_v1_resize(size):
    images = np.random.default_rng(0).normal(size=(2, 11, 6, 4)).astype("float32")
    expected = tf.compat.v1.image.resize_bilinear(images, size, align_corners=True,
                                                  half_pixel_centers=False)
    np.testing.assert_allclose(resize_bilinear(images, size, align_corners=True).numpy(),
                               expected.numpy(), atol=1e-5)


def test_half_pixel_resize_matches_tf_image_resize_without_antialias():
    images = np.random.default_rng(1).normal(size=(2, 12, 20, 2)).astype("float32")
    expected = tf.image.resize(images, (5, 7), method="bilinear", antialias=False)
    np.testing.assert_allclose(resize_bilinear(images, (5, 7)).numpy(), expected.numpy(),
                               atol=1e-6)


@pytest.mark.parametrize("align_corners", [False, True])
def test_bfloat16_resize_has_an_xla_gradient_close_to_float32(align_corners):
    # The gradient of a bfloat16 resize summed with another bfloat16 path used to fail XLA's
    # check against mixed float types (mixed-precision training with jit_compile).
    images = np.random.default_rng(4).normal(size=(2, 4, 5, 3)).astype("float32")

    def gradient(images, dtype):
        with tf.GradientTape() as tape:
            tape.watch(images)
            cast = tf.cast(images, dtype)
            resized = resize_bilinear(cast, (8, 9), align_corners=align_corners)
            loss = (tf.reduce_sum(tf.cast(resized, tf.float32) ** 2)
                    + tf.reduce_sum(tf.cast(cast, tf.float32)))
        return tape.gradient(loss, images)

    xla = tf.function(gradient, jit_compile=True)(tf.constant(images), tf.bfloat16).numpy()
    expected = gradient(tf.constant(images), tf.float32).numpy()
    assert np.abs(expected).max() > 1
    np.testing.assert_allclose(xla, expected, rtol=0.05, atol=0.05)


def test_align_corners_reproduces_a_linear_ramp_exactly():
    # f(r, c) = 2 r + 3 c on a 4 x 6 grid; output pixel (i, j) of 7 x 11 sits at
    # r = i * 3 / 6, c = j * 5 / 10, where bilinear interpolation of a linear f is exact.
    rows, cols = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
    images = (2 * rows + 3 * cols).astype("float32")[None, :, :, None]
    out_rows, out_cols = np.meshgrid(np.arange(7) * 3 / 6, np.arange(11) * 5 / 10, indexing="ij")
    resized = resize_bilinear(images, (7, 11), align_corners=True).numpy()[0, :, :, 0]
    np.testing.assert_allclose(resized, 2 * out_rows + 3 * out_cols, atol=1e-5)
    np.testing.assert_array_equal(resized[[0, 0, -1, -1], [0, -1, 0, -1]], [0, 15, 6, 21])


def test_downsampling_by_8_averages_pixels_8j_plus_3_and_4():
    # spec 2.4: E (88 -> 11) reads input pixels 8j + 3 and 8j + 4 with weight 1/2 each
    images = np.random.default_rng(2).normal(size=(1, 88, 88, 1)).astype("float32")
    resized = resize_bilinear(images, (11, 11)).numpy()
    index = 8 * np.arange(11)
    expected = sum(images[:, index + a][:, :, index + b] for a in (3, 4) for b in (3, 4)) / 4
    np.testing.assert_allclose(resized, expected, atol=1e-6)


def test_bilinear_resize_layer_takes_the_reference_size_and_round_trips_its_config():
    layer = BilinearResize(align_corners=True)
    restored = BilinearResize.from_config(json.loads(json.dumps(layer.get_config())))
    images = np.random.default_rng(3).normal(size=(2, 3, 4, 5)).astype("float32")
    reference = np.zeros((2, 6, 8, 1), "float32")
    out = restored(images, reference).numpy()
    assert restored.align_corners is True and out.shape == (2, 6, 8, 5)
    np.testing.assert_allclose(out, numpy_resize(images, (6, 8), True), atol=1e-5)
    symbolic = layer(keras.Input((3, 4, 5)), keras.Input((6, 8, 1)))
    assert tuple(symbolic.shape) == (None, 6, 8, 5)


def test_conv_bn_config_round_trip_and_structure():
    layer = ConvBN(6, kernel_size=(1, 3), dilation_rate=2, name="unit")
    config = json.loads(json.dumps(layer.get_config()))
    restored = ConvBN.from_config(config)
    assert json.loads(json.dumps(restored.get_config())) == config
    out = restored(np.ones((2, 5, 7, 4), "float32"))
    assert out.shape == (2, 5, 7, 6)
    # 1 x 3 kernel, no bias: 1 * 3 * 4 * 6 weights; BN gamma, beta (+ moving mean, variance)
    assert [tuple(w.shape) for w in restored.trainable_weights] == [(1, 3, 4, 6), (6,), (6,)]
    assert restored.bn.epsilon == 1e-5 and restored.bn.momentum == 0.9


def test_conv_bn_kernel_has_pytorch_default_init():
    # Kaiming-uniform(a = sqrt 5): U(-b, b) with b = 1 / sqrt(fan_in), fan_in = 3 * 3 * 64;
    # standard deviation b / sqrt(3)
    keras.utils.set_random_seed(0)
    layer = ConvBN(64, 3)
    layer.build((None, 8, 8, 64))
    kernel = layer.conv.kernel.numpy()
    bound = 1 / np.sqrt(3 * 3 * 64)
    assert np.abs(kernel).max() <= bound
    assert kernel.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)


def test_torch_bias_initializer_bound():
    values = torch_bias_initializer(96)(shape=(20000,), dtype="float32").numpy()
    assert np.abs(values).max() <= 1 / np.sqrt(96)
    assert values.std() == pytest.approx(1 / np.sqrt(96) / np.sqrt(3), rel=0.03)
