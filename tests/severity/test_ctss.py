"""Tests of tfcovid.severity.ctss on volumes whose opacified regions are known by construction."""

import json

import numpy as np
import pytest
from scipy import ndimage

from tfcovid.data import phantom
from tfcovid.severity.ctss import ct_severity_score
from tfcovid.severity.lung import label_lungs

# 9 slices (inferior -> superior), 8 rows (anterior -> posterior), 10 columns.
# Right lung: slices 0-8, rows 0-7, columns 0-3 -> zones of 3 slices, parts of 4 rows, 12 voxels
# per region. Left lung: slices 3-8 only, rows 2-5, columns 6-9 -> zones of 2 slices, parts of
# 2 rows, 16 voxels per region.
SHAPE = (9, 8, 10)


def lungs():
    lung = np.zeros(SHAPE, np.uint8)
    lung[:, :, 0:4] = 1
    lung[3:9, 2:6, 6:10] = 2
    return lung


def scores_by_region(score):
    return {(r["lung"], r["zone"], r["part"]): r["score"] for r in score.regions}


def test_known_regions_score_by_opacified_fraction():
    lung = lungs()
    opacity = np.zeros(SHAPE, np.uint8)
    opacity[0:3, 4:8, 0:4] = 2        # right lower posterior: 48 of 48 -> 2
    opacity[6, 0, 0] = 1              # right upper anterior: 1 of 48 -> 1
    opacity[3:5, 2:4, 6:10][:, :, :2] = 1  # left lower anterior: 8 of 16 = 50% -> 2
    opacity[7:9, 4, 6:10] = 1         # left upper posterior: 8 of 16 -> 2
    opacity[7:9, 5, 6:9] = 1          # same region: now 14 of 16 -> still 2
    opacity[4, 0, 8] = 1              # outside the lungs: ignored
    score = ct_severity_score(opacity, lung)
    expected = {("right", "lower", "posterior"): 2, ("right", "upper", "anterior"): 1,
                ("left", "lower", "anterior"): 2, ("left", "upper", "posterior"): 2}
    by_region = scores_by_region(score)
    assert {key: value for key, value in by_region.items() if value} == expected
    assert score.total == 7
    assert len(score.regions) == 12
    table = {(r["lung"], r["zone"], r["part"]): r for r in score.regions}
    assert table[("right", "upper", "anterior")]["lung_voxels"] == 48
    assert table[("right", "upper", "anterior")]["opacified_fraction"] == pytest.approx(1 / 48)
    assert table[("left", "lower", "anterior")]["lung_voxels"] == 16
    assert table[("left", "upper", "posterior")]["opacified_voxels"] == 14
    json.dumps(score.regions, allow_nan=False)


def test_slice_order_swaps_upper_and_lower():
    lung = lungs()
    opacity = np.zeros(SHAPE, np.uint8)
    opacity[0:3, 4:8, 0:4] = 1
    default = scores_by_region(ct_severity_score(opacity, lung))
    assert default[("right", "lower", "posterior")] == 2
    flipped = ct_severity_score(opacity, lung, slice_order="superior_to_inferior")
    assert scores_by_region(flipped)[("right", "upper", "posterior")] == 2
    assert flipped.total == 2


def test_missing_lung_scores_zero_with_no_fraction():
    lung = lungs()
    lung[lung == 2] = 0
    score = ct_severity_score(np.ones(SHAPE, bool), lung)
    assert score.total == 12  # 6 right regions fully opacified
    left = [r for r in score.regions if r["lung"] == "left"]
    assert all(r["score"] == 0 and r["opacified_fraction"] is None and r["lung_voxels"] == 0
               for r in left)


def test_region_voxels_add_up_to_each_lung():
    rng = np.random.default_rng(1)
    lung = rng.integers(0, 3, (7, 6, 5)).astype(np.uint8)
    score = ct_severity_score(rng.integers(0, 3, lung.shape), lung)
    for side, name in ((1, "right"), (2, "left")):
        regions = [r for r in score.regions if r["lung"] == name]
        assert sum(r["lung_voxels"] for r in regions) == np.count_nonzero(lung == side)


@pytest.mark.parametrize("opacity, lung, kwargs, match", [
    (np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 5), np.uint8), {},
     r"opacity shape=\(2, 3, 4\), lung shape=\(2, 3, 5\)"),
    (np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8), {}, r"lung shape=\(3, 4\)"),
    (np.zeros((2, 3, 4), np.float32), np.zeros((2, 3, 4), np.uint8), {},
     r"threshold probabilities first"),
    (np.zeros((2, 3, 4), np.uint8), np.full((2, 3, 4), 3, np.uint8), {}, r"lung must be"),
    (np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4), np.uint8), {"slice_order": "up"},
     r"Received: slice_order='up'"),
])
def test_bad_inputs_raise_value_error(opacity, lung, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ct_severity_score(opacity, lung, **kwargs)


def test_phantom_slice_zero_is_cranial_so_its_ct_ss_reads_superior_to_inferior():
    # The phantom (tfcovid.data.phantom) stores slice 0 at the head, unlike the readers
    # (inferior -> superior): air inside the body but outside the lungs (the trachea, above
    # the carina) shows in the first slices only.
    case = phantom.make_phantom_case(0, num_slices=12, height=96, width=96, noise=False)
    lung_voxels = case.lung.sum(axis=(1, 2))
    regions, count = ndimage.label((case.image < -800) & (case.lung == 0))
    edges = np.concatenate([regions[:, [0, -1], :].ravel(), regions[:, :, [0, -1]].ravel()])
    airway = np.isin(regions, np.setdiff1d(np.arange(1, count + 1), edges))
    airway_voxels = airway.sum(axis=(1, 2))
    assert airway_voxels[:3].min() > 0 and airway_voxels[-3:].max() == 0
    # the same case scored as stored and as a reader returns it (slices flipped) agrees
    sides = label_lungs(case.lung, case.spacing_mm)
    stored = ct_severity_score(case.label, sides, slice_order="superior_to_inferior")
    read = ct_severity_score(case.label[::-1], sides[::-1], slice_order="inferior_to_superior")
    assert stored == read
    upper = [r for r in stored.regions if r["zone"] == "upper"]
    lower = [r for r in stored.regions if r["zone"] == "lower"]
    first = int(np.nonzero(lung_voxels)[0][0])
    apex = sides[first:first + 2] > 0   # the top two lung slices lie in the upper zones
    assert sum(r["lung_voxels"] for r in upper) >= apex.sum()
    assert sum(r["lung_voxels"] for r in lower) > 0
