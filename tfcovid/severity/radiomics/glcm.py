"""Grey level co-occurrence matrix (GLCM) features (pyradiomics ``glcm``, default settings).

For each of the 13 directions of distance 1 (``roi.DIRECTIONS``), P(i, j) counts voxel pairs
one step apart along it, both inside the region, with grey levels i and j; it is made
symmetric (P + P^T, pyradiomics' ``symmetricalGLCM``), restricted to the grey levels present in
the region, and normalised: p = P / sum P. Directions with no pair are dropped; each feature is
computed per direction and averaged over them (no distance weighting). Definitions follow the
pyradiomics documentation (``radiomics.glcm``): i and j are grey level values (not indices),
N_g the largest grey level, eps = 2.2e-16, and

- p_x(i) = sum_j p(i, j), p_y(j) = sum_i p(i, j); mu_x = sum i p(i, j), mu_y = sum j p(i, j);
  sigma_x^2 = sum (i - mu_x)^2 p(i, j), sigma_y^2 likewise;
- p_{x+y}(k) = sum_{i+j=k} p(i, j), k = 2 .. 2 N_g; p_{x-y}(k) = sum_{|i-j|=k} p(i, j),
  k = 0 .. N_g - 1;
- HX, HY: entropies -sum p log2(p + eps) of p_x, p_y; HXY of p;
  HXY1 = -sum p(i, j) log2(p_x(i) p_y(j) + eps);
  HXY2 = -sum p_x(i) p_y(j) log2(p_x(i) p_y(j) + eps).

Features (sums over i, j unless k is named):

- Autocorrelation = sum p i j; JointAverage = mu_x;
- ClusterProminence, ClusterShade, ClusterTendency = sum p (i + j - mu_x - mu_y)^4, ^3, ^2;
- Contrast = sum p (i - j)^2; SumSquares = sum p (i - mu_x)^2;
- Correlation = (sum p i j - mu_x mu_y) / (sigma_x sigma_y + eps), 1 when sigma_x sigma_y = 0;
- DifferenceAverage DA = sum_k k p_{x-y}(k); DifferenceVariance = sum_k (k - DA)^2 p_{x-y}(k);
  DifferenceEntropy = -sum_k p_{x-y}(k) log2(p_{x-y}(k) + eps);
- JointEnergy = sum p^2; JointEntropy = HXY; MaximumProbability = max p;
- Imc1 = (HXY - HXY1) / max(HX, HY), 0 when both are 0; Imc2 = sqrt(1 - exp(-2 (HXY2 - HXY)));
- Id = sum_k p_{x-y}(k) / (1 + k); Idn = sum_k p_{x-y}(k) / (1 + k / N_g);
  Idm = sum_k p_{x-y}(k) / (1 + k^2); Idmn = sum_k p_{x-y}(k) / (1 + k^2 / N_g^2);
  InverseVariance = sum_{k>0} p_{x-y}(k) / k^2;
- MCC = sqrt of the second largest eigenvalue of Q(i, j) = sum_k p(i, k) p(j, k) /
  (p_x(i) p_y(k) + eps); 1 when the region has one grey level;
- SumAverage = sum_k k p_{x+y}(k); SumEntropy = -sum_k p_{x+y}(k) log2(p_{x+y}(k) + eps).
"""

from __future__ import annotations

import numpy as np

from tfcovid.severity.radiomics.roi import RegionOfInterest

FEATURES = ("Autocorrelation", "JointAverage", "ClusterProminence", "ClusterShade",
            "ClusterTendency", "Contrast", "Correlation", "DifferenceAverage",
            "DifferenceEntropy", "DifferenceVariance", "JointEnergy", "JointEntropy", "Imc1",
            "Imc2", "Idm", "MCC", "Idmn", "Id", "Idn", "InverseVariance", "MaximumProbability",
            "SumAverage", "SumEntropy", "SumSquares")
EPSILON = np.spacing(1)


