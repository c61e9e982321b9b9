"""Tests of tfcovid.data.readers.checks: the CT plausibility test against NumPy's percentile."""

import numpy as np
import pytest

from tfcovid.data.readers import checks
from tfcovid.errors import DataError


@pytest.mark.parametrize("size", [1, 2, 101, 1000, 12345])
def test_first_percentile_test_agrees_with_numpy_near_the_bound(size):
    rng = np.random.default_rng(size)
    k = int(0.01 * (size - 1))
    counts = (0, k - 1, k, k + 1, k + 2, size)
    for below in sorted({max(0, min(count, size)) for count in counts}):
        # ``below`` values at or under -500 HU, the rest above, shuffled
        values = np.concatenate([rng.integers(-1024, -499, below),
                                 rng.integers(-499, 400, size - below)]).astype(np.int16)
        rng.shuffle(values)
        expected = np.percentile(values, 1) <= -500
        assert checks._first_percentile_at_most(values, -500) == expected, below


def test_an_air_free_volume_is_refused_with_its_percentile():
    values = np.full((4, 8, 8), 40.0)
    values[0, 0, :3] = -1000.0   # 3 air voxels of 256: the 1st percentile is still above -500
    with pytest.raises(DataError, match=r"scan\.nii: not a CT in Hounsfield units \(1st "
                                        r"percentile"):
        checks.to_hu_int16(values, "scan.nii")
    values[0, :2] = -1000.0      # 16 air voxels: a CT
    assert checks.to_hu_int16(values, "scan.nii").dtype == np.int16
