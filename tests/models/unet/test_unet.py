"""Multi-class U-Net: outputs, parameter counts, re-injection, padding, serialisation, a step."""

import hypothesis
import hypothesis.strategies as st
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcovid.models
from tfcovid.errors import ConfigError
from tfcovid.models.unet import UNet, UNetConfig
from tfcovid.models.unet.unet import NearestResize, PadToReference, UpsampleBilinear
from tests.models import checks

VARIANTS = ("baseline", "improved")


@pytest.fixture(scope="module", params=VARIANTS)
def tiny_model(request):
    keras.utils.set_random_seed(0)
    return tfcovid.models.build("unet_multiclass", UNetConfig.tiny(variant=request.param))


@pytest.fixture(scope="module")
def improved_model():
    """The improved variant, a superset of the baseline's layers, for the slower checks."""
    keras.utils.set_random_seed(0)
    return tfcovid.models.build("unet_multiclass", UNetConfig.tiny(variant="improved"))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(2, 64, 96, 6)).astype("float32")


def count(weights):
    return sum(int(np.prod(weight.shape)) for weight in weights)


def double_conv(a, b, mid):
    """Two 3x3 convolutions with bias, each followed by BN (gamma, beta)."""
    return (9 * a * mid + mid + 2 * mid) + (9 * mid * b + b + 2 * b)


def test_logits_are_float32_at_the_input_size(tiny_model, images):
    outputs = tiny_model(images)
    assert list(outputs) == ["logits"]
    assert tuple(outputs["logits"].shape) == (2, 64, 96, 3)
    assert outputs["logits"].dtype == tf.float32 and np.isfinite(outputs["logits"]).all()
    predicted = tiny_model.predict(images, batch_size=2, verbose=0)
    np.testing.assert_allclose(predicted, outputs["logits"].numpy(), atol=1e-6)


def test_odd_sizes_are_padded_back_to_the_input_size(tiny_model, images):
    # rows 50 -> 25 -> 12 -> 6 -> 3: up3 pads 24 -> 25; columns 70 -> 35 -> 17 -> 8 -> 4: up2
    # pads 16 -> 17, up3 34 -> 35; so the logits come back at 50 x 70
    logits = tiny_model(images[:, :50, :70])["logits"]
    assert tuple(logits.shape) == (2, 50, 70, 3) and np.isfinite(logits).all()


@hypothesis.settings(max_examples=6, deadline=None)
@hypothesis.given(height=st.integers(16, 64), width=st.integers(16, 96))
def test_any_size_from_16_px_comes_back_at_the_input_size(tiny_model, images, height, width):
    assert tuple(tiny_model(images[:1, :height, :width])["logits"].shape) == (1, height, width, 3)


def test_full_width_parameter_counts_match_the_spec():
    baseline = tfcovid.models.build("unet_multiclass")  # symbolic graph only, no forward pass
    improved = tfcovid.models.build("unet_multiclass", variant="improved")
    head = 64 * 3 + 3
    # spec 5.1 table: (in, out, mid) of inc, down1-4, up1-4
    by_hand = sum(double_conv(*args) for args in [
        (6, 64, 64), (64, 128, 128), (128, 256, 256), (256, 512, 512), (512, 512, 512),
        (1024, 256, 512), (512, 128, 256), (256, 64, 128), (128, 64, 64)]) + head
    assert count(baseline.trainable_weights) == by_hand == 17_269_251
    # spec 5.2 table: 6 input channels join x3 (262) and x5 (518)
    by_hand = sum(double_conv(*args) for args in [
        (6, 64, 64), (64, 128, 128), (128, 256, 256), (262, 512, 512), (512, 512, 512),
        (1030, 256, 515), (518, 128, 259), (256, 64, 128), (128, 64, 64)]) + head
    assert count(improved.trainable_weights) == by_hand == 17_390_553


