"""Tests of tfcovid.severity.radiomics against hand counts, the pyradiomics documentation's worked
examples, scikit-image, SciPy and NumPy computed directly from voxel pairs."""

import itertools

import numpy as np
import pytest
from scipy import stats
from skimage.feature import graycomatrix

from tfcovid.severity import radiomics
from tfcovid.severity.radiomics import first_order, glcm, gldm, ngtdm
from tfcovid.severity.radiomics.roi import DIRECTIONS, RegionOfInterest, discretise

BIN = 25.0
# pyradiomics documentation, radiomics.glcm: a 5 x 5 image of grey levels 1-5 and its
# symmetric GLCM for distance 1, angle 0 (left-right neighbours)
GLCM_IMAGE = np.array([[1, 2, 5, 2, 3], [3, 2, 1, 3, 1], [1, 3, 5, 5, 2], [1, 1, 1, 1, 2],
                       [1, 2, 4, 3, 5]])
GLCM_ANGLE_0 = np.array([[6, 4, 3, 0, 0], [4, 0, 2, 1, 3], [3, 2, 0, 1, 2], [0, 1, 1, 0, 0],
                         [0, 3, 2, 0, 2]])
# radiomics.gldm: its example image and GLDM for alpha 0, distance 1 (columns: 0..3 dependants)
GLDM_IMAGE = np.array([[5, 2, 5, 4, 4], [3, 3, 3, 1, 3], [2, 1, 1, 1, 3], [4, 2, 2, 2, 3],
                       [3, 5, 3, 3, 2]])
GLDM_MATRIX = np.array([[0, 1, 2, 1], [1, 2, 3, 0], [1, 4, 4, 0], [1, 2, 0, 0], [3, 0, 0, 0]])
# radiomics.ngtdm: its 4 x 4 example; n_i from the table, s_i counted by hand (below)
NGTDM_IMAGE = np.array([[1, 2, 5, 2], [3, 5, 1, 3], [1, 3, 5, 5], [3, 1, 1, 1]])


def grey_roi(levels, mask=None):
    """A region whose grey levels are ``levels`` (values at the lower edge of each bin)."""
    levels = np.asarray(levels)
    return RegionOfInterest.from_mask(levels * BIN, np.ones_like(levels) if mask is None
                                      else mask)


def test_discretise_matches_pyradiomics_bin_edges():
    values = np.array([-1013.0, -1000.0, -976.0, -975.0, -1.0, 0.0, 24.9, 25.0])
    # pyradiomics: edges from min - (min % 25) in steps of 25, then numpy.digitize
    low = values.min() - values.min() % BIN
    edges = np.arange(low, values.max() + 2 * BIN, BIN)
    assert discretise(values, BIN).tolist() == np.digitize(values, edges).tolist()
    assert discretise(values, BIN).tolist()[:4] == [1, 2, 2, 3]   # -1025 | -1000 | -975
    with pytest.raises(ValueError, match="bin_width=0"):
        discretise(values, 0)


def test_first_order_against_numpy_and_scipy():
    rng = np.random.default_rng(3)
    image = rng.normal(-500, 180, (4, 9, 7)).round()
    mask = rng.random(image.shape) < 0.6
    values = image[mask]
    features = radiomics.extract_features(image, mask, spacing_mm=(2.5, 0.5, 0.8))
    first = {name: features[f"original_firstorder_{name}"] for name in first_order.FEATURES}
    hist = np.unique(np.floor(values / BIN), return_counts=True)[1]
    p10, p90 = np.percentile(values, [10, 90])
    robust = values[(values >= p10) & (values <= p90)]
    expected = {
        "Energy": np.sum(values ** 2), "TotalEnergy": 1.0 * np.sum(values ** 2),
        "Entropy": stats.entropy(hist, base=2), "Minimum": values.min(),
        "10Percentile": p10, "90Percentile": p90, "Maximum": values.max(),
        "Mean": values.mean(), "Median": np.median(values),
        "InterquartileRange": stats.iqr(values), "Range": np.ptp(values),
        "MeanAbsoluteDeviation": np.mean(np.abs(values - values.mean())),
        "RobustMeanAbsoluteDeviation": np.mean(np.abs(robust - robust.mean())),
        "RootMeanSquared": np.sqrt(np.mean(values ** 2)), "Skewness": stats.skew(values),
        "Kurtosis": stats.kurtosis(values, fisher=False), "Variance": np.var(values),
        "Uniformity": np.sum((hist / hist.sum()) ** 2)}
    for name, value in expected.items():
        assert first[name] == pytest.approx(value, rel=1e-9), name


