"""NIfTI reader: orientation, spacing, HU conversion and every bad-input message."""

import nibabel
import numpy as np
import pytest

from tests.data.ct_files import LPS_AFFINE, RAS_AFFINE, hu_volume, write_nifti
from tfcovid.data.readers.nifti import nifti_stem, read_nifti_hu, read_nifti_labels
from tfcovid.errors import DataError


def test_ras_volume_reads_as_radiological_slices(tmp_path):
    volume = hu_volume((6, 5, 3))  # (x, y, z)
    write_nifti(tmp_path / "scan.nii.gz", volume, RAS_AFFINE)
    image, spacing = read_nifti_hu(tmp_path / "scan.nii.gz")
    # x runs to the patient's right and y anteriorly: both reversed, then (z, y, x)
    np.testing.assert_array_equal(image, volume[::-1, ::-1, :].transpose(2, 1, 0))
    assert image.dtype == np.int16
    assert spacing == pytest.approx((2.5, 0.7, 0.8))


def test_lps_float_volume_with_scaling_and_padding(tmp_path):
    volume = hu_volume((6, 5, 3)).astype(np.float32)
    volume[0, 0, :] = -3024  # out-of-field-of-view padding becomes air
    write_nifti(tmp_path / "scan.nii", volume, LPS_AFFINE)
    image, _ = read_nifti_hu(tmp_path / "scan.nii")
    np.testing.assert_array_equal(image, np.maximum(volume, -1024).transpose(2, 1, 0))


def test_scaled_integer_volume_applies_slope_and_intercept(tmp_path):
    stored = (hu_volume((4, 5, 2)) + 1024) // 2
    nifti = nibabel.Nifti1Image(stored.astype(np.int16), LPS_AFFINE)
    nifti.header.set_slope_inter(2.0, -1024.0)
    nibabel.save(nifti, tmp_path / "scan.nii.gz")
    image, _ = read_nifti_hu(tmp_path / "scan.nii.gz")
    np.testing.assert_array_equal(image, (stored * 2 - 1024).transpose(2, 1, 0))


def test_labels_are_mapped_and_oriented(tmp_path):
    mask = np.zeros((6, 5, 3), np.uint8)
    mask[1, 2, 0], mask[3, 4, 1], mask[5, 0, 2] = 1, 2, 3
    write_nifti(tmp_path / "mask.nii.gz", mask, RAS_AFFINE)
    labels, _ = read_nifti_labels(tmp_path / "mask.nii.gz", mapping={3: 2})
    expected = mask[::-1, ::-1, :].transpose(2, 1, 0).copy()
    expected[expected == 3] = 2
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.uint8


def test_nifti_stem():
    assert [nifti_stem(name) for name in ("rp_im/3.nii.gz", "a.b.nii", "x.txt")] == [
        "3", "a.b", "x.txt"]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"scan\.nii\.gz: no such file"):
        read_nifti_hu(tmp_path / "scan.nii.gz")


def test_corrupt_file(tmp_path):
    (tmp_path / "scan.nii.gz").write_bytes(b"this is not a NIfTI file" * 20)
    with pytest.raises(DataError, match=r"scan\.nii\.gz: not a readable NIfTI file"):
        read_nifti_hu(tmp_path / "scan.nii.gz")


def test_truncated_file(tmp_path):
    write_nifti(tmp_path / "scan.nii", hu_volume((16, 16, 4)))
    data = (tmp_path / "scan.nii").read_bytes()
    (tmp_path / "scan.nii").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"scan\.nii: not a readable NIfTI file"):
        read_nifti_hu(tmp_path / "scan.nii")


def test_two_dimensional_image(tmp_path):
    write_nifti(tmp_path / "scan.nii.gz", hu_volume((6, 5)))
    with pytest.raises(DataError, match=r"scan\.nii\.gz: expected 3-D .* shape \(6, 5\)"):
        read_nifti_hu(tmp_path / "scan.nii.gz")


def test_nan_values(tmp_path):
    volume = hu_volume((6, 5, 3)).astype(np.float32)
    volume[2, 2, 1] = np.nan
    write_nifti(tmp_path / "scan.nii.gz", volume)
    with pytest.raises(DataError, match=r"scan\.nii\.gz: 1 NaN or infinite values"):
        read_nifti_hu(tmp_path / "scan.nii.gz")


@pytest.mark.parametrize("values", [np.arange(90) % 256, np.full(90, -200)],
                         ids=["8-bit picture", "no air"])
def test_not_a_ct_in_hounsfield_units(tmp_path, values):
    write_nifti(tmp_path / "scan.nii.gz", values.reshape(6, 5, 3).astype(np.int16))
    with pytest.raises(DataError, match=r"scan\.nii\.gz: not a CT in Hounsfield units"):
        read_nifti_hu(tmp_path / "scan.nii.gz")


def test_unknown_label_values(tmp_path):
    mask = np.zeros((6, 5, 3), np.uint8)
    mask[0, 0, 0], mask[1, 1, 1] = 3, 7
    write_nifti(tmp_path / "mask.nii.gz", mask)
    with pytest.raises(DataError, match=r"mask\.nii\.gz: unknown label values \[3, 7\]"):
        read_nifti_labels(tmp_path / "mask.nii.gz")
    with pytest.raises(DataError, match=r"mask\.nii\.gz: unknown label values \[7\]"):
        read_nifti_labels(tmp_path / "mask.nii.gz", mapping={3: 0})


def test_fractional_label_values(tmp_path):
    write_nifti(tmp_path / "mask.nii.gz", np.full((6, 5, 3), 0.5, np.float32))
    with pytest.raises(DataError, match=r"mask\.nii\.gz: mask values are not integers"):
        read_nifti_labels(tmp_path / "mask.nii.gz")
