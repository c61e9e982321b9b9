"""`tfcovid.severity_evaluation`: case ratios recomputed here from `predict_hu`, the run's split,
stored thresholds, scores against scikit-learn, and one-line errors."""

import dataclasses
import json

import keras
import numpy as np
import pytest
from sklearn import metrics

from tests.test_export import make_run
from tfcovid import config, export, inference, predict, severity_evaluation
from tfcovid.data import phantom
from tfcovid.data.store import CaseStore, write_store
from tfcovid.errors import ConfigError, DataError
from tfcovid.models.unet import UNetConfig
from tfcovid.severity import classes, lung, thresholds
from tfcovid.training import engine

NUM_CASES, SLICES, SIZE = 6, 3, 64


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A phantom store with lung masks, the same cases without them, and one without
    severities."""
    root = tmp_path_factory.mktemp("severity_stores")
    cases = [phantom.make_phantom_case(index, SLICES, SIZE, SIZE) for index in range(NUM_CASES)]
    paths = {"lungs": root / "phantom.h5", "no_lungs": root / "no_lungs.h5",
             "no_severity": root / "no_severity.h5"}
    write_store(paths["lungs"], cases, intensity="hu")
    write_store(paths["no_lungs"], [dataclasses.replace(case, lung=None) for case in cases],
                intensity="hu")
    write_store(paths["no_severity"], [dataclasses.replace(case, severity=None)
                                       for case in cases[:2]], intensity="hu")
    return paths


@pytest.fixture(scope="module")
def run_dir(stores, tmp_path_factory):
    """An untrained multi-class U-Net run (the cheapest network to load) whose config names the
    phantom store, with a test part."""
    keras.utils.set_random_seed(6)
    workdir = make_run(tmp_path_factory.mktemp("severity_run") / "run", "unet_multiclass",
                       UNetConfig.tiny(input_channels=3))
    experiment = inference.load_experiment(workdir)
    experiment = dataclasses.replace(
        experiment, data=dataclasses.replace(experiment.data, store=str(stores["lungs"])),
        train=dataclasses.replace(experiment.train, validation_fraction=0.25,
                                  test_fraction=0.25))
    config.dump(experiment, workdir / inference.CONFIG_FILE)
    return workdir


@pytest.fixture(scope="module")
def predictor(run_dir):
    return predict.load_predictor(run_dir)


@pytest.fixture(scope="module")
def expected_ratios(run_dir):
    """``expected_ratios(store, case_ids, stored_lungs)``: soft infection ratio of each case,
    probability summed over lung voxels / lung voxels."""
    run = export.load_export_run(run_dir)
    return lambda *args: _ratios(run, *args)


def _ratios(run, store, case_ids, stored_lungs=True):
    ratios = []
    with CaseStore(store) as opened:
        for case_id in case_ids:
            case = opened.read(case_id)
            probabilities = export.predict_hu(run, case.image)["probabilities"]
            probability = probabilities[..., 1] + probabilities[..., 2]  # GGO or consolidation
            mask = (case.lung > 0) if stored_lungs else (
                lung.segment_lungs(case.image, case.spacing_mm) > 0)
            ratios.append(float(np.clip(probability, 0, 1)[mask].sum() / mask.sum()))
    return np.array(ratios)


def test_fit_stores_thresholds_fitted_on_the_train_part(run_dir, stores, predictor,
                                                        expected_ratios):
    result = severity_evaluation.fit_severity_thresholds(predictor, cases="train")
    train = engine.split_cases(inference.load_experiment(run_dir)).train
    fit = result["fit"]
    assert fit["case_ids"] == train and fit["cases"] == "train"
    assert fit["store"] == str(stores["lungs"]) and fit["lung_sources"] == {
        "learned": 0, "store": len(train), "classical": 0}
    ratios = expected_ratios(stores["lungs"], train)
    np.testing.assert_allclose([row["ratio"] for row in result["rows"]], ratios, rtol=1e-5)
    with CaseStore(stores["lungs"]) as opened:
        truth = [opened.case_attributes(case_id)["severity"] for case_id in train]
    assert result["thresholds"] == list(classes.fit_thresholds(
        [row["ratio"] for row in result["rows"]], truth))
    predicted = classes.severity_class([row["ratio"] for row in result["rows"]],
                                       result["thresholds"])
    assert fit["scores"]["f1_micro"] == pytest.approx(metrics.f1_score(truth, predicted,
                                                                       average="micro"))
    stored = json.loads((run_dir / thresholds.THRESHOLDS_FILE).read_text())
    assert stored["thresholds"] == result["thresholds"] and stored["fit"] == fit
    assert thresholds.load_thresholds(run_dir).source == "fitted"


def test_evaluate_uses_stored_thresholds_and_scores_like_scikit_learn(
        run_dir, stores, predictor, expected_ratios):
    thresholds.save_thresholds(run_dir, (0.2, 0.6), {"store": "elsewhere.h5"})
    result = severity_evaluation.evaluate_severity_run(predictor, stores["lungs"], cases="all")
    assert result["settings"]["thresholds"]["source"] == "fitted"
    assert result["settings"]["thresholds"]["values"] == [0.2, 0.6]
    with CaseStore(stores["lungs"]) as opened:
        case_ids = opened.case_ids
        truth = [opened.case_attributes(case_id)["severity"] for case_id in case_ids]
    ratios = expected_ratios(stores["lungs"], case_ids)
    predicted = np.searchsorted([0.2, 0.6], ratios, side="right")
    assert [row["predicted"] for row in result["rows"]] == predicted.tolist()
    scores = result["scores"]
    assert scores["f1_micro"] == pytest.approx(metrics.f1_score(truth, predicted,
                                                                average="micro"))
    assert scores["confusion_matrix"] == metrics.confusion_matrix(truth, predicted,
                                                                  labels=[0, 1, 2]).tolist()
    json.dumps(result, allow_nan=False)
    (run_dir / thresholds.THRESHOLDS_FILE).unlink()
    reference = severity_evaluation.evaluate_severity_run(predictor, stores["lungs"],
                                                          cases=["phantom_000"])
    assert reference["settings"]["thresholds"] == {
        "values": [0.01, 0.5], "source": "reference", "path": None, "fit": None}


def test_classical_lungs_stand_in_for_missing_masks(stores, predictor, expected_ratios):
    result = severity_evaluation.evaluate_severity_run(
        predictor, stores["no_lungs"], cases=["phantom_001", "phantom_003"])
    sources = result["settings"]["lung_sources"]
    assert sources == {"learned": 0, "store": 0, "classical": 2}
    np.testing.assert_allclose(
        [row["ratio"] for row in result["rows"]],
        expected_ratios(stores["no_lungs"], ["phantom_001", "phantom_003"], False),
        rtol=1e-5)


def test_case_choices_give_one_line_errors(run_dir, stores):
    with pytest.raises(DataError, match=r"no_severity\.h5: no case with a severity label"):
        severity_evaluation.select_cases(run_dir, stores["no_severity"], "all")
    with pytest.raises(ConfigError, match=r"--cases test: .*no_lungs\.h5 is not the run's store"):
        severity_evaluation.select_cases(run_dir, stores["no_lungs"], "test")
    with pytest.raises(DataError, match=r"phantom\.h5: no case nobody"):
        severity_evaluation.select_cases(run_dir, stores["lungs"], ["phantom_000", "nobody"])
    assert severity_evaluation.select_cases(run_dir, stores["lungs"], "test") == \
        engine.split_cases(inference.load_experiment(run_dir)).test