def test_flat_region_has_zero_skewness_and_kurtosis():
    features = first_order.first_order_features(np.full(5, -700.0), np.ones(5, int), 1.0)
    assert features["Skewness"] == features["Kurtosis"] == features["Variance"] == 0.0
    assert features["Entropy"] == pytest.approx(0.0, abs=1e-12)


def test_glcm_angle_0_is_the_documented_matrix():
    counts, levels = glcm.cooccurrence_matrices(grey_roi(GLCM_IMAGE))
    assert levels.tolist() == [1, 2, 3, 4, 5]
    assert any(np.array_equal(matrix, GLCM_ANGLE_0) for matrix in counts)
    assert len(counts) == 4   # in-plane directions only for a single slice


def test_glcm_counts_match_scikit_image_in_2d():
    rng = np.random.default_rng(0)
    levels = rng.integers(1, 6, (7, 11))
    counts, _ = glcm.cooccurrence_matrices(grey_roi(levels))
    reference = graycomatrix(levels, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=6,
                             symmetric=True)[1:, 1:, 0, :]
    ours = sorted(matrix.ravel().tolist() for matrix in counts)
    assert ours == sorted(reference[:, :, k].ravel().tolist() for k in range(4))


def test_glcm_counts_in_3d_skip_pairs_leaving_the_mask():
    rng = np.random.default_rng(1)
    levels = rng.integers(1, 5, (3, 5, 6))
    mask = rng.random(levels.shape) < 0.7
    mask[0, 0, 0] = True
    levels_in = np.where(mask, levels, 0)
    roi = RegionOfInterest.from_mask(levels * BIN, mask)
    counts, present = glcm.cooccurrence_matrices(roi)
    shift = discretise(levels[mask] * BIN)[0] - levels[mask][0]
    # every direction's symmetric matrix from a plain loop over voxels and directions
    expected = []
    for step in DIRECTIONS:
        matrix = np.zeros((5, 5))
        for z, y, x in zip(*np.nonzero(mask)):
            near = (z + step[0], y + step[1], x + step[2])
            if all(0 <= c < s for c, s in zip(near, mask.shape)) and mask[near]:
                matrix[levels_in[z, y, x], levels_in[near]] += 1
        matrix = (matrix + matrix.T)[1:, 1:]
        if matrix.sum():
            expected.append(matrix[np.ix_(present - shift - 1, present - shift - 1)])
    assert len(counts) == len(expected)
    for ours, reference in zip(counts, expected):
        np.testing.assert_array_equal(ours, reference)


