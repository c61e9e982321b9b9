"""Backbone recomputation (`tfcovid.training.recompute`): the same outputs, gradients, weights
and batch-norm statistics as the plain training step, the backbone run again in the backward
pass, and clear errors for networks without a backbone. Its memory saving is measured in
benchmarks/RESULTS.md, never asserted here."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcovid.models
from tfcovid import config as config_lib
from tfcovid.errors import ConfigError
from tfcovid.models.infnet.infnet import InfNetConfig
from tfcovid.training import engine
from tfcovid.training.recompute import BOUNDARY_LAYERS, RecomputedForward
from tfcovid.training.tasks import InfNetTask


def tiny_infnet(backbone="res2net_tiny", seed=1):
    keras.utils.set_random_seed(seed)
    return tfcovid.models.build("infnet", InfNetConfig.tiny(backbone=backbone))


def batches(size=64, count=2):
    rng = np.random.default_rng(0)
    result = []
    for _ in range(count):
        mask = (rng.random((2, size, size, 1)) > 0.7).astype("float32")
        result.append({"image": tf.constant(rng.normal(size=(2, size, size, 3)), tf.float32),
                       "mask": tf.constant(mask), "edge": tf.constant(mask)})
    return result


def trained_state(recompute, traced, steps=2):
    """Weights (trainable and moving statistics) and the last loss after ``steps`` SGD steps."""
    network = tiny_infnet()
    task = InfNetTask(network, clip_value=0.5, recompute_backbone=recompute)
    optimizer = keras.optimizers.SGD(0.05)
    task.compile(optimizer=optimizer)
    optimizer.build(network.trainable_variables)
    step = tf.function(task.train_step) if traced else task.train_step
    data = batches()
    for index in range(steps):
        logs = step(data[index % 2])
    return {variable.path: variable.numpy() for variable in network.variables}, float(logs["loss"])


def test_eager_steps_are_bit_for_bit_the_plain_ones_and_update_statistics_once():
    initial = {variable.path: variable.numpy() for variable in tiny_infnet().variables}
    plain, plain_loss = trained_state(False, traced=False)
    recomputed, recomputed_loss = trained_state(True, traced=False)
    assert recomputed_loss == plain_loss
    moving = [path for path in plain if "moving" in path]
    assert moving and sorted(recomputed) == sorted(plain)
    for path, value in plain.items():
        np.testing.assert_array_equal(recomputed[path], value, err_msg=path)
    # the statistics moved, and by one update per step (a second update would move them more)
    assert all(not np.array_equal(plain[path], initial[path]) for path in moving)


def test_traced_steps_match_the_plain_ones_up_to_float_rounding():
    # SGD: a weight moves by the learning rate times its gradient, so this compares gradients
    plain, plain_loss = trained_state(False, traced=True)
    recomputed, recomputed_loss = trained_state(True, traced=True)
    assert recomputed_loss == pytest.approx(plain_loss, rel=1e-5)
    for path, value in plain.items():
        np.testing.assert_allclose(recomputed[path], value, rtol=1e-4, atol=1e-5, err_msg=path)


def test_segments_end_at_block_boundaries_and_run_again_in_the_backward_pass():
    network = tiny_infnet()
    forward = RecomputedForward(network)
    names = [layer.name for layer in network.backbone.layers
             if BOUNDARY_LAYERS.fullmatch(layer.name)]
    # res2net_tiny: blocks (1, 2, 1, 1), each with a "_cat" and an "_out" boundary
    assert names[0] == "maxpool" and len(names) == 1 + 2 * 5
    assert len(forward.segments) == len(names)
    for name, (positions, segment) in zip(names, forward.segments):
        # after a "_cat", the block's shortcut also reads the block input
        assert len(positions) == (2 if name.endswith("_out") else 1)
        assert segment.model.output._keras_history[0].name == name
    calls = []
    for _, segment in forward.segments:
        model = segment.model
        original = model.call
        model.call = lambda *args, _original=original, **kwargs: (calls.append(1),
                                                                  _original(*args, **kwargs))[1]
    data = batches()[0]
    with tf.GradientTape() as tape:
        outputs = forward(data["image"])
        loss = tf.reduce_mean(outputs["lateral_2"])
    assert len(calls) == len(forward.segments)
    tape.gradient(loss, network.trainable_variables)
    assert len(calls) == 2 * len(forward.segments)


def test_outputs_equal_the_network_on_a_resnet_backbone():
    network = tiny_infnet("resnet50_tiny")
    images = batches(size=32)[0]["image"]
    want = network(images, training=True)
    # batch-norm statistics moved with the first call; compare outputs, which use batch statistics
    got = RecomputedForward(network)(images)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5, err_msg=key)


def test_networks_without_a_backbone_are_refused():
    unet = tfcovid.models.build("unet_multiclass",
                                tfcovid.models.MODELS.config("unet_multiclass").tiny())
    with pytest.raises(ValueError, match="functional backbone called once; .* has none"):
        RecomputedForward(unet)
    experiment = config_lib.load_experiment("infnet_multiclass_phantom_tiny")
    experiment = dataclasses.replace(
        experiment, train=dataclasses.replace(experiment.train, recompute_backbone=True))
    with pytest.raises(ConfigError, match="train.recompute_backbone: recomputation needs"):
        engine.build_task(experiment)
