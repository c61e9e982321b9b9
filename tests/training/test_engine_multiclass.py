"""The engine with multi-class networks: priors (model, ground truth, zeros), logits losses,
validation Dice per class, and ``train.init_from``."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcovid.models
from tfcovid import config, inference
from tfcovid.data import pipeline, transforms
from tfcovid.data.phantom import write_phantom
from tfcovid.errors import ConfigError
from tfcovid.models.infnet import InfNetConfig
from tfcovid.training import engine
from tfcovid.training.tasks import LogitsTask

SIZE = 32


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "phantom.h5"
    write_phantom(path, num_cases=3, num_slices=4, size=64, seed=1, progress=False)
    return str(path)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """A single-class run folder (untrained tiny Inf-Net) to take priors from."""
    workdir = tmp_path_factory.mktemp("single")
    keras.utils.set_random_seed(3)
    network = tfcovid.models.build("infnet", InfNetConfig.tiny())
    network(np.zeros((1, SIZE, SIZE, 3), "float32"))
    network.save(workdir / engine.MODEL_FILE)
    experiment = config.load_experiment("infnet_phantom_tiny")
    config.dump(experiment, workdir / engine.CONFIG_FILE)
    return workdir


def multiclass_experiment(store, *overrides) -> config.Experiment:
    experiment = config.load_experiment("infnet_multiclass_phantom_tiny", [
        f"data.image_size=[{SIZE}, {SIZE}]", "train.batch_size=2", "train.steps_per_epoch=2",
        "train.run_eagerly=true", "train.epochs=1", "model.stackwise_filters=[4, 8, 8, 16]",
        *overrides])
    return dataclasses.replace(experiment, data=dataclasses.replace(experiment.data,
                                                                    store=store))


@pytest.fixture(scope="module")
def model_prior_run(store, single_run, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("multiclass")
    experiment = multiclass_experiment(store, f"model.prior_run={single_run}")
    final = engine.train(experiment, workdir, progress=False)
    return {"workdir": workdir, "experiment": experiment, "final": final}


def numpy_prior(probability: np.ndarray) -> np.ndarray:
    """Min-max normalised per image, repeated to 3 channels, ImageNet-scaled."""
    low = probability.min(axis=(1, 2, 3), keepdims=True)
    high = probability.max(axis=(1, 2, 3), keepdims=True)
    unit = (probability - low) / (high - low)
    return (np.repeat(unit, 3, axis=-1) - np.array(transforms.IMAGENET_MEAN)) / np.array(
        transforms.IMAGENET_STD)


def test_model_prior_is_the_normalised_probability_of_the_prior_network(single_run):
    prior_network = keras.saving.load_model(single_run / engine.MODEL_FILE)
    network = tfcovid.models.build("infnet_multiclass",
                                   tfcovid.models.MODELS.config("infnet_multiclass").tiny())
    task = LogitsTask(network, prior_network=prior_network)
    images = np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    stacked = keras.ops.convert_to_numpy(task.model_input({"image": images}))
    logits = keras.ops.convert_to_numpy(prior_network(images, training=False)["lateral_2"])
    probability = 1 / (1 + np.exp(-logits.astype("float64")))
    np.testing.assert_allclose(stacked[..., :3], images)
    np.testing.assert_allclose(stacked[..., 3:], numpy_prior(probability), atol=1e-4)
    assert not prior_network.trainable


def test_logits_terms_match_numpy_formulas():
    network = tfcovid.models.build("unet_multiclass", tfcovid.models.MODELS.config(
        "unet_multiclass").tiny(input_channels=3))
    task = LogitsTask(network, {"bce": 1.0, "cross_entropy": 2.0, "dice": 0.5})
    rng = np.random.default_rng(1)
    label = rng.integers(0, 3, size=(2, 8, 8))
    logits = rng.normal(size=(2, 8, 8, 3))
    terms = {name: float(value) for name, value in task.loss_terms(
        {"label": label}, {"logits": logits.astype("float32")}).items()}
    one_hot = np.eye(3)[label]
    p = 1 / (1 + np.exp(-logits))
    bce = -(one_hot * np.log(p) + (1 - one_hot) * np.log(1 - p)).mean()
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    cross_entropy = -(one_hot * np.log(softmax)).sum(-1).mean()
    dice = 1 - 2 * (one_hot * p).sum((1, 2)) / (one_hot.sum((1, 2)) + p.sum((1, 2)))
    assert terms["bce"] == pytest.approx(bce, rel=1e-5)
    assert terms["cross_entropy"] == pytest.approx(2 * cross_entropy, rel=1e-5)
    assert terms["dice"] == pytest.approx(0.5 * dice.mean(), rel=1e-5)


def test_model_prior_run_keeps_its_prior_network_and_validates_per_class(model_prior_run,
                                                                         single_run):
    workdir, experiment = model_prior_run["workdir"], model_prior_run["experiment"]
    run = inference.load_run(workdir, "best")
    reference = keras.saving.load_model(single_run / engine.MODEL_FILE)
    for saved, original in zip(run.prior_network.weights, reference.weights):
        np.testing.assert_array_equal(saved.numpy(), original.numpy())
    assert run.family == "multiclass" and run.takes_prior
    # Validation Dice, recomputed: per slice the mean of the GGO and consolidation Dice of the
    # argmax label (an empty truth and prediction count 1), averaged over slices.
    data = dataclasses.replace(experiment.data, include_edge=False)
    scores = []
    for batch in pipeline.labelled_dataset(data, engine.split_cases(experiment).val):
        probabilities = inference.class_probabilities(
            run.network, inference.model_inputs(run, batch["image"]))
        labels = np.argmax(probabilities.numpy(), axis=-1)
        for truth, prediction in zip(batch["label"].numpy(), labels):
            per_class = []
            for c in (1, 2):
                both = (truth == c).sum() + (prediction == c).sum()
                per_class.append(1.0 if both == 0 else
                                 2 * ((truth == c) & (prediction == c)).sum() / both)
            scores.append(np.mean(per_class))
    history = json.loads((workdir / engine.HISTORY_FILE).read_text())
    assert history[-1]["val_dice"] == pytest.approx(np.mean(scores), abs=1e-6)
    assert set(history[-1]) >= {"bce", "dice", "loss"}


@pytest.mark.parametrize("prior, expected", [("ground_truth", "ground_truth"),
                                             ("zeros", "zeros")])
def test_pipeline_priors_feed_the_network(store, tmp_path, prior, expected):
    experiment = multiclass_experiment(store, f"model.prior={prior}", "model.prior_run=null")
    network = engine.build_task(experiment).network
    data = engine.run_data_config(experiment, network)
    assert (data.include_prior, data.prior_source, data.include_edge) == (True, expected, False)
    batch = next(iter(pipeline.labelled_dataset(data)))
    prior_unit = batch["prior"].numpy()[..., 0] * transforms.IMAGENET_STD[0] + \
        transforms.IMAGENET_MEAN[0]
    if prior == "zeros":
        np.testing.assert_allclose(prior_unit, 0, atol=1e-6)
    else:  # the mask resized bilinearly, the label by nearest neighbour: boundaries differ
        truth = batch["label"].numpy() > 0
        assert truth.any() and np.mean((prior_unit >= 0.5) == truth) > 0.99
    final = engine.train(experiment, tmp_path, progress=False)
    assert np.isfinite(final["loss"]) and 0 <= final["val_dice"] <= 1


def test_model_prior_without_prior_run_is_a_config_error(store, tmp_path):
    with pytest.raises(ConfigError, match=r"^model\.prior_run: not set"):
        engine.train(multiclass_experiment(store, "model.prior_run=null"), tmp_path)
    with pytest.raises(ConfigError, match=r"^model\.prior_run: .*missing: no such run folder"):
        engine.train(multiclass_experiment(store, f"model.prior_run={tmp_path / 'missing'}"),
                     tmp_path)


def test_logits_terms_on_an_infnet_are_a_config_error(store):
    experiment = config.load_experiment("infnet_phantom_tiny", ["loss.terms={focal: 1.0}"])
    with pytest.raises(ConfigError, match=r"^loss\.terms: infnet is trained with the Inf-Net"):
        engine.build_task(experiment)


def test_init_from_copies_the_best_weights_and_refuses_another_network(model_prior_run,
                                                                       single_run, tmp_path):
    experiment = model_prior_run["experiment"]
    network = engine.build_task(experiment).network
    engine.initialise_from(network, config.TrainConfig(
        init_from=str(model_prior_run["workdir"])), tmp_path)
    best = inference.load_run(model_prior_run["workdir"], "best").network
    for copied, original in zip(network.weights, best.weights):
        np.testing.assert_array_equal(copied.numpy(), original.numpy())
    with pytest.raises(ConfigError, match=r"^train\.init_from: .*does not fit"):
        engine.initialise_from(network, config.TrainConfig(init_from=str(single_run)),
                               tmp_path)


def test_prior_network_is_frozen():
    # A task's trainable variables are its network's alone, not the prior network's.
    prior = tfcovid.models.build("infnet", InfNetConfig.tiny())
    prior(tf.zeros((1, SIZE, SIZE, 3)))
    network = tfcovid.models.build("infnet_multiclass",
                                   tfcovid.models.MODELS.config("infnet_multiclass").tiny())
    task = LogitsTask(network, prior_network=prior)
    task(tf.zeros((1, SIZE, SIZE, 6)))
    trainable = {id(variable) for variable in task.trainable_variables}
    assert trainable == {id(variable) for variable in network.trainable_variables}


def test_fcn8_with_six_channels_trains_on_a_model_prior(store, single_run, tmp_path):
    experiment = config.load_experiment("fcn8_semiseg", [
        "model.backbone=vgg16_tiny", "model.decoder_filters=[8, 8, 4]",
        f"model.prior_run={single_run}", f"data.store={store}",
        f"data.image_size=[{SIZE}, {SIZE}]", "train.batch_size=2", "train.steps_per_epoch=2",
        "train.epochs=1", "train.run_eagerly=true", "train.case_split=random",
        "train.validation_fraction=0.34"])
    final = engine.train(experiment, tmp_path, progress=False)
    run = inference.load_run(tmp_path, "final")
    assert run.takes_prior and run.prior_network is not None
    assert np.isfinite(final["bce"]) and 0 <= final["val_dice"] <= 1
