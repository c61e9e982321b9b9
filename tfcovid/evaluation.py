"""Evaluation of a trained run, single-class or multi-class, on held-out slices (spec section 10).

`evaluate_run` loads a run folder (`tfcovid.inference.load_run`), reads the cases to evaluate
(the part of the run's own split, `tfcovid.training.engine.split_cases`, or every labelled case
of another store), predicts every slice at the training size, resizes the class probabilities
back to the slice's true size (bilinear, half-pixel centres, as the reference's
``F.upsample(..., align_corners=False)``) and scores them against the true-size label map.

Single-class ("binary") runs score the infection probability (sigmoid of ``lateral_2``) against
``label > 0``:

- per slice, the `tfcovid.metrics.evaluate_binary` measures (Dice, IoU, sensitivity,
  specificity, precision at ``threshold``; AUC; S-alpha, E-phi, weighted F, MAE), summarised
  over slices as mean and ``1.96 * std / sqrt(n)`` with undefined values (empty masks under
  ``empty="nan"``) left out and counted;
- the Inf-Net toolbox threshold sweep (`tfcovid.metrics.evaluate_threshold_sweep`: meanDic,
  meanSen, meanSpe, meanEm, ...);
- the ROC curve of all evaluated pixels pooled (`pooled_roc`) and its area.

Multi-class runs score each foreground class c (ground_glass = label 1, consolidation =
label 2) as a binary problem: the overlap measures compare ``argmax == c`` with ``label == c``,
AUC and the toolbox measures use the class probability; summary, sweep and ROC are per class.
A network taking a prior gets its run's prior network ("model"), else the data pipeline's
ground-truth prior when trained with one ("ground_truth (oracle)": it sees the answer's outline),
else zeros.

The summary table is `tfcovid.metrics.summarize` over the per-slice rows, which is
``evaluate_binary(preds, truths, batch_size=1)`` without computing every metric twice.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tfcovid import config as config_lib
from tfcovid import inference, metrics, visualize
from tfcovid.data import transforms
from tfcovid.data.store import CaseStore
from tfcovid.errors import ConfigError, DataError
from tfcovid.progress import progress_bar

SPLITS = ("test", "val", "train", "all")
WEIGHTS = inference.WEIGHTS
CLASSES = {"ground_glass": 1, "consolidation": 2}  # multi-class labels scored one by one
ORACLE_PRIOR = "ground_truth (oracle)"
ROC_POINTS = 256


class _Slice(NamedTuple):
    """One evaluated slice at its true size."""

    case_id: str
    slice_index: int
    image: np.ndarray  # float32 (height, width): windowed CT in [0, 1]
    probabilities: np.ndarray  # float32 (height, width, classes)
    label: np.ndarray  # int (height, width): 0 background, 1 GGO, 2 consolidation


def evaluate_run(workdir: str | os.PathLike, store: str | os.PathLike | None = None,
                 split: str | None = None, weights: str = "best", threshold: float = 0.5,
                 empty: str = "nan", toolbox_compatible: bool = False, progress: bool = False,
                 return_predictions: bool = False, overlays: int = 0,
                 overlay_dir: str | os.PathLike | None = None) -> dict:
    """Evaluates a trained run on one part of its split or on another store.

    Args:
        workdir: folder of a run written by `tfcovid.training.engine.train`.
        store: path of another HDF5 store whose labelled cases are all evaluated, or None for
            the run's own store (``data.store`` of its ``config.yaml``). Defaults to None.
        split: "test", "val", "train" (parts of the run's case split) or "all" (every
            labelled case); None means "test" for the run's store and "all" for another.
        weights: "best" (``best.weights.h5``, the best validation epoch) or "final"
            (``model.keras`` as saved at the end). Defaults to "best".
        threshold: float. Binary runs: foreground where probability >= threshold. Multi-class
            runs take the argmax and ignore it. Defaults to 0.5.
        empty: str. Policy for undefined 0 / 0 ratios, see `tfcovid.metrics.overlap`.
            Defaults to "nan".
        toolbox_compatible: bool. Reproduce the toolbox's TP = 0 quirk in the sweep.
            Defaults to False.
        progress: bool. Show progress bars on a terminal. Defaults to False.
        return_predictions: bool. Add "predictions", in row order: binary runs a list of
            (probability map (height, width), truth mask (height, width) bool); multi-class
            runs (class probabilities (height, width, 3), label map (height, width)), at the
            slice's true size. Defaults to False.
        overlays: int. Write `tfcovid.visualize.comparison_panel` PNGs (CT | truth |
            prediction; red ground-glass opacity or infection, green consolidation) of this many
            slices, those showing infection first, as ``<case_id>_<slice>.png``. Defaults to 0.
        overlay_dir: folder for the PNGs, created if missing; needed when ``overlays > 0``.

    Returns:
        dict with
        "settings": workdir, store, split, weights, family ("binary" or "multiclass"),
        threshold (None for multi-class), prior (None, "model", "ground_truth (oracle)" or
        "zeros"), image_size, num_cases, num_slices;
        "summary": binary runs metric name to `tfcovid.metrics.Summary`, multi-class runs
        class name ("ground_glass", "consolidation") to such a dict;
        "threshold_sweep": name to float (multi-class: per class);
        "roc": `pooled_roc` (multi-class: per class);
        "rows": one dict per slice: case_id, slice_index, then each metric (multi-class: a
        dict of metrics per class name);
        "overlays": list of the PNG paths (str) written, when ``overlays > 0``.

    Raises:
        ValueError: unknown ``split`` or ``weights``, ``split`` other than "all" with another
            store, negative ``overlays`` or overlays without ``overlay_dir``.
        DataError: missing run folder, network or weights file; a store without labels.
        ConfigError: the chosen part of the split holds no case.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}. Received: weights={weights!r}")
    split = split if split is not None else ("test" if store is None else "all")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
    if store is not None and split != "all":
        raise ValueError(f"another store is evaluated whole. Received: store={store}, "
                         f"split={split!r}")
    if overlays < 0 or (overlays and overlay_dir is None):
        raise ValueError(f"overlays must be 0 or more, with overlay_dir when more. Received: "
                         f"overlays={overlays}, overlay_dir={overlay_dir}")
    experiment = inference.load_experiment(workdir)  # checks the split before a slow load
    if store is not None:
        data = dataclasses.replace(experiment.data, store=os.fspath(store))
        case_ids = None
    else:
        data = experiment.data
        case_ids = _split_part(experiment, Path(workdir), split)
    run = inference.load_run(workdir, weights)
    family = run.family
    prior = _prior_kind(run)
    slices = list(_predict(run, data, case_ids, prior, progress))
    binary = family == "binary"
    if binary:
        scored = _score_class([item.probabilities[..., 1] for item in slices],
                              [item.label > 0 for item in slices], None, threshold, empty,
                              toolbox_compatible, progress)
        rows = [{"case_id": item.case_id, "slice_index": item.slice_index, **values}
                for item, values in zip(slices, scored["rows"])]
    else:
        labels = [np.argmax(item.probabilities, axis=-1) for item in slices]
        per_class = {name: _score_class([item.probabilities[..., value] for item in slices],
                                        [item.label == value for item in slices],
                                        [predicted == value for predicted in labels],
                                        threshold, empty, toolbox_compatible, progress)
                     for name, value in CLASSES.items()}
        scored = {key: {name: scores[key] for name, scores in per_class.items()}
                  for key in ("summary", "threshold_sweep", "roc")}
        rows = [{"case_id": item.case_id, "slice_index": item.slice_index,
                 **{name: per_class[name]["rows"][index] for name in CLASSES}}
                for index, item in enumerate(slices)]
    result = {
        "settings": {"workdir": os.fspath(run.workdir), "store": data.store, "split": split,
                     "weights": weights, "family": family,
                     "threshold": threshold if binary else None, "prior": prior,
                     "image_size": list(data.image_size),
                     "num_cases": len({item.case_id for item in slices}),
                     "num_slices": len(slices)},
        "summary": scored["summary"],
        "threshold_sweep": scored["threshold_sweep"],
        "roc": scored["roc"],
        "rows": rows,
    }
    if overlays:
        result["overlays"] = _write_overlays(slices, binary, threshold, overlays, overlay_dir)
    if return_predictions:
        result["predictions"] = (
            [(item.probabilities[..., 1], item.label > 0) for item in slices] if binary
            else [(item.probabilities, item.label) for item in slices])
    return result


