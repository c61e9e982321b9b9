"""DICOM CT series read with pydicom into Hounsfield-unit volumes.

A series is a folder of single-frame CT image files: every ``*.dcm`` or ``*.dicom`` file, and
every other file that starts with the DICOM preamble (128 bytes, then "DICM"), whatever its
name; other files (notes, ``.npz`` copies) and hidden files are ignored.
The slices are sorted by ``ImagePositionPatient`` projected on the slice normal (the cross
product of the two ``ImageOrientationPatient`` directions), not by file name or
``InstanceNumber``. Stored values become HU through ``RescaleSlope`` and ``RescaleIntercept``.
Pixels equal to ``PixelPaddingValue`` and values below -1024 HU (such as the -2048 that marks
pixels outside the scanner's circular field of view) become -1024 HU, air.

The volume comes back as ``(slices, rows, columns)`` in the convention of
``tfcovid.data.readers.orientation`` (rows anterior -> posterior, columns patient right -> left,
slices inferior -> superior), which is how standard axial DICOM is already stored. Spacing is
the distance between sorted slice positions (their median when uneven) and ``PixelSpacing``.

A file that is not DICOM, not CT (``Modality`` other than "CT", or no ``Modality`` and a
storage class other than CT Image Storage), not greyscale, or from a different series, size or
orientation than the others raises ``DataError``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pydicom

from tfcovid.data.readers import checks, orientation
from tfcovid.errors import DataError, TfcovidWarning

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DICOM_SUFFIXES = (".dcm", ".dicom")
_ORIENTATION_TOLERANCE = 1e-4
_UNEVEN_SPACING_TOLERANCE = 0.01


def _looks_like_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def series_files(folder: str | os.PathLike) -> list[Path]:
    """The DICOM files of ``folder`` (module docstring), sorted by name.

    Raises:
        DataError: ``folder`` is missing or holds no DICOM file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    files = sorted(path for path in folder.iterdir() if path.is_file()
                   and not path.name.startswith(".") and _looks_like_dicom(path))
    if not files:
        raise DataError(f"{folder}: no DICOM files (*.dcm, or files starting with the DICOM "
                        f"preamble)")
    return files


def _read_header(path: Path) -> pydicom.Dataset:
    try:
        dataset = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as error:
        raise DataError(f"{path}: not a readable DICOM file ({error})") from None
    modality = dataset.get("Modality")
    if modality is not None and modality != "CT":
        raise DataError(f"{path}: not a CT (Modality {modality!r})")
    if modality is None and dataset.get("SOPClassUID") != CT_IMAGE_STORAGE:
        raise DataError(f"{path}: not a CT (no Modality; SOP class "
                        f"{dataset.get('SOPClassUID')!r} is not CT Image Storage)")
    missing = [keyword for keyword in ("ImagePositionPatient", "ImageOrientationPatient",
                                       "PixelSpacing", "PixelData") if keyword not in dataset]
    if missing:
        raise DataError(f"{path}: missing DICOM attributes {missing}")
    if dataset.get("PhotometricInterpretation") != "MONOCHROME2":
        raise DataError(f"{path}: PhotometricInterpretation "
                        f"{dataset.get('PhotometricInterpretation')!r}; expected a greyscale "
                        f"CT ('MONOCHROME2')")
    return dataset


def _require_same(datasets: list[tuple[Path, pydicom.Dataset]]) -> None:
    first_path, first = datasets[0]
    first_orientation = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
    for path, dataset in datasets[1:]:
        for keyword in ("SeriesInstanceUID", "Rows", "Columns"):
            if dataset.get(keyword) != first.get(keyword):
                raise DataError(f"{path}: mixed series, {keyword} {dataset.get(keyword)!r} "
                                f"differs from {first.get(keyword)!r} in {first_path.name}; "
                                f"put each series in its own folder")
        if not np.allclose(np.asarray(dataset.ImageOrientationPatient, dtype=np.float64),
                           first_orientation, atol=_ORIENTATION_TOLERANCE):
            raise DataError(f"{path}: mixed series, ImageOrientationPatient differs from "
                            f"{first_path.name}; put each series in its own folder")


