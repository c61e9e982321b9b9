"""FCN-8s on VGG16: outputs, parameter count, PyTorch transposed convolution, serialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcovid.models
from tfcovid.models.fcn import FCN8Config
from tfcovid.models.fcn.fcn8 import _deconv
from tests.models import checks


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return tfcovid.models.build("fcn8_vgg16", FCN8Config.tiny(input_channels=6))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(2, 64, 96, 6)).astype("float32")


def count(weights):
    return sum(int(np.prod(weight.shape)) for weight in weights)


def torch_conv_transpose(x, kernel, bias, stride=2, padding=1, output_padding=1):
    """PyTorch ConvTranspose2d: out[s i - p + k] += x[i] w[k], size (in - 1) s - 2 p + k + op.

    x (height, width, in), kernel (k, k, out, in) in Keras's layout, bias (out,)."""
    size = kernel.shape[0]
    height, width, _ = x.shape
    out_height = (height - 1) * stride - 2 * padding + size + output_padding
    out_width = (width - 1) * stride - 2 * padding + size + output_padding
    out = np.zeros((out_height, out_width, kernel.shape[2])) + bias
    for i in range(height):
        for j in range(width):
            for ki in range(size):
                for kj in range(size):
                    row, col = stride * i - padding + ki, stride * j - padding + kj
                    if 0 <= row < out_height and 0 <= col < out_width:
                        out[row, col] += kernel[ki, kj] @ x[i, j]
    return out


def test_logits_are_float32_at_the_input_size(tiny_model, images):
    outputs = tiny_model(images)
    assert list(outputs) == ["logits"]
    assert tuple(outputs["logits"].shape) == (2, 64, 96, 3)
    assert outputs["logits"].dtype == tf.float32 and np.isfinite(outputs["logits"]).all()
    predicted = tiny_model.predict(images, batch_size=2, verbose=0)
    np.testing.assert_allclose(predicted, outputs["logits"].numpy(), atol=1e-6)


def test_deconv_matches_pytorch_conv_transpose():
    inputs = keras.Input((3, 4, 2))
    layer_model = keras.Model(inputs, _deconv(inputs, 5, "deconv"))
    x = np.random.default_rng(1).normal(size=(1, 3, 4, 2)).astype("float32")
    kernel, bias = layer_model.get_layer("deconv").get_weights()
    expected = torch_conv_transpose(x[0].astype("float64"), kernel, bias)
    assert expected.shape == (6, 8, 5)
    np.testing.assert_allclose(layer_model(x).numpy()[0], expected, atol=1e-5)


def test_full_width_parameter_count_by_hand():
    model = tfcovid.models.build("fcn8_vgg16", input_channels=6)  # symbolic graph only
    vgg = count(keras.applications.VGG16(weights=None, include_top=False).trainable_weights)
    stem = 3 * 3 * 3 * 64  # three more input channels in the first kernel
    deconvs = sum(9 * a * b + b for a, b in [(512, 512), (512, 256), (256, 128), (128, 64),
                                             (64, 32)])
    batch_norms = 2 * (512 + 256 + 128 + 64 + 32)
    classifier = 32 * 3 + 3
    assert count(model.trainable_weights) == vgg + stem + deconvs + batch_norms + classifier
    assert count(model.backbone.trainable_weights) == vgg + stem


def test_config_json_round_trip_gives_the_same_model(tiny_model, images):
    checks.assert_config_round_trip(tiny_model, images)


def test_keras_file_save_and_load(tiny_model, images, tmp_path):
    checks.assert_keras_file_round_trip(tiny_model, images, tmp_path / "fcn8.keras")


def test_a_gradient_step_changes_every_weight(images):
    keras.utils.set_random_seed(1)
    model = tfcovid.models.build("fcn8_vgg16", FCN8Config.tiny(input_channels=6))
    loss, gradients, before = checks.multiclass_sgd_step(model, images)
    assert np.isfinite(float(loss))
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


def test_six_channel_fcn_starts_from_a_three_channel_backbone_file(tmp_path):
    source = tfcovid.models.build("fcn8_vgg16", FCN8Config.tiny()).backbone
    path = tmp_path / "vgg16_tiny.weights.h5"
    source.save_weights(path)
    model = tfcovid.models.build("fcn8_vgg16", FCN8Config.tiny(input_channels=6,
                                                               backbone_weights=str(path)))
    first = source.get_layer("features_0").kernel.numpy()
    np.testing.assert_array_equal(model.backbone.get_layer("features_0").kernel.numpy(),
                                  np.concatenate([first, first], axis=2))


def test_invalid_decoder_filters_echo_the_values():
    with pytest.raises(ValueError, match=r"Received: decoder_filters=\(8, 4\)"):
        tfcovid.models.build("fcn8_vgg16", FCN8Config.tiny(decoder_filters=(8, 4)))