def pooled_roc(preds: list[np.ndarray], truths: list[np.ndarray],
               max_points: int = ROC_POINTS) -> dict:
    """ROC curve and its area over the pixels of all images pooled.

    The full curve has one point per distinct score (thresholds descending, the first point
    (0, 0) at threshold +inf, as scikit-learn's ``roc_curve(..., drop_intermediate=False)``);
    its area is the trapezoidal AUC. The curve returned keeps at most ``max_points`` of them,
    evenly spaced in index, the first and last included, so that a JSON report stays small.

    Args:
        preds: list of float arrays: scores (probabilities), any shapes.
        truths: list of arrays shaped as the matching prediction: bool or 0/1.
        max_points: int, 2 or more. Defaults to 256.

    Returns:
        dict with "fpr", "tpr", "thresholds" (lists of float) and "auc" (float); empty lists
        and NaN when the pixels are all of one class.

    Raises:
        ValueError: ``max_points`` below 2.

    Example:

    >>> roc = pooled_roc([np.array([0.1, 0.4])], [np.array([0, 1])])
    >>> roc["fpr"], roc["tpr"], roc["auc"]
    ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0], 1.0)
    """
    if max_points < 2:
        raise ValueError(f"max_points must be 2 or more. Received: max_points={max_points}")
    scores = np.concatenate([np.asarray(pred, np.float64).ravel() for pred in preds])
    labels = np.concatenate([metrics.binarize_truth(truth).ravel() for truth in truths])
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return {"fpr": [], "tpr": [], "thresholds": [], "auc": float("nan")}
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # last pixel of each score
    true_positives = np.cumsum(labels)[last]
    tpr = np.r_[0.0, true_positives / positives]
    fpr = np.r_[0.0, (last + 1 - true_positives) / negatives]
    thresholds = np.r_[np.inf, scores[last]]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    keep = np.unique(np.rint(np.linspace(0, tpr.size - 1, min(max_points, tpr.size))).astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(),
            "thresholds": thresholds[keep].tolist(), "auc": auc}


