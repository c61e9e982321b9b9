"""Inf-Net evaluation-toolbox measures on continuous maps: S-alpha, E-phi, weighted F, MAE, AUC.

NumPy ports of the MATLAB toolbox that produced the Inf-Net tables (spec section 10.2;
Inf-Net repo EvaluationTool/: main.m, StructureMeasure.m, S_object.m, S_region.m,
Enhancedmeasure.m, Fmeasure_calu.m, original_WFb.m), one image at a time:

- the prediction is brought to [0, 1] as ``im2double`` then ``mapminmax`` do
  (`normalize_prediction`); the ground truth is binarised by `overlap.binarize_truth`
  (bool or 0/1 as given, grey levels > 128);
- `threshold_curves` sweeps the toolbox's 256 thresholds 1, 254/255, ..., 1/255, 0 (descending,
  foreground where ``pred >= t``) and gives Dice, IoU, sensitivity, specificity, precision and
  E-measure at each (``>=`` for E too, as the latest main.m; earlier revisions used ``>``);
  ``toolbox_compatible=True`` reproduces Fmeasure_calu.m's quirk of setting every ratio
  (specificity included) to 0 when TP = 0 (spec section 14, row 17).

Deliberate differences from the MATLAB code, each only at ties or degenerate inputs:

- thresholds are exactly k / 255; MATLAB's ``1:-1/255:0`` may differ from k / 255 by one unit
  in the last place, which can move pixels lying exactly on a level of an 8-bit map;
- a ground truth that is foreground only in its last row or column puts the S-measure centroid
  on the border and leaves a quadrant empty; MATLAB then returns NaN, here the empty quadrant
  (weight 0) adds 0;
- the weighted F-measure of an empty ground truth is NaN (MATLAB stops with an error,
  ``py_sod_metrics`` returns 0); the nearest foreground pixel of a background pixel with
  several at the same distance may be another one than MATLAB's ``bwdist`` picks.

Example:

>>> truth = np.zeros((4, 5), bool); truth[1:3, 1:4] = True
>>> round(s_measure(truth.astype(float), truth), 4), round(mae(truth.astype(float), truth), 4)
(1.0, 0.0)
>>> roc_auc(np.array([[0.1, 0.4], [0.35, 0.8]]), np.array([[0, 0], [1, 1]]))  # 3 of 4 pairs
0.75
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from tfcovid.metrics import overlap

EPS = np.spacing(1.0)  # MATLAB's eps, used where the toolbox adds eps
THRESHOLDS = np.arange(255, -1, -1) / 255.0  # the toolbox's 256 thresholds, descending
CURVE_NAMES = overlap.METRIC_NAMES + ("e_measure",)


def image_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image's prediction and binarised truth, a trailing channel of 1 squeezed.

    Args:
        pred: array (height, width) or (height, width, 1).
        truth: array of the same shape: bool, 0/1, or grey levels (> 128 is foreground).

    Returns:
        (pred (height, width) as given, truth (height, width) bool).

    Raises:
        ValueError: the arrays are not equally shaped images.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.ndim == 3 and pred.shape[-1] == 1:
        pred = pred[..., 0]
    if truth.ndim == 3 and truth.shape[-1] == 1:
        truth = truth[..., 0]
    if pred.ndim != 2 or pred.shape != truth.shape:
        raise ValueError(f"pred and truth must be (height, width) images of the same shape. "
                         f"Received: pred.shape={pred.shape}, truth.shape={truth.shape}")
    return pred, overlap.binarize_truth(truth)


def normalize_prediction(pred: np.ndarray) -> np.ndarray:
    """The toolbox's ``mapminmax(im2double(pred), 0, 1)``: a map in [0, 1], float64.

    Unsigned integers are divided by their dtype's maximum (255 for uint8), bool and floats are
    taken as they are; then the map is stretched so that its minimum is 0 and its maximum 1. A
    constant map is left as it is (as ``mapminmax`` does).

    Args:
        pred: array (height, width): uint8/uint16 grey levels, bool, or floats.

    Returns:
        float64 array of the same shape.

    Raises:
        ValueError: ``pred`` is of a signed integer or other non-image dtype.
    """
    pred = np.asarray(pred)
    if np.issubdtype(pred.dtype, np.unsignedinteger):
        pred = pred / float(np.iinfo(pred.dtype).max)
    elif pred.dtype == bool or np.issubdtype(pred.dtype, np.floating):
        pred = pred.astype(np.float64)
    else:
        raise ValueError(f"pred must be unsigned integers, bool or floats. "
                         f"Received: pred.dtype={pred.dtype}")
    low, high = pred.min(), pred.max()
    return (pred - low) / (high - low) if high > low else pred


def _prepare(pred: np.ndarray, truth: np.ndarray, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = image_pair(pred, truth)
    if normalize:
        return normalize_prediction(pred), truth
    pred = pred.astype(np.float64)
    if pred.min() < 0 or pred.max() > 1:
        raise ValueError(f"with normalize=False, pred must lie in [0, 1]. Received: "
                         f"min={pred.min()}, max={pred.max()}")
    return pred, truth


def _matlab_round(value: float) -> int:
    return int(np.floor(value + 0.5))  # round half away from zero, for positive values


def _object_score(values: np.ndarray) -> float:
    """S_object.m's ``Object``: 2x / (x^2 + 1 + sigma + eps), sigma the (N - 1) std."""
    mean = values.mean()
    sigma = values.std(ddof=1) if values.size > 1 else 0.0
    return 2.0 * mean / (mean**2 + 1.0 + sigma + EPS)


