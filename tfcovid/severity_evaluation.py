"""Case severity of a store predicted by a trained run: threshold fitting and evaluation (issue 6).

For each chosen case with a severity label, the run's network predicts every slice (the path of
``tfcovid predict``: `tfcovid.predict.Predictor`, the run's HU window, resizing to the network
and back), and the case's infection ratio is the soft ratio of `tfcovid.severity.ratio`: the
sum of infection probability over lung voxels / the lung voxel count. The lung comes from a
lung run when one is given (`tfcovid.lung_model`, "learned"), else from the case's stored
``lung`` mask ("store"), else from the classical segmenter (`tfcovid.severity.lung`,
"classical"); each case records which. A case in which no lung is found is skipped and listed.

- `fit_severity_thresholds` fits (low, high) on the cases by maximising micro F1
  (`tfcovid.severity.classes.fit_thresholds`) and stores them with the run
  (`tfcovid.severity.thresholds`), with the store, the cases and the F1 reached;
- `evaluate_severity_run` classifies the cases with the run's stored thresholds (else the
  reference ones) and scores them (`tfcovid.severity.classes.evaluate_severity`: micro F1,
  precision and recall as scikit-learn computes them, confusion matrix, per-class scores).

Cases are named by ids, "all" (every case with a severity label), or a part of the run's own
case split, "train", "val" or "test" (`tfcovid.training.engine.split_cases`, which the run
recomputes from its ``config.yaml``: the same seed and fractions give the same parts); the parts
only exist for the run's own store.

Example (a run folder and the phantom store it was trained on)::

    fit = fit_severity_thresholds("runs/phantom_tiny", "phantom.h5", cases="train")
    result = evaluate_severity_run("runs/phantom_tiny", "phantom.h5", cases="test")
    result["scores"]["f1_micro"], result["scores"]["confusion_matrix"]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tfcovid import inference, lung_model, predict
from tfcovid.data.store import SEVERITY_NAMES, CaseStore
from tfcovid.errors import ConfigError, DataError
from tfcovid.progress import progress_bar
from tfcovid.severity import classes, lung, ratio, thresholds

logger = logging.getLogger(__name__)

SPLIT_PARTS = ("train", "val", "test")


def select_cases(run_dir: str | os.PathLike, store: str | os.PathLike,
                 cases: str | Sequence[str]) -> list[str]:
    """The ids of the chosen cases that carry a severity label, in the store's order.

    Args:
        run_dir: the run folder.
        store: the store file.
        cases: "all", "train", "val", "test" (parts of the run's split, for the run's own store
            only) or a sequence of case ids.

    Raises:
        ConfigError: a split part asked of another store, or an empty part.
        DataError: a missing store, unknown ids, ids without severity, or no case with a
            severity label among the chosen ones.
    """
    experiment = inference.load_experiment(run_dir)
    with CaseStore(store) as opened:
        severities = {case_id: opened.case_attributes(case_id)["severity"]
                      for case_id in opened.case_ids}
    if isinstance(cases, str) and cases in SPLIT_PARTS:
        if not _same_file(store, experiment.data.store):
            raise ConfigError(f"--cases {cases}: {store} is not the run's store "
                              f"({experiment.data.store}), whose split names the parts; pass "
                              f"--cases all or case ids")
        from tfcovid.training import engine

        chosen = set(getattr(engine.split_cases(experiment), cases))
        if not chosen:
            raise ConfigError(f"{Path(run_dir) / inference.CONFIG_FILE}: the run's {cases} part "
                              f"holds no case; choose another part or case ids")
    elif isinstance(cases, str) and cases == "all":
        chosen = set(severities)
    else:
        chosen = {cases} if isinstance(cases, str) else set(cases)
        unknown = sorted(chosen - set(severities))
        unlabelled = sorted(case_id for case_id in chosen - set(unknown)
                            if severities[case_id] is None)
        problems = ([f"no case {', '.join(unknown)}"] if unknown else []) + (
            [f"no severity label for {', '.join(unlabelled)}"] if unlabelled else [])
        if problems:
            raise DataError(f"{store}: {'; '.join(problems)}")
    selected = [case_id for case_id in severities
                if case_id in chosen and severities[case_id] is not None]
    if not selected:
        raise DataError(f"{store}: no case with a severity label among the chosen cases; "
                        f"severity needs case labels 0/1/2 (e.g. an iCTCF or phantom store)")
    return selected


def case_ratios(predictor: predict.Predictor, store: str | os.PathLike,
                case_ids: Sequence[str], batch_size: int = 8, progress: bool = False,
                lung_run: predict.Predictor | None = None) -> tuple[list[dict], list[dict]]:
    """Predicted infection ratio of each case (module docstring).

    Args:
        predictor: the run, loaded (`tfcovid.predict.load_predictor`).
        store: the store file.
        case_ids: cases to predict, each with a severity label.
        batch_size: int >= 1. Slices per forward pass. Defaults to 8.
        progress: bool. Show a progress bar over cases on a terminal. Defaults to False.
        lung_run: a lung run, loaded (`tfcovid.lung_model.load_lung_predictor`), or None.
            Defaults to None.

    Returns:
        (rows, skipped): rows ``{"case_id", "severity", "ratio", "lung_source"}`` and skipped
        cases ``{"case_id", "reason"}``.

    Raises:
        ValueError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more. Received: batch_size={batch_size}")
    data = predictor.run.experiment.data
    rows, skipped = [], []
    with CaseStore(store) as opened:
        for case_id in progress_bar(case_ids, total=len(case_ids), description="cases",
                                    enabled=progress, unit="case"):
            case = opened.read(case_id)
            volume = _hounsfield(case.image, opened.intensity,
                                 (data.window_level_hu, data.window_width_hu))
            lungs, source = _lungs(case, volume, lung_run, batch_size)
            if not lungs.any():
                skipped.append({"case_id": case_id, "reason": f"no lung found ({source})"})
                logger.warning("%s: case %s skipped: no lung found (%s)", store, case_id, source)
                continue
            probabilities = _probabilities(predictor, volume, batch_size)
            ratios = ratio.infection_ratios(probabilities, lungs)
            rows.append({"case_id": case_id, "severity": case.severity,
                         "ratio": float(ratios.per_case[0]), "lung_source": source})
    return rows, skipped


