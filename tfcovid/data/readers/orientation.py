"""Voxel arrays turned into radiological axial views, decided by the affine.

The convention every reader returns, for arrays indexed ``(slices, rows, columns)``:

- rows go anterior -> posterior (the patient's front is at the top of the image),
- columns go patient right -> left (the patient's left is on the image's right),
- slices go inferior -> superior (feet to head), unless the caller keeps the stored order.

This is how DICOM viewers show axial slices; in world terms the column, row and slice axes
point to L, P and S (DICOM's LPS). The flips and the axis order come from the affine
(``nibabel.orientations.io_orientation``: the nearest axis-aligned orientation), never from a
rule about a data set.

Example:

>>> import numpy as np
>>> volume = np.arange(24).reshape(2, 3, 4)  # (x, y, z) with x to the right, y anterior
>>> image, spacing = to_radiological(volume, np.diag([0.5, 0.6, 2.0, 1.0]), (0.5, 0.6, 2.0))
>>> image.shape, spacing
((4, 3, 2), (2.0, 0.6, 0.5))
>>> int(image[0, 0, 0]) == int(volume[-1, -1, 0])  # patient right-anterior corner, lowest slice
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from nibabel import orientations

_RADIOLOGICAL = orientations.axcodes2ornt(("L", "P", "S"))


def to_radiological(data: np.ndarray, affine_ras: np.ndarray, zooms: Sequence[float],
                    keep_slice_order: bool = False) -> tuple[np.ndarray, tuple[float, ...]]:
    """Reorders and flips a voxel array into the radiological ``(slices, rows, columns)`` view.

    Args:
        data: array (i, j, k) in voxel order, as NIfTI stores it.
        affine_ras: (4, 4) array mapping voxel indices to RAS+ world coordinates in mm.
        zooms: voxel size along i, j, k in mm.
        keep_slice_order: bool. Keep the stored order along the axis that becomes the slice
            axis instead of ordering it inferior -> superior (for stacks of unrelated slices).
            Defaults to False.

    Returns:
        ``(array, spacing_mm)``: a view of ``data`` with shape (slices, rows, columns) and the
        (slice, row, column) spacing in mm.
    """
    if data.ndim != 3 or len(zooms) != 3:
        raise ValueError(f"expected a 3-D array and three zooms. Received: shape={data.shape}, "
                         f"zooms={tuple(zooms)}")
    transform = orientations.ornt_transform(orientations.io_orientation(affine_ras),
                                            _RADIOLOGICAL)
    if keep_slice_order:
        transform[transform[:, 0] == 2, 1] = 1
    array = orientations.apply_orientation(data, transform)
    spacing = [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(transform):
        spacing[int(target)] = float(zooms[axis])
    return array.transpose(2, 1, 0), tuple(spacing[::-1])
