"""`keras_fit.fit` on a tiny phantom store: the engine's data, resumption, run folders."""

import dataclasses
import json

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcovid import config, evaluation, inference
from tfcovid.data import pipeline
from tfcovid.data.phantom import write_phantom
from tfcovid.errors import ConfigError
from tfcovid.losses import DeepSupervisionLoss, EdgeLoss, StructureLoss
from tfcovid.training import engine, keras_fit

STEPS, EPOCHS = 2, 2
MULTICLASS_STEPS = 1
HEIGHT, WIDTH = 32, 64


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "phantom.h5"
    write_phantom(path, num_cases=3, num_slices=4, size=64, seed=0, progress=False)
    return str(path)


def tiny_experiment(name, store, *overrides) -> config.Experiment:
    return config.load_experiment(name, [
        f"data.store={store}", f"data.image_size=[{HEIGHT}, {WIDTH}]", "train.batch_size=2",
        f"train.steps_per_epoch={STEPS}", f"train.epochs={EPOCHS}",
        "train.validation_fraction=0.34", "train.test_fraction=0", "train.run_eagerly=true",
        "optimizer.learning_rate=3e-3", *overrides])


def multiclass_experiment(store, *overrides) -> config.Experiment:
    """Tiny multi-class Inf-Net on ground-truth priors, one step per epoch, Lookahead with
    k = 2: step 1 sets the slow weights, step 2 (after the epoch boundary) leaves them, so at
    the end they hold step 1's weights, not the network's, and the step counter is 2."""
    return tiny_experiment("infnet_multiclass_phantom_tiny", store, "model.prior=ground_truth",
                           "model.prior_run=null", "model.stackwise_filters=[4, 8, 8, 16]",
                           f"train.steps_per_epoch={MULTICLASS_STEPS}",
                           "optimizer.lookahead=true", "optimizer.lookahead_k=2", *overrides)


@pytest.fixture(scope="module")
def infnet_run(store, tmp_path_factory):
    """Tiny Inf-Net, no validation (its folder is checked on the multi-class runs), at 64 x 64
    px: at 32 x 64 its last stage normalises 2 x 1 x 2 values per channel, and which way four
    Adam steps move the loss there turns on float rounding."""
    workdir = tmp_path_factory.mktemp("infnet")
    experiment = tiny_experiment("infnet_phantom_tiny", store, "train.validation_fraction=0",
                                 "data.image_size=[64, 64]")
    final = keras_fit.fit(experiment, workdir, progress=False)
    return {"workdir": workdir, "experiment": experiment, "final": final}


@pytest.fixture(scope="module")
def multiclass_runs(store, tmp_path_factory):
    """Run "whole": 2 epochs in one go; run "resumed": 1 epoch, then the same workdir to 2.

    ``probe`` is a fixed network input; ``predictions[e]`` what model.keras saved after
    epoch e gives on it.
    """
    whole, resumed = tmp_path_factory.mktemp("whole"), tmp_path_factory.mktemp("resumed")
    experiment = multiclass_experiment(store)
    keras_fit.fit(experiment, whole, progress=False)
    one_epoch = dataclasses.replace(experiment, train=dataclasses.replace(experiment.train,
                                                                          epochs=1))
    keras_fit.fit(one_epoch, resumed, progress=False)
    probe = np.random.default_rng(0).normal(size=(2, HEIGHT, WIDTH, 6)).astype("float32")
    predictions = {1: predict(keras.saving.load_model(resumed / engine.MODEL_FILE), probe)}
    history_after_one = json.loads((resumed / engine.HISTORY_FILE).read_text())
    final = keras_fit.fit(experiment, resumed, progress=False)
    predictions[2] = predict(keras.saving.load_model(whole / engine.MODEL_FILE), probe)
    return {"whole": whole, "resumed": resumed, "experiment": experiment, "final": final,
            "history_after_one": history_after_one, "probe": probe,
            "predictions": predictions}


def predict(network, inputs) -> np.ndarray:
    return keras.ops.convert_to_numpy(network(inputs, training=False)["logits"])


def restored_task(experiment, workdir):
    """A task and optimizer built as `fit` builds them, loaded from the run's backup."""
    task = engine.build_task(experiment)
    optimizer = engine.build_optimizer(experiment.optimizer, MULTICLASS_STEPS)
    task.compile(optimizer=optimizer)
    task.build((None, HEIGHT, WIDTH, 6))
    optimizer.build(task.network.trainable_variables)
    task.load_weights(workdir / keras_fit.BACKUP_DIR / "latest.weights.h5")
    return task


