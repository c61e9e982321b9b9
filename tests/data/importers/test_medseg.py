"""MedSeg importer: tiny tr_im/tr_mask/val_im and rp_* NIfTI files round-trip into a store."""

import numpy as np
import pytest

from tests.data.ct_files import hu_volume, write_nifti
from tfcovid.data.importers import import_dataset
from tfcovid.data.store import CaseStore
from tfcovid.errors import DataError

# rp volumes run head -> feet along z, so the importer reverses them; tr slices keep their order
RP_AFFINE = np.diag([0.8, 0.7, -5.0, 1.0])


def radiological(volume):
    """Hand-derived view of an (x, y, z) array under the RAS affine: x and y reversed, (z, y, x)."""
    return volume[::-1, ::-1, :].transpose(2, 1, 0)


def rp_view(volume):
    """The same under RP_AFFINE, whose z runs feet-wards: x, y and z reversed."""
    return volume[::-1, ::-1, ::-1].transpose(2, 1, 0)


def make_medseg(folder, train_mask=None):
    """Writes a MedSeg folder: 3 tr slices of 9 x 8, 2 val slices, one 7 x 6 x 4 rp volume."""
    rng = np.random.default_rng(1)
    files = {"tr_im": hu_volume((9, 8, 3), seed=1),
             "tr_mask": rng.integers(0, 4, size=(9, 8, 3)).astype(np.uint8),
             "val_im": hu_volume((9, 8, 2), seed=2)}
    if train_mask is not None:
        files["tr_mask"] = train_mask
    for name, data in files.items():
        write_nifti(folder / f"{name}.nii.gz", data)
    rp = {"rp_im": hu_volume((7, 6, 4), seed=3),
          "rp_msk": rng.integers(0, 4, size=(7, 6, 4)).astype(np.uint8),
          "rp_lung_msk": rng.integers(0, 3, size=(7, 6, 4)).astype(np.uint8)}  # 1, 2: two lungs
    for name, data in rp.items():
        (folder / name).mkdir()
        write_nifti(folder / name / "1.nii.gz", data, RP_AFFINE)
    return {**files, **rp}


def test_slices_and_volumes_round_trip(tmp_path):
    (tmp_path / "medseg").mkdir()
    written = make_medseg(tmp_path / "medseg")
    summary = import_dataset("medseg", tmp_path / "medseg", tmp_path / "medseg.h5",
                             progress=False)
    train_labels = written["tr_mask"].copy()
    train_labels[train_labels == 3] = 0  # pleural effusion is background by default
    with CaseStore(tmp_path / "medseg.h5") as store:
        assert store.intensity == "hu"
        assert store.case_ids == ["rp_1", "tr_000", "tr_001", "tr_002", "val_000", "val_001"]
        for index in range(3):
            case = store.read(f"tr_{index:03d}")
            np.testing.assert_array_equal(case.image, radiological(written["tr_im"])[[index]])
            np.testing.assert_array_equal(case.label, radiological(train_labels)[[index]])
            assert case.spacing_mm == pytest.approx((2.5, 0.7, 0.8))
            assert case.patient_id == "" and case.extra["nifti_slice"] == str(index)
        assert not store.read("val_001").labelled
        np.testing.assert_array_equal(store.read("val_001").image,
                                      radiological(written["val_im"])[[1]])
        volume = store.read("rp_1")
        np.testing.assert_array_equal(volume.image, rp_view(written["rp_im"]))
        rp_labels = written["rp_msk"].copy()
        rp_labels[rp_labels == 3] = 0
        np.testing.assert_array_equal(volume.label, rp_view(rp_labels))
        np.testing.assert_array_equal(volume.lung, rp_view(written["rp_lung_msk"] > 0))
        assert volume.spacing_mm == pytest.approx((5.0, 0.7, 0.8))
        assert volume.patient_id == "rp_1" and volume.extra["split"] == "rp"
    counted = np.bincount(np.concatenate([train_labels.ravel(), rp_labels.ravel()]),
                          minlength=3)
    assert list(summary["label_pixels"].values()) == counted.tolist()
    assert (summary["cases"], summary["labelled_cases"]) == (6, 4)


def test_effusion_label_moves_label_three(tmp_path):
    (tmp_path / "medseg").mkdir()
    written = make_medseg(tmp_path / "medseg")
    import_dataset("medseg", tmp_path / "medseg", tmp_path / "medseg.h5", progress=False,
                   effusion_label=2)
    with CaseStore(tmp_path / "medseg.h5") as store:
        labels = store.read("tr_001").label[0]
    expected = radiological(written["tr_mask"])[1]
    np.testing.assert_array_equal(labels, np.where(expected == 3, 2, expected))


def test_unknown_mask_value_names_the_mask(tmp_path):
    (tmp_path / "medseg").mkdir()
    mask = np.zeros((9, 8, 3), np.uint8)
    mask[4, 4, 1] = 4
    make_medseg(tmp_path / "medseg", train_mask=mask)
    with pytest.raises(DataError, match=r"tr_mask\.nii\.gz: unknown label values \[4\]"):
        import_dataset("medseg", tmp_path / "medseg", tmp_path / "medseg.h5", progress=False)
    assert list(tmp_path.glob("*.h5*")) == []


def test_mask_shape_mismatch(tmp_path):
    (tmp_path / "medseg").mkdir()
    make_medseg(tmp_path / "medseg", train_mask=np.zeros((9, 8, 4), np.uint8))
    with pytest.raises(DataError, match=r"tr_mask\.nii\.gz: shape \(4, 8, 9\) does not match "
                                        r"image tr_im\.nii\.gz shape \(3, 8, 9\)"):
        import_dataset("medseg", tmp_path / "medseg", tmp_path / "medseg.h5", progress=False)


def test_missing_rp_mask(tmp_path):
    (tmp_path / "medseg").mkdir()
    make_medseg(tmp_path / "medseg")
    (tmp_path / "medseg" / "rp_msk" / "1.nii.gz").unlink()
    with pytest.raises(DataError, match=r"1\.nii\.gz: no infection mask rp_msk/1\.nii\.gz"):
        import_dataset("medseg", tmp_path / "medseg", tmp_path / "medseg.h5", progress=False)


def test_folder_without_medseg_files(tmp_path):
    with pytest.raises(DataError, match=r"no MedSeg files"):
        import_dataset("medseg", tmp_path, tmp_path / "medseg.h5", progress=False)


def test_effusion_label_out_of_range(tmp_path):
    with pytest.raises(ValueError, match=r"Received: effusion_label=3"):
        import_dataset("medseg", tmp_path, tmp_path / "medseg.h5", effusion_label=3)
