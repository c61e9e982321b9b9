"""Checks shared by the readers: file presence, finite values, Hounsfield units, label values."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from tfcovid.errors import DataError

AIR_HU = -1024
"""Air in Hounsfield units; padding and out-of-field-of-view values are set to it."""
CLASS_LABELS = (0, 1, 2)
"""Store label values: 0 background, 1 ground-glass opacity, 2 consolidation."""
_MIN_AIR_PERCENTILE_HU = -500


def require_file(path: str | os.PathLike) -> Path:
    """Returns ``path`` as a ``Path``; raises ``DataError`` when it is not a file."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, expected a file" if path.is_dir() else "no such file"
        raise DataError(f"{path}: {problem}")
    return path


def require_finite(values: np.ndarray, origin: str | os.PathLike) -> None:
    """Raises ``DataError`` naming ``origin`` when ``values`` holds NaN or infinity."""
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        count = int(np.count_nonzero(~np.isfinite(values)))
        raise DataError(f"{origin}: {count} NaN or infinite values")


def to_hu_int16(values: np.ndarray, origin: str | os.PathLike) -> np.ndarray:
    """Rounds Hounsfield units to int16 after checking they can be a CT.

    Values below -1024 HU (out-of-field-of-view padding such as -2048 or -3024, and noise in
    air) become -1024 HU (air). A chest CT always shows air, so a volume whose 1st percentile
    lies above -500 HU, or whose maximum is below 0 HU, is not a CT in Hounsfield units (for
    example raw unsigned scanner values, or an 8-bit picture).

    Args:
        values: array of any shape, Hounsfield units.
        origin: file the values came from, named in errors.

    Returns:
        int16 array of the same shape, in [-1024, 32767] HU.

    Raises:
        DataError: NaN or infinite values, values beyond int16, or a range impossible for CT.
    """
    require_finite(values, origin)
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.integer):  # integers (most files) need no rounding
        values = np.round(values.astype(np.float64))
    low, high = float(values.min()), float(values.max())
    if high > np.iinfo(np.int16).max or low < np.iinfo(np.int16).min:
        raise DataError(f"{origin}: values {low:g}..{high:g} do not fit CT Hounsfield units "
                        f"(int16)")
    values = np.maximum(values.astype(np.int16, copy=False), AIR_HU)
    if high < 0 or not _first_percentile_at_most(values, _MIN_AIR_PERCENTILE_HU):
        air = float(np.percentile(values, 1))
        raise DataError(f"{origin}: not a CT in Hounsfield units (1st percentile {air:g}, "
                        f"maximum {high:g}; a chest CT shows air near -1000 HU)")
    return values


def _first_percentile_at_most(values: np.ndarray, bound: float) -> bool:
    """``np.percentile(values, 1) <= bound``, counting instead of sorting when it holds.

    The percentile interpolates between the order statistics k and k + 1 (from 0), k =
    floor(0.01 (n - 1)); when more than k + 1 values are at most ``bound``, both are, and so
    is the percentile. Otherwise the percentile itself decides.
    """
    if np.count_nonzero(values <= bound) > int(0.01 * (values.size - 1)) + 1:
        return True
    return float(np.percentile(values, 1)) <= bound


def to_labels(values: np.ndarray, origin: str | os.PathLike,
              mapping: Mapping[int, int] | None = None,
              allowed: Iterable[int] = CLASS_LABELS) -> np.ndarray:
    """Maps integer mask values to store labels.

    Args:
        values: integer or integral float array of any shape.
        origin: file the mask came from, named in errors.
        mapping: dict of int to int. Replaces each key by its value (e.g. ``{3: 0}`` sends
            pleural effusion to background); other values are kept. Defaults to no mapping.
        allowed: label values the result may hold. Defaults to 0, 1, 2.

    Returns:
        uint8 array of the same shape.

    Raises:
        DataError: NaN, non-integer values, or values neither allowed nor mapped.
    """
    require_finite(values, origin)
    mapping = dict(mapping or {})
    allowed = sorted(allowed)
    bad_targets = {source: target for source, target in mapping.items() if target not in allowed}
    if bad_targets:
        raise ValueError(f"label mapping targets must be in {allowed}. Received: "
                         f"mapping={mapping}")
    present = np.unique(values)
    fractional = present[present != np.round(present)]
    if fractional.size:
        raise DataError(f"{origin}: mask values are not integers (e.g. {fractional[0]:g})")
    present = present.astype(np.int64)
    unknown = np.setdiff1d(present, np.union1d(allowed, list(mapping)))
    if unknown.size:
        known = allowed + sorted(set(mapping) - set(allowed))
        raise DataError(f"{origin}: unknown label values {unknown.tolist()}; expected {known}")
    labels = np.asarray(values).astype(np.int64)
    result = labels.astype(np.uint8)
    for source, target in mapping.items():
        result[labels == source] = target
    return result


def require_same_shape(array: np.ndarray, origin: str | os.PathLike, image: np.ndarray,
                       image_origin: str | os.PathLike) -> None:
    """Raises ``DataError`` naming ``origin`` when a mask's shape differs from its image's."""
    if array.shape != image.shape:
        raise DataError(f"{origin}: shape {array.shape} does not match image "
                        f"{Path(image_origin).name} shape {image.shape}")
