"""Radiomic features of a region of a CT, as pyradiomics computes them (issue 6, phenotypes).

pyradiomics cannot be a dependency (its wheel does not build here), so this subpackage computes
the four feature classes the seed supplement lists, with pyradiomics' definitions (cited per
module) and default settings: no resampling or normalisation, fixed bin width 25 HU, distance
1 (the 13 directions of the 3-D 26-neighbourhood), a symmetric GLCM averaged per direction,
GLDM alpha 0, NGTDM distance 1. Columns are named as pyradiomics names them for the original
image, ``original_<class>_<Feature>``:

- ``roi``: binning and the neighbourhood;
- ``first_order``: 18 features (pyradiomics' default set less the deprecated
  StandardDeviation);
- ``glcm``: the 24 default-enabled GLCM features;
- ``gldm``: 14 features; ``ngtdm``: 5 features.

Deviations: none in the definitions; pyradiomics' checks of the mask (its ``minimumROISize``
and ``minimumROIDimensions`` settings) are left to the caller (`tfcovid.severity.phenotypes`).
All arithmetic is NumPy on the region's voxels: a gather per direction and ``bincount``; the
7.6 x 10^6 lung voxels of a 300 x 512 x 512 phantom take about 2.6 s on one CPU core, 1.5-2.1 s
on two (the GLCM beside GLDM and NGTDM).

Example:

>>> image = np.arange(60, dtype=np.float64).reshape(3, 4, 5) * 10 - 900
>>> features = extract_features(image, np.ones(image.shape), spacing_mm=(2.0, 1.0, 1.0))
>>> len(features), features["original_firstorder_Mean"], features["original_glcm_Idmn"] < 1
(61, -605.0, True)
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence

import numpy as np

from tfcovid.severity.radiomics import first_order, glcm, gldm, ngtdm
from tfcovid.severity.radiomics.roi import DEFAULT_BIN_WIDTH, RegionOfInterest

FEATURE_CLASSES = {"firstorder": first_order.FEATURES, "glcm": glcm.FEATURES,
                   "gldm": gldm.FEATURES, "ngtdm": ngtdm.FEATURES}
FEATURE_NAMES = tuple(f"original_{group}_{name}" for group, names in FEATURE_CLASSES.items()
                      for name in names)
"""The 61 column names, class by class, in pyradiomics' naming."""


def extract_features(image: np.ndarray, mask: np.ndarray,
                     spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
                     bin_width: float = DEFAULT_BIN_WIDTH) -> dict[str, float]:
    """The four feature classes of the region where ``mask`` is nonzero.

    Args:
        image: array (slices, rows, columns), or (rows, columns) for one slice. Intensities, HU.
        mask: array of the same shape; nonzero inside the region.
        spacing_mm: (slice, row, column) voxel size in mm; only TotalEnergy uses it.
            Defaults to (1, 1, 1).
        bin_width: float > 0. Fixed bin width, HU. Defaults to 25.

    Returns:
        dict of ``FEATURE_NAMES`` to floats, in that order. A region without two touching
        voxels has NaN GLCM features (no co-occurring pair).

    Raises:
        ValueError: shapes that differ or are not 2-D or 3-D, an empty mask, non-finite
            intensities in it, ``bin_width`` <= 0 or a ``spacing_mm`` not of 3 sizes > 0.
    """
    spacing = np.asarray(spacing_mm, np.float64)
    if spacing.shape != (3,) or not (spacing > 0).all():
        raise ValueError(f"spacing_mm must be 3 sizes > 0. Received: spacing_mm={spacing_mm}")
    roi = RegionOfInterest.from_mask(image, mask, bin_width)
    # NumPy's gathers and sums release the GIL: the GLCM and the two classes that share the
    # neighbourhood counts run on their own threads (1.5x faster on two cores)
    with concurrent.futures.ThreadPoolExecutor(2, "tfcovid-radiomics") as pool:
        glcm_values = pool.submit(glcm.glcm_features, roi)
        neighbourhood_values = pool.submit(
            lambda: {"gldm": gldm.gldm_features(roi), "ngtdm": ngtdm.ngtdm_features(roi)})
        values = {"firstorder": first_order.first_order_features(roi.values, roi.levels,
                                                                 float(spacing.prod())),
                  "glcm": glcm_values.result(), **neighbourhood_values.result()}
    return {f"original_{group}_{name}": values[group][name]
            for group, names in FEATURE_CLASSES.items() for name in names}
