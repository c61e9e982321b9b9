"""The training engine on a tiny phantom store: outputs, logs, resumption, validation Dice."""

import dataclasses
import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcovid import config
from tfcovid.data import pipeline
from tfcovid.data.phantom import write_phantom
from tfcovid.errors import ConfigError
from tfcovid.losses import DeepSupervisionLoss, EdgeLoss, StructureLoss
from tfcovid.training import engine, optimizers

STEPS, SCALES = 1, (1.0, 1.5)  # (32, 64) px and (64, 96) px: round(side * 1.5 / 32) * 32


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "phantom.h5"
    write_phantom(path, num_cases=3, num_slices=4, size=64, seed=0, progress=False)
    return str(path)


def tiny_experiment(store, *overrides) -> config.Experiment:
    experiment = config.load_experiment("infnet_phantom_tiny", [
        "data.image_size=[32, 64]", "train.batch_size=2", f"train.steps_per_epoch={STEPS}",
        f"train.scales={list(SCALES)}", "train.validation_fraction=0.34",
        "train.run_eagerly=true", "optimizer.learning_rate=3e-3", *overrides])
    return dataclasses.replace(experiment, data=dataclasses.replace(experiment.data,
                                                                    store=store))


@pytest.fixture(scope="module")
def resumed_run(store, tmp_path_factory):
    """One epoch, a look at the restored state, then the same workdir trained to epoch 2."""
    workdir = tmp_path_factory.mktemp("run")
    first = tiny_experiment(store, "train.epochs=1", "optimizer.lookahead=true")
    engine.train(first, workdir, progress=False)
    history_after_one = json.loads((workdir / engine.HISTORY_FILE).read_text())
    network_after_one = keras.saving.load_model(workdir / engine.MODEL_FILE)
    with tf.distribute.get_strategy().scope():
        restored = engine._Run(first, workdir, tf.distribute.get_strategy(), progress=False)
    reader = tf.train.load_checkpoint(str(workdir / engine.CHECKPOINT_DIR))
    second = dataclasses.replace(first, train=dataclasses.replace(first.train, epochs=2))
    final = engine.train(second, workdir, progress=False)
    return {"workdir": workdir, "experiment": second, "history_after_one": history_after_one,
            "restored": restored, "reader_after_one": reader, "final": final,
            "network_after_one": network_after_one}


@pytest.fixture(scope="module")
def trained_network(resumed_run):
    return keras.saving.load_model(resumed_run["workdir"] / engine.MODEL_FILE)


