"""`evaluate_run` on a tiny trained phantom run: split, per-slice rows, Dice against NumPy."""

import dataclasses

import keras
import numpy as np
import pytest
from scipy import ndimage

from tfcovid import config, evaluation
from tfcovid.data import pipeline
from tfcovid.data.phantom import write_phantom
from tfcovid.data.store import CaseStore
from tfcovid.errors import ConfigError, DataError
from tfcovid.training import engine


def make_run(folder):
    """A one-step run on a 4-case phantom store: 2 train, 1 validation, 1 test case."""
    store = folder / "phantom.h5"
    write_phantom(store, num_cases=4, num_slices=2, size=64, seed=2, progress=False)
    experiment = config.load_experiment("infnet_phantom_tiny", [
        "data.image_size=[32, 48]", "train.epochs=1", "train.batch_size=2",
        "train.steps_per_epoch=1", "train.scales=[1.0]", "train.validation_fraction=0.25",
        "train.test_fraction=0.25", "train.run_eagerly=true"])
    experiment = dataclasses.replace(experiment, data=dataclasses.replace(
        experiment.data, store=str(store)))
    workdir = folder / "run"
    engine.train(experiment, workdir, progress=False)
    return experiment, workdir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("evaluation"))


@pytest.fixture(scope="module")
def result(run):
    # An untrained network's maps sit near 0.5 on either side; the median of the maps as
    # threshold makes the hard masks, and so the Dice check, non-trivial.
    first = evaluation.evaluate_run(run[1], return_predictions=True)
    median = float(np.median(np.concatenate([pred.ravel() for pred, _ in first["predictions"]])))
    return evaluation.evaluate_run(run[1], threshold=median, return_predictions=True)


def test_test_part_is_the_runs_held_out_cases(run, result):
    experiment, _ = run
    split = engine.split_cases(experiment)
    evaluated = {row["case_id"] for row in result["rows"]}
    assert evaluated == set(split.test) and not evaluated & set(split.train + split.val)
    # 1 test case of 2 slices
    assert [(row["case_id"], row["slice_index"]) for row in result["rows"]] == [
        (split.test[0], 0), (split.test[0], 1)]
    assert result["settings"]["num_slices"] == 2 and result["settings"]["split"] == "test"


def test_maps_are_the_networks_resized_back_with_scipy(run, result):
    experiment, workdir = run
    network = keras.saving.load_model(workdir / engine.MODEL_FILE)
    network.load_weights(workdir / engine.BEST_WEIGHTS_FILE)
    batch = next(iter(pipeline.labelled_dataset(experiment.data, engine.split_cases(
        experiment).test)))
    logits = keras.ops.convert_to_numpy(network(batch["image"], training=False)["lateral_2"])
    for logit, (pred, _) in zip(logits[..., 0], result["predictions"]):
        probability = 1 / (1 + np.exp(-logit.astype(np.float64)))  # (32, 48)
        # bilinear with half-pixel centres: scipy's grid_mode zoom, edges clamped
        expected = ndimage.zoom(probability, (64 / 32, 64 / 48), order=1, grid_mode=True,
                                mode="nearest")
        np.testing.assert_allclose(pred, expected, atol=1e-5)


def test_dice_matches_numpy_on_true_size_maps(run, result):
    experiment, _ = run
    with CaseStore(experiment.data.store) as store:
        for row, (pred, truth) in zip(result["rows"], result["predictions"]):
            label = store.read(row["case_id"]).slice_arrays(row["slice_index"])["label"]
            assert pred.shape == truth.shape == label.shape == (64, 64)
            np.testing.assert_array_equal(truth, label > 0)
            assert 0 <= pred.min() and pred.max() <= 1
    dices = []
    for pred, truth in result["predictions"]:
        hard = pred >= result["settings"]["threshold"]
        total = hard.sum() + truth.sum()
        dices.append(2 * np.logical_and(hard, truth).sum() / total if total else np.nan)
    np.testing.assert_allclose([row["dice"] for row in result["rows"]], dices, atol=1e-9)
    summary = result["summary"]["dice"]
    kept = [value for value in dices if not np.isnan(value)]
    assert summary.n == len(kept) and summary.dropped == len(dices) - len(kept)
    assert 0 < np.mean(kept) < 1 and summary.mean == pytest.approx(np.mean(kept))


def test_final_weights_and_all_cases_of_another_store(run):
    experiment, workdir = run
    result = evaluation.evaluate_run(workdir, store=experiment.data.store, weights="final")
    with CaseStore(experiment.data.store) as store:
        assert result["settings"]["num_slices"] == 2 * len(store.case_ids)
    assert result["settings"]["split"] == "all"
    assert set(result["threshold_sweep"]) >= {"mean_dice", "mean_sensitivity",
                                              "mean_specificity", "mean_e_measure"}


def test_errors_name_the_file(run, tmp_path):
    experiment, workdir = run
    with pytest.raises(DataError, match=r"missing: no such run folder"):
        evaluation.evaluate_run(tmp_path / "missing")
    with pytest.raises(DataError, match=r"config\.yaml: no such file"):
        evaluation.evaluate_run(tmp_path)
    with pytest.raises(ValueError, match=r"Received: split='dev'"):
        evaluation.evaluate_run(workdir, split="dev")
    no_test = dataclasses.replace(experiment, train=dataclasses.replace(
        experiment.train, test_fraction=0.0))
    config.dump(no_test, tmp_path / "config.yaml")
    (tmp_path / "model.keras").write_bytes((workdir / "model.keras").read_bytes())
    with pytest.raises(DataError, match=r"best\.weights\.h5: no such file"):
        evaluation.evaluate_run(tmp_path)
    with pytest.raises(ConfigError, match=r"config\.yaml: the run's test part holds no case"):
        evaluation.evaluate_run(tmp_path, weights="final")
