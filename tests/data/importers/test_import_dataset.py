"""The importer registry and ``import_dataset``: kinds, options, missing sources, atomicity."""

import numpy as np
import pytest

from tfcovid.data import importers
from tfcovid.data.importers import IMPORTERS, Importer, import_dataset
from tfcovid.data.store import Case
from tfcovid.errors import DataError


def test_registry_names_and_intensities():
    assert {name: importer.intensity for name, importer in IMPORTERS.items()} == {
        "dicom": "hu", "ictcf": "windowed8", "medseg": "hu", "nifti": "hu",
        "semiseg": "windowed8"}
    assert IMPORTERS["nifti"].options() == ["mask", "label_map"]


def test_unknown_kind_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError, match=r"unknown data set kind 'medsg'; known: dicom, ictcf, "
                                        r"medseg, nifti, semiseg"):
        import_dataset("medsg", tmp_path, tmp_path / "out.h5")


def test_unknown_option(tmp_path):
    with pytest.raises(TypeError, match=r"importer 'dicom' takes options \[\]. Received: "
                                        r"\['mask'\]"):
        import_dataset("dicom", tmp_path, tmp_path / "out.h5", mask="mask.nii.gz")


def test_missing_source(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: no such file or folder"):
        import_dataset("nifti", tmp_path / "nowhere", tmp_path / "out.h5")


def test_failure_after_some_cases_leaves_no_file(tmp_path, monkeypatch):
    def read(src):
        yield Case("good", image=np.full((1, 4, 5), -1000, np.int16)), "good.nii"
        raise DataError("bad.nii: corrupt")

    monkeypatch.setitem(importers.IMPORTERS, "nifti", Importer("nifti", "hu", read, "test"))
    with pytest.raises(DataError, match=r"bad\.nii: corrupt"):
        import_dataset("nifti", tmp_path, tmp_path / "out.h5", progress=False)
    assert list(tmp_path.iterdir()) == []
