"""Image phenotypes: radiomic features of the infected lung of a case, one CSV row (issue 6).

The infected region is every lung voxel labelled ground-glass opacity or consolidation (label
> 0 inside the lung mask), in 3-D over the scan's HU; its features are the four pyradiomics
classes of `tfcovid.severity.radiomics` (first-order, GLCM, GLDM, NGTDM; 61 columns named
``original_<class>_<Feature>``). A row starts with who and what: ``scan`` (scan or patient
id), ``severity_class`` and ``severity_name``, ``infected_fraction`` (of lung), then
``infected_voxels`` and ``phenotype_status``:

- "ok": features computed;
- "empty": no infected voxel; every feature is NaN (an empty cell in the CSV);
- "too_small": fewer than ``MIN_VOXELS`` infected voxels (pyradiomics refuses a single
  voxel); every feature is NaN.

Rows from several scans go into one CSV (`write_csv`), ready to join with clinical tables
(age, underlying disease) on ``scan``.

Example:

>>> volume = np.full((3, 8, 9), -850, np.int16); volume[1, 2:5, 3:6] = -400
>>> labels = np.zeros(volume.shape, np.uint8); labels[1, 2:5, 3:6] = 1
>>> row = infection_phenotypes(volume, labels, np.ones(volume.shape, np.uint8), (5, 1, 1))
>>> row["phenotype_status"], row["infected_voxels"], row["original_firstorder_Mean"]
('ok', 9, -400.0)
"""

from __future__ import annotations

import csv
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tfcovid.severity import radiomics

MIN_VOXELS = 2
STATUS_COLUMNS = ("infected_voxels", "phenotype_status")
ROW_COLUMNS = ("scan", "severity_class", "severity_name", "infected_fraction")
CSV_COLUMNS = ROW_COLUMNS + STATUS_COLUMNS + radiomics.FEATURE_NAMES
"""Every column of a phenotype CSV, in order."""


def infection_phenotypes(volume_hu: np.ndarray, labels: np.ndarray, lung: np.ndarray,
                         spacing_mm: Sequence[float]) -> dict:
    """Radiomic features of the infected lung (module docstring).

    Args:
        volume_hu: array (slices, rows, columns). The scan, HU.
        labels: integer array of the same shape: 0 background, 1 ground-glass opacity,
            2 consolidation.
        lung: integer array of the same shape; nonzero inside the lung.
        spacing_mm: (slice, row, column) voxel size, mm.

    Returns:
        dict: ``infected_voxels`` (int), ``phenotype_status`` ("ok", "empty" or
        "too_small") and the ``radiomics.FEATURE_NAMES`` (floats, NaN unless "ok").

    Raises:
        ValueError: arrays of different or non-3-D shapes.
    """
    volume_hu, labels, lung = (np.asarray(array) for array in (volume_hu, labels, lung))
    if volume_hu.ndim != 3 or not volume_hu.shape == labels.shape == lung.shape:
        raise ValueError(f"volume_hu, labels and lung must be 3-D arrays of one shape. "
                         f"Received: shapes {volume_hu.shape}, {labels.shape}, {lung.shape}")
    region = (labels > 0) & (lung != 0)
    voxels = int(np.count_nonzero(region))
    status = "ok" if voxels >= MIN_VOXELS else "empty" if voxels == 0 else "too_small"
    features = (radiomics.extract_features(volume_hu, region, spacing_mm) if status == "ok"
                else dict.fromkeys(radiomics.FEATURE_NAMES, float("nan")))
    return {"infected_voxels": voxels, "phenotype_status": status, **features}


def write_csv(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Writes phenotype rows as CSV with ``CSV_COLUMNS``, atomically; NaN becomes an empty cell.

    Args:
        path: the CSV file; its folder must exist.
        rows: dicts holding every column of ``CSV_COLUMNS`` (others are an error).

    Returns:
        the number of rows written.

    Raises:
        ValueError: a row with missing or unknown columns.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    count = 0
    try:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, CSV_COLUMNS, extrasaction="raise")
            writer.writeheader()
            for row in rows:
                if set(row) != set(CSV_COLUMNS):
                    raise ValueError(f"a phenotype row needs exactly the CSV_COLUMNS. Received: "
                                     f"missing {sorted(set(CSV_COLUMNS) - set(row))}, unknown "
                                     f"{sorted(set(row) - set(CSV_COLUMNS))}")
                writer.writerow({key: _cell(value) for key, value in row.items()})
                count += 1
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return count


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a phenotype CSV as dicts of strings (empty for NaN)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _cell(value):
    if isinstance(value, float) and math.isnan(value):
        return ""
    return repr(value) if isinstance(value, float) else value