def _score_class(preds: list, truths: list, hards: list | None, threshold: float, empty: str,
                 toolbox_compatible: bool, progress: bool) -> dict:
    """Per-slice metrics, their summary, the sweep and the pooled ROC of one binary problem;
    overlap measures from ``hards`` (bool masks) when given, else ``preds >= threshold``."""
    rows = []
    for index in progress_bar(range(len(preds)), description="metrics", enabled=progress,
                              unit="slice"):
        table = metrics.evaluate_binary([preds[index]], [truths[index]], threshold=threshold,
                                        empty=empty)
        values = {name: summary.mean for name, summary in table.items()}
        if hards is not None:
            values.update(metrics.binary_overlap(truths[index], hards[index], empty=empty))
        rows.append(values)
    return {"rows": rows,
            "summary": {name: metrics.summarize([row[name] for row in rows]) for name in rows[0]},
            "threshold_sweep": metrics.evaluate_threshold_sweep(
                preds, truths, toolbox_compatible=toolbox_compatible, empty=empty,
                progress=progress),
            "roc": pooled_roc(preds, truths)}


def _split_part(experiment: config_lib.Experiment, workdir: Path, split: str) -> list[str]:
    from tfcovid.training import engine

    if split == "all":
        with CaseStore(experiment.data.store) as store:
            case_ids = [case_id for case_id in store.case_ids
                        if store.case_attributes(case_id)["labelled"]]
        if not case_ids:
            raise DataError(f"{experiment.data.store}: no labelled cases to evaluate")
        return case_ids
    case_ids = getattr(engine.split_cases(experiment), split)
    if not case_ids:
        raise ConfigError(f"{workdir / inference.CONFIG_FILE}: the run's {split} part holds no "
                          f"case; evaluate another part (split) or another store")
    return case_ids


