"""First-order features: the distribution of intensities in the region (pyradiomics ``firstorder``).

Definitions follow the pyradiomics documentation (``radiomics.firstorder``) with its default
settings (no intensity shift, ``voxelArrayShift`` 0). X is the region's N_p intensities (HU),
V the volume of one voxel (mm^3), P_k the k-th percentile (NumPy's linear interpolation),
p(i) the fraction of voxels in grey level i (fixed bin width, ``roi.discretise``) and
eps = 2.2e-16:

- Energy = sum X^2; TotalEnergy = V sum X^2;
- Entropy = -sum_i p(i) log2(p(i) + eps); Uniformity = sum_i p(i)^2;
- Minimum, Maximum, Range = Maximum - Minimum, Mean, Median, 10Percentile = P_10,
  90Percentile = P_90, InterquartileRange = P_75 - P_25;
- MeanAbsoluteDeviation = mean |X - mean X|;
- RobustMeanAbsoluteDeviation: the same over the voxels with P_10 <= X <= P_90 only;
- RootMeanSquared = sqrt(mean X^2); Variance = mean (X - mean X)^2 (population);
- Skewness = m_3 / m_2^(3/2), Kurtosis = m_4 / m_2^2 (not excess kurtosis), with m_k the k-th
  central moment; both 0 for a region of one intensity.

Example:

>>> features = first_order_features(np.array([-800.0, -700.0, -600.0, -500.0]),
...                                 np.array([1, 5, 9, 13]), voxel_volume_mm3=2.0)
>>> features["Mean"], features["Range"], features["TotalEnergy"], features["Uniformity"]
(-650.0, 300.0, 3480000.0, 0.25)
"""

from __future__ import annotations

import numpy as np

FEATURES = ("Energy", "TotalEnergy", "Entropy", "Minimum", "10Percentile", "90Percentile",
            "Maximum", "Mean", "Median", "InterquartileRange", "Range", "MeanAbsoluteDeviation",
            "RobustMeanAbsoluteDeviation", "RootMeanSquared", "Skewness", "Kurtosis",
            "Variance", "Uniformity")
EPSILON = np.spacing(1)


def first_order_features(values: np.ndarray, levels: np.ndarray,
                         voxel_volume_mm3: float) -> dict[str, float]:
    """The ``FEATURES`` of a region (module docstring).

    Args:
        values: float array (voxels,). Intensities in the region (HU).
        levels: int array (voxels,). Their grey levels (``roi.discretise``).
        voxel_volume_mm3: float. Volume of one voxel, mm^3.

    Returns:
        dict of feature name to float, in ``FEATURES`` order.
    """
    values = np.asarray(values, np.float64)
    p = np.bincount(levels) / values.size
    p10, p25, p75, p90 = np.percentile(values, [10, 25, 75, 90])
    mean = values.mean()
    centred = values - mean
    squared = centred * centred  # products, not float powers: several times faster
    m2, m3, m4 = np.mean(squared), np.mean(squared * centred), np.mean(squared * squared)
    robust = values[(values >= p10) & (values <= p90)]
    energy = float(np.sum(values ** 2))
    return {
        "Energy": energy,
        "TotalEnergy": voxel_volume_mm3 * energy,
        "Entropy": float(-np.sum(p * np.log2(p + EPSILON))),
        "Minimum": float(values.min()),
        "10Percentile": float(p10),
        "90Percentile": float(p90),
        "Maximum": float(values.max()),
        "Mean": float(mean),
        "Median": float(np.median(values)),
        "InterquartileRange": float(p75 - p25),
        "Range": float(values.max() - values.min()),
        "MeanAbsoluteDeviation": float(np.mean(np.abs(centred))),
        "RobustMeanAbsoluteDeviation": float(np.mean(np.abs(robust - robust.mean()))),
        "RootMeanSquared": float(np.sqrt(np.mean(values ** 2))),
        "Skewness": float(m3 / m2 ** 1.5) if m2 > 0 else 0.0,
        "Kurtosis": float(m4 / m2 ** 2) if m2 > 0 else 0.0,
        "Variance": float(m2),
        "Uniformity": float(np.sum(p ** 2)),
    }