def test_run_writes_config_checkpoints_history_and_network(resumed_run, trained_network):
    workdir, experiment = resumed_run["workdir"], resumed_run["experiment"]
    assert config.load_experiment(str(workdir / engine.CONFIG_FILE)) == dataclasses.replace(
        experiment, workdir=str(workdir))
    history = json.loads((workdir / engine.HISTORY_FILE).read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    for record in history:
        terms = [record[f"structure/lateral_{i}"] for i in (5, 4, 3, 2)] + [record["edge"]]
        assert np.isfinite(terms).all() and np.isfinite(record["seconds"])
        assert record["loss"] == pytest.approx(sum(terms), rel=1e-5)
        assert record["images_per_second"] == pytest.approx(STEPS * 2 / record["seconds"])
    assert sorted(path.name for path in (workdir / engine.CHECKPOINT_DIR).glob("*.index")) == [
        "ckpt-1.index", "ckpt-2.index"]
    outputs = trained_network(np.zeros((1, 32, 64, 3), "float32"))
    assert sorted(outputs) == ["edge", "lateral_2", "lateral_3", "lateral_4", "lateral_5"]
    best_epoch = int(np.argmax([record["val_dice"] for record in history])) + 1
    assert resumed_run["final"]["best_epoch"] == best_epoch
    assert resumed_run["final"]["best_val_dice"] == history[best_epoch - 1]["val_dice"]
    assert (workdir / engine.BEST_WEIGHTS_FILE).exists()


def test_training_lowers_the_loss_on_the_training_slices(resumed_run):
    experiment, workdir = resumed_run["experiment"], resumed_run["workdir"]
    keras.utils.set_random_seed(experiment.train.seed)  # as train() before building
    initial = engine.build_task(experiment).network
    trained = keras.saving.load_model(workdir / engine.MODEL_FILE)  # own copy: BN stats move
    loss = DeepSupervisionLoss(StructureLoss(), EdgeLoss())
    train_cases = engine.split_cases(experiment).train
    batches = list(pipeline.labelled_dataset(experiment.data, train_cases).take(2))

    def mean_loss(network):  # batch statistics, as in training
        return np.mean([float(loss({"mask": batch["mask"], "edge": batch["edge"]},
                                   network(batch["image"], training=True)))
                        for batch in batches])

    assert mean_loss(trained) < mean_loss(initial)


def test_checkpoint_restores_every_network_variable(resumed_run):
    # Batch-norm statistics of layers kept in lists (RFB branches, reverse-attention
    # convolutions) included: TensorFlow's checkpoint graph does not see those sublayers.
    saved = {w.path: w.numpy() for w in resumed_run["network_after_one"].weights}
    restored = resumed_run["restored"].task.network.weights
    assert any("rfb2_1/branch1_1/bn/moving_variance" in w.path for w in restored)
    for weight in restored:
        np.testing.assert_array_equal(weight.numpy(), saved[weight.path], err_msg=weight.path)


def test_resume_keeps_finished_epochs_and_optimizer_state(resumed_run):
    history = json.loads((resumed_run["workdir"] / engine.HISTORY_FILE).read_text())
    # epoch 1 is the first run's record, not recomputed (its timing would differ)
    assert history[0] == resumed_run["history_after_one"][0]
    restored, reader = resumed_run["restored"], resumed_run["reader_after_one"]
    assert int(restored.epoch) == 1
    # one epoch = STEPS batches x len(SCALES) optimizer steps
    assert int(restored.optimizer.iterations) == STEPS * len(SCALES)
    assert int(restored.optimizer.step_counter) == STEPS * len(SCALES)
    lookahead = restored.optimizer
    assert len(lookahead.slow_weights) == len(restored.task.network.trainable_variables)
    compared = 0
    for index, variable in enumerate(lookahead._variables):  # slow weights among them
        key = f"optimizer/_variables/{index}/.ATTRIBUTES/VARIABLE_VALUE"
        if reader.has_tensor(key):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable),
                                          reader.get_tensor(key))
            compared += 1
    assert compared >= len(lookahead.slow_weights)
    final_reader = tf.train.load_checkpoint(str(resumed_run["workdir"] / engine.CHECKPOINT_DIR))
    assert final_reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 2
    assert final_reader.get_tensor(
        "optimizer/inner_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 2 * STEPS * len(
        SCALES)


def test_tensorboard_scalars_images_and_config_match_the_run(resumed_run):
    history = json.loads((resumed_run["workdir"] / engine.HISTORY_FILE).read_text())
    scalars, images, texts = {}, {}, []
    for path in (resumed_run["workdir"] / engine.TENSORBOARD_DIR).iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                content = tf.make_ndarray(value.tensor)
                if plugin == "scalars":
                    scalars[(event.step, value.tag)] = float(content)
                elif plugin == "images":
                    images[(event.step, value.tag)] = content
                else:
                    assert plugin == "text"
                    texts.append(content.item().decode())
    assert len(texts) == 1 and "infnet" in texts[0]  # the config, once, at the fresh start
    width, height = int(resumed_run["experiment"].data.image_size[1]), 32
    for step in (1, 2):
        panels = images[(step, "validation/ct_truth_prediction_edge")]
        decoded = tf.io.decode_png(panels[2]).numpy()  # [width, height, png, ...]
        # CT | truth | prediction | edge map, 4 px apart, one panel per validation slice
        assert decoded.shape == (height, 4 * width + 3 * 4, 3)
        assert (int(panels[0]), int(panels[1])) == (decoded.shape[1], decoded.shape[0])
        assert len(panels) - 2 == 2  # the first validation batch: 2 slices
    for record in history:
        step = record["epoch"]
        assert scalars[(step, "loss/total")] == pytest.approx(record["loss"])
        assert scalars[(step, "loss/edge")] == pytest.approx(record["edge"])
        assert scalars[(step, "validation/dice")] == pytest.approx(record["val_dice"])
        assert scalars[(step, "learning_rate")] == pytest.approx(3e-3)
        assert scalars[(step, "time/images_per_second")] == pytest.approx(
            record["images_per_second"], rel=1e-6)


