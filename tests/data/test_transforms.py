"""Tests of tfcovid.data.transforms against formulas, hand counts, OpenCV and SciPy."""

import cv2
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from scipy import ndimage

from tfcovid.data import transforms

hu_arrays = hnp.arrays(np.int16, hnp.array_shapes(min_dims=1, max_dims=2, max_side=16),
                       elements=st.integers(-3000, 3000))


def test_lung_window_end_points_by_hand():
    # level -600, width 1500: [-1350, 150] HU onto [0, 1]; -600 is the middle.
    values = transforms.window_hu(np.array([-2000, -1350, -600, -225, 150, 900], np.int16))
    np.testing.assert_allclose(values, [0, 0, 0.5, 0.75, 1, 1], atol=1e-7)
    assert values.dtype == np.float32


@settings(max_examples=40, deadline=None)
@given(hu_arrays, st.floats(-1200, 400), st.floats(1, 4000))
def test_window_matches_formula_and_tf(image_hu, level_hu, width_hu):
    low, high = level_hu - width_hu / 2, level_hu + width_hu / 2
    expected = np.interp(image_hu.astype(np.float64), [low, high], [0, 1])  # clamps outside
    np.testing.assert_allclose(transforms.window_hu(image_hu, level_hu, width_hu), expected,
                               atol=1e-6)
    np.testing.assert_allclose(
        transforms.window_hu_tf(tf.constant(image_hu), level_hu, width_hu).numpy(), expected,
        atol=2e-6)


@settings(max_examples=40, deadline=None)
@given(hu_arrays, st.floats(-1200, 400), st.floats(1, 4000))
def test_window_is_monotone(image_hu, level_hu, width_hu):
    ordered = np.sort(image_hu.ravel())
    assert np.all(np.diff(transforms.window_hu(ordered, level_hu, width_hu)) >= 0)


def test_window_rejects_non_positive_width():
    with pytest.raises(ValueError, match=r"width_hu=0"):
        transforms.window_hu(np.zeros(3), width_hu=0)


def test_windowed8_is_divided_by_255():
    grey = np.array([0, 51, 255], np.uint8)
    np.testing.assert_allclose(transforms.scale_windowed8(grey), [0, 0.2, 1], atol=1e-7)
    np.testing.assert_allclose(transforms.scale_windowed8_tf(tf.constant(grey)).numpy(),
                               [0, 0.2, 1], atol=1e-7)


def test_imagenet_normalisation_numbers():
    # (0.5 - mean) / std per channel, by hand: 0.015/0.229, 0.044/0.224, 0.094/0.225.
    expected = [0.015 / 0.229, 0.044 / 0.224, 0.094 / 0.225]
    grey = np.full((2, 3, 1), 0.5, np.float32)
    np.testing.assert_allclose(transforms.normalise_imagenet(np.repeat(grey, 3, -1))[0, 0],
                               expected, rtol=1e-5)
    model_input = transforms.model_input_tf(tf.constant(grey), 3, "imagenet").numpy()
    assert model_input.shape == (2, 3, 3)
    np.testing.assert_allclose(model_input[1, 2], expected, rtol=1e-5)
    np.testing.assert_array_equal(transforms.model_input_tf(tf.constant(grey), 3, "unit"), 0.5)


def test_imagenet_needs_three_channels():
    with pytest.raises(ValueError, match=r"channels=1"):
        transforms.model_input_tf(tf.zeros((2, 2, 1)), 1, "imagenet")
    with pytest.raises(ValueError, match=r"shape=\(2, 2, 1\)"):
        transforms.normalise_imagenet(np.zeros((2, 2, 1)))


def test_bilinear_resize_uses_half_pixel_centres():
    # 1 x 2 -> 1 x 4 with align_corners=False samples x = -0.25, 0.25, 0.75, 1.25, clamped:
    # [0, 0.25, 0.75, 1] (align_corners=True would give thirds).
    row = tf.constant([[[0.0], [1.0]]])
    resized = transforms.resize_tf(row, (1, 4), "image").numpy()[0, :, 0]
    np.testing.assert_allclose(resized, [0, 0.25, 0.75, 1], atol=1e-7)


