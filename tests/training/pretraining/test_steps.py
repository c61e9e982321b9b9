"""The two pre-training steps: the coach's step raises the inpainter's error, the inpainter's
step lowers it, and parameters the reconstruction does not reach stay put."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import tfcovid.models
from tfcovid.config import PretrainConfig
from tfcovid.models.infnet import InfNetConfig
from tfcovid.models.ssinfnet.coach import CoachConfig, build_coach
from tfcovid.models.ssinfnet.inpainting import InfNetInpaintingConfig, UNetInpaintingConfig
from tfcovid.training.pretraining import inputs
from tfcovid.training.pretraining.steps import Pretrainer

SIZE = 32
CONFIG = PretrainConfig(network_learning_rates=(1e-3,), network_boundaries=(),
                        coach_learning_rate=1e-2, crop_size=SIZE)


def _batch(seed=0, prior=False):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.2, 0.8, size=(2, SIZE, SIZE, 3)).astype("float32")
    batch = {"image": tf.constant(image)}
    if prior:
        batch["prior"] = tf.constant((rng.uniform(size=(2, SIZE, SIZE, 1)) > 0.7).repeat(3, -1),
                                     tf.float32)
    return batch


@pytest.fixture(scope="module")
def single():
    tf.keras.utils.set_random_seed(0)
    inpainter = tfcovid.models.build("infnet_inpainting", InfNetInpaintingConfig.tiny())
    return Pretrainer(inpainter, build_coach(CoachConfig.tiny()), CONFIG)


def _trainable(network, prefix):
    return {w.path: w for w in network.trainable_weights if w.path.startswith(prefix)}


def test_inpainter_step_lowers_the_loss_and_leaves_unreached_heads_alone(single):
    batch = _batch()
    untouched = {**_trainable(single.inpainter, "ra2/conv4/"),
                 **_trainable(single.inpainter, "edge/conv4/")}
    backbone = _trainable(single.inpainter, "backbone")
    before = {path: w.numpy().copy() for path, w in {**untouched, **backbone}.items()}
    masks_state = single.mask_seeds.state.numpy().copy()
    losses = []
    for _ in range(4):
        single.mask_seeds.state.assign(masks_state)  # the same random masks every step
        losses.append(float(single.network_step(batch, coach_masks=False)["loss"]))
    assert losses[-1] < losses[0]
    assert len(untouched) == 6  # two ConvBN heads: kernel, gamma, beta each
    for path, weight in untouched.items():  # no gradient, so no weight decay either
        np.testing.assert_array_equal(weight.numpy(), before[path])
    assert all(not np.array_equal(weight.numpy(), before[path])
               for path, weight in backbone.items() if path.endswith("kernel"))


def test_masks_erase_the_complement_of_the_keep_fraction(single):
    batch = _batch(1)
    # 32 px: 2 x 2 cells, floor(4 * 0.75) = 3 kept, so exactly a quarter is erased.
    assert float(single.network_step(batch, coach_masks=True)["fraction_erased"]) == 0.25
    assert float(single.network_step(batch, coach_masks=False)["fraction_erased"]) == 0.25
    assert float(single.coach_step(batch)["fraction_erased"]) == 0.25


def test_coach_step_raises_the_inpainters_error_on_a_fixed_batch():
    tf.keras.utils.set_random_seed(1)
    single = Pretrainer(tfcovid.models.build("infnet_inpainting", InfNetInpaintingConfig.tiny()),
                        build_coach(CoachConfig.tiny()),
                        dataclasses.replace(CONFIG, coach_learning_rate=1e-6))
    batch = _batch(2)
    prepared = single.prepare(batch)
    masked = single.masked_input(prepared, single.random_masks(prepared["input"]))
    for _ in range(25):  # estimate the batch-norm statistics the coach's inpainter uses
        single.inpainter(masked, training=True)
    prepared = single.prepare(batch)
    sampler = single.coach.sampler.state
    noise_state = sampler.numpy().copy()
    before = float(single.coach_objective(prepared)["reconstruction"])
    inpainter_weights = [w.numpy().copy() for w in single.inpainter.weights]
    sampler.assign(noise_state)  # the step sees the same latent noise
    single.coach_step(batch)  # a small step: the objective is rough at the tiny net's scale
    sampler.assign(noise_state)
    after = float(single.coach_objective(prepared)["reconstruction"])
    assert after > before
    for weight, value in zip(single.inpainter.weights, inpainter_weights):
        np.testing.assert_array_equal(weight.numpy(), value)  # only the coach learns


def test_validation_masks_are_the_same_every_call(single):
    batch = _batch(3)
    first, second = single.validation_terms(batch), single.validation_terms(batch)
    np.testing.assert_array_equal(first["mask"], second["mask"])
    assert float(first["loss"]) == float(second["loss"])


def test_restarts_zero_the_optimizer_state(single):
    batch = _batch(4)
    single.network_step(batch, coach_masks=False)
    single.coach_step(batch)
    single.restart_network_optimizer(0.05)
    single.restart_coach_optimizer()
    assert float(single.network_optimizer.learning_rate) == pytest.approx(0.05)
    assert all(not np.any(buffer.numpy()) for buffer in single.network_optimizer.momentums)
    assert int(single.coach_optimizer.iterations) == 0
    assert float(single.coach_optimizer.learning_rate) == pytest.approx(1e-2)


def test_multi_model_takes_the_prior_from_the_batch_or_the_prior_network():
    inpainter = tfcovid.models.build("infnet_multiclass_inpainting", UNetInpaintingConfig.tiny())
    prior_network = tfcovid.models.build("infnet", InfNetConfig.tiny())
    with_prior = Pretrainer(inpainter, build_coach(CoachConfig.tiny()), CONFIG)
    prepared = with_prior.prepare(_batch(5, prior=True))
    np.testing.assert_allclose(prepared["prior_target"],
                               inputs.reconstruction_target(_batch(5, prior=True)["prior"]))
    masked = with_prior.masked_input(prepared, tf.zeros((2, SIZE, SIZE, 1)))
    assert masked.shape == (2, SIZE, SIZE, 6) and not np.any(masked.numpy())
    assert np.isfinite(float(with_prior.network_step(_batch(5, prior=True), False)["loss"]))
    with pytest.raises(ValueError, match="needs a prior"):
        with_prior.prepare(_batch(5))
    from_network = Pretrainer(inpainter, build_coach(CoachConfig.tiny()), CONFIG,
                              prior_network=prior_network)
    prior = from_network.prepare(_batch(5))["prior_input"].numpy()
    # The min-max-normalised map, scaled like the image: 255 p - mean spans [-mean, 255 - mean].
    assert prior.shape == (2, SIZE, SIZE, 3)
    np.testing.assert_allclose(prior.min(axis=(0, 1, 2)), -np.array(inputs.MEAN_BGR), atol=1e-3)
    np.testing.assert_allclose(prior.max(axis=(0, 1, 2)), 255 - np.array(inputs.MEAN_BGR),
                               atol=1e-3)
    assert not prior_network.trainable
