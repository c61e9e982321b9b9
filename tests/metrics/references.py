"""Test inputs and straight-line references for the metric tests.

The references are written pixel by pixel and threshold by threshold, as the MATLAB toolbox
(Inf-Net repo EvaluationTool/Fmeasure_calu.m, Enhancedmeasure.m) does, so they share no code
with the vectorised, count-based library versions.
"""

from __future__ import annotations

import numpy as np
import py_sod_metrics
from py_sod_metrics.utils import prepare_data

MATLAB_EPS = np.spacing(1.0)


def blob_mask(rng: np.random.Generator, height: int = 40, width: int = 56) -> np.ndarray:
    """One to three discs of radius 3-10 px at random places: a bool lesion mask."""
    rows, cols = np.mgrid[:height, :width]
    mask = np.zeros((height, width), bool)
    for _ in range(rng.integers(1, 4)):
        row, col, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(3, 10)
        mask |= (rows - row) ** 2 + (cols - col) ** 2 < radius**2
    return mask


def noisy_prediction(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """A plausible probability map: the mask at 0.7 over 0.1, plus Gaussian noise, in [0, 1]."""
    return np.clip(0.1 + 0.7 * mask + rng.normal(0.0, 0.25, mask.shape), 0.0, 1.0)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """A [0, 1] map saved as an 8-bit PNG would be."""
    return np.round(np.asarray(values, float) * 255).astype(np.uint8)


def toolbox_fmeasure_calu(pred: np.ndarray, truth: np.ndarray, threshold: float) -> dict:
    """Fmeasure_calu.m line by line: precision, recall, specificity, Dice; all 0 when TP = 0."""
    label = pred >= min(threshold, 1.0)
    num_rec = np.count_nonzero(label)
    num_no_rec = label.size - num_rec
    num_and = np.count_nonzero(label & truth)
    num_obj = np.count_nonzero(truth)
    fn = num_obj - num_and
    fp = num_rec - num_and
    tn = num_no_rec - fn
    if num_and == 0:
        return {"precision": 0.0, "sensitivity": 0.0, "specificity": 0.0, "dice": 0.0}
    return {"precision": num_and / num_rec, "sensitivity": num_and / num_obj,
            "specificity": tn / (tn + fp), "dice": 2 * num_and / (num_obj + num_rec)}


def toolbox_enhanced_measure(binary: np.ndarray, truth: np.ndarray) -> float:
    """Enhancedmeasure.m pixel by pixel, for a binary map and a bool truth."""
    fm, gt = binary.astype(float), truth.astype(float)
    if gt.sum() == 0:
        enhanced = 1.0 - fm
    elif (1 - gt).sum() == 0:
        enhanced = fm
    else:
        align_fm, align_gt = fm - fm.mean(), gt - gt.mean()
        align = 2 * align_gt * align_fm / (align_gt**2 + align_fm**2 + MATLAB_EPS)
        enhanced = (align + 1) ** 2 / 4
    return float(enhanced.sum() / (gt.size - 1 + MATLAB_EPS))


def toolbox_s_measure(pred_uint8, truth_uint8):
    """S-measure from py_sod_metrics' object and ssim terms, split at MATLAB's centroid."""
    pred, truth = prepare_data(pred_uint8, truth_uint8)
    sod = py_sod_metrics.Smeasure()
    height, width = truth.shape
    row, col = np.argwhere(truth).mean(axis=0) + 1  # 1-based, as S_region.m
    row, col = int(np.floor(row + 0.5)), int(np.floor(col + 0.5))  # MATLAB round
    area = height * width
    weights = [col * row / area, (width - col) * row / area, col * (height - row) / area]
    weights.append(1 - sum(weights))
    quadrants = [(slice(0, row), slice(0, col)), (slice(0, row), slice(col, width)),
                 (slice(row, height), slice(0, col)), (slice(row, height), slice(col, width))]
    # an empty quadrant (centroid on the last row or column) has weight 0: MATLAB's NaN, our 0
    region = sum(w * sod.ssim(pred[q], truth[q]) for w, q in zip(weights, quadrants)
                 if pred[q].size)
    return max(0.0, 0.5 * sod.object(pred, truth) + 0.5 * region)