def test_glcm_features_of_one_direction_from_voxel_pairs():
    # one row of voxels: only the left-right direction has pairs, so no averaging
    levels = np.array([[3, 1, 2, 2, 5, 3, 1, 1, 4, 2, 5, 5]])
    features = glcm.glcm_features(grey_roi(levels))
    a = np.concatenate([levels[0, :-1], levels[0, 1:]]).astype(float)   # symmetric: both orders
    b = np.concatenate([levels[0, 1:], levels[0, :-1]]).astype(float)
    difference = np.abs(a - b)
    joint = np.unique(np.stack([a, b]), axis=1, return_counts=True)[1]
    _, sum_counts = np.unique(a + b, return_counts=True)
    _, difference_counts = np.unique(difference, return_counts=True)
    table = np.zeros((5, 5))
    np.add.at(table, (a.astype(int) - 1, b.astype(int) - 1), 1)
    table /= table.sum()
    px = table.sum(axis=1)
    singular = np.linalg.svd(table / np.sqrt(np.outer(px, px)), compute_uv=False)
    hx = stats.entropy(px, base=2)
    hxy = stats.entropy(joint, base=2)
    hxy1 = -np.sum(table * np.log2(np.outer(px, px) + np.spacing(1)))
    expected = {
        "Autocorrelation": np.mean(a * b), "JointAverage": np.mean(a),
        "ClusterProminence": stats.moment(a + b, 4), "ClusterShade": stats.moment(a + b, 3),
        "ClusterTendency": np.var(a + b), "Contrast": np.mean((a - b) ** 2),
        "Correlation": np.corrcoef(a, b)[0, 1], "DifferenceAverage": np.mean(difference),
        "DifferenceEntropy": stats.entropy(difference_counts, base=2),
        "DifferenceVariance": np.var(difference),
        "JointEnergy": np.sum((joint / joint.sum()) ** 2), "JointEntropy": hxy,
        "Imc1": (hxy - hxy1) / hx,
        "Imc2": np.sqrt(1 - np.exp(-2 * (2 * hx - hxy))),
        "Idm": np.mean(1 / (1 + difference ** 2)), "MCC": singular[1],
        "Idmn": np.mean(1 / (1 + difference ** 2 / 25)), "Id": np.mean(1 / (1 + difference)),
        "Idn": np.mean(1 / (1 + difference / 5)),
        "InverseVariance": np.sum(1 / difference[difference > 0] ** 2) / difference.size,
        "MaximumProbability": joint.max() / joint.sum(), "SumAverage": np.mean(a + b),
        "SumEntropy": stats.entropy(sum_counts, base=2), "SumSquares": np.var(a)}
    assert list(features) == list(glcm.FEATURES)
    for name, value in expected.items():
        assert features[name] == pytest.approx(value, rel=1e-7, abs=1e-12), name


def test_glcm_averages_directions_and_handles_one_grey_level():
    levels = np.array([[1, 2, 2], [3, 1, 2]])
    features = glcm.glcm_features(grey_roi(levels))
    counts, _ = glcm.cooccurrence_matrices(grey_roi(levels))
    contrasts = []
    for matrix in counts:
        i, j = np.nonzero(matrix)
        contrasts.append(np.sum(matrix[i, j] * (i - j) ** 2) / matrix.sum())
    assert features["Contrast"] == pytest.approx(np.mean(contrasts))
    flat = glcm.glcm_features(grey_roi(np.full((3, 4), 2)))
    assert flat["Correlation"] == flat["MCC"] == 1.0 and flat["Contrast"] == 0.0
    alone = glcm.glcm_features(grey_roi(np.array([[1, 0, 2]]), np.array([[1, 0, 1]])))
    assert all(np.isnan(value) for value in alone.values())   # no touching pair


def _neighbour_loop(levels: np.ndarray, mask: np.ndarray, z: int, y: int, x: int) -> list:
    """Grey levels of the neighbours of (z, y, x) inside ``mask``, one per direction."""
    found = []
    for dz, dy, dx in itertools.product((-1, 0, 1), repeat=3):
        near = (z + dz, y + dy, x + dx)
        if (dz, dy, dx) != (0, 0, 0) and all(0 <= c < s for c, s in zip(near, mask.shape)) \
                and mask[near]:
            found.append(levels[near])
    return found


