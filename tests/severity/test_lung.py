"""Tests of tfcovid.severity.lung on the phantom, synthetic edge cases and the real chest CT."""

import numpy as np
import pytest

from tfcovid.data.phantom import make_phantom_case
from tfcovid.data.readers.dicom import read_dicom_series
from tfcovid.severity.lung import LEFT_LUNG, RIGHT_LUNG, label_lungs, segment_lungs

SPACING_MM = (5.0, 2.0, 2.0)  # (slice, row, column)


def dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def chest(num_slices=4, height=48, width=64):
    """Room air, a body of soft tissue (rows 4-43, columns 4-59), no lung yet."""
    volume = np.full((num_slices, height, width), -1000, np.int16)
    volume[:, 4:height - 4, 4:width - 4] = 40
    return volume


def add_lungs(volume, right=True, left=True, value=-850):
    """Boxes of lung: patient's right at columns 8-27 (image left), left at 36-55."""
    if right:
        volume[:, 10:38, 8:28] = value
    if left:
        volume[:, 10:38, 36:56] = value
    return volume


@pytest.mark.parametrize("case_index, num_slices, height, width, min_dice", [
    (0, 8, 64, 80, 0.97),   # measured 0.980 (moderate infection)
    (2, 12, 96, 112, 0.99),  # measured 0.999 (mild)
    (1, 12, 96, 112, 0.92),  # measured 0.940, right lung 0.926 (critical: pleural
                             # consolidation deeper than the closing radius stays out)
])
def test_phantom_lungs_match_ground_truth(case_index, num_slices, height, width, min_dice):
    case = make_phantom_case(case_index, num_slices=num_slices, height=height, width=width)
    labels = segment_lungs(case.image, case.spacing_mm)
    assert labels.dtype == np.uint8 and labels.shape == case.image.shape
    assert dice(labels > 0, case.lung > 0) >= min_dice
    sides = label_lungs(case.lung, case.spacing_mm)  # the truth split by side
    np.testing.assert_array_equal(sides > 0, case.lung > 0)
    for side in (RIGHT_LUNG, LEFT_LUNG):  # measured 0.926 .. 0.999
        assert dice(labels == side, sides == side) >= min_dice
    # the patient's right lung sits on the image's left: lower mean column than the left lung
    columns = np.arange(width)
    mean_column = [np.average(np.broadcast_to(columns, labels.shape)[labels == side])
                   for side in (RIGHT_LUNG, LEFT_LUNG)]
    assert mean_column[0] < width / 2 < mean_column[1]


def test_two_lungs_are_labelled_by_side_with_vessels_and_lesions_filled():
    volume = add_lungs(chest())
    volume[:, 20:23, 14:17] = 30      # vessel inside the right lung
    volume[:, 24:38, 48:56] = 0       # consolidation against the left lung's lateral pleura
    volume[:, 30:34, 22:25] = -400    # ground glass, already below the threshold
    labels = segment_lungs(volume, SPACING_MM)
    expected = np.zeros(volume.shape, np.uint8)
    expected[:, 10:38, 8:28] = RIGHT_LUNG
    expected[:, 10:38, 36:48] = LEFT_LUNG
    expected[:, 10:24, 48:56] = LEFT_LUNG
    # the pleural consolidation (14 x 8 px = 28 x 16 mm) is a notch narrower than the 12 mm
    # closing disc only along rows; closing fills notches, not a missing corner, so it stays out
    np.testing.assert_array_equal(labels[:, :, :36], expected[:, :, :36])
    assert (labels[:, 20:23, 14:17] == RIGHT_LUNG).all()
    assert (labels[:, 10:24, 36:56] == LEFT_LUNG).all()


def test_pleural_notch_is_closed():
    volume = add_lungs(chest())
    volume[:, 20:26, 52:56] = 20      # 12 x 8 mm consolidation biting into the lateral pleura
    labels = segment_lungs(volume, SPACING_MM)
    assert (labels[:, 20:26, 52:55] == LEFT_LUNG).all()
    # the disc rolling outside the flat pleura reaches its outermost column, which stays out
    assert not labels[:, 22:24, 55].any()


def test_trachea_outside_air_and_table_gap_are_not_lung():
    volume = add_lungs(chest())
    volume[:, 6:10, 30:34] = -1000    # trachea: 8 x 8 mm of air on the midline
    volume[:, 44:48, :] = -1000       # air below the body, touching the border
    volume[:, 0:4, 20:30] = -700      # air-like material outside the body
    labels = segment_lungs(volume, SPACING_MM)
    assert not labels[:, 6:10, 30:34].any()
    assert not labels[:, :4].any() and not labels[:, 44:].any()
    assert np.count_nonzero(labels == RIGHT_LUNG) == np.count_nonzero(labels == LEFT_LUNG) \
        == 4 * 28 * 20
    volume[:, 6:10, 30:34] = -800     # the trachea in coarse slices: partial volume lifts it
    np.testing.assert_array_equal(segment_lungs(volume, SPACING_MM), labels)


