"""Severity class 0/1/2 from the infection ratio, threshold fitting and scores (spec 9.2).

Classes: 0 mild/regular, 1 severe, 2 critically ill (``tfcovid.data.store.SEVERITY_NAMES``).
A ratio r becomes a class by two thresholds (low, high) on half-open intervals:
[0, low) -> 0, [low, high) -> 1, [high, inf) -> 2; the reference thresholds are (0.01, 0.5).
``as_run=True`` reproduces the reference script's strict inequalities instead: r < low -> 0,
low < r < high -> 1, high < r < 1 -> 2, anything else (r exactly low or high, r >= 1) -> 0.

Scores follow the reference: scikit-learn precision, recall and F1 with ``average="micro"``;
for single-label data all three equal the accuracy.

Example:

>>> severity_class([0.0, 0.01, 0.3, 0.5, 1.0]).tolist()
[0, 1, 1, 2, 2]
>>> severity_class([0.0, 0.01, 0.3, 0.5, 1.0], as_run=True).tolist()
[0, 0, 1, 0, 0]
>>> ictcf_severity("Critically ill")
2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics

from tfcovid.data.importers.ictcf import SEVERITY as ICTCF_SEVERITY
from tfcovid.data.store import SEVERITY_NAMES

REFERENCE_THRESHOLDS = (0.01, 0.5)
"""(low, high) infection ratios where classes 1 and 2 begin (spec 9.2)."""
SEVERITY_CLASSES = (0, 1, 2)
_FIT_BLOCK = 256  # candidate rows scored at once: memory 256 x candidates


def severity_class(ratio: float | Sequence[float] | np.ndarray,
                   thresholds: Sequence[float] = REFERENCE_THRESHOLDS,
                   as_run: bool = False) -> int | np.ndarray:
    """Severity class of infection ratios (module docstring).

    Args:
        ratio: float or array of floats >= 0. Infected fraction of lung.
        thresholds: (low, high) with 0 <= low <= high. Defaults to ``REFERENCE_THRESHOLDS``.
        as_run: bool. The reference script's strict inequalities. Defaults to False.

    Returns:
        int for a float ``ratio``, else an int64 array shaped like it: 0, 1 or 2.

    Raises:
        ValueError: NaN or negative ratios, or thresholds not ordered 0 <= low <= high.
    """
    low, high = check_thresholds(thresholds)
    values = np.asarray(ratio, dtype=np.float64)
    if np.isnan(values).any() or (values < 0).any():
        raise ValueError(f"ratios must be numbers >= 0. Received: ratio={ratio}")
    if as_run:
        classes = np.where(values < low, 0, np.where((low < values) & (values < high), 1,
                                                     np.where((high < values) & (values < 1),
                                                              2, 0)))
    else:
        classes = np.searchsorted(np.array([low, high]), values, side="right")
    classes = classes.astype(np.int64)
    return int(classes) if classes.ndim == 0 else classes


def fit_thresholds(ratios: Sequence[float] | np.ndarray,
                   labels: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """Thresholds (low, high) that maximise micro F1 of ``severity_class`` on training data.

    Candidates are the smallest ratio, the midpoints between consecutive distinct ratios and
    the float just above the largest; every pair low <= high is scored (micro F1 equals
    accuracy here, counted from sorted ratios). Ties go to the pair nearest the reference
    thresholds (sum of absolute differences), then to the smallest (low, high), so the fit is
    deterministic.

    Args:
        ratios: array (cases,) of floats >= 0. Infection ratios of the training cases.
        labels: array (cases,) of ints in {0, 1, 2}. Their severity classes.

    Returns:
        (low, high) floats, to pass to ``severity_class``.

    Raises:
        ValueError: empty or mismatched inputs, NaN or negative ratios, or other labels.
    """
    ratios = np.asarray(ratios, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if ratios.size == 0 or ratios.shape != labels.shape:
        raise ValueError(f"ratios and labels must be non-empty and of one length. Received: "
                         f"{ratios.size} ratios, {labels.size} labels")
    if np.isnan(ratios).any() or (ratios < 0).any():
        raise ValueError("ratios must be numbers >= 0 (no NaN)")
    _check_labels(labels, "labels")
    values = np.unique(ratios)
    candidates = np.concatenate([values[:1], (values[:-1] + values[1:]) / 2,
                                 [np.nextafter(values[-1], np.inf)]])
    # below[k, c]: cases of class k with a ratio below candidate c; a pair (i, j) gets
    # below[0, i] + (below[1, j] - below[1, i]) + (cases of class 2 - below[2, j]) right
    below = np.stack([np.searchsorted(np.sort(ratios[labels == k]), candidates, side="left")
                      for k in SEVERITY_CLASSES])
    low_part = below[0] - below[1]
    high_part = below[1] - below[2] + np.count_nonzero(labels == 2)
    best = int((low_part + np.maximum.accumulate(high_part[::-1])[::-1]).max())
    best_low, best_high = [], []
    for start in range(0, candidates.size, _FIT_BLOCK):
        rows = np.arange(start, min(start + _FIT_BLOCK, candidates.size))
        correct = low_part[rows, None] + high_part[None, :]
        ordered = rows[:, None] <= np.arange(candidates.size)[None, :]
        low_index, high_index = np.nonzero((correct == best) & ordered)
        best_low.append(rows[low_index])
        best_high.append(high_index)
    best_low, best_high = np.concatenate(best_low), np.concatenate(best_high)
    distance = (np.abs(candidates[best_low] - REFERENCE_THRESHOLDS[0])
                + np.abs(candidates[best_high] - REFERENCE_THRESHOLDS[1]))
    pick = np.lexsort((candidates[best_high], candidates[best_low], distance))[0]
    return float(candidates[best_low[pick]]), float(candidates[best_high[pick]])


def evaluate_severity(predicted: Sequence[int] | np.ndarray,
                      true: Sequence[int] | np.ndarray) -> dict:
    """Micro-averaged scores, confusion matrix and per-class scores of severity classes.

    Args:
        predicted: array (cases,) of ints in {0, 1, 2}.
        true: array (cases,) of ints in {0, 1, 2}.

    Returns:
        JSON-ready dict: ``f1_micro``, ``precision_micro``, ``recall_micro`` (scikit-learn,
        ``average="micro"``), ``confusion_matrix`` (3 x 3 list, rows true class, columns
        predicted class, classes 0, 1, 2), ``per_class`` (a dict per class name of
        ``SEVERITY_NAMES`` with ``precision``, ``recall``, ``f1`` (0 when undefined) and
        ``support``) and ``cases``.

    Raises:
        ValueError: empty or mismatched inputs, or classes other than 0, 1, 2.
    """
    predicted, true = np.asarray(predicted).ravel(), np.asarray(true).ravel()
    if predicted.size == 0 or predicted.shape != true.shape:
        raise ValueError(f"predicted and true must be non-empty and of one length. Received: "
                         f"{predicted.size} predicted, {true.size} true")
    _check_labels(predicted, "predicted")
    _check_labels(true, "true")
    labels = list(SEVERITY_CLASSES)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        true, predicted, labels=labels, average=None, zero_division=0)
    per_class = {name: {"precision": float(precision[k]), "recall": float(recall[k]),
                        "f1": float(f1[k]), "support": int(support[k])}
                 for k, name in enumerate(SEVERITY_NAMES)}
    return {
        "f1_micro": float(metrics.f1_score(true, predicted, labels=labels, average="micro")),
        "precision_micro": float(metrics.precision_score(true, predicted, labels=labels,
                                                         average="micro")),
        "recall_micro": float(metrics.recall_score(true, predicted, labels=labels,
                                                   average="micro")),
        "confusion_matrix": metrics.confusion_matrix(true, predicted, labels=labels).tolist(),
        "per_class": per_class,
        "cases": int(true.size),
    }


def ictcf_severity(text: str) -> int:
    """Severity class of an iCTCF clinical label (spec 9.2).

    Regular, Control and Mild give 0, Severe 1, Critically ill 2; case and surrounding or
    repeated spaces are ignored.

    Raises:
        ValueError: any other text.
    """
    key = " ".join(str(text).split()).casefold()
    if key not in ICTCF_SEVERITY:
        raise ValueError(f"unknown iCTCF severity; expected Regular, Control, Mild, Severe or "
                         f"Critically ill. Received: text={text!r}")
    return ICTCF_SEVERITY[key]


def check_thresholds(thresholds: Sequence[float]) -> tuple[float, float]:
    """``thresholds`` as a (low, high) tuple of floats.

    Raises:
        ValueError: not two numbers ordered 0 <= low <= high.
    """
    values = tuple(float(value) for value in thresholds)
    if len(values) != 2 or not 0.0 <= values[0] <= values[1]:
        raise ValueError(f"thresholds must be (low, high) with 0 <= low <= high. Received: "
                         f"thresholds={thresholds}")
    return values


def _check_labels(values: np.ndarray, name: str) -> None:
    if not np.isin(values, SEVERITY_CLASSES).all():
        raise ValueError(f"{name} must hold classes 0, 1, 2. Received: values "
                         f"{np.unique(values).tolist()}")