def test_training_batches_are_the_engines_first_batches_of_each_epoch(store):
    experiment = tiny_experiment("infnet_phantom_tiny", store, "train.steps_per_epoch=1")
    data, cases = experiment.data, engine.split_cases(experiment).train
    # 8 training slices, batch 2: 4 full batches per epoch, of which the stream keeps 3
    stream = list(keras_fit.training_batches(data, cases, steps=3, first_epoch=1).take(6))
    for epoch in (1, 2):
        engine_batches = list(pipeline.distributable_dataset(
            data, cases, epochs=1, first_epoch=epoch).take(3))
        for got, expected in zip(stream[3 * (epoch - 1):3 * epoch], engine_batches):
            assert sorted(got) == ["edge", "image", "label", "mask"]
            np.testing.assert_array_equal(got["image"], expected["image"])
            np.testing.assert_array_equal(got["label"], expected["label"])
    with pytest.raises(ValueError, match=r"steps must lie in 1\.\.4.*Received: steps=5"):
        keras_fit.training_batches(data, cases, steps=5)


def test_fit_lowers_the_inf_net_loss_on_a_training_batch(infnet_run):
    experiment, workdir = infnet_run["experiment"], infnet_run["workdir"]
    assert infnet_run["final"]["best_val_dice"] is None
    assert not (workdir / engine.BEST_WEIGHTS_FILE).exists()
    keras.utils.set_random_seed(experiment.train.seed)  # as fit() before building
    initial = engine.build_task(experiment).network
    trained = keras.saving.load_model(workdir / engine.MODEL_FILE)
    loss = DeepSupervisionLoss(StructureLoss(), EdgeLoss())
    cases = engine.split_cases(experiment).train
    batches = list(keras_fit.training_batches(experiment.data, cases, STEPS).take(STEPS))

    def mean_loss(network):  # on the first epoch's batches, with batch statistics
        return np.mean([float(loss({"mask": batch["mask"], "edge": batch["edge"]},
                                   network(batch["image"], training=True)))
                        for batch in batches])

    assert mean_loss(trained) < mean_loss(initial)


def test_run_folder_holds_config_history_and_scores_like_the_engines(multiclass_runs):
    workdir, experiment = multiclass_runs["resumed"], multiclass_runs["experiment"]
    assert config.load_experiment(str(workdir / engine.CONFIG_FILE)) == dataclasses.replace(
        experiment, workdir=str(workdir))
    history = json.loads((workdir / engine.HISTORY_FILE).read_text())
    for record in history:
        assert record["loss"] == pytest.approx(record["bce"] + record["dice"], rel=1e-5)
        assert record["val_loss"] == pytest.approx(
            record["val_loss/bce"] + record["val_loss/dice"], rel=1e-5)
        assert record["images_per_second"] == pytest.approx(
            MULTICLASS_STEPS * 2 / record["seconds"])
        assert record["learning_rate"] == pytest.approx(3e-3)
    assert multiclass_runs["final"]["epoch"] == EPOCHS
    assert multiclass_runs["final"]["val_dice"] == history[-1]["val_dice"]
    result = evaluation.evaluate_run(workdir, split="val")  # tfcovid evaluate's path
    assert result["settings"]["num_slices"] == 4


def test_tensorboard_scalars_match_history(multiclass_runs):
    workdir = multiclass_runs["resumed"]
    history = json.loads((workdir / engine.HISTORY_FILE).read_text())
    scalars = {}
    for path in (workdir / engine.TENSORBOARD_DIR).iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars[(event.step, value.tag)] = float(tf.make_ndarray(value.tensor))
    for record in history:
        step = record["epoch"]
        assert scalars[(step, "loss/total")] == pytest.approx(record["loss"])
        assert scalars[(step, "loss/dice")] == pytest.approx(record["dice"])
        assert scalars[(step, "validation/loss")] == pytest.approx(record["val_loss"])
        assert scalars[(step, "validation/loss/dice")] == pytest.approx(record["val_loss/dice"])
        assert scalars[(step, "validation/dice")] == pytest.approx(record["val_dice"])
        assert scalars[(step, "learning_rate")] == pytest.approx(3e-3)