def test_dark_small_region_off_the_midline_is_an_airway_but_lung_is_not():
    volume = add_lungs(chest(), left=False)
    volume[:, 12:16, 44:48] = -1000   # a main bronchus in the left hilum, lumen -1000 HU
    labels = segment_lungs(volume, SPACING_MM)
    assert not labels[:, 12:16, 44:48].any()
    assert (labels[:, 10:38, 8:28] == RIGHT_LUNG).all()


@pytest.mark.parametrize("right, left, expected", [(True, False, RIGHT_LUNG),
                                                   (False, True, LEFT_LUNG)])
def test_one_lung_is_named_by_its_side_of_the_midline(right, left, expected):
    labels = segment_lungs(add_lungs(chest(), right=right, left=left), SPACING_MM)
    assert set(np.unique(labels)) == {0, expected}
    assert np.count_nonzero(labels) == 4 * 28 * 20


def test_collapsed_small_lung_is_kept():
    volume = add_lungs(chest(), left=False)
    volume[:, 30:36, 44:50] = -850    # 36 px per slice, 6% of the right lung
    labels = segment_lungs(volume, SPACING_MM)
    assert np.count_nonzero(labels == LEFT_LUNG) == 4 * 36
    assert np.count_nonzero(labels == RIGHT_LUNG) == 4 * 28 * 20


def test_lungs_touching_at_the_midline_are_split_at_the_narrowest_column():
    volume = add_lungs(chest())
    volume[:, 12:14, 28:36] = -850    # anterior junction: a 2-row bridge between the lungs
    labels = segment_lungs(volume, SPACING_MM)
    assert (labels[:, 10:38, 8:28] == RIGHT_LUNG).all()
    assert (labels[:, 10:38, 36:56] == LEFT_LUNG).all()
    bridge = labels[:, 12:14, 28:36]
    assert set(np.unique(bridge)) == {RIGHT_LUNG, LEFT_LUNG}


def test_slices_without_lung_are_zero_and_2d_input_works():
    volume = add_lungs(chest())
    volume[0] = chest(num_slices=1)[0]   # abdomen: no air inside the body
    labels = segment_lungs(volume, SPACING_MM)
    assert not labels[0].any() and labels[1:].all(axis=0).sum() > 0
    slice_labels = segment_lungs(volume[2], SPACING_MM[1:])
    assert slice_labels.shape == volume.shape[1:]
    np.testing.assert_array_equal(slice_labels, labels[2])
    assert not segment_lungs(chest(num_slices=2)).any()


def test_label_lungs_splits_a_binary_mask_keeping_every_voxel():
    mask = np.zeros((4, 48, 64), bool)
    mask[:, 10:38, 8:28] = mask[:, 10:38, 36:56] = True
    mask[:, 12:14, 28:36] = True    # bridge between the lungs
    mask[1, 40, 50] = True          # a lone voxel, nearest to the left lung
    mask[2, 20:22, 20:22] = False   # a hole stays a hole
    labels = label_lungs(mask, SPACING_MM)
    np.testing.assert_array_equal(labels > 0, mask)
    assert (labels[:, 10:38, 8:28][mask[:, 10:38, 8:28]] == RIGHT_LUNG).all()
    assert (labels[:, 10:38, 36:56] == LEFT_LUNG).all()
    assert labels[1, 40, 50] == LEFT_LUNG
    # one lung alone is named by its side of the image's centre column
    left_only = mask.astype(np.uint8)
    left_only[:, :, :32] = 0
    assert set(np.unique(label_lungs(left_only))) == {0, LEFT_LUNG}
    assert not label_lungs(np.zeros((5, 6), np.uint8)).any()


@pytest.mark.parametrize("volume, spacing, match", [
    (np.zeros((2, 3, 4, 5), np.int16), None, r"Received: shape=\(2, 3, 4, 5\)"),
    (np.zeros(7, np.int16), None, r"Received: shape=\(7,\)"),
    (np.zeros((2, 8, 8), bool), None, r"Received: dtype=bool"),
    (np.zeros((2, 8, 8), complex), None, r"Received: dtype=complex128"),
    (np.array([[[np.nan, 0.0]]]), None, r"1 NaN or infinite values"),
    (np.zeros((2, 8, 8), np.int16), (1.0, 1.0), r"spacing_mm must hold 3 positive"),
    (np.zeros((2, 8, 8), np.int16), (1.0, 0.0, 1.0), r"spacing_mm must hold 3 positive"),
])
def test_bad_inputs_raise_value_error(volume, spacing, match):
    with pytest.raises(ValueError, match=match):
        segment_lungs(volume, spacing)


