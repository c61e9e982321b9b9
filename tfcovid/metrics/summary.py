"""Test-set summaries: per-image metrics, then mean and 95 % error over images (spec section 10).

- `summarize`: mean and error ``z * std(ddof) / sqrt(n)`` of per-image values, NaNs (undefined
  ratios under ``empty="nan"``) left out and counted. The reference uses NumPy's ``std`` with
  ``ddof=0`` and ``z = 1.96`` (the papers' "95 % CI"), so those are the defaults; ``ddof=1``
  gives the usual sample standard error.
- `evaluate_binary` / `evaluate_multiclass`: the SSInfNet-style table over a list of images of
  any sizes. Metrics are per image (spec section 14, row 18); ``batch_size > 1`` pools the
  confusion counts and AUC of consecutive groups, as the reference's per-batch evaluation.
- `evaluate_threshold_sweep`: the Inf-Net toolbox report (meanDic, meanSen, meanSpe, Sm, meanEm,
  MAE): curves averaged over images at each of 256 thresholds, then over thresholds.
- `format_table`: the table as aligned text.

Example:

>>> values = [0.5, 0.7, float("nan"), 0.9]
>>> summary = summarize(values)  # error = 1.96 * sqrt(0.08 / 3) / sqrt(3)
>>> round(summary.mean, 4), round(summary.error, 4), summary.n, summary.dropped
(0.7, 0.1848, 3, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tfcovid.data.store import CLASS_NAMES
from tfcovid.metrics import overlap, saliency
from tfcovid.progress import progress_bar


class Summary(NamedTuple):
    """Mean and error of one metric over a test set.

    Attributes:
        mean: float. Mean over the values kept.
        error: float. ``z * std(ddof) / sqrt(n)``, the half-width of the papers' 95 % interval;
            NaN when ``n <= ddof`` or when no interval is defined (class averages).
        n: int. Number of values kept.
        dropped: int. Number of NaN values left out.
    """

    mean: float
    error: float
    n: int
    dropped: int


def summarize(values: Sequence[float] | np.ndarray, ddof: int = 0, z: float = 1.96) -> Summary:
    """Mean and error ``z * std / sqrt(n)`` of per-image values, NaNs left out and counted.

    Args:
        values: sequence of floats, one per image (or per batch).
        ddof: int. Delta degrees of freedom of the standard deviation: 0 as the reference
            (NumPy's default), 1 for the sample standard deviation. Defaults to 0.
        z: float. Normal quantile of the interval. Defaults to 1.96 (95 %).

    Returns:
        `Summary`; mean and error are NaN when no value is left.

    Raises:
        ValueError: ``ddof`` is negative.
    """
    if ddof < 0:
        raise ValueError(f"ddof must be 0 or more. Received: ddof={ddof}")
    values = np.asarray(values, np.float64).ravel()
    kept = values[~np.isnan(values)]
    n = kept.size
    mean = float(kept.mean()) if n else float("nan")
    error = float(z * kept.std(ddof=ddof) / np.sqrt(n)) if n > ddof else float("nan")
    return Summary(mean, error, n, values.size - n)


def _check_pairs(preds: Sequence, truths: Sequence) -> None:
    if len(preds) != len(truths):
        raise ValueError(f"preds and truths must have the same length. Received: "
                         f"len(preds)={len(preds)}, len(truths)={len(truths)}")


def _batches(count: int, batch_size: int) -> list[range]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be 1 or more. Received: batch_size={batch_size}")
    return [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def evaluate_binary(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                    threshold: float = 0.5, empty: str = "nan", batch_size: int = 1,
                    normalize: bool = True, ddof: int = 0, z: float = 1.96,
                    progress: bool = False) -> dict[str, Summary]:
    """Single-class evaluation table over a test set: overlap, AUC and the toolbox measures.

    Overlap metrics (`overlap.METRIC_NAMES`) are taken at ``pred >= threshold`` and AUC on the
    raw scores, per image (or per group of ``batch_size`` images, counts and pixels pooled);
    "s_measure", "e_measure" (mean over 256 thresholds), "weighted_f" and "mae" are always per
    image, on the toolbox's min-max normalised map.

    Args:
        preds: sequence of arrays (height, width) or (height, width, 1): probabilities in
            [0, 1]; sizes may differ between images.
        truths: sequence of arrays shaped as the matching prediction: bool, 0/1 or grey levels.
        threshold: float. Foreground where ``pred >= threshold``. Defaults to 0.5.
        empty: str. Policy for undefined 0 / 0 ratios: "nan" (left out, counted as dropped),
            "one" or "zero"; see `overlap`. Defaults to "nan".
        batch_size: int. Images pooled into one value for overlap and AUC: 1 is per image, the
            tfcovid default; the SSInfNet scripts pooled their DataLoader batches. Defaults to 1.
        normalize: bool. Min-max normalise each map for the toolbox measures. Defaults to True.
        ddof: int. Delta degrees of freedom of the error's standard deviation. Defaults to 0.
        z: float. Normal quantile of the error. Defaults to 1.96.
        progress: bool. Show a progress bar on a terminal. Defaults to False.

    Returns:
        dict of metric name to `Summary`, in the order dice, iou, sensitivity, specificity,
        precision, auc, s_measure, e_measure, weighted_f, mae.
    """
    _check_pairs(preds, truths)
    pairs = [saliency.image_pair(pred, truth) for pred, truth in zip(preds, truths)]
    values = {name: [] for name in overlap.METRIC_NAMES + ("auc",)}
    for group in _batches(len(pairs), batch_size):
        counts = [overlap.confusion_counts(pairs[i][1], pairs[i][0], threshold) for i in group]
        pooled = overlap.Confusion(*(sum(column) for column in zip(*counts)))
        for name, value in overlap.overlap_from_counts(pooled, empty).items():
            values[name].append(float(value))
        scores = np.concatenate([pairs[i][0].ravel() for i in group])
        labels = np.concatenate([pairs[i][1].ravel() for i in group])
        values["auc"].append(saliency.roc_auc(scores, labels))
    structure = {"s_measure": saliency.s_measure, "e_measure": saliency.e_measure,
                 "weighted_f": saliency.weighted_f_measure, "mae": saliency.mae}
    values.update({name: [] for name in structure})
    for pred, truth in progress_bar(pairs, description="evaluating", enabled=progress,
                                    unit="image"):
        for name, function in structure.items():
            values[name].append(function(pred, truth, normalize=normalize))
    return {name: summarize(series, ddof, z) for name, series in values.items()}


def evaluate_multiclass(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                        num_classes: int = 3, class_names: Sequence[str] = CLASS_NAMES,
                        empty: str = "nan", ddof: int = 0, z: float = 1.96,
                        progress: bool = False) -> dict[str, Summary]:
    """Multi-class evaluation table: per-class overlap, then the class averages.

    Each image's prediction (label map, or class scores turned into labels by argmax) is
    compared with its label map class by class (spec section 10.1, ``calculate_metrics``).

    Args:
        preds: sequence of integer label maps (height, width) or float class scores (height,
            width, num_classes); sizes may differ between images.
        truths: sequence of integer label maps (height, width): 0 background, 1 ground-glass
            opacity, 2 consolidation.
        num_classes: int. Defaults to 3.
        class_names: sequence of num_classes str, class 0 (background) first. Defaults to the
            store's names.
        empty: str. Policy for undefined 0 / 0 ratios: "nan", "one" or "zero". Defaults to
            "nan".
        ddof: int. Delta degrees of freedom of the error's standard deviation. Defaults to 0.
        z: float. Normal quantile of the error. Defaults to 1.96.
        progress: bool. Show a progress bar on a terminal. Defaults to False.

    Returns:
        dict keyed "<metric>/<class name>" for each metric and class, plus "<metric>/overall",
        the unweighted mean of the class means with background included (the reference's
        headline number), and "<metric>/foreground", the mean of the other classes' means.
        The two averages carry error NaN (an interval would need the correlation between
        classes within an image) and n = the number of images.

    Raises:
        ValueError: ``class_names`` does not have num_classes names, or the lengths differ.
    """
    _check_pairs(preds, truths)
    if len(class_names) != num_classes:
        raise ValueError(f"class_names must name {num_classes} classes. Received: "
                         f"class_names={tuple(class_names)}")
    per_image = [overlap.multiclass_overlap(truth, pred, num_classes, empty)
                 for pred, truth in progress_bar(zip(preds, truths), total=len(preds),
                                                 description="evaluating", enabled=progress,
                                                 unit="image")]
    table = {}
    for name in overlap.METRIC_NAMES:
        stacked = np.array([metrics[name] for metrics in per_image]).reshape(-1, num_classes)
        summaries = [summarize(stacked[:, index], ddof, z) for index in range(num_classes)]
        for class_name, summary in zip(class_names, summaries):
            table[f"{name}/{class_name}"] = summary
        means = [summary.mean for summary in summaries]
        table[f"{name}/overall"] = Summary(float(np.mean(means)), float("nan"), len(preds), 0)
        table[f"{name}/foreground"] = Summary(float(np.mean(means[1:])), float("nan"),
                                              len(preds), 0)
    return table


def _nan_mean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Mean without NaNs; NaN (and no warning) where nothing is left."""
    kept = ~np.isnan(values)
    count = kept.sum(axis=axis)
    total = np.where(kept, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def evaluate_threshold_sweep(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                             toolbox_compatible: bool = False, empty: str = "nan",
                             normalize: bool = True, progress: bool = False) -> dict[str, float]:
    """The Inf-Net toolbox report: threshold-averaged Dice, sensitivity, specificity, E-measure.

    Each image gives curves over the 256 thresholds (`saliency.threshold_curves`); the curves are
    averaged over images at each threshold, then "mean_<metric>" is the mean and "max_<metric>"
    the maximum of that averaged curve (main.m's meanDic and maxDic). "s_measure" (Sm) and "mae"
    are means over images. NaN entries (undefined ratios under ``empty="nan"``) are left out of
    each average; the toolbox has none except the specificity of an all-foreground truth, which
    it would carry into the mean as NaN.

    Args:
        preds: sequence of arrays (height, width) or (height, width, 1): continuous maps.
        truths: sequence of arrays shaped as the matching prediction: bool, 0/1 or grey levels.
        toolbox_compatible: bool. True reproduces the toolbox's TP = 0 quirk (all ratios 0), as
            the published Inf-Net numbers need. Defaults to False (standard definitions).
        empty: str. Policy for undefined 0 / 0 ratios: "nan", "one" or "zero". Defaults to
            "nan".
        normalize: bool. Min-max normalise each map as the toolbox does. Defaults to True.
        progress: bool. Show a progress bar on a terminal. Defaults to False.

    Returns:
        dict of "mean_<name>" and "max_<name>" for each of `saliency.CURVE_NAMES`, then
        "s_measure" and "mae", to float.
    """
    _check_pairs(preds, truths)
    curves = {name: [] for name in saliency.CURVE_NAMES}
    s_values, mae_values = [], []
    for pred, truth in progress_bar(zip(preds, truths), total=len(preds),
                                    description="threshold sweep", enabled=progress, unit="image"):
        for name, curve in saliency.threshold_curves(pred, truth, toolbox_compatible, empty,
                                                     normalize).items():
            curves[name].append(curve)
        s_values.append(saliency.s_measure(pred, truth, normalize=normalize))
        mae_values.append(saliency.mae(pred, truth, normalize=normalize))
    report = {}
    for name, stacked in curves.items():
        curve = _nan_mean(np.array(stacked).reshape(-1, saliency.THRESHOLDS.size), axis=0)
        report[f"mean_{name}"] = float(_nan_mean(curve))
        report[f"max_{name}"] = float(np.nanmax(curve)) if np.any(~np.isnan(curve)) else np.nan
    report["s_measure"] = float(_nan_mean(np.array(s_values, np.float64)))
    report["mae"] = float(_nan_mean(np.array(mae_values, np.float64)))
    return report


def format_table(table: dict[str, Summary | float], digits: int = 3) -> str:
    """An evaluation table as aligned text, one metric a line.

    Args:
        table: dict of metric name to `Summary` (printed "mean ± error  n=.. dropped=..") or to
            float (printed as it is).
        digits: int. Decimal places. Defaults to 3.

    Returns:
        str, lines joined by newlines.

    Example:

    >>> print(format_table({"dice": Summary(0.75, 0.0512, 40, 8), "mae": 0.0821}))
    dice  0.750 ± 0.051  n=40  dropped=8
    mae   0.082
    """
    width = max((len(name) for name in table), default=0)
    lines = []
    for name, value in table.items():
        if isinstance(value, Summary):
            error = "nan" if np.isnan(value.error) else f"{value.error:.{digits}f}"
            lines.append(f"{name:<{width}}  {value.mean:.{digits}f} ± {error}  n={value.n}  "
                         f"dropped={value.dropped}")
        else:
            lines.append(f"{name:<{width}}  {value:.{digits}f}")
    return "\n".join(lines)