def fit_severity_thresholds(run_dir: str | os.PathLike | predict.Predictor,
                            store: str | os.PathLike | None = None,
                            cases: str | Sequence[str] = "train", weights: str = "best",
                            batch_size: int = 8, progress: bool = False,
                            lung_run: str | os.PathLike | predict.Predictor | None = None
                            ) -> dict:
    """Fits the run's severity thresholds on cases and stores them in the run folder.

    Args:
        run_dir: the run folder, or a `tfcovid.predict.Predictor` loaded once (then
            ``weights`` must be its own).
        store: the store file, or None for the run's own (``data.store``). Defaults to None.
        cases: as `select_cases`. Defaults to "train".
        weights: "best" or "final", as `tfcovid.inference.load_run`. Defaults to "best".
        batch_size: int >= 1. Slices per forward pass. Defaults to 8.
        progress: bool. Show a progress bar on a terminal. Defaults to False.
        lung_run: a run trained on lung masks (`tfcovid.lung_model`), as a folder or loaded,
            to find every case's lungs, or None (stored masks, else the classical segmenter).
            Defaults to None.

    Returns:
        dict: "thresholds" (low, high), "path" (the file written), "fit" (what the file records:
        store, cases, case_ids, weights, ratio_mode, lung_sources, skipped, the "scores" of
        the fitted thresholds on these cases and the "reference_scores" of the reference ones),
        "rows" (per case, with "predicted").

    Raises:
        ValueError: ``weights`` other than a given `Predictor`'s.
        as `select_cases`, `tfcovid.predict.load_predictor`; DataError when no case is left.
    """
    run_dir, store, rows, skipped = _predict_cases(run_dir, weights, store, cases, batch_size,
                                                   progress, lung_run)
    ratios = [row["ratio"] for row in rows]
    truth = [row["severity"] for row in rows]
    fitted = classes.fit_thresholds(ratios, truth)
    predicted = classes.severity_class(ratios, fitted)
    for row, value in zip(rows, predicted.tolist()):
        row["predicted"] = value
    fit = {"store": os.fspath(store), "cases": cases if isinstance(cases, str) else "ids",
           "case_ids": [row["case_id"] for row in rows], "weights": weights,
           "ratio_mode": "soft", "lung_sources": _sources(rows), "skipped": skipped,
           "scores": classes.evaluate_severity(predicted, truth),
           "reference_scores": classes.evaluate_severity(classes.severity_class(ratios), truth)}
    path = thresholds.save_thresholds(run_dir, fitted, fit)
    return {"thresholds": list(fitted), "path": os.fspath(path), "fit": fit, "rows": rows}


