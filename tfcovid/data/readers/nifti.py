"""NIfTI volumes (``.nii``, ``.nii.gz``) read with nibabel into radiological axial arrays.

Arrays come back as ``(slices, rows, columns)`` in the convention of
``tfcovid.data.readers.orientation``: rows anterior -> posterior, columns patient right -> left,
slices inferior -> superior (or as stored with ``keep_slice_order=True``); the flips come from
the file's affine. Spacing is the header's voxel size (zooms) in mm, in the same axis order.

Example:

>>> import os, tempfile, nibabel, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "scan.nii.gz")
>>> volume = np.full((4, 3, 2), -1000, np.int16)  # (x, y, z): air
>>> volume[1:3, 1, :] = 40  # and some soft tissue
>>> nibabel.save(nibabel.Nifti1Image(volume, np.diag([0.7, 0.7, 5.0, 1.0])), path)
>>> image, spacing = read_nifti_hu(path)
>>> image.shape, image.dtype.name, spacing
((2, 3, 4), 'int16', (5.0, 0.7, 0.7))
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping

import nibabel
import numpy as np

from tfcovid.data.readers import checks, orientation
from tfcovid.errors import DataError

Spacing = tuple[float, float, float]


def read_nifti(path: str | os.PathLike, keep_slice_order: bool = False
               ) -> tuple[np.ndarray, Spacing]:
    """Reads a 3-D NIfTI volume as stored values (scaled by the header's slope and intercept).

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        keep_slice_order: bool. Keep the stored slice order (see ``to_radiological``).
            Defaults to False.

    Returns:
        ``(values, spacing_mm)``: float64 or integer array (slices, rows, columns) and the
        (slice, row, column) voxel size in mm.

    Raises:
        DataError: missing or unreadable file, not 3-D, NaN or infinite values.
    """
    path = checks.require_file(path)
    try:
        image = nibabel.load(path)
        values = np.asanyarray(image.dataobj)
    except (nibabel.filebasedimages.ImageFileError, OSError, EOFError, ValueError,
            zlib.error) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: not a readable NIfTI file ({reason})") from None
    while values.ndim > 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim != 3:
        raise DataError(f"{path}: expected 3-D (x, y, z) volume, got shape {values.shape}")
    checks.require_finite(values, path)
    # headers hold float32 zooms: 0.7 is stored as 0.699999988
    zooms = [round(float(zoom), 6) for zoom in image.header.get_zooms()[:3]]
    return orientation.to_radiological(values, image.affine, zooms, keep_slice_order)


def read_nifti_hu(path: str | os.PathLike, keep_slice_order: bool = False
                  ) -> tuple[np.ndarray, Spacing]:
    """Reads a CT volume in Hounsfield units.

    Values below -1024 HU become -1024 (air); see ``checks.to_hu_int16``.

    Args:
        path: ``.nii`` or ``.nii.gz`` file holding Hounsfield units.
        keep_slice_order: bool. Keep the stored slice order. Defaults to False.

    Returns:
        ``(image, spacing_mm)``: int16 array (slices, rows, columns) in HU and the
        (slice, row, column) voxel size in mm.

    Raises:
        DataError: as ``read_nifti``, plus values impossible for a CT in HU.
    """
    values, spacing = read_nifti(path, keep_slice_order)
    return checks.to_hu_int16(values, path), spacing


def read_nifti_labels(path: str | os.PathLike, mapping: Mapping[int, int] | None = None,
                      keep_slice_order: bool = False) -> tuple[np.ndarray, Spacing]:
    """Reads an infection mask as store labels (0 background, 1 GGO, 2 consolidation).

    Args:
        path: ``.nii`` or ``.nii.gz`` file holding integer label values.
        mapping: dict of int to int applied first, e.g. ``{3: 0}``. Defaults to none.
        keep_slice_order: bool. Keep the stored slice order. Defaults to False.

    Returns:
        ``(labels, spacing_mm)``: uint8 array (slices, rows, columns) and the voxel size in mm.

    Raises:
        DataError: as ``read_nifti``, plus values that are not integers or not known labels.
    """
    values, spacing = read_nifti(path, keep_slice_order)
    return checks.to_labels(values, path, mapping), spacing


def nifti_stem(path: str | os.PathLike) -> str:
    """File name without ``.nii`` or ``.nii.gz``: ``"rp_im/3.nii.gz"`` gives ``"3"``."""
    name = os.path.basename(path)
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
