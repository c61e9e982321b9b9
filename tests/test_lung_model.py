"""`tfcovid.lung_model`: the lung store, learned lungs against `predict_hu` and `label_lungs`,
and its use by `tfcovid.severity_evaluation`."""

import numpy as np
import pytest

from tests.test_severity_evaluation import run_dir, stores  # noqa: F401  (fixtures)
from tfcovid import export, lung_model, predict, severity_evaluation
from tfcovid.data.store import CaseStore
from tfcovid.errors import DataError
from tfcovid.severity import lung


def test_lung_store_keeps_cases_with_lung_masks_as_labels(stores, tmp_path):  # noqa: F811
    target = tmp_path / "lung.h5"
    assert lung_model.write_lung_store(stores["lungs"], target) == 6
    with CaseStore(stores["lungs"]) as source, CaseStore(target) as written:
        assert written.case_ids == source.case_ids and written.intensity == "hu"
        for case_id in source.case_ids:
            original, copied = source.read(case_id), written.read(case_id)
            np.testing.assert_array_equal(copied.label, original.lung > 0)
            np.testing.assert_array_equal(copied.image, original.image)
            assert copied.severity == original.severity
    with pytest.raises(DataError, match=r"no_lungs\.h5: no case has a lung mask"):
        lung_model.write_lung_store(stores["no_lungs"], tmp_path / "none.h5")


def test_learned_lungs_are_the_predicted_mask_split_into_sides(run_dir, stores):  # noqa: F811
    # an untrained network stands in for a lung run: what matters is the wiring
    predictor = lung_model.load_lung_predictor(run_dir, batches_at_once=2)
    with CaseStore(stores["lungs"]) as opened:
        case = opened.read("phantom_002")
    learned = lung_model.segment_lungs_learned(predictor, case.image, case.spacing_mm,
                                               batch_size=2)
    mask = export.predict_hu(predictor.run, case.image)["label"] > 0
    np.testing.assert_array_equal(learned, lung.label_lungs(mask, case.spacing_mm))
    with pytest.raises(ValueError, match=r"shape=\(64, 64\), batch_size=1"):
        lung_model.segment_lungs_learned(predictor, case.image[0], case.spacing_mm, 1)


class ThresholdLungs:
    """A stand-in lung run whose "network" calls everything below -700 HU lung."""

    batches_at_once = 2
    predict_batches = predict.Predictor.predict_batches

    def predict_hu(self, slices_hu):
        return {"label": (np.asarray(slices_hu) < -700).astype(np.int32)}


def test_severity_evaluation_takes_its_lungs_from_the_lung_run(stores, run_dir):  # noqa: F811
    predictor = lung_model.load_lung_predictor(run_dir, batches_at_once=2)
    result = severity_evaluation.evaluate_severity_run(
        predictor, stores["lungs"], cases=["phantom_002"], lung_run=ThresholdLungs())
    assert result["settings"]["lung_sources"] == {"learned": 1, "store": 0, "classical": 0}
    with CaseStore(stores["lungs"]) as opened:
        case = opened.read("phantom_002")
    probabilities = export.predict_hu(predictor.run, case.image)["probabilities"]
    inside = lung.label_lungs(case.image < -700, case.spacing_mm) > 0
    expected = (probabilities[..., 1] + probabilities[..., 2])[inside].sum() / inside.sum()
    assert result["rows"][0]["ratio"] == pytest.approx(expected, rel=1e-5)


def test_severity_evaluation_loads_a_lung_run_folder(stores, run_dir, caplog):  # noqa: F811
    # the untrained network finds no lung: the case is skipped as the learned lungs' doing
    predictor = predict.load_predictor(run_dir, batches_at_once=1)
    with pytest.raises(DataError, match="no lung found in any of the 1 chosen cases"):
        severity_evaluation.evaluate_severity_run(predictor, stores["lungs"],
                                                  cases=["phantom_002"], lung_run=run_dir)
    assert "case phantom_002 skipped: no lung found (learned)" in caplog.text