def test_resumed_lookahead_run_equals_the_uninterrupted_one(multiclass_runs):
    experiment, resumed = multiclass_runs["experiment"], multiclass_runs["resumed"]
    history = json.loads((resumed / engine.HISTORY_FILE).read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    assert history[0] == multiclass_runs["history_after_one"][0]  # kept, not recomputed
    assert keras_fit.finished_epochs(resumed) == 2
    whole_history = json.loads((multiclass_runs["whole"] / engine.HISTORY_FILE).read_text())
    assert history[1]["loss"] == pytest.approx(whole_history[1]["loss"], abs=1e-6)
    tasks = [restored_task(experiment, workdir) for workdir in (multiclass_runs["whole"],
                                                                resumed)]
    for task in tasks:
        assert int(task.optimizer.iterations) == EPOCHS * MULTICLASS_STEPS
        assert int(task.optimizer.step_counter) == EPOCHS * MULTICLASS_STEPS
    whole, again = tasks
    assert len(again.optimizer.slow_weights) == len(again.network.trainable_variables)
    assert not np.allclose(keras.ops.convert_to_numpy(again.optimizer.slow_weights[0]),
                           keras.ops.convert_to_numpy(again.network.trainable_variables[0]))
    for slow_whole, slow_again in zip(whole.optimizer.slow_weights,
                                      again.optimizer.slow_weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(slow_again),
                                   keras.ops.convert_to_numpy(slow_whole), atol=1e-6)
    for inner_whole, inner_again in zip(whole.optimizer.inner_optimizer.variables,
                                        again.optimizer.inner_optimizer.variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(inner_again),
                                   keras.ops.convert_to_numpy(inner_whole), atol=1e-6)
    for weight_whole, weight_again in zip(whole.network.weights, again.network.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(weight_again),
                                   keras.ops.convert_to_numpy(weight_whole), atol=1e-6)


def test_best_and_final_networks_load_through_load_run(multiclass_runs):
    resumed, probe = multiclass_runs["resumed"], multiclass_runs["probe"]
    history = json.loads((resumed / engine.HISTORY_FILE).read_text())
    best_epoch = int(np.argmax([record["val_dice"] for record in history])) + 1
    assert multiclass_runs["final"]["best_epoch"] == best_epoch
    with h5py.File(resumed / engine.BEST_WEIGHTS_FILE) as weights:
        assert "optimizer" not in weights  # the network's weights, not the task's
    best = inference.load_run(resumed, "best")
    assert best.family == "multiclass"
    np.testing.assert_allclose(predict(best.network, probe),
                               multiclass_runs["predictions"][best_epoch], atol=1e-5)
    final = inference.load_run(resumed, "final")
    np.testing.assert_allclose(predict(final.network, probe),
                               multiclass_runs["predictions"][2], atol=1e-5)


def test_validation_dice_matches_numpy_per_slice_and_class(multiclass_runs):
    experiment, resumed = multiclass_runs["experiment"], multiclass_runs["resumed"]
    network = keras.saving.load_model(resumed / engine.MODEL_FILE)
    data = engine.run_data_config(experiment, network)
    scores = []
    for batch in pipeline.labelled_dataset(data, engine.split_cases(experiment).val):
        inputs = np.concatenate([batch["image"], batch["prior"]], axis=-1)
        labels = predict(network, inputs).argmax(axis=-1)
        for truth, prediction in zip(batch["label"].numpy(), labels):
            per_class = []
            for c in (1, 2):  # ground-glass opacity, consolidation; empty vs empty counts 1
                both = (truth == c).sum() + (prediction == c).sum()
                overlap = ((truth == c) & (prediction == c)).sum()
                per_class.append(1.0 if both == 0 else 2 * overlap / both)
            scores.append(np.mean(per_class))
    history = json.loads((resumed / engine.HISTORY_FILE).read_text())
    assert len(scores) == 4  # one validation case of 4 slices
    assert history[-1]["val_dice"] == pytest.approx(np.mean(scores), abs=1e-6)


def test_a_run_needs_a_workdir(store):
    experiment = tiny_experiment("infnet_phantom_tiny", store)
    with pytest.raises(ConfigError, match=r"^workdir: not set; pass --workdir"):
        keras_fit.fit(experiment, progress=False)
