"""Tests of tfcovid.data.patches: round trip, hand-counted layouts, NumPy loop references."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcovid.data import patches


def numpy_tiles(images, size, stride):
    """Reference tiling with explicit loops over a zero-padded copy."""
    batch, height, width, channels = images.shape
    starts = lambda length: list(range(0, max(length - size, 0) + stride, stride))  # noqa: E731
    rows, cols = starts(height), starts(width)
    padded = np.zeros((batch, rows[-1] + size, cols[-1] + size, channels), images.dtype)
    padded[:, :height, :width] = images
    return np.stack([padded[b, r:r + size, c:c + size]
                     for b in range(batch) for r in rows for c in cols])


@pytest.mark.parametrize("length, size, stride, count", [
    (64, 64, 64, 1),  # exact fit
    (65, 64, 64, 2),  # one pixel over: a second, mostly padded window
    (100, 64, 32, 3),  # origins 0, 32, 64 cover 128 px
    (10, 64, 16, 1),  # smaller than one patch
    (5, 4, 3, 2),  # origins 0, 3 cover 7 px
])
def test_patch_count_by_hand(length, size, stride, count):
    assert patches.patch_count(length, size, stride) == count


def test_tile_matches_numpy_loops_and_layout():
    images = np.random.default_rng(0).random((2, 37, 50, 3), dtype=np.float32)
    tiles, grid = patches.tile(images, size=16, stride=12)
    # rows: ceil(21 / 12) + 1 = 3, cols: ceil(34 / 12) + 1 = 4 -> 2 * 12 patches
    assert (grid.rows, grid.cols, grid.padded_height, grid.padded_width) == (3, 4, 40, 52)
    assert tiles.shape == (24, 16, 16, 3)
    np.testing.assert_array_equal(tiles.numpy(), numpy_tiles(images, 16, 12))


def test_overlaps_are_averaged():
    # 6 x 10 image, 4-px patches every 2 px: origins rows (0, 2), cols (0, 2, 4, 6); patch k
    # holds the constant k (k = 4 * row + col). Pixel (2, 2) is covered by patches 0, 1, 4, 5
    # -> 2.5; pixel (3, 9) by 3 and 7 -> 5; pixel (0, 0) by 0 alone -> 0.
    _, grid = patches.tile(np.zeros((1, 6, 10, 1), np.float32), size=4, stride=2)
    constant = (np.arange(8, dtype=np.float32)[:, None, None, None]
                * np.ones((8, 4, 4, 1), np.float32))
    stitched = patches.stitch(constant, grid).numpy()[0, :, :, 0]
    assert stitched[2, 2] == 2.5 and stitched[3, 9] == 5 and stitched[0, 0] == 0
    sums, counts = np.zeros((6, 10)), np.zeros((6, 10))
    for index, (row, col) in enumerate((r, c) for r in (0, 2) for c in (0, 2, 4, 6)):
        sums[row:row + 4, col:col + 4] += index
        counts[row:row + 4, col:col + 4] += 1
    np.testing.assert_allclose(stitched, sums / counts, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 2), height=st.integers(1, 40), width=st.integers(1, 40),
       channels=st.integers(1, 3), size=st.integers(1, 24), data=st.data())
def test_stitch_of_tile_is_identity(batch, height, width, channels, size, data):
    stride = data.draw(st.integers(1, size), label="stride")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    images = np.random.default_rng(seed).normal(size=(batch, height, width, channels))
    images = images.astype(np.float32)
    tiles, grid = patches.tile(images, size, stride)
    assert tiles.shape[0] == batch * grid.rows * grid.cols
    np.testing.assert_array_equal(patches.stitch(tiles, grid).numpy(), images)


def test_extract_patches_with_unknown_sizes_matches_tile():
    images = np.random.default_rng(3).random((1, 21, 30, 1), dtype=np.float32)
    dynamic = tf.function(lambda x: patches.extract_patches(x, 8, 5),
                          input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
    np.testing.assert_array_equal(dynamic(images).numpy(), numpy_tiles(images, 8, 5))


def test_bad_arguments_are_echoed():
    with pytest.raises(ValueError, match=r"stride=9, size=8"):
        patches.tile(np.zeros((1, 8, 8, 1), np.float32), size=8, stride=9)
    with pytest.raises(ValueError, match=r"stride=0"):
        patches.tile(np.zeros((1, 8, 8, 1), np.float32), size=8, stride=0)
    _, grid = patches.tile(np.zeros((1, 8, 8, 1), np.float32), size=4)
    with pytest.raises(ValueError, match=r"dtype=int32"):
        patches.stitch(np.zeros((4, 4, 4, 1), np.int32), grid)
