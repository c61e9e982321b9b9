"""PNG/JPEG reader: grey slices, palette and grey class masks, binary masks, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from tests.data.ct_files import pillow_pixels, write_grey, write_palette_mask
from tfcovid.data.readers.png import read_grey_image, read_label_image
from tfcovid.errors import DataError


def smooth_slice(height=37, width=45):
    rows, columns = np.mgrid[:height, :width]
    return (128 + 100 * np.sin(rows / 6.0) * np.cos(columns / 9.0)).astype(np.uint8)


def test_png_slice_round_trips_exactly(tmp_path):
    write_grey(tmp_path / "0.png", smooth_slice())
    np.testing.assert_array_equal(read_grey_image(tmp_path / "0.png"), smooth_slice())


def test_jpeg_slice_gives_pillows_pixels(tmp_path):
    write_grey(tmp_path / "0.jpg", smooth_slice(), quality=90)
    image = read_grey_image(tmp_path / "0.jpg")
    assert image.shape == (37, 45) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, pillow_pixels(tmp_path / "0.jpg"))
    assert np.abs(image.astype(int) - smooth_slice()).max() <= 8  # lossy, but close


def test_grey_picture_saved_as_colour_jpeg_is_accepted(tmp_path):
    Image.fromarray(np.repeat(smooth_slice()[..., None], 3, axis=2)).save(tmp_path / "0.jpg")
    image = read_grey_image(tmp_path / "0.jpg")
    assert np.abs(image.astype(int) - smooth_slice()).max() <= 8


def test_colour_photo_is_not_a_ct_slice(tmp_path):
    photo = np.zeros((20, 30, 3), np.uint8)
    photo[..., 0] = 200  # red
    Image.fromarray(photo).save(tmp_path / "photo.png")
    with pytest.raises(DataError, match=r"photo\.png: colour image .* not a greyscale CT"):
        read_grey_image(tmp_path / "photo.png")


def test_sixteen_bit_slice_is_refused(tmp_path):
    Image.fromarray(np.full((4, 5), 3000, np.uint16)).save(tmp_path / "0.png")
    with pytest.raises(DataError, match=r"0\.png: image mode 'I;16'"):
        read_grey_image(tmp_path / "0.png")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match=r"0\.jpg: no such file"):
        read_grey_image(tmp_path / "0.jpg")
    (tmp_path / "0.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"0\.png: not a readable image"):
        read_label_image(tmp_path / "0.png")


@settings(max_examples=20, deadline=None)
@given(labels=hnp.arrays(np.uint8,
                         hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9),
                         elements=st.integers(0, 2)))
def test_class_masks_palette_and_grey_renderings_agree(tmp_path_factory, labels):
    folder = tmp_path_factory.mktemp("masks")
    write_palette_mask(folder / "palette.png", labels)
    with Image.open(folder / "palette.png") as image:  # Pillow renders (128,0,0) as 38 etc.
        image.convert("L").save(folder / "grey.png")
    read, encoding = read_label_image(folder / "palette.png")
    np.testing.assert_array_equal(read, labels)
    assert encoding == "classes"
    grey, grey_encoding = read_label_image(folder / "grey.png")
    if set(np.unique(labels)) <= {0}:  # an empty mask looks binary: same pixels either way
        assert grey_encoding == "binary"
    else:
        assert grey_encoding == "classes"
    np.testing.assert_array_equal(grey, labels)


@pytest.mark.parametrize("values", [(0, 255), (0, 1)])
def test_binary_masks(tmp_path, values):
    mask = np.zeros((5, 7), np.uint8)
    mask[1:3, 2:6] = values[1]
    write_grey(tmp_path / "gt.png", mask)
    labels, encoding = read_label_image(tmp_path / "gt.png")
    np.testing.assert_array_equal(labels, mask > 0)
    assert encoding == "binary" and int(labels.sum()) == 8  # 2 rows x 4 columns


def test_one_bit_mask(tmp_path):
    mask = np.zeros((5, 7), bool)
    mask[0, :3] = True
    Image.fromarray(mask).save(tmp_path / "gt.png")
    labels, encoding = read_label_image(tmp_path / "gt.png")
    np.testing.assert_array_equal(labels, mask)
    assert encoding == "binary"


def test_soft_map_is_not_a_mask(tmp_path):
    write_grey(tmp_path / "pseudo.png", np.arange(35).reshape(5, 7) * 7)
    with pytest.raises(DataError, match=r"pseudo\.png: unknown mask values \[7, 14,"):
        read_label_image(tmp_path / "pseudo.png")


def test_palette_index_beyond_classes(tmp_path):
    write_palette_mask(tmp_path / "gt.png", np.array([[0, 1, 3]]))
    with pytest.raises(DataError, match=r"gt\.png: unknown label values \[3\]"):
        read_label_image(tmp_path / "gt.png")
