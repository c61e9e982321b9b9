"""Multi-class Inf-Net: the U-Net on image + prior, its prior setting and serialisation."""

import keras
import numpy as np
import pytest

import tfcovid.models
from tfcovid.models.infnet.infnet_multiclass import InfNetMultiClass, InfNetMultiClassConfig
from tests.models import checks


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return tfcovid.models.build("infnet_multiclass",
                                InfNetMultiClassConfig.tiny(prior="ground_truth"))


def test_image_and_prior_give_three_class_logits(tiny_model):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 64, 96, 3)).astype("float32")
    prior = np.repeat(rng.random((2, 64, 96, 1)), 3, axis=-1).astype("float32")
    logits = tiny_model(np.concatenate([image, prior], axis=-1))["logits"]
    assert tuple(logits.shape) == (2, 64, 96, 3) and np.isfinite(logits).all()
    assert tiny_model.input_shape == (None, None, None, 6) and tiny_model.prior == "ground_truth"


def test_full_width_parameter_count_is_the_reference_unet():
    model = tfcovid.models.build("infnet_multiclass")  # symbolic graph only
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 17_269_251  # spec 5.1


def test_the_prior_setting_survives_json_and_keras_files(tiny_model, tmp_path):
    inputs = np.random.default_rng(1).normal(size=(2, 32, 48, 6)).astype("float32")
    assert checks.assert_config_round_trip(tiny_model).prior == "ground_truth"
    loaded = checks.assert_keras_file_round_trip(tiny_model, inputs,
                                                 tmp_path / "infnet_multiclass.keras")
    assert isinstance(loaded, InfNetMultiClass) and loaded.prior == "ground_truth"


def test_unknown_prior_echoes_the_value():
    with pytest.raises(ValueError, match=r"Received: prior='semi_infnet'"):
        InfNetMultiClass(prior="semi_infnet", stackwise_filters=(4, 8, 8, 16))