def _region_ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """S_region.m's ``ssim`` of one quadrant."""
    count = pred.size
    if count == 0:
        return 0.0  # MATLAB: NaN; the quadrant's weight is 0
    truth = truth.astype(np.float64)
    x, y = pred.mean(), truth.mean()
    sigma_x2 = np.sum((pred - x) ** 2) / (count - 1 + EPS)
    sigma_y2 = np.sum((truth - y) ** 2) / (count - 1 + EPS)
    sigma_xy = np.sum((pred - x) * (truth - y)) / (count - 1 + EPS)
    alpha = 4.0 * x * y * sigma_xy
    beta = (x**2 + y**2) * (sigma_x2 + sigma_y2)
    if alpha != 0:
        return alpha / (beta + EPS)
    return 1.0 if beta == 0 else 0.0


def _s_region(pred: np.ndarray, truth: np.ndarray) -> float:
    height, width = truth.shape
    total = truth.sum()
    col = _matlab_round(np.sum(truth.sum(axis=0) * np.arange(1, width + 1)) / total)
    row = _matlab_round(np.sum(truth.sum(axis=1) * np.arange(1, height + 1)) / total)
    area = float(height * width)
    weights = [col * row / area, (width - col) * row / area, col * (height - row) / area]
    weights.append(1.0 - sum(weights))
    quadrants = [(slice(0, row), slice(0, col)), (slice(0, row), slice(col, width)),
                 (slice(row, height), slice(0, col)), (slice(row, height), slice(col, width))]
    return sum(weight * _region_ssim(pred[quadrant], truth[quadrant])
               for weight, quadrant in zip(weights, quadrants))


def s_measure(pred: np.ndarray, truth: np.ndarray, alpha: float = 0.5,
              normalize: bool = True) -> float:
    """Structure measure S-alpha (Fan et al., ICCV 2017), as StructureMeasure.m.

    ``alpha * S_object + (1 - alpha) * S_region``, clipped below at 0; ``1 - mean(pred)`` when the
    truth has no foreground and ``mean(pred)`` when it is all foreground.

    Args:
        pred: array (height, width) or (height, width, 1): a continuous map.
        truth: array of the same shape: bool, 0/1, or grey levels (> 128 is foreground).
        alpha: float. Weight of the object term. Defaults to 0.5, the toolbox's.
        normalize: bool. Min-max normalise ``pred`` as the toolbox does (`normalize_prediction`);
            if False, ``pred`` must already lie in [0, 1]. Defaults to True.

    Returns:
        float in [0, 1].
    """
    pred, truth = _prepare(pred, truth, normalize)
    mean_truth = truth.mean()
    if mean_truth == 0:
        return float(1.0 - pred.mean())
    if mean_truth == 1:
        return float(pred.mean())
    object_score = (mean_truth * _object_score(pred[truth])
                    + (1 - mean_truth) * _object_score(1.0 - pred[~truth]))
    score = alpha * object_score + (1 - alpha) * _s_region(pred, truth)
    return float(max(score, 0.0))