def test_improved_variant_reinjects_every_4th_and_16th_pixel(images):
    model = tfcovid.models.build("unet_multiclass", UNetConfig.tiny(variant="improved"))
    taps = keras.Model(model.input, [model.get_layer("x3_nearest").output,
                                     model.get_layer("x5_nearest").output])
    x3, x5 = taps(images)
    np.testing.assert_array_equal(x3.numpy(), images[:, ::4, ::4])
    np.testing.assert_array_equal(x5.numpy(), images[:, ::16, ::16])
    assert model.get_layer("down3_maxpool_conv_1_double_conv_0").kernel.shape[2] == 8 + 6


def test_nearest_resize_reads_floor_of_dst_times_in_over_out():
    images = np.arange(5 * 7, dtype="float32").reshape(1, 5, 7, 1)
    resized = NearestResize()(images, np.zeros((1, 2, 3, 1)))
    # rows floor(j * 5 / 2) = 0, 2; columns floor(j * 7 / 3) = 0, 2, 4
    np.testing.assert_array_equal(resized.numpy()[0, ..., 0], images[0, [0, 2]][:, [0, 2, 4], 0])


def test_pad_to_reference_puts_the_odd_pixel_bottom_right():
    images = np.ones((1, 2, 3, 2), "float32")
    padded = PadToReference()(images, np.zeros((1, 5, 4, 1)))
    # F.pad: 3 rows -> 1 top, 2 bottom; 1 column -> 0 left, 1 right
    np.testing.assert_array_equal(padded.numpy(), np.pad(images, [(0, 0), (1, 2), (0, 1), (0, 0)]))


def test_upsampling_aligns_corners_as_tensorflow_v1():
    images = np.random.default_rng(3).normal(size=(2, 3, 5, 4)).astype("float32")
    expected = tf.compat.v1.image.resize_bilinear(images, (6, 10), align_corners=True)
    np.testing.assert_allclose(UpsampleBilinear(2)(images).numpy(), expected.numpy(), atol=1e-6)


def test_config_json_round_trip_gives_the_same_model(improved_model, images):
    checks.assert_config_round_trip(improved_model, images)


def test_keras_file_save_and_load(improved_model, images, tmp_path):
    loaded = checks.assert_keras_file_round_trip(improved_model, images, tmp_path / "unet.keras")
    assert loaded.variant == "improved"


def test_a_gradient_step_changes_the_weights(images):
    keras.utils.set_random_seed(1)
    model = tfcovid.models.build("unet_multiclass", UNetConfig.tiny(variant="improved"))
    loss, gradients, before = checks.multiclass_sgd_step(model, images)
    assert np.isfinite(float(loss))
    # a bias right before a training-mode batch norm is cancelled by its batch mean, so its
    # gradient is zero up to rounding (as in the reference, which keeps these biases)
    before_norm = {w.path for w in model.trainable_weights
                   if w.path.endswith(("double_conv_0/bias", "double_conv_3/bias"))}
    assert len(before_norm) == 2 * 9
    for weight, gradient, old in zip(model.trainable_weights, gradients, before):
        if weight.path in before_norm:
            assert np.abs(gradient.numpy()).max() < 1e-6
        else:
            assert not np.array_equal(old, weight.numpy()), weight.path


def test_mixed_precision_keeps_float32_logits(images):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tfcovid.models.build("unet_multiclass", UNetConfig.tiny())
        logits = model(images)["logits"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("inc_double_conv_0").compute_dtype == "float16"
    assert logits.dtype == tf.float32 and np.isfinite(logits.numpy()).all()


def test_config_options_reach_the_model():
    model = tfcovid.models.build("unet_multiclass", UNetConfig.tiny(input_channels=3),
                                 num_classes=2)
    assert model.input_shape == (None, None, None, 3) and model.output["logits"].shape[-1] == 2
    assert model.get_layer("up1_conv_double_conv_0").kernel.shape[2:] == (16 + 16, 16)
    with pytest.raises(ConfigError, match=r"unknown option 'width'"):
        tfcovid.models.build("unet_multiclass", width=2)


def test_invalid_arguments_echo_the_values():
    with pytest.raises(ValueError, match=r"Received: variant='improve'"):
        UNet(variant="improve")
    with pytest.raises(ValueError, match=r"Received: stackwise_filters=\(4, 8, 8\)"):
        UNet(stackwise_filters=(4, 8, 8))