@pytest.mark.parametrize("shape", [(3, 5, 6), (1, 6, 7)])
def test_neighbourhood_counts_match_a_loop_over_the_26_neighbours(shape):
    rng = np.random.default_rng(5)
    levels = rng.integers(1, 5, shape)
    mask = rng.random(shape) < 0.7
    roi = RegionOfInterest.from_mask(levels * BIN, mask)
    grey = np.zeros(shape, np.int64)
    grey[mask] = roi.levels
    inside, equal, level_sum = [], [], []
    for z, y, x in zip(*np.nonzero(mask)):
        near = _neighbour_loop(grey, mask, z, y, x)
        inside.append(len(near))
        equal.append(sum(level == grey[z, y, x] for level in near))
        level_sum.append(sum(near))
    neighbourhood = roi.neighbourhood
    assert neighbourhood.inside.tolist() == inside
    assert neighbourhood.equal.tolist() == equal
    assert neighbourhood.level_sum.tolist() == level_sum
    for offset in np.concatenate([roi.offsets, -roi.offsets]):
        np.testing.assert_array_equal(roi.neighbours(offset), roi.grid[roi.index + offset])


def test_gldm_with_alpha_counts_neighbours_within_alpha_grey_levels():
    rng = np.random.default_rng(6)
    levels = rng.integers(1, 6, (3, 4, 5))
    mask = rng.random(levels.shape) < 0.8
    roi = RegionOfInterest.from_mask(levels * BIN, mask)
    grey = np.zeros(levels.shape, np.int64)
    grey[mask] = roi.levels
    counts, present = gldm.dependence_matrix(roi, alpha=1)
    expected = np.zeros_like(counts)
    for z, y, x in zip(*np.nonzero(mask)):
        near = _neighbour_loop(grey, mask, z, y, x)
        dependants = sum(abs(level - grey[z, y, x]) <= 1 for level in near)
        expected[np.searchsorted(present, grey[z, y, x]), dependants] += 1
    np.testing.assert_array_equal(counts, expected)


def test_gldm_is_the_documented_matrix():
    counts, levels = gldm.dependence_matrix(grey_roi(GLDM_IMAGE))
    assert levels.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(counts[:, :4], GLDM_MATRIX)
    assert counts[:, 4:].sum() == 0