def _count_at_or_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of ``values`` are >= each threshold, exactly (no binning)."""
    return values.size - np.searchsorted(np.sort(values), thresholds, side="left")


def _sweep_counts(pred: np.ndarray, truth: np.ndarray,
                  thresholds: np.ndarray) -> overlap.Confusion:
    tp = _count_at_or_above(pred[truth], thresholds)
    fp = _count_at_or_above(pred[~truth], thresholds)
    positives = int(truth.sum())
    fn = positives - tp
    return overlap.Confusion(tp, fp, fn, truth.size - positives - fp)


def _e_measure_from_counts(counts: overlap.Confusion) -> np.ndarray:
    """Enhancedmeasure.m from the four counts of a binary map: each group of pixels shares one
    enhanced-alignment value, so the per-pixel sum is a sum over four groups."""
    tp, fp, fn, tn = (np.asarray(count, np.float64) for count in counts)
    size = tp + fp + fn + tn
    positives, predicted = tp + fn, tp + fp
    if np.all(positives == 0):
        total = size - predicted  # enhanced = 1 - pred
    elif np.all(positives == size):
        total = predicted  # enhanced = pred
    else:
        mean_pred, mean_truth = predicted / size, positives / size
        total = np.zeros_like(tp)
        for count, pred_value, truth_value in ((tp, 1.0, 1.0), (fp, 1.0, 0.0),
                                               (fn, 0.0, 1.0), (tn, 0.0, 0.0)):
            centred_pred, centred_truth = pred_value - mean_pred, truth_value - mean_truth
            align = 2 * centred_pred * centred_truth / (centred_pred**2 + centred_truth**2 + EPS)
            total = total + count * (align + 1) ** 2 / 4
    return total / (size - 1 + EPS)


def e_measure(pred: np.ndarray, truth: np.ndarray, threshold: float | str = "mean",
              normalize: bool = True) -> float:
    """Enhanced-alignment measure E-phi (Fan et al., IJCAI 2018), as Enhancedmeasure.m.

    The map is binarised (``pred >= t``) and compared with the truth; an all-background truth
    scores the fraction of background predicted, an all-foreground truth the fraction of
    foreground predicted. As in the toolbox, the sum is divided by ``height * width - 1``, so a
    perfect map on a degenerate truth scores slightly above 1.

    Args:
        pred: array (height, width) or (height, width, 1): a continuous map.
        truth: array of the same shape: bool, 0/1, or grey levels (> 128 is foreground).
        threshold: float or str. A threshold in [0, 1]; "mean" for the mean over the toolbox's 256
            thresholds (the per-image term of "meanEm"); "adaptive" for ``min(2 * mean(pred),
            1)``. Defaults to "mean".
        normalize: bool. Min-max normalise ``pred`` first (`normalize_prediction`). Defaults to
            True.

    Returns:
        float, 0 to about 1.

    Raises:
        ValueError: ``threshold`` is a string other than "mean" or "adaptive".
    """
    pred, truth = _prepare(pred, truth, normalize)
    if threshold == "mean":
        thresholds = THRESHOLDS
    elif threshold == "adaptive":
        thresholds = np.array([min(2.0 * pred.mean(), 1.0)])
    elif isinstance(threshold, str):
        raise ValueError(f"threshold must be a number, 'mean' or 'adaptive'. "
                         f"Received: threshold={threshold!r}")
    else:
        thresholds = np.array([float(threshold)])
    return float(np.mean(_e_measure_from_counts(_sweep_counts(pred, truth, thresholds))))


def threshold_curves(pred: np.ndarray, truth: np.ndarray, toolbox_compatible: bool = False,
                     empty: str = "nan", normalize: bool = True) -> dict[str, np.ndarray]:
    """The toolbox's threshold sweep of one image: metrics at t = 1, 254/255, ..., 0.

    Args:
        pred: array (height, width) or (height, width, 1): a continuous map.
        truth: array of the same shape: bool, 0/1, or grey levels (> 128 is foreground).
        toolbox_compatible: bool. If True, every overlap ratio (specificity included) is 0 at a
            threshold where TP = 0, as Fmeasure_calu.m does; the published meanDic, meanSen and
            meanSpe need it. If False, the standard definitions of `overlap` apply. Defaults to
            False.
        empty: str. Policy for undefined 0 / 0 ratios: "nan", "one" or "zero" (see `overlap`);
            with ``toolbox_compatible`` it only concerns the specificity of an all-foreground
            truth. Defaults to "nan".
        normalize: bool. Min-max normalise ``pred`` first (`normalize_prediction`). Defaults to
            True.

    Returns:
        dict of name (`CURVE_NAMES`: the overlap metrics and "e_measure") to float64 array (256,)
        ordered as `THRESHOLDS` (descending).
    """
    pred, truth = _prepare(pred, truth, normalize)
    counts = _sweep_counts(pred, truth, THRESHOLDS)
    curves = overlap.overlap_from_counts(counts, empty)
    if toolbox_compatible:
        curves = {name: np.where(counts.tp == 0, 0.0, curve) for name, curve in curves.items()}
    curves["e_measure"] = _e_measure_from_counts(counts)
    return curves


def weighted_f_measure(pred: np.ndarray, truth: np.ndarray, normalize: bool = True) -> float:
    """Weighted F-measure F^w with beta = 1 (Margolin et al., CVPR 2014), as original_WFb.m.

    Errors ``|pred - truth|`` are spread from each foreground edge by the distance transform,
    smoothed by a 7 x 7 Gaussian (sigma 5, zero padding), and background errors are weighted up
    to 2 with their distance to the foreground (``2 - exp(ln(0.5) / 5 * distance)``).

    Args:
        pred: array (height, width) or (height, width, 1): a continuous map.
        truth: array of the same shape: bool, 0/1, or grey levels (> 128 is foreground).
        normalize: bool. Min-max normalise ``pred`` first (`normalize_prediction`). Defaults to
            True.

    Returns:
        float in [0, 1]; NaN when the truth has no foreground (weighted recall is undefined).
    """
    pred, truth = _prepare(pred, truth, normalize)
    if not truth.any():
        return float("nan")
    error = np.abs(pred - truth)
    distance, (rows, cols) = scipy.ndimage.distance_transform_edt(~truth, return_indices=True)
    spread = error[rows, cols]  # a foreground pixel is its own nearest foreground pixel
    smoothed = scipy.ndimage.correlate(spread, _matlab_gaussian(7, 5.0), mode="constant", cval=0.0)
    error = np.where(truth & (smoothed < error), smoothed, error)
    weighted = error * np.where(truth, 1.0, 2.0 - np.exp(np.log(0.5) / 5.0 * distance))
    true_positive = truth.sum() - weighted[truth].sum()
    false_positive = weighted[~truth].sum()
    recall = 1.0 - weighted[truth].mean()
    precision = true_positive / (EPS + true_positive + false_positive)
    return float(2.0 * recall * precision / (EPS + recall + precision))


def _matlab_gaussian(size: int, sigma: float) -> np.ndarray:
    """``fspecial('gaussian', size, sigma)``: normalised, tiny values set to 0."""
    offsets = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    kernel[kernel < np.finfo(float).eps * kernel.max()] = 0
    return kernel / kernel.sum()


def mae(pred: np.ndarray, truth: np.ndarray, normalize: bool = True) -> float:
    """Mean absolute error ``mean(|truth - pred|)`` over pixels, as main.m and CalMAE.m.

    Args:
        pred: array (height, width) or (height, width, 1): a continuous map.
        truth: array of the same shape: bool, 0/1, or grey levels (> 128 is foreground).
        normalize: bool. Min-max normalise ``pred`` first (`normalize_prediction`). Defaults to
            True.

    Returns:
        float in [0, 1].
    """
    pred, truth = _prepare(pred, truth, normalize)
    return float(np.mean(np.abs(truth - pred)))


def roc_auc(pred: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve of one image's pixels (spec section 10.1, per image).

    Computed from ranks (the Mann-Whitney statistic, ties counted one half), which equals the
    trapezoidal area of scikit-learn's ``roc_auc_score``. The raw scores are used: AUC does not
    change under the toolbox's monotone normalisation.

    Args:
        pred: array (height, width) or any shape: scores, higher meaning foreground.
        truth: array of the same shape: bool, 0/1, or grey levels (> 128 is foreground).

    Returns:
        float in [0, 1]; NaN when the truth is all background or all foreground.

    Raises:
        ValueError: the shapes differ.
    """
    pred, truth = np.asarray(pred), overlap.binarize_truth(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth must have the same shape. Received: "
                         f"pred.shape={pred.shape}, truth.shape={truth.shape}")
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    _, inverse, counts = np.unique(pred.ravel(), return_inverse=True, return_counts=True)
    mean_ranks = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based rank, averaged over ties
    rank_sum = mean_ranks[inverse.ravel()][truth.ravel()].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))