def cooccurrence_matrices(roi: RegionOfInterest) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric co-occurrence counts per direction, over the grey levels present.

    Returns:
        (counts, levels): float64 array (directions with pairs, levels, levels) and the int64
        grey levels (levels,) its rows and columns stand for.
    """
    size = int(roi.levels.max()) + 1
    counts = np.zeros((len(roi.offsets), size * size))
    rows = roi.levels * size
    for direction, offset in enumerate(roi.offsets):
        # a neighbour outside the region (level 0) lands in column 0, dropped with level 0
        counts[direction] = np.bincount(rows + roi.neighbours(offset), minlength=size * size)
    counts = counts.reshape(-1, size, size)
    counts = counts + counts.transpose(0, 2, 1)
    levels = roi.present_levels()
    counts = counts[:, levels][:, :, levels]
    return counts[counts.sum(axis=(1, 2)) > 0], levels


def glcm_features(roi: RegionOfInterest) -> dict[str, float]:
    """The ``FEATURES`` of a region, averaged over directions (module docstring).

    Returns:
        dict of feature name to float, in ``FEATURES`` order; all NaN when no two voxels of the
        region touch.
    """
    counts, levels = cooccurrence_matrices(roi)
    if counts.shape[0] == 0:
        return dict.fromkeys(FEATURES, float("nan"))
    p = counts / counts.sum(axis=(1, 2), keepdims=True)
    num_levels = int(levels.max())
    i = levels.astype(np.float64)[None, :, None]
    j = levels.astype(np.float64)[None, None, :]
    px, py = p.sum(axis=2), p.sum(axis=1)                   # (directions, levels)
    mu_x = (px * levels).sum(axis=1)[:, None, None]
    mu_y = (py * levels).sum(axis=1)[:, None, None]
    sigma_x = np.sqrt((p * (i - mu_x) ** 2).sum(axis=(1, 2)))
    sigma_y = np.sqrt((p * (j - mu_y) ** 2).sum(axis=(1, 2)))
    p_sum = _by_index(p, (i + j).astype(np.int64), 2 * num_levels + 1)[:, 2:]
    k_sum = np.arange(2, 2 * num_levels + 1)
    p_diff = _by_index(p, np.abs(i - j).astype(np.int64), num_levels)
    k_diff = np.arange(num_levels, dtype=np.float64)
    outer = px[:, :, None] * py[:, None, :]
    hx, hy, hxy = _entropy(px, 1), _entropy(py, 1), _entropy(p, (1, 2))
    hxy1 = -(p * np.log2(outer + EPSILON)).sum(axis=(1, 2))
    hxy2 = _entropy(outer, (1, 2))
    cluster = i + j - mu_x - mu_y
    covariance = (p * (i - mu_x) * (j - mu_y)).sum(axis=(1, 2))
    sigma = sigma_x * sigma_y
    difference_average = (k_diff * p_diff).sum(axis=1)
    largest_entropy = np.maximum(hx, hy)
    features = {
        "Autocorrelation": (p * i * j).sum(axis=(1, 2)),
        "JointAverage": mu_x.ravel(),
        "ClusterProminence": (p * cluster ** 4).sum(axis=(1, 2)),
        "ClusterShade": (p * cluster ** 3).sum(axis=(1, 2)),
        "ClusterTendency": (p * cluster ** 2).sum(axis=(1, 2)),
        "Contrast": (p * (i - j) ** 2).sum(axis=(1, 2)),
        "Correlation": np.where(sigma == 0, 1.0, covariance / (sigma + EPSILON)),
        "DifferenceAverage": difference_average,
        "DifferenceEntropy": _entropy(p_diff, 1),
        "DifferenceVariance": ((k_diff - difference_average[:, None]) ** 2 * p_diff).sum(axis=1),
        "JointEnergy": (p ** 2).sum(axis=(1, 2)),
        "JointEntropy": hxy,
        "Imc1": np.divide(hxy - hxy1, largest_entropy, out=np.zeros_like(hxy),
                          where=largest_entropy != 0),
        "Imc2": np.sqrt(np.clip(1 - np.exp(-2 * (hxy2 - hxy)), 0, None)),
        "Idm": (p_diff / (1 + k_diff ** 2)).sum(axis=1),
        "MCC": _maximal_correlation(p, px, py),
        "Idmn": (p_diff / (1 + k_diff ** 2 / num_levels ** 2)).sum(axis=1),
        "Id": (p_diff / (1 + k_diff)).sum(axis=1),
        "Idn": (p_diff / (1 + k_diff / num_levels)).sum(axis=1),
        "InverseVariance": (p_diff[:, 1:] / k_diff[1:] ** 2).sum(axis=1),
        "MaximumProbability": p.max(axis=(1, 2)),
        "SumAverage": (k_sum * p_sum).sum(axis=1),
        "SumEntropy": _entropy(p_sum, 1),
        "SumSquares": (p * (i - mu_x) ** 2).sum(axis=(1, 2)),
    }
    return {name: float(np.nanmean(features[name])) for name in FEATURES}


def _by_index(p: np.ndarray, index: np.ndarray, length: int) -> np.ndarray:
    """``out[d, k] = sum of p[d] where index == k`` for each direction d."""
    directions = p.shape[0]
    index = np.broadcast_to(index, p.shape) + length * np.arange(directions)[:, None, None]
    return np.bincount(index.ravel(), weights=p.ravel(),
                       minlength=directions * length).reshape(directions, length)


def _entropy(p: np.ndarray, axis) -> np.ndarray:
    return -(p * np.log2(p + EPSILON)).sum(axis=axis)


def _maximal_correlation(p: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    if p.shape[1] < 2:
        return np.ones(p.shape[0])
    weighted = p / (px[:, :, None] * py[:, None, :] + EPSILON)
    q = weighted @ p.transpose(0, 2, 1)
    eigenvalues = np.sort(np.linalg.eigvals(q).real, axis=1)
    return np.sqrt(np.clip(eigenvalues[:, -2], 0, None))
