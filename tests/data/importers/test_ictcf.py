"""iCTCF importer: slices grouped per patient, CSV severity mapping, unmatched patients."""

import numpy as np
import pytest
from PIL import Image

from tests.data.ct_files import pillow_pixels, write_grey
from tfcovid.data.importers import import_dataset, ictcf
from tfcovid.data.store import CaseStore
from tfcovid.errors import DataError, TfcovidWarning

CSV = """Patient ID,Age,Morbidity outcome,Mortality outcome
Patient 1,71,Critically ill ,Deceased
patient_2,40, mild,Cured
Patient 4,55,Severe,Cured
"""


def make_ictcf(folder, csv_text=CSV):
    """Patient 1: slices 9 and 10 of different sizes; Patient 2: one slice; both PNG."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    slices = {"Patient 1_10.png": rng.integers(0, 256, (30, 34)),
              "Patient 1_9.png": rng.integers(0, 256, (32, 31)),
              "Patient 2_1.jpg": rng.integers(0, 256, (30, 30))}
    for name, pixels in slices.items():
        write_grey(folder / name, pixels)
    (folder / "clinical.csv").write_text(csv_text)
    return slices


def test_patients_become_cases_with_severity(tmp_path):
    slices = make_ictcf(tmp_path / "ictcf")
    summary = import_dataset("ictcf", tmp_path / "ictcf", tmp_path / "out.h5", progress=False)
    with CaseStore(tmp_path / "out.h5") as store:
        assert store.intensity == "windowed8" and store.case_ids == ["Patient 1", "Patient 2"]
        first = store.read("Patient 1")
        second = store.read("Patient 2")
    assert (first.severity, first.clinical_label) == (2, "Critically ill")
    assert (second.severity, second.clinical_label) == (0, "mild")
    # slice 9 before slice 10, padded at the bottom/right to (32, 34)
    assert first.image.shape == (2, 32, 34)
    np.testing.assert_array_equal(first.sizes, [[32, 31], [30, 34]])
    np.testing.assert_array_equal(first.slice_arrays(0)["image"], slices["Patient 1_9.png"])
    np.testing.assert_array_equal(first.slice_arrays(1)["image"], slices["Patient 1_10.png"])
    assert (first.image[0, :, 31:] == 0).all() and (first.image[1, 30:] == 0).all()
    np.testing.assert_array_equal(second.image[0],
                                  pillow_pixels(tmp_path / "ictcf" / "Patient 2_1.jpg"))
    assert second.sizes is None and not second.labelled
    assert summary["severity_cases"] == {"mild": 1, "severe": 0, "critical": 1, "unknown": 0}


def test_patient_without_csv_row_is_skipped_with_a_warning(tmp_path):
    make_ictcf(tmp_path / "ictcf")
    write_grey(tmp_path / "ictcf" / "Patient 3_1.png", np.zeros((30, 30)))
    with pytest.warns(TfcovidWarning, match=r"clinical\.csv: no row for 1 patients .*Patient 3"):
        summary = import_dataset("ictcf", tmp_path / "ictcf", tmp_path / "out.h5",
                                 progress=False)
    assert summary["cases"] == 2


def test_unknown_severity_names_csv_line_and_value(tmp_path):
    make_ictcf(tmp_path / "ictcf", CSV.replace(" mild", "Moderate"))
    with pytest.raises(DataError, match=r"clinical\.csv: line 3: unknown severity 'Moderate'"):
        import_dataset("ictcf", tmp_path / "ictcf", tmp_path / "out.h5", progress=False)


def test_named_columns(tmp_path):
    make_ictcf(tmp_path / "ictcf", "case,grade\nPatient 1,Severe\nPatient 2,Control\n")
    with pytest.raises(DataError, match=r"clinical\.csv: cannot tell the id column"):
        import_dataset("ictcf", tmp_path / "ictcf", tmp_path / "out.h5", progress=False)
    summary = import_dataset("ictcf", tmp_path / "ictcf", tmp_path / "out.h5", progress=False,
                             id_column="case", severity_column="grade")
    assert summary["severity_cases"] == {"mild": 1, "severe": 1, "critical": 0, "unknown": 0}


def test_colour_photo_is_refused(tmp_path):
    make_ictcf(tmp_path / "ictcf")
    photo = np.zeros((30, 30, 3), np.uint8)
    photo[..., 2] = 255
    Image.fromarray(photo).save(tmp_path / "ictcf" / "Patient 2_1.jpg")
    with pytest.raises(DataError, match=r"Patient 2_1\.jpg: colour image"):
        import_dataset("ictcf", tmp_path / "ictcf", tmp_path / "out.h5", progress=False)


@pytest.mark.parametrize("name, key", [("Patient 12", "12"), ("patient_12", "12"), ("12", "12"),
                                       ("P-7", "p7")])
def test_patient_key(name, key):
    assert ictcf.patient_key(name) == key