def evaluate_severity_run(run_dir: str | os.PathLike | predict.Predictor,
                          store: str | os.PathLike | None = None,
                          cases: str | Sequence[str] = "test", weights: str = "best",
                          batch_size: int = 8, progress: bool = False,
                          lung_run: str | os.PathLike | predict.Predictor | None = None
                          ) -> dict:
    """Classifies cases with the run's stored thresholds and scores them against their labels.

    Args:
        run_dir: the run folder, or a `tfcovid.predict.Predictor` loaded once (then
            ``weights`` must be its own).
        store: the store file, or None for the run's own (``data.store``). Defaults to None.
        cases: as `select_cases`. Defaults to "test".
        weights: "best" or "final". Defaults to "best".
        batch_size: int >= 1. Slices per forward pass. Defaults to 8.
        progress: bool. Show a progress bar on a terminal. Defaults to False.
        lung_run: as `fit_severity_thresholds`. Defaults to None.

    Returns:
        JSON-ready dict: "settings" (run, store, cases, weights, ratio_mode, thresholds as
        `tfcovid.severity.thresholds.SeverityThresholds.to_dict`, lung_sources, skipped),
        "scores" (`tfcovid.severity.classes.evaluate_severity`), "rows" (per case: case_id,
        severity, ratio, lung_source, predicted, predicted_name).

    Raises:
        as `fit_severity_thresholds`; DataError for a corrupt thresholds file.
    """
    run_dir, store, rows, skipped = _predict_cases(run_dir, weights, store, cases, batch_size,
                                                   progress, lung_run)
    stored = thresholds.load_thresholds(run_dir)
    predicted = classes.severity_class([row["ratio"] for row in rows], stored.values)
    for row, value in zip(rows, predicted.tolist()):
        row.update(predicted=value, predicted_name=SEVERITY_NAMES[value])
    return {"settings": {"run": os.fspath(run_dir), "store": os.fspath(store),
                         "cases": cases if isinstance(cases, str) else list(cases),
                         "weights": weights, "ratio_mode": "soft",
                         "thresholds": stored.to_dict(), "lung_sources": _sources(rows),
                         "skipped": skipped},
            "scores": classes.evaluate_severity(predicted, [row["severity"] for row in rows]),
            "rows": rows}


def _predict_cases(run: str | os.PathLike | predict.Predictor, weights: str, store, cases,
                   batch_size: int, progress: bool,
                   lung_run: str | os.PathLike | predict.Predictor | None):
    """(run folder, store, rows, skipped) of `case_ratios`; the cases are checked before the
    network is loaded."""
    given = isinstance(run, predict.Predictor)
    if given and weights != run.weights:
        raise ValueError(f"weights must be the predictor's ({run.weights!r}). Received: "
                         f"weights={weights!r}")
    run_dir = run.run.workdir if given else Path(run)
    if store is None:
        store = inference.load_experiment(run_dir).data.store
    case_ids = select_cases(run_dir, store, cases)
    predictor = run if given else predict.load_predictor(run_dir, weights)
    if isinstance(lung_run, (str, os.PathLike)):
        lung_run = lung_model.load_lung_predictor(lung_run, predictor.batches_at_once)
    rows, skipped = case_ratios(predictor, store, case_ids, batch_size, progress, lung_run)
    if not rows:
        raise DataError(f"{store}: no lung found in any of the {len(case_ids)} chosen cases")
    return run_dir, store, rows, skipped


def _same_file(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _hounsfield(image: np.ndarray, intensity: str, window_hu: tuple[float, float]
                ) -> np.ndarray:
    """HU of a store image; grey levels of a "windowed8" store through the run's window, as
    ``tfcovid predict`` maps slice pictures (`tfcovid.predict`)."""
    if intensity == "hu":
        return image.astype(np.int16)
    level, width = window_hu
    return (level - width / 2 + image.astype(np.float64) / 255.0 * width).astype(np.float32)


def _lungs(case, volume: np.ndarray, lung_run: predict.Predictor | None, batch_size: int
           ) -> tuple[np.ndarray, str]:
    """Lung labels (1 right or whole lung, 2 left) inside each slice's true size, and their
    source: "learned", "store" or "classical"."""
    pixel_mm = predict.IMAGE_FIELD_OF_VIEW_MM / max(volume.shape[1:])  # as for pictures
    spacing = case.spacing_mm or (predict.IMAGE_SLICE_MM, pixel_mm, pixel_mm)
    if lung_run is not None:
        lungs, source = lung_model.segment_lungs_learned(lung_run, volume, spacing,
                                                         batch_size), "learned"
    elif case.lung is not None:
        lungs, source = (case.lung > 0).astype(np.uint8), "store"
    else:
        lungs, source = lung.segment_lungs(volume, spacing), "classical"
    if case.sizes is not None:
        for index, (height, width) in enumerate(case.sizes):
            lungs[index, height:] = 0
            lungs[index, :, width:] = 0
    return lungs, source


def _probabilities(predictor: predict.Predictor, volume: np.ndarray, batch_size: int
                   ) -> np.ndarray:
    """Infection probability (slices, rows, columns), or class probabilities (..., 3)."""
    parts = [outputs["probabilities"] if predictor.run.family == "multiclass"
             else outputs["probabilities"][..., 1]
             for _, outputs in predictor.predict_batches(volume, batch_size)]
    return np.clip(np.concatenate(parts), 0.0, 1.0)


def _sources(rows: list[dict]) -> dict[str, int]:
    sources = {"learned": 0, "store": 0, "classical": 0}
    for row in rows:
        sources[row["lung_source"]] += 1
    return sources
