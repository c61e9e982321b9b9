"""NIfTI importer: image + mask files or folders, label mapping, mismatches."""

import numpy as np
import pytest

from tests.data.ct_files import LPS_AFFINE, RAS_AFFINE, hu_volume, write_nifti
from tfcovid.data.importers import import_dataset
from tfcovid.data.store import CaseStore
from tfcovid.errors import DataError


def write_pair(folder, name="scan", mask_values=(0, 1, 2), shape=(7, 6, 3)):
    folder.mkdir(parents=True, exist_ok=True)
    image = hu_volume(shape, seed=4)
    mask = np.random.default_rng(4).choice(mask_values, size=shape).astype(np.uint8)
    write_nifti(folder / f"{name}.nii.gz", image, RAS_AFFINE)
    (folder / "masks").mkdir(exist_ok=True)
    write_nifti(folder / "masks" / f"{name}.nii.gz", mask, RAS_AFFINE)
    return image, mask


def test_file_and_mask_round_trip(tmp_path):
    image, mask = write_pair(tmp_path)
    import_dataset("nifti", tmp_path / "scan.nii.gz", tmp_path / "out.h5", progress=False,
                   mask=tmp_path / "masks" / "scan.nii.gz")
    with CaseStore(tmp_path / "out.h5") as store:
        case = store.read("scan")
    # RAS affine: x (to the right) and y (anterior) reversed, then (z, y, x)
    np.testing.assert_array_equal(case.image, image[::-1, ::-1].transpose(2, 1, 0))
    np.testing.assert_array_equal(case.label, mask[::-1, ::-1].transpose(2, 1, 0))
    assert case.spacing_mm == pytest.approx((2.5, 0.7, 0.8))
    assert case.extra == {"file": "scan.nii.gz", "mask_file": "scan.nii.gz"}


def test_mask_in_another_orientation_is_aligned_by_its_affine(tmp_path):
    image, mask = write_pair(tmp_path)
    write_nifti(tmp_path / "masks" / "scan.nii.gz", mask[::-1, ::-1], LPS_AFFINE)
    import_dataset("nifti", tmp_path / "scan.nii.gz", tmp_path / "out.h5", progress=False,
                   mask=tmp_path / "masks" / "scan.nii.gz")
    with CaseStore(tmp_path / "out.h5") as store:
        np.testing.assert_array_equal(store.read("scan").label,
                                      mask[::-1, ::-1].transpose(2, 1, 0))


def test_folder_of_pairs_with_label_map(tmp_path):
    _, mask_a = write_pair(tmp_path / "data", "a", mask_values=(0, 1, 3))
    write_pair(tmp_path / "data", "b", mask_values=(0, 2))
    summary = import_dataset("nifti", tmp_path / "data", tmp_path / "out.h5", progress=False,
                             mask=tmp_path / "data" / "masks", label_map={3: 0})
    assert summary["cases"] == 2
    with CaseStore(tmp_path / "out.h5") as store:
        labels = store.read("a").label
    np.testing.assert_array_equal(labels, np.where(mask_a == 3, 0, mask_a)[::-1, ::-1].T)


def test_unlabelled_without_mask(tmp_path):
    write_pair(tmp_path)
    summary = import_dataset("nifti", tmp_path / "scan.nii.gz", tmp_path / "out.h5",
                             progress=False)
    assert (summary["cases"], summary["labelled_cases"]) == (1, 0)


def test_unknown_label_values(tmp_path):
    write_pair(tmp_path, mask_values=(0, 1, 5))
    with pytest.raises(DataError, match=r"scan\.nii\.gz: unknown label values \[5\]"):
        import_dataset("nifti", tmp_path / "scan.nii.gz", tmp_path / "out.h5", progress=False,
                       mask=tmp_path / "masks" / "scan.nii.gz")


def test_shape_mismatch(tmp_path):
    write_pair(tmp_path)
    write_nifti(tmp_path / "masks" / "scan.nii.gz", np.zeros((7, 6, 4), np.uint8))
    with pytest.raises(DataError, match=r"masks/scan\.nii\.gz: shape \(4, 6, 7\) does not "
                                        r"match image scan\.nii\.gz shape \(3, 6, 7\)"):
        import_dataset("nifti", tmp_path / "scan.nii.gz", tmp_path / "out.h5", progress=False,
                       mask=tmp_path / "masks" / "scan.nii.gz")


def test_missing_mask_in_folder(tmp_path):
    write_pair(tmp_path / "data", "a")
    write_nifti(tmp_path / "data" / "b.nii.gz", hu_volume((7, 6, 3)))
    with pytest.raises(DataError, match=r"masks: no mask for b\.nii\.gz"):
        import_dataset("nifti", tmp_path / "data", tmp_path / "out.h5", progress=False,
                       mask=tmp_path / "data" / "masks")
