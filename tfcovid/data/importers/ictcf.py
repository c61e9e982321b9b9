"""iCTCF-style CT slices with clinical severity: unlabelled 8-bit slices, one case per patient.

``src`` holds slice images ``<patient>_<k>.png`` (or ``.jpg``); the patient is the name before
the last "_" and ``k`` orders the slices. A CSV (``csv``, or the only ``*.csv`` in ``src``) gives
each patient's severity; its columns are found by header, case-insensitively ignoring spaces,
"_" and "-": the patient column is "Patient ID", "patient_id", "patient" or "id"; the severity
column starts with "morbidity" or is "severity" (or name them with ``id_column``,
``severity_column``).

Patients in file names and CSV are matched case-insensitively ignoring spaces, "_", "-" and a
leading "patient", so "Patient 1", "patient_1" and "1" are the same patient. Severity text
(case and surrounding spaces ignored) maps to the store's classes:

=====================================  ==========================
clinical label                          severity
=====================================  ==========================
Control, Regular, Mild                  0 mild/regular
Severe                                  1 severe
Critically ill                          2 critical
=====================================  ==========================

Each patient's slices are stacked in ``k`` order; slices of different sizes are padded with 0
at the bottom/right and their sizes kept in ``sizes``. Patients with slices but no CSV row are
skipped with a ``TfcovidWarning`` naming them (iCTCF's CT and clinical releases do not cover
the same patients); CSV rows without slices are ignored.
"""

from __future__ import annotations

import csv as csv_module
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tfcovid.data.readers.png import IMAGE_SUFFIXES, read_grey_image
from tfcovid.data.store import Case
from tfcovid.errors import DataError, TfcovidWarning

DESCRIPTION = "iCTCF-style slices <patient>_<k>.png plus a clinical CSV (severity per patient)"
SEVERITY = {"control": 0, "regular": 0, "mild": 0, "severe": 1, "critically ill": 2}
_ID_HEADERS = ("patientid", "patient", "id")
_SEVERITY_HEADERS = ("severity", "morbidity")
_SLICE_NAME = re.compile(r"(.+)_(\d+)")


def _header_key(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name).casefold()


def patient_key(name: str) -> str:
    """Matching key of a patient name: ``"Patient 1"``, ``"patient_1"`` and ``"1"`` give "1"."""
    key = _header_key(name)
    return key.removeprefix("patient") or key


def _find_column(fieldnames: list[str], given: str | None, path: Path, role: str,
                 match) -> str:
    if given is not None:
        if given not in fieldnames:
            raise DataError(f"{path}: no column {given!r}; columns: {fieldnames}")
        return given
    found = [name for name in fieldnames if match(_header_key(name))]
    if len(found) != 1:
        raise DataError(f"{path}: cannot tell the {role} column (candidates {found}); name it "
                        f"with --{role}-column")
    return found[0]


def read_clinical_csv(path: Path, id_column: str | None = None,
                      severity_column: str | None = None) -> dict[str, tuple[int, str]]:
    """Reads patient severities from a clinical CSV (module docstring).

    Args:
        path: CSV file with a header row.
        id_column: str or None. Header of the patient column. Defaults to detection.
        severity_column: str or None. Header of the severity column. Defaults to detection.

    Returns:
        dict from ``patient_key`` to ``(severity, clinical label text)``.

    Raises:
        DataError: unreadable CSV, missing or ambiguous columns, unknown severity text, or a
            patient listed twice with different severities.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv_module.DictReader(handle)
            fieldnames = list(reader.fieldnames or [])
            id_column = _find_column(fieldnames, id_column, path, "id",
                                     lambda key: key in _ID_HEADERS)
            severity_column = _find_column(fieldnames, severity_column, path, "severity",
                                           lambda key: key.startswith(_SEVERITY_HEADERS))
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv_module.Error) as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from None
    patients = {}
    for line, row in rows:
        patient = (row[id_column] or "").strip()
        text = " ".join((row[severity_column] or "").split())
        if not patient:
            continue
        if text.casefold() not in SEVERITY:
            raise DataError(f"{path}: line {line}: unknown severity {text!r} for patient "
                            f"{patient!r}; expected one of Control, Regular, Mild, Severe, "
                            f"Critically ill")
        value = (SEVERITY[text.casefold()], text)
        key = patient_key(patient)
        if patients.setdefault(key, value)[0] != value[0]:
            raise DataError(f"{path}: line {line}: patient {patient!r} listed again with "
                            f"another severity {text!r}")
    return patients


def _slices_by_patient(src: Path) -> dict[str, list[tuple[int, Path]]]:
    slices = defaultdict(list)
    for path in sorted(src.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        match = _SLICE_NAME.fullmatch(path.stem)
        if match is None:
            raise DataError(f"{path}: slice name is not <patient>_<number>")
        slices[match.group(1)].append((int(match.group(2)), path))
    if not slices:
        raise DataError(f"{src}: no slice images ({', '.join(IMAGE_SUFFIXES)})")
    return slices


def stack_slices(slices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Stacks 2-D slices, padding with 0 at the bottom/right when their sizes differ.

    Returns:
        ``(volume, sizes)``: array (slices, max height, max width) and int32 (slices, 2) true
        sizes, or None when all slices have one size.
    """
    sizes = np.array([image.shape for image in slices], np.int32)
    if (sizes == sizes[0]).all():
        return np.stack(slices), None
    volume = np.zeros((len(slices), *sizes.max(axis=0)), slices[0].dtype)
    for index, image in enumerate(slices):
        volume[index, :image.shape[0], :image.shape[1]] = image
    return volume, sizes


def _find_csv(src: Path) -> Path:
    found = sorted(src.glob("*.csv"))
    if len(found) != 1:
        raise DataError(f"{src}: {'no' if not found else 'several'} CSV files; name the "
                        f"clinical CSV with --csv")
    return found[0]


def read(src: Path, *, csv: str | Path | None = None, id_column: str | None = None,
         severity_column: str | None = None) -> Iterator[tuple[Case, str]]:
    """Yields one unlabelled case per patient with its severity (module docstring).

    Args:
        src: folder of slice images ``<patient>_<k>.png``.
        csv: clinical CSV file. Defaults to the only ``*.csv`` in ``src``.
        id_column: str or None. Header of the CSV's patient column. Defaults to detection.
        severity_column: str or None. Header of the severity column. Defaults to detection.

    Raises:
        DataError: no slices, a bad CSV or image, or no patient left after matching.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"{src}: expected a folder of slice images")
    csv_path = Path(csv) if csv is not None else _find_csv(src)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no such file")
    severities = read_clinical_csv(csv_path, id_column, severity_column)
    slices = _slices_by_patient(src)
    unlisted = sorted(patient for patient in slices if patient_key(patient) not in severities)
    if unlisted:
        warnings.warn(f"{csv_path}: no row for {len(unlisted)} patients with slices, skipped: "
                      f"{', '.join(unlisted[:5])}{', ...' if len(unlisted) > 5 else ''}",
                      TfcovidWarning, stacklevel=2)
    for patient, numbered in sorted(slices.items()):
        if patient in unlisted:
            continue
        numbered.sort()
        images = [read_grey_image(path) for _, path in numbered]
        image, sizes = stack_slices(images)
        severity, clinical_label = severities[patient_key(patient)]
        case = Case(patient, image=image, sizes=sizes, source=f"iCTCF {src.name}",
                    patient_id=patient, severity=severity, clinical_label=clinical_label,
                    extra={"files": ",".join(path.name for _, path in numbered)})
        yield case, str(numbered[0][1])