def test_bad_parameters_raise_value_error():
    with pytest.raises(ValueError, match=r"min_lung_fraction=1.5"):
        segment_lungs(chest(), min_lung_fraction=1.5)
    with pytest.raises(ValueError, match=r"closing_mm=-1"):
        segment_lungs(chest(), closing_mm=-1)


@pytest.mark.realdata
def test_real_chest_ct_counts_match_lungmask_reference(real_data_dir):
    # lungmask's U-net R231 on this two-slice series: 64,752 right and 36,536 left voxels
    image, spacing, _ = read_dicom_series(real_data_dir / "chest-CT-slice-lungmask")
    labels = segment_lungs(image, spacing)
    right, left = (np.count_nonzero(labels == side) for side in (RIGHT_LUNG, LEFT_LUNG))
    assert right == pytest.approx(64_752, rel=0.10)  # measured 63,112
    assert left == pytest.approx(36_536, rel=0.10)   # measured 35,414
    np.testing.assert_array_equal(labels[0], labels[1])  # both files hold the same pixels


# The volume-wide helpers behind segment_lungs against per-slice definitions recomputed here.

@pytest.mark.parametrize("radius_mm, spacing", [(1.0, (0.88, 0.88)), (2.5, (0.7, 1.1)),
                                                (1.0, (1.0, 1.0)), (0.0, (1.0, 1.0))])
def test_opening_by_a_disc_equals_the_distance_map_definition(radius_mm, spacing):
    from scipy import ndimage

    from tfcovid.severity.lung import _opening

    rng = np.random.default_rng(0)
    mask = ndimage.binary_dilation(rng.random((3, 40, 50)) > 0.93, iterations=2)
    mask[1] = True  # a full slice: nothing outside the image erodes it
    expected = []
    for plane in mask:  # erode: farther than r from outside; dilate: within r of the eroded
        eroded = (ndimage.distance_transform_edt(plane, sampling=spacing) > radius_mm
                  if not plane.all() else plane)
        expected.append(ndimage.distance_transform_edt(~eroded, sampling=spacing) <= radius_mm
                        if eroded.any() else eroded)
    np.testing.assert_array_equal(_opening(mask, radius_mm, spacing), np.stack(expected))


@pytest.mark.parametrize("radius_mm, spacing", [(1.0, (0.7, 0.7)), (1.0, (0.75, 0.75)),
                                                (2.5, (0.7, 1.1)), (3.0, (0.5, 0.6)),
                                                (1.0, (2.0, 0.4))])
@pytest.mark.parametrize("shape", [(3, 40, 50), (2, 5, 7), (1, 1, 9)])
def test_erosion_and_dilation_by_disc_rows_equal_scipys(radius_mm, spacing, shape):
    from scipy import ndimage

    from tfcovid.severity.lung import _by_disc_rows, _disc

    rng = np.random.default_rng(2)
    mask = rng.random(shape) > np.linspace(0.05, 0.95, shape[2])  # dense left, sparse right
    mask[0, :2] = True  # a run along the border
    disc = _disc(radius_mm, spacing)  # squares, crosses, discs taller than the mask
    np.testing.assert_array_equal(_by_disc_rows(mask, disc, erode=True),
                                  ndimage.binary_erosion(mask, disc[None], border_value=1))
    np.testing.assert_array_equal(_by_disc_rows(mask, disc, erode=False),
                                  ndimage.binary_dilation(mask, disc[None]))


def test_border_regions_and_medians_per_label_equal_per_slice_computations():
    from scipy import ndimage

    from tfcovid.severity.lung import _border_connected, _median_per_label

    rng = np.random.default_rng(1)
    air = ndimage.binary_opening(rng.random((4, 30, 36)) > 0.45)
    expected = []
    for plane in air:
        regions, _ = ndimage.label(plane)
        edge = np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]])
        expected.append(np.isin(regions, edge[edge > 0]))
    np.testing.assert_array_equal(_border_connected(air), np.stack(expected))

    labels = rng.integers(1, 6, 200)
    values = rng.integers(-1000, 100, 200)
    np.testing.assert_array_equal(
        _median_per_label(labels, values),
        [np.median(values[labels == label]) for label in np.unique(labels)])


@pytest.mark.parametrize("values, expected", [
    (np.array([0, 1, 2], np.uint8), True), (np.array([[0, 2]], np.int64), True),
    (np.zeros((0, 3), np.int16), True), (np.array([0, 3], np.uint8), False),
    (np.array([-1, 1], np.int16), False), (np.array([0.0, 1.0]), False)])
def test_holds_labels_accepts_only_integer_labels_0_to_2(values, expected):
    from tfcovid.severity.lung import holds_labels

    assert holds_labels(values) is expected
