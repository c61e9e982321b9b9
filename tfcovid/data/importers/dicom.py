"""DICOM CT series, unlabelled, in Hounsfield units.

``src`` is one series folder (one case), or a folder of series folders (one case each, in name
order). The case id is the series folder's name; ``patient_id`` is the DICOM ``PatientID``
(empty when absent); ``extra`` holds ``folder``, ``series_uid`` and ``study_uid``. Reading rules
(slice order, rescaling, padding to -1024 HU, mixed-series errors) are those of
``tfcovid.data.readers.dicom``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tfcovid.data.readers.dicom import read_dicom_series
from tfcovid.data.store import Case
from tfcovid.errors import DataError

DESCRIPTION = "a DICOM CT series folder, or a folder of series folders"


def _series_folders(src: Path) -> list[Path]:
    if not src.is_dir():
        raise DataError(f"{src}: expected a folder of DICOM files or of series folders")
    entries = [path for path in sorted(src.iterdir()) if not path.name.startswith(".")]
    if any(path.is_file() for path in entries):
        return [src]
    folders = [path for path in entries if path.is_dir()]
    if not folders:
        raise DataError(f"{src}: no DICOM files or series folders")
    return folders


def read(src: Path) -> Iterator[tuple[Case, str]]:
    """Yields one unlabelled HU case per DICOM series folder (module docstring).

    Args:
        src: a series folder, or a folder of series folders.

    Raises:
        DataError: ``src`` not a folder, no files, or a bad series.
    """
    src = Path(src).resolve()
    for folder in _series_folders(src):
        image, spacing, header = read_dicom_series(folder)
        case = Case(folder.name, image=image, spacing_mm=spacing, source=f"DICOM {folder.name}",
                    patient_id=header["patient_id"],
                    extra={"folder": folder.name, "series_uid": header["series_uid"],
                           "study_uid": header["study_uid"]})
        yield case, str(folder)