def test_validation_dice_matches_numpy_on_the_validation_cases(resumed_run, trained_network):
    experiment = resumed_run["experiment"]
    split = engine.split_cases(experiment)
    assert len(split.val) == 1 and len(split.train) == 2 and not split.test
    network = trained_network
    scores = []
    for batch in pipeline.labelled_dataset(experiment.data, split.val):
        probabilities = keras.ops.sigmoid(network(batch["image"], training=False)["lateral_2"])
        for truth, prediction in zip(batch["mask"].numpy() > 0.5,
                                     keras.ops.convert_to_numpy(probabilities) >= 0.5):
            both = truth.sum() + prediction.sum()  # empty truth and prediction count 1
            scores.append(1.0 if both == 0 else 2 * (truth & prediction).sum() / both)
    assert resumed_run["final"]["val_dice"] == pytest.approx(np.mean(scores), abs=1e-6)


def test_optimizer_follows_the_config():
    adam = engine.build_optimizer(config.OptimizerConfig(), steps_per_epoch=3)
    assert isinstance(adam, keras.optimizers.Adam)
    assert (adam.epsilon, adam.clipvalue) == (1e-8, None)  # the task clips, after the sum
    assert isinstance(adam._learning_rate, optimizers.StepDecay)
    sgd = engine.build_optimizer(config.OptimizerConfig(
        name="sgd", momentum=0.9, weight_decay=1e-4, lookahead=True, lookahead_k=6,
        schedule="as_run"), steps_per_epoch=3)
    assert isinstance(sgd, optimizers.Lookahead) and sgd.sync_period == 6
    assert isinstance(sgd.inner_optimizer, optimizers.TorchSGD)
    assert (sgd.inner_optimizer.momentum, sgd.inner_optimizer.coupled_weight_decay) == (0.9, 1e-4)
    assert isinstance(sgd.inner_optimizer._learning_rate, optimizers.CompoundingStepDecay)


def test_user_errors_are_config_errors(store, tmp_path):
    with pytest.raises(ConfigError, match=r"^workdir: not set"):
        engine.train(tiny_experiment(store), None)
    with pytest.raises(ConfigError, match=r"^train\.batch_size: 9 is more than the 8 training "
                                          r"slices"):
        engine.train(tiny_experiment(store, "train.batch_size=9"), tmp_path)


@pytest.mark.slow
def test_traced_multi_scale_epoch_under_mixed_precision(store, tmp_path, monkeypatch):
    experiment = tiny_experiment(store, "train.epochs=1", "train.run_eagerly=false",
                                 "train.precision=mixed_float16")
    releases = []
    monkeypatch.setattr(engine.memory, "release_free_memory", lambda: releases.append(1))
    final = engine.train(experiment, tmp_path, progress=False)
    assert np.isfinite(final["loss"]) and keras.config.dtype_policy().name == "float32"
    assert len(releases) == STEPS  # the freed heap goes back after every batch's steps


def test_checkpoint_of_another_network_is_a_config_error(resumed_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(resumed_run["workdir"], workdir)
    narrower = tiny_experiment(resumed_run["experiment"].data.store, "model.channels=4",
                               "optimizer.lookahead=true")
    with pytest.raises(ConfigError, match=r"ckpt-2: does not fit this experiment's network"):
        engine.train(narrower, workdir, progress=False)
