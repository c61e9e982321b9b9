"""DICOM series reader: slice sorting, rescaling, padding, orientation, mixed series, real CT."""

import numpy as np
import pytest
from pydicom.uid import MRImageStorage, generate_uid

from tests.data.ct_files import hu_volume, write_ct_dicom
from tfcovid.data.readers.dicom import read_dicom_series
from tfcovid.errors import DataError, TfcovidWarning

POSITIONS_MM = {"a.dcm": 5.0, "b.dcm": -2.5, "c.dcm": 1.25, "d": 8.75}  # out of name order


def write_series(folder, volume, positions=POSITIONS_MM, series_uid=None, **attributes):
    """Writes ``volume`` (slices, rows, columns), slice k at the k-th smallest position."""
    folder.mkdir(exist_ok=True)
    series_uid = series_uid or generate_uid()
    for index, name in enumerate(sorted(positions, key=positions.get)):
        write_ct_dicom(folder / name, volume[index], positions[name], series_uid, **attributes)


def test_series_is_sorted_by_position_and_rescaled(tmp_path):
    volume = hu_volume((4, 6, 5))
    write_series(tmp_path / "series", volume)  # stored = (hu + 1024) / 2, slope 2
    (tmp_path / "series" / "notes.txt").write_text("not part of the series")
    image, spacing, header = read_dicom_series(tmp_path / "series")
    np.testing.assert_array_equal(image, volume)
    assert image.dtype == np.int16
    assert spacing == pytest.approx((3.75, 0.7, 0.8))  # positions -2.5, 1.25, 5, 8.75
    assert header["patient_id"] == "anonymous-7" and header["study_uid"] == "1.2.3.4"


def test_padding_value_and_values_below_air_become_air(tmp_path):
    volume = hu_volume((4, 6, 5))
    volume[:, 0, 0] = 928  # stored (928 + 3072) / 2 = 2000, the padding value, though not air
    volume[:, 5, 4] = -2048
    write_series(tmp_path / "series", volume, intercept=-3072.0, PixelPaddingValue=2000)
    image, _, _ = read_dicom_series(tmp_path / "series")
    expected = volume.copy()
    expected[:, 0, 0] = expected[:, 5, 4] = -1024
    np.testing.assert_array_equal(image, expected)


def test_row_direction_to_patient_right_is_flipped(tmp_path):
    volume = hu_volume((4, 6, 5))
    write_series(tmp_path / "series", volume, orientation=(-1, 0, 0, 0, 1, 0))
    image, _, _ = read_dicom_series(tmp_path / "series")
    # columns are stored running to the patient's right, so they are reversed; slices still
    # come out feet -> head although the normal (-1,0,0) x (0,1,0) = (0,0,-1) points feet-wards
    np.testing.assert_array_equal(image, volume[:, :, ::-1])


def test_uneven_spacing_warns_and_uses_the_median(tmp_path):
    positions = {"a.dcm": 0.0, "b.dcm": 2.5, "c.dcm": 5.0, "d.dcm": 10.0}
    write_series(tmp_path / "series", hu_volume((4, 6, 5)), positions)
    with pytest.warns(TfcovidWarning, match=r"uneven slice spacing 2\.5\.\.5 mm"):
        _, spacing, _ = read_dicom_series(tmp_path / "series")
    assert spacing[0] == 2.5


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match=r"empty: no DICOM files"):
        read_dicom_series(tmp_path.joinpath("empty").mkdir() or tmp_path / "empty")


def test_corrupt_file(tmp_path):
    write_series(tmp_path / "series", hu_volume((4, 6, 5)))
    (tmp_path / "series" / "c.dcm").write_bytes(b"garbage" * 30)
    with pytest.raises(DataError, match=r"c\.dcm: not a readable DICOM file"):
        read_dicom_series(tmp_path / "series")


def test_truncated_pixel_data(tmp_path):
    write_series(tmp_path / "series", hu_volume((4, 6, 5)))
    data = (tmp_path / "series" / "c.dcm").read_bytes()
    (tmp_path / "series" / "c.dcm").write_bytes(data[:-20])
    with pytest.raises(DataError, match=r"c\.dcm: cannot decode pixel data"):
        read_dicom_series(tmp_path / "series")


def test_mixed_series_uid(tmp_path):
    write_series(tmp_path / "series", hu_volume((4, 6, 5)))
    write_ct_dicom(tmp_path / "series" / "e.dcm", hu_volume((6, 5)), 12.5, generate_uid())
    with pytest.raises(DataError, match=r"e\.dcm: mixed series, SeriesInstanceUID"):
        read_dicom_series(tmp_path / "series")


def test_mixed_sizes(tmp_path):
    write_series(tmp_path / "series", hu_volume((4, 6, 5)), series_uid="1.2.3")
    write_ct_dicom(tmp_path / "series" / "e.dcm", hu_volume((6, 7)), 12.5, "1.2.3")
    with pytest.raises(DataError, match=r"e\.dcm: mixed series, Columns 7 differs from 5"):
        read_dicom_series(tmp_path / "series")


def test_mixed_orientation(tmp_path):
    write_series(tmp_path / "series", hu_volume((4, 6, 5)), series_uid="1.2.3")
    write_ct_dicom(tmp_path / "series" / "e.dcm", hu_volume((6, 5)), 12.5, "1.2.3",
                   orientation=(1, 0, 0, 0, 0, -1))
    with pytest.raises(DataError, match=r"e\.dcm: mixed series, ImageOrientationPatient"):
        read_dicom_series(tmp_path / "series")


def test_duplicate_positions(tmp_path):
    write_series(tmp_path / "series", hu_volume((2, 6, 5)), {"a.dcm": 1.0, "b.dcm": 1.0})
    with pytest.raises(DataError, match=r"series: two slices at the same position"):
        read_dicom_series(tmp_path / "series")


def test_modality_other_than_ct(tmp_path):
    write_series(tmp_path / "series", hu_volume((4, 6, 5)), Modality="MR",
                 SOPClassUID=MRImageStorage)
    with pytest.raises(DataError, match=r"a\.dcm: not a CT \(Modality 'MR'\)"):
        read_dicom_series(tmp_path / "series")


def test_raw_values_without_rescale_are_not_hounsfield_units(tmp_path):
    # stored values hu + 1024 (0..2524) but the header forgets the -1024 intercept
    write_series(tmp_path / "series", hu_volume((4, 6, 5)), slope=1.0, RescaleIntercept=0)
    with pytest.raises(DataError, match=r"series: not a CT in Hounsfield units"):
        read_dicom_series(tmp_path / "series")


def test_real_two_slice_series(real_data_dir):
    folder = real_data_dir / "chest-CT-slice-lungmask"
    image, spacing, _ = read_dicom_series(folder)
    assert image.shape == (2, 512, 512) and image.dtype == np.int16
    assert image.min() == -1024
    assert spacing == pytest.approx((1.0, 0.625, 0.625))
    reference = np.load(folder / "chest_ct_slice_hu.npz")["hu"]
    inside = reference != -2048  # outside the circular field of view
    for index in range(2):  # both files hold the same pixels
        np.testing.assert_array_equal(image[index][inside], np.maximum(reference[inside], -1024))
        assert (image[index][~inside] == -1024).all()
