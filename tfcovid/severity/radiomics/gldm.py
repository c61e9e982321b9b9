"""Grey level dependence matrix (GLDM) features (pyradiomics ``gldm``, default settings).

A neighbour (any of the 26 at distance 1, ``roi.DIRECTIONS`` both ways, inside the region)
depends on a voxel of grey level i when its own grey level is within alpha of i; alpha is 0
(pyradiomics' ``gldm_a``), so equal levels. P(i, j) counts the voxels of grey level i with
j - 1 dependent neighbours: j = 1 .. 27 counts the voxel itself, as pyradiomics does. Sums run
over the grey levels present and the dependence sizes; N_z = sum P (the region's voxels),
p = P / N_z, p_g(i) = sum_j p(i, j), p_d(j) = sum_i p(i, j), eps = 2.2e-16. Definitions follow
the pyradiomics documentation (``radiomics.gldm``):

- SmallDependenceEmphasis = sum p / j^2; LargeDependenceEmphasis = sum p j^2;
- GrayLevelNonUniformity = sum_i (sum_j P)^2 / N_z;
- DependenceNonUniformity = sum_j (sum_i P)^2 / N_z;
  DependenceNonUniformityNormalized = sum_j (sum_i P)^2 / N_z^2;
- GrayLevelVariance = sum_i p_g(i) (i - sum_i i p_g(i))^2;
  DependenceVariance = sum_j p_d(j) (j - sum_j j p_d(j))^2;
- DependenceEntropy = -sum p log2(p + eps);
- LowGrayLevelEmphasis = sum p / i^2; HighGrayLevelEmphasis = sum p i^2;
- SmallDependenceLowGrayLevelEmphasis = sum p / (i^2 j^2);
  SmallDependenceHighGrayLevelEmphasis = sum p i^2 / j^2;
  LargeDependenceLowGrayLevelEmphasis = sum p j^2 / i^2;
  LargeDependenceHighGrayLevelEmphasis = sum p i^2 j^2.
"""

from __future__ import annotations

import numpy as np

from tfcovid.severity.radiomics.roi import RegionOfInterest

FEATURES = ("SmallDependenceEmphasis", "LargeDependenceEmphasis", "GrayLevelNonUniformity",
            "DependenceNonUniformity", "DependenceNonUniformityNormalized", "GrayLevelVariance",
            "DependenceVariance", "DependenceEntropy", "LowGrayLevelEmphasis",
            "HighGrayLevelEmphasis", "SmallDependenceLowGrayLevelEmphasis",
            "SmallDependenceHighGrayLevelEmphasis", "LargeDependenceLowGrayLevelEmphasis",
            "LargeDependenceHighGrayLevelEmphasis")
MAX_DEPENDENCE = 2 * 13 + 1
EPSILON = np.spacing(1)


def dependence_matrix(roi: RegionOfInterest, alpha: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dependence counts P(i, j) (module docstring).

    Args:
        roi: the region.
        alpha: int >= 0. Largest grey-level difference of a dependent neighbour. Defaults to 0.

    Returns:
        (counts, levels): float64 array (levels, 27), column j - 1 for dependence size j, and
        the int64 grey levels (levels,) present, one per row.
    """
    if alpha == 0:
        dependants = roi.neighbourhood.equal
    else:
        dependants = np.zeros(roi.levels.size, np.int64)
        for offset in np.concatenate([roi.offsets, -roi.offsets]):
            neighbour = roi.neighbours(offset).astype(np.int64)
            dependants += (neighbour > 0) & (np.abs(neighbour - roi.levels) <= alpha)
    counts = np.bincount(roi.levels * MAX_DEPENDENCE + dependants,
                         minlength=(int(roi.levels.max()) + 1) * MAX_DEPENDENCE)
    levels = roi.present_levels()
    return counts.reshape(-1, MAX_DEPENDENCE)[levels].astype(np.float64), levels


def gldm_features(roi: RegionOfInterest) -> dict[str, float]:
    """The ``FEATURES`` of a region (module docstring).

    Returns:
        dict of feature name to float, in ``FEATURES`` order.
    """
    counts, levels = dependence_matrix(roi)
    total = counts.sum()
    p = counts / total
    i = levels.astype(np.float64)[:, None]
    j = np.arange(1, MAX_DEPENDENCE + 1, dtype=np.float64)[None, :]
    p_grey, p_dependence = p.sum(axis=1), p.sum(axis=0)
    grey_mean = (p_grey * i[:, 0]).sum()
    dependence_mean = (p_dependence * j[0]).sum()
    features = {
        "SmallDependenceEmphasis": (p / j ** 2).sum(),
        "LargeDependenceEmphasis": (p * j ** 2).sum(),
        "GrayLevelNonUniformity": (counts.sum(axis=1) ** 2).sum() / total,
        "DependenceNonUniformity": (counts.sum(axis=0) ** 2).sum() / total,
        "DependenceNonUniformityNormalized": (counts.sum(axis=0) ** 2).sum() / total ** 2,
        "GrayLevelVariance": (p_grey * (i[:, 0] - grey_mean) ** 2).sum(),
        "DependenceVariance": (p_dependence * (j[0] - dependence_mean) ** 2).sum(),
        "DependenceEntropy": -(p * np.log2(p + EPSILON)).sum(),
        "LowGrayLevelEmphasis": (p / i ** 2).sum(),
        "HighGrayLevelEmphasis": (p * i ** 2).sum(),
        "SmallDependenceLowGrayLevelEmphasis": (p / (i ** 2 * j ** 2)).sum(),
        "SmallDependenceHighGrayLevelEmphasis": (p * i ** 2 / j ** 2).sum(),
        "LargeDependenceLowGrayLevelEmphasis": (p * j ** 2 / i ** 2).sum(),
        "LargeDependenceHighGrayLevelEmphasis": (p * i ** 2 * j ** 2).sum(),
    }
    return {name: float(features[name]) for name in FEATURES}
