"""Neighbouring grey tone difference matrix (NGTDM) features (pyradiomics ``ngtdm``, defaults).

For each voxel of grey level i, A is the mean grey level of its neighbours inside the region
(the 26 at distance 1, ``roi.DIRECTIONS`` both ways); s_i sums |i - A| over the voxels of grey
level i, n_i counts them, N_vp = sum n_i and p_i = n_i / N_vp, over the N_gp grey levels
present. A voxel with no neighbour in the region counts in n_i with a difference of 0, as in
pyradiomics' implementation (its documentation describes N_vp as the voxels with a neighbour;
its C code, the default path, counts every voxel). Definitions follow the pyradiomics
documentation (``radiomics.ngtdm``), sums over grey levels present:

- Coarseness = 1 / sum_i p_i s_i, 10^6 when the sum is 0;
- Contrast = [sum_{i,j} p_i p_j (i - j)^2 / (N_gp (N_gp - 1))] [sum_i s_i / N_vp], 0 when
  N_gp = 1;
- Busyness = sum_i p_i s_i / sum_{i,j} |i p_i - j p_j|, 0 when the denominator is 0;
- Complexity = sum_{i,j} |i - j| (p_i s_i + p_j s_j) / (p_i + p_j) / N_vp;
- Strength = sum_{i,j} (p_i + p_j) (i - j)^2 / sum_i s_i, 0 when sum_i s_i = 0.
"""

from __future__ import annotations

import numpy as np

from tfcovid.severity.radiomics.roi import RegionOfInterest

FEATURES = ("Coarseness", "Contrast", "Busyness", "Complexity", "Strength")
UNIFORM_COARSENESS = 1e6


def tone_difference_matrix(roi: RegionOfInterest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, s, levels): counts n_i, summed differences s_i and the grey levels i present."""
    neighbourhood = roi.neighbourhood
    average = np.divide(neighbourhood.level_sum, neighbourhood.inside,
                        out=roi.levels.astype(np.float64), where=neighbourhood.inside > 0)
    difference = np.abs(roi.levels - average)
    levels = roi.present_levels()
    counts = np.bincount(roi.levels)[levels].astype(np.float64)
    sums = np.bincount(roi.levels, weights=difference)[levels]
    return counts, sums, levels


def ngtdm_features(roi: RegionOfInterest) -> dict[str, float]:
    """The ``FEATURES`` of a region (module docstring).

    Returns:
        dict of feature name to float, in ``FEATURES`` order.
    """
    counts, s, levels = tone_difference_matrix(roi)
    total = counts.sum()
    p = counts / total
    i = levels.astype(np.float64)
    grey_levels = levels.size
    weighted = (p * s).sum()
    squared = (i[:, None] - i[None, :]) ** 2
    spread = np.abs((i * p)[:, None] - (i * p)[None, :]).sum()
    contrast = 0.0
    if grey_levels > 1:
        contrast = ((p[:, None] * p[None, :] * squared).sum() / (grey_levels * (grey_levels - 1))
                    * s.sum() / total)
    complexity = (np.abs(i[:, None] - i[None, :]) * ((p * s)[:, None] + (p * s)[None, :])
                  / (p[:, None] + p[None, :])).sum() / total
    strength = ((p[:, None] + p[None, :]) * squared).sum() / s.sum() if s.sum() > 0 else 0.0
    return {
        "Coarseness": float(1 / weighted) if weighted > 0 else UNIFORM_COARSENESS,
        "Contrast": float(contrast),
        "Busyness": float(weighted / spread) if spread > 0 else 0.0,
        "Complexity": float(complexity),
        "Strength": float(strength),
    }
