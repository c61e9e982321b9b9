"""The HDF5 case store: round trips, validation, atomic writes, summaries."""

import os

import h5py
import numpy as np
import pytest

from tfcovid.data.store import Case, CaseStore, StoreWriter, validate_case, write_store
from tfcovid.errors import DataError


def make_case(case_id="case0", slices=2, height=5, width=7, labelled=True, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(-1024, 400, size=(slices, height, width)).astype(np.int16)
    label = rng.integers(0, 3, size=image.shape).astype(np.uint8) if labelled else None
    lung = rng.integers(0, 2, size=image.shape).astype(np.uint8)
    return Case(case_id, image=image, label=label, lung=lung, spacing_mm=(2.5, 0.7, 0.7),
                source="unit test", patient_id=f"patient-{case_id}", severity=seed % 3,
                clinical_label="Severe", extra={"file": f"{case_id}.nii.gz"})


def test_round_trip_keeps_arrays_and_attributes(tmp_path):
    path = tmp_path / "store.h5"
    cases = [make_case("a", seed=1), make_case("b", slices=3, labelled=False, seed=2)]
    assert write_store(path, cases, intensity="hu", name="tiny") == 2
    with CaseStore(path) as store:
        assert store.intensity == "hu" and store.name == "tiny"
        assert store.case_ids == ["a", "b"]
        for written in cases:
            read = store.read(written.case_id)
            np.testing.assert_array_equal(read.image, written.image)
            assert read.image.dtype == np.int16
            np.testing.assert_array_equal(read.lung, written.lung)
            if written.label is None:
                assert read.label is None and not read.labelled
            else:
                np.testing.assert_array_equal(read.label, written.label)
            assert read.spacing_mm == (2.5, 0.7, 0.7)
            assert (read.patient_id, read.severity, read.clinical_label, read.extra) == (
                written.patient_id, written.severity, "Severe", written.extra)


def test_variable_slice_sizes_crop_to_true_size(tmp_path):
    image = np.zeros((2, 6, 8), np.uint8)
    image[0, :6, :8] = 200
    image[1, :4, :5] = 100  # second slice is 4 x 5, padded at the bottom/right
    case = Case("mixed", image=image, label=(image > 0).astype(np.uint8),
                sizes=np.array([[6, 8], [4, 5]]))
    write_store(tmp_path / "w8.h5", [case], intensity="windowed8")
    with CaseStore(tmp_path / "w8.h5") as store:
        read = store.read("mixed")
        second = read.slice_arrays(1)
        assert second["image"].shape == (4, 5) and (second["image"] == 100).all()
        assert second["label"].shape == (4, 5)
        # label pixels are counted over true sizes only: 48 + 20 = 68 of class 1
        assert store.summary()["label_pixels"]["ground-glass opacity"] == 68


def test_summary_counts_classes_and_severity(tmp_path):
    label = np.zeros((2, 4, 4), np.uint8)
    label[0, 0, :3] = 1   # 3 GGO pixels on slice 0
    label[1, 1, :2] = 2   # 2 consolidation pixels on slice 1
    cases = [Case("x", image=np.zeros((2, 4, 4), np.int16), label=label, severity=2),
             Case("y", image=np.zeros((1, 4, 4), np.int16), severity=0),
             Case("z", image=np.zeros((1, 4, 4), np.int16))]
    write_store(tmp_path / "s.h5", cases, intensity="hu")
    with CaseStore(tmp_path / "s.h5") as store:
        summary = store.summary()
    assert summary["cases"] == 3 and summary["slices"] == 4
    assert summary["labelled_cases"] == 1 and summary["unlabelled_cases"] == 2
    assert summary["label_pixels"] == {"background": 32 - 5, "ground-glass opacity": 3,
                                       "consolidation": 2}
    assert summary["slices_with_class"] == {"background": 2, "ground-glass opacity": 1,
                                            "consolidation": 1}
    assert summary["severity_cases"] == {"mild": 1, "severe": 0, "critical": 1, "unknown": 1}


@pytest.mark.parametrize("change, message", [
    (dict(image=np.zeros((4, 5), np.int16)), r"expected a 3-D"),
    (dict(image=np.zeros((2, 5, 7), np.float32)), r"holds int16 images, got float32"),
    (dict(label=np.zeros((2, 5, 6), np.uint8)), r"label shape \(2, 5, 6\) does not match"),
    (dict(label=np.full((2, 5, 7), 3, np.uint8)), r"unknown label values \[3\]"),
    (dict(lung=np.full((2, 5, 7), 2, np.uint8)), r"unknown lung values \[2\]"),
    (dict(severity=3), r"severity must be 0, 1 or 2"),
    (dict(spacing_mm=(1.0, float("nan"), 1.0)), r"spacing_mm must be three positive"),
    (dict(case_id="a/b"), r"must be non-empty and contain no '/'"),
])
def test_invalid_cases_name_the_origin_and_problem(change, message):
    case = make_case()
    for key, value in change.items():
        setattr(case, key, value)
    with pytest.raises(DataError, match=r"^scan\.nii\.gz: .*" + message):
        validate_case(case, "hu", origin="scan.nii.gz")


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.h5"
    bad = make_case("bad")
    bad.label = np.full(bad.image.shape, 7, np.uint8)
    with pytest.raises(DataError, match="unknown label values"):
        write_store(path, [make_case("good"), bad], intensity="hu")
    assert os.listdir(tmp_path) == []


def test_existing_store_is_not_overwritten_without_permission(tmp_path):
    path = tmp_path / "out.h5"
    write_store(path, [make_case("first")], intensity="hu")
    with pytest.raises(DataError, match=r"out\.h5: already exists; pass --overwrite"):
        write_store(path, [make_case("second")], intensity="hu")
    with CaseStore(path) as store:
        assert store.case_ids == ["first"]
    write_store(path, [make_case("second")], intensity="hu", overwrite=True)
    with CaseStore(path) as store:
        assert store.case_ids == ["second"]


def test_duplicate_ids_and_empty_stores_are_rejected(tmp_path):
    with pytest.raises(DataError, match="duplicate case id 'a'"):
        write_store(tmp_path / "d.h5", [make_case("a"), make_case("a")], intensity="hu")
    with pytest.raises(DataError, match="no cases to write"):
        write_store(tmp_path / "e.h5", [], intensity="hu")
    assert os.listdir(tmp_path) == []


def test_reader_rejects_missing_foreign_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.h5: no such store file"):
        CaseStore(tmp_path / "nothing.h5")
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match=r"garbage\.h5: not a readable HDF5 file"):
        CaseStore(tmp_path / "garbage.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(DataError, match=r"foreign\.h5: not a tfcovid store"):
        CaseStore(tmp_path / "foreign.h5")


def test_unknown_intensity_is_api_misuse(tmp_path):
    with pytest.raises(ValueError, match="intensity='float'"):
        StoreWriter(tmp_path / "x.h5", intensity="float")