def _slice_spacing(positions: np.ndarray, dataset: pydicom.Dataset, folder: Path) -> float:
    if positions.size == 1:
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            if dataset.get(keyword):
                return float(dataset.get(keyword))
        raise DataError(f"{folder}: one slice without SliceThickness; cannot tell its spacing")
    steps = np.diff(positions)
    if steps.min() <= _ORIENTATION_TOLERANCE:
        raise DataError(f"{folder}: two slices at the same position; is the series duplicated?")
    spacing = float(np.median(steps))
    if steps.max() - steps.min() > _UNEVEN_SPACING_TOLERANCE * spacing:
        warnings.warn(f"{folder}: uneven slice spacing {steps.min():g}..{steps.max():g} mm "
                      f"(missing slices?); using the median {spacing:g} mm", TfcovidWarning,
                      stacklevel=3)
    return spacing


def _hounsfield(dataset: pydicom.Dataset, path: Path) -> np.ndarray:
    try:
        stored = dataset.pixel_array
    except Exception as error:  # pydicom raises many types for undecodable pixel data
        raise DataError(f"{path}: cannot decode pixel data ({error})") from None
    if stored.ndim != 2:
        raise DataError(f"{path}: expected one 2-D frame, got pixel array shape {stored.shape}")
    slope = float(dataset.get("RescaleSlope", 1.0))
    intercept = float(dataset.get("RescaleIntercept", 0.0))
    hounsfield = stored.astype(np.float64) * slope + intercept
    padding = dataset.get("PixelPaddingValue")
    if padding is not None:
        hounsfield[stored == padding] = checks.AIR_HU
    return hounsfield


def read_dicom_series(folder: str | os.PathLike
                      ) -> tuple[np.ndarray, tuple[float, float, float], dict[str, str]]:
    """Reads one CT series folder as a Hounsfield-unit volume.

    Args:
        folder: folder holding the series' files and nothing else.

    Returns:
        ``(image, spacing_mm, header)``: int16 array (slices, rows, columns) in HU, the
        (slice, row, column) spacing in mm, and a dict with the series' ``patient_id``,
        ``series_uid`` and ``study_uid`` (empty strings when absent).

    Raises:
        DataError: no files, a file that is not a CT DICOM, mixed series, duplicate slice
            positions, or values impossible for CT.
    """
    folder = Path(folder)
    datasets = [(path, _read_header(path)) for path in series_files(folder)]
    _require_same(datasets)
    first = datasets[0][1]
    cosines = np.asarray(first.ImageOrientationPatient, dtype=np.float64).reshape(2, 3)
    normal = np.cross(cosines[0], cosines[1])
    positions = np.array([np.dot(normal, np.asarray(dataset.ImagePositionPatient, np.float64))
                          for _, dataset in datasets])
    order = np.argsort(positions, kind="stable")
    slice_spacing = _slice_spacing(positions[order], first, folder)
    hounsfield = np.stack([_hounsfield(datasets[index][1], datasets[index][0])
                           for index in order])
    row_spacing, column_spacing = (float(value) for value in first.PixelSpacing)
    # voxel (column, row, slice) -> world: DICOM directions are LPS, negate x and y for RAS.
    affine = np.eye(4)
    affine[:3, 0] = cosines[0] * column_spacing
    affine[:3, 1] = cosines[1] * row_spacing
    affine[:3, 2] = normal * slice_spacing
    affine[:2] *= -1
    image, spacing = orientation.to_radiological(
        hounsfield.transpose(2, 1, 0), affine, (column_spacing, row_spacing, slice_spacing))
    header = {"patient_id": str(first.get("PatientID", "")),
              "series_uid": str(first.get("SeriesInstanceUID", "")),
              "study_uid": str(first.get("StudyInstanceUID", ""))}
    return checks.to_hu_int16(image, folder), spacing, header