def _prior_kind(run: inference.LoadedRun) -> str | None:
    """The prior the network gets (`tfcovid.inference.model_inputs`): None (takes none),
    "model", the oracle or "zeros"."""
    if not run.takes_prior:
        return None
    source = inference.prior_source(run.experiment)
    if source == "zeros":
        return "zeros"
    if run.prior_network is None and source == "ground_truth":
        return ORACLE_PRIOR
    return "model"  # "model" without prior.keras: model_inputs raises DataError


def _predict(run: inference.LoadedRun, data, case_ids, prior: str | None, progress: bool):
    """Yields a `_Slice` per slice, in pipeline order."""
    import tensorflow as tf

    from tfcovid.data import pipeline

    pipeline_prior = prior in (ORACLE_PRIOR, "zeros")
    data = dataclasses.replace(
        data, include_edge=False, include_prior=pipeline_prior,
        prior_source="ground_truth" if prior == ORACLE_PRIOR else "zeros")
    dataset = pipeline.labelled_dataset(data, case_ids, training=False)
    total = math.ceil(pipeline.slice_count(data, case_ids) / data.batch_size)

    def probabilities(images, prior_channels):
        inputs = inference.model_inputs(run, images, prior_channels)
        return inference.class_probabilities(run.network, inputs)

    if not run.experiment.train.run_eagerly:
        # no Python control flow on tensors: traced without AutoGraph, as `predict.Predictor`
        probabilities = tf.function(probabilities, autograph=False)
    with CaseStore(data.store) as store:
        cases = {}
        for batch in progress_bar(dataset, total=total, description="predicting",
                                  enabled=progress, unit="batch"):
            maps = probabilities(batch["image"], batch["prior"] if pipeline_prior else None)
            for case_id, slice_index, prob in zip(batch["case_id"].numpy(),
                                                  batch["slice_index"].numpy(), maps):
                case_id = case_id.decode()
                if case_id not in cases:
                    cases = {case_id: store.read(case_id)}
                arrays = cases[case_id].slice_arrays(int(slice_index))
                label = np.asarray(arrays["label"]).astype(np.int64)
                resized = tf.image.resize(prob, label.shape, method="bilinear").numpy()
                yield _Slice(case_id, int(slice_index), _windowed(arrays["image"], store, data),
                             resized, label)


def _windowed(image: np.ndarray, store: CaseStore, data) -> np.ndarray:
    if store.intensity == "hu":
        return transforms.window_hu(image, data.window_level_hu, data.window_width_hu)
    return transforms.scale_windowed8(image)


def _write_overlays(slices: list[_Slice], binary: bool, threshold: float, count: int,
                    folder: str | os.PathLike) -> list[str]:
    """Comparison panels of ``count`` slices, those with infection first; their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = sorted(range(len(slices)), key=lambda index: not slices[index].label.any())[:count]
    paths = []
    for index in chosen:
        item = slices[index]
        if binary:
            truth = (item.label > 0).astype(np.int64)
            prediction = (item.probabilities[..., 1] >= threshold).astype(np.int64)
        else:
            truth, prediction = item.label, np.argmax(item.probabilities, axis=-1)
        path = folder / f"{item.case_id}_{item.slice_index}.png"
        visualize.write_png(path, visualize.comparison_panel(item.image, truth, prediction))
        paths.append(os.fspath(path))
    return paths


def to_json(result: dict) -> dict:
    """The result of `evaluate_run` as plain JSON values (NaN and infinities written as null);
    "predictions" is left out."""

    def plain(value):
        if isinstance(value, metrics.Summary):
            return plain(value._asdict())
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        if isinstance(value, (float, np.floating)):
            return float(value) if math.isfinite(value) else None
        if isinstance(value, np.integer):
            return int(value)
        return value

    return plain({key: value for key, value in result.items() if key != "predictions"})


def write_json(result: dict, path: str | os.PathLike) -> None:
    """Writes `to_json(result)` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(to_json(result), indent=2, allow_nan=False) + "\n")
    os.replace(temporary, path)