def test_gldm_features_from_per_voxel_dependence():
    rng = np.random.default_rng(2)
    levels = rng.integers(1, 4, (3, 4, 5))
    mask = rng.random(levels.shape) < 0.8
    features = gldm.gldm_features(RegionOfInterest.from_mask(levels * BIN, mask))
    grey = discretise(levels[mask] * BIN)
    # dependence of each voxel = 1 + equal neighbours inside the mask, voxels in C order
    dependence = []
    for z, y, x in zip(*np.nonzero(mask)):
        window = levels[max(z - 1, 0):z + 2, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
        inside = mask[max(z - 1, 0):z + 2, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
        dependence.append(np.count_nonzero(inside & (window == levels[z, y, x])))
    j = np.array(dependence, float)          # the voxel itself is one of the equal ones
    i = grey.astype(float)
    _, grey_counts = np.unique(i, return_counts=True)
    _, dependence_counts = np.unique(j, return_counts=True)
    _, joint = np.unique(np.stack([i, j]), axis=1, return_counts=True)
    n = i.size
    expected = {
        "SmallDependenceEmphasis": np.mean(1 / j ** 2), "LargeDependenceEmphasis": np.mean(j ** 2),
        "GrayLevelNonUniformity": np.sum(grey_counts ** 2) / n,
        "DependenceNonUniformity": np.sum(dependence_counts ** 2) / n,
        "DependenceNonUniformityNormalized": np.sum(dependence_counts ** 2) / n ** 2,
        "GrayLevelVariance": np.var(i), "DependenceVariance": np.var(j),
        "DependenceEntropy": stats.entropy(joint, base=2),
        "LowGrayLevelEmphasis": np.mean(1 / i ** 2), "HighGrayLevelEmphasis": np.mean(i ** 2),
        "SmallDependenceLowGrayLevelEmphasis": np.mean(1 / (i * j) ** 2),
        "SmallDependenceHighGrayLevelEmphasis": np.mean(i ** 2 / j ** 2),
        "LargeDependenceLowGrayLevelEmphasis": np.mean(j ** 2 / i ** 2),
        "LargeDependenceHighGrayLevelEmphasis": np.mean((i * j) ** 2)}
    for name, value in expected.items():
        assert features[name] == pytest.approx(value, rel=1e-9), name


def test_ngtdm_matches_the_documented_example():
    counts, sums, levels = ngtdm.tone_difference_matrix(grey_roi(NGTDM_IMAGE))
    assert levels.tolist() == [1, 2, 3, 5] and counts.tolist() == [6, 2, 4, 4]
    # s_1 = |1-10/3| + |1-30/8| + |1-15/5| + |1-13/5| + |1-15/5| + |1-11/3| (documented 13.35);
    # s_3 by hand: (1,0) 12/5, (1,3) 18/5, (2,1) 20/8, (3,0) 5/3; the documentation's first term
    # reads 14/5, so its 2.63 is 0.4 short
    expected_sums = [abs(1 - 10 / 3) + abs(1 - 30 / 8) + 2 * abs(1 - 15 / 5) + abs(1 - 13 / 5)
                     + abs(1 - 11 / 3), 2.0, 0.6 + 0.6 + 0.5 + abs(3 - 5 / 3), 10.075]
    np.testing.assert_allclose(sums, expected_sums)
    features = ngtdm.ngtdm_features(grey_roi(NGTDM_IMAGE))
    i, n, s = np.array([1.0, 2, 3, 5]), counts, np.array(expected_sums)
    p = n / n.sum()
    # pairwise sums written out as loops over the 4 grey levels
    contrast = sum(p[a] * p[b] * (i[a] - i[b]) ** 2 for a in range(4) for b in range(4))
    spread = sum(abs(i[a] * p[a] - i[b] * p[b]) for a in range(4) for b in range(4))
    complexity = sum(abs(i[a] - i[b]) * (p[a] * s[a] + p[b] * s[b]) / (p[a] + p[b])
                     for a in range(4) for b in range(4))
    strength = sum((p[a] + p[b]) * (i[a] - i[b]) ** 2 for a in range(4) for b in range(4))
    expected = {"Coarseness": 1 / np.dot(p, s), "Contrast": contrast / 12 * s.sum() / 16,
                "Busyness": np.dot(p, s) / spread, "Complexity": complexity / 16,
                "Strength": strength / s.sum()}
    for name, value in expected.items():
        assert features[name] == pytest.approx(value, rel=1e-9), name


def test_ngtdm_of_a_uniform_region_uses_the_documented_limits():
    features = ngtdm.ngtdm_features(grey_roi(np.full((2, 3), 4)))
    assert features == {"Coarseness": 1e6, "Contrast": 0.0, "Busyness": 0.0, "Complexity": 0.0,
                        "Strength": 0.0}


def test_extract_features_names_and_errors():
    assert len(radiomics.FEATURE_NAMES) == 18 + 24 + 14 + 5
    assert radiomics.FEATURE_NAMES[0] == "original_firstorder_Energy"
    assert "original_glcm_Contrast" in radiomics.FEATURE_NAMES
    assert "original_ngtdm_Contrast" in radiomics.FEATURE_NAMES
    image = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="region is empty"):
        radiomics.extract_features(image, np.zeros_like(image))
    with pytest.raises(ValueError, match="one shape"):
        radiomics.extract_features(image, np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"spacing_mm=\(1, 0, 1\)"):
        radiomics.extract_features(image, np.ones_like(image), spacing_mm=(1, 0, 1))


def test_texture_ignores_values_outside_the_mask():
    rng = np.random.default_rng(4)
    image = rng.normal(-600, 150, (3, 6, 7))
    mask = rng.random(image.shape) < 0.5
    other = np.where(mask, image, 3000.0)
    assert radiomics.extract_features(image, mask) == radiomics.extract_features(other, mask)