def test_bilinear_resize_matches_opencv():
    image = np.random.default_rng(0).random((5, 7, 1), dtype=np.float32)
    expected = cv2.resize(image, (13, 11), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(transforms.resize_tf(tf.constant(image), (11, 13)).numpy()[..., 0],
                               expected, atol=1e-5)


@pytest.mark.parametrize("size", [(7, 9), (33, 45), (40, 56)])
def test_label_resize_keeps_only_label_values(size):
    label = np.random.default_rng(1).integers(0, 3, (20, 28, 1)).astype(np.int32)
    resized = transforms.resize_tf(tf.constant(label), size, "label").numpy()
    assert resized.dtype == np.int32 and resized.shape == size + (1,)
    assert set(np.unique(resized)) <= {0, 1, 2}


def test_resize_element_picks_rule_per_key():
    element = {"image": tf.constant([[[0.0], [1.0]]]), "label": tf.constant([[[0], [2]]]),
               "case_id": tf.constant("a")}
    resized = transforms.resize_element(element, (1, 4))
    np.testing.assert_allclose(resized["image"].numpy().ravel(), [0, 0.25, 0.75, 1], atol=1e-7)
    np.testing.assert_array_equal(resized["label"].numpy().ravel(), [0, 0, 2, 2])
    assert resized["case_id"].numpy() == b"a"


def test_edge_map_of_a_square_counted_by_hand():
    # Canny on a 6 x 6 square: 20 contour pixels, top/left just outside, bottom/right just
    # inside, corners cut (drawn by hand from the definition in the docstring).
    mask = np.zeros((12, 14), np.uint8)
    mask[3:9, 4:10] = 1
    expected = np.zeros((12, 14), np.float32)
    expected[2, 5:9] = 1  # top, outside, corners cut
    expected[3, 4] = expected[3, 9] = 1
    expected[4:8, 3] = 1  # left, outside
    expected[4:8, 9] = 1  # right, inside
    expected[8, 4:10] = 1  # bottom, inside
    edge = transforms.edge_map(mask)
    assert int(edge.sum()) == 20
    np.testing.assert_array_equal(edge, expected)
    np.testing.assert_array_equal(transforms.edge_map(mask * 2), expected)  # labels 1, 2 alike


def test_gradient_edge_map_of_a_square_counted_by_hand():
    # 3 x 3 cross gradient: the square's 20 border pixels plus the 6 pixels along each of its
    # four sides just outside (corners excluded by the cross) -> 44; at the image border
    # nothing erodes, so a square in the corner keeps only its inner sides.
    mask = np.zeros((12, 14), np.uint8)
    mask[3:9, 4:10] = 1
    expected = np.zeros((12, 14), bool)
    expected[2:10, 4:10] = True
    expected[3:9, 3:11] = True
    expected[4:8, 5:9] = False  # interior of the square
    edge = transforms.edge_map(mask, "gradient")
    assert int(edge.sum()) == 44
    np.testing.assert_array_equal(edge, expected)
    corner = np.zeros((8, 8), np.uint8)
    corner[:3, :3] = 1
    assert int(transforms.edge_map(corner, "gradient")[:3, :3].sum()) == 5  # 3 + 3 - 1
    with pytest.raises(ValueError, match=r"method='sobel'"):
        transforms.edge_map(mask, "sobel")


def test_edge_map_lies_on_the_boundary_band():
    rng = np.random.default_rng(2)
    mask = ndimage.binary_opening(rng.random((48, 40)) > 0.55, iterations=1)
    band = ndimage.binary_dilation(mask) & ~ndimage.binary_erosion(mask)
    edge = transforms.edge_map(mask.astype(np.uint8)).astype(bool)
    assert edge.any() and not (edge & ~band).any()
    assert not transforms.edge_map(np.zeros((8, 9), np.uint8)).any()


def read_grey(path):
    return np.asarray(Image.open(path).convert("L"))


@pytest.mark.realdata
def test_canny_edges_reproduce_covid_semiseg_pseudo_label_edges(real_data_dir):
    folder = real_data_dir / "COVID-SemiSeg/TrainingSet/LungInfection-Train/Pseudo-label"
    masks = sorted((folder / "GT").glob("*.png"))[::80]  # 20 of the 1600
    assert masks
    for mask_path in masks:
        mask = read_grey(mask_path) > 128  # binary2edge's threshold
        np.testing.assert_array_equal(transforms.edge_map(mask.astype(np.uint8)),
                                      read_grey(folder / "Edge" / mask_path.name) > 0)


@pytest.mark.realdata
def test_gradient_edges_cover_covid_semiseg_doctor_label_edges(real_data_dir):
    folder = real_data_dir / "COVID-SemiSeg/TrainingSet/LungInfection-Train/Doctor-label"
    extra = total = 0
    for mask_path in sorted((folder / "GT").glob("*.png")):
        band = transforms.edge_map((read_grey(mask_path) > 128).astype(np.uint8), "gradient")
        shipped = read_grey(folder / "Edge" / mask_path.name) > 0
        assert not (shipped & (band == 0)).any()  # every shipped edge pixel is in the band
        extra, total = extra + int((band > 0).sum() - shipped.sum()), total + shipped.sum()
    assert total > 0 and extra / total < 0.005  # measured: 400 of 161,622 pixels


def test_prior_from_label():
    label = np.array([[0, 1], [2, 0]], np.uint8)
    np.testing.assert_array_equal(transforms.prior_from_label(label), [[0, 1], [1, 0]])
    zeros = transforms.prior_from_label(None, shape=(3, 4))
    assert zeros.shape == (3, 4) and not zeros.any()
