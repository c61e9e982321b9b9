"""A region of interest binned into grey levels, with its voxel neighbourhood (pyradiomics).

Binning follows pyradiomics' default fixed bin width (``binWidth`` 25): with edges at multiples
of the width from the one at or below the region's minimum, a value x becomes grey level
``floor(x / w) - floor(min / w) + 1``, so levels start at 1 and level 0 marks "outside".

The neighbourhood is pyradiomics' for distance 1: the 13 directions of the 3-D 26-neighbourhood,
each with its opposite (a 2-D region is one slice, where the 4 in-plane directions remain).
Texture classes look at neighbours inside the region only. The region is cropped to its
bounding box and padded with one voxel of level 0, so a neighbour is found by adding a fixed
offset to a flat index, with no bounds checks: one gather per direction, vectorised, in the
grid's small integer type. The per-voxel counts GLDM and NGTDM both need come from one pass
over the 26 directions (`RegionOfInterest.neighbourhood`).

Example:

>>> roi = RegionOfInterest.from_mask(np.array([[-1000, -990], [-960, 40]]),
...                                  np.array([[1, 1], [1, 0]]))
>>> roi.levels.tolist(), roi.values.tolist()
([1, 1, 2], [-1000.0, -990.0, -960.0])
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np

DEFAULT_BIN_WIDTH = 25.0
"""pyradiomics' default ``binWidth``, in the image's unit (HU)."""
DIRECTIONS = tuple(offset for offset in itertools.product((-1, 0, 1), repeat=3)
                   if offset > (0, 0, 0))
"""The 13 (slice, row, column) steps of distance 1 whose opposites complete the 26."""


def discretise(values: np.ndarray, bin_width: float = DEFAULT_BIN_WIDTH) -> np.ndarray:
    """Grey levels 1, 2, ... of ``values`` by fixed bin width (module docstring).

    Args:
        values: float array. The region's intensities (HU).
        bin_width: float > 0. Width of a bin, in the unit of ``values``. Defaults to 25.

    Returns:
        int64 array shaped like ``values``.

    Raises:
        ValueError: ``bin_width`` <= 0, or empty or non-finite ``values``.
    """
    values = np.asarray(values, np.float64)
    if not bin_width > 0:
        raise ValueError(f"bin_width must be > 0. Received: bin_width={bin_width}")
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"values must be finite and non-empty. Received: size={values.size}")
    levels = np.floor(values / bin_width)
    return (levels - levels.min() + 1).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class RegionOfInterest:
    """A region's voxels, grey levels and neighbourhood offsets.

    Attributes:
        values: float64 array (voxels,). Intensities in the region, C order.
        levels: int64 array (voxels,). Their grey levels, 1 and up.
        grid: uint16 (int64 beyond 65535 levels) array of the padded bounding box, flattened:
            each voxel's grey level, 0 outside the region.
        index: int64 array (voxels,). Flat index of each region voxel in ``grid``.
        offsets: int64 array (13,). Flat steps of ``DIRECTIONS`` in ``grid``.
    """

    values: np.ndarray
    levels: np.ndarray
    grid: np.ndarray
    index: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_mask(cls, image: np.ndarray, mask: np.ndarray,
                  bin_width: float = DEFAULT_BIN_WIDTH) -> RegionOfInterest:
        """Bins the voxels of ``image`` where ``mask`` is nonzero.

        Args:
            image: array (slices, rows, columns) or (rows, columns). Intensities (HU).
            mask: array of the same shape; nonzero inside the region.
            bin_width: float > 0. Defaults to 25.

        Raises:
            ValueError: shapes that differ or are not 2-D or 3-D, an empty mask, non-finite
                intensities inside it, or ``bin_width`` <= 0.
        """
        image, mask = np.asarray(image), np.asarray(mask) != 0
        if image.shape != mask.shape or image.ndim not in (2, 3):
            raise ValueError(f"image and mask must be 2-D or 3-D arrays of one shape. "
                             f"Received: image shape={image.shape}, mask shape={mask.shape}")
        if image.ndim == 2:
            image, mask = image[None], mask[None]
        if not mask.any():
            raise ValueError("mask has no voxel; the region is empty")
        box = tuple(slice(where.min(), where.max() + 1) for where in np.nonzero(mask))
        mask = np.pad(mask[box], 1)
        values = np.pad(image[box], 1)[mask].astype(np.float64)
        levels = discretise(values, bin_width)
        dtype = np.uint16 if levels.max() <= np.iinfo(np.uint16).max else np.int64
        grid = np.zeros(mask.size, dtype)
        index = np.flatnonzero(mask)
        grid[index] = levels
        strides = np.array([mask.shape[1] * mask.shape[2], mask.shape[2], 1])
        offsets = np.array(DIRECTIONS) @ strides
        return cls(values, levels, grid, index, offsets)

    def neighbours(self, offset: int) -> np.ndarray:
        """Grey level of each voxel's neighbour ``offset`` away in ``grid``, 0 outside, in
        ``grid``'s dtype: ``grid[index + offset]``, gathered from a view that starts
        ``offset`` further on (no index array is added up)."""
        return self.grid[self._reach + offset:][self._index_from_reach]

    @functools.cached_property
    def neighbourhood(self) -> Neighbourhood:
        """Counts over each voxel's 26 neighbours inside the region, computed once."""
        own = self.levels.astype(self.grid.dtype)
        inside = np.zeros(self.levels.size, np.uint8)
        equal = np.zeros(self.levels.size, np.uint8)
        level_sum = np.zeros(self.levels.size, np.int64)
        for offset in np.concatenate([self.offsets, -self.offsets]):
            neighbour = self.neighbours(offset)
            inside += neighbour > 0
            equal += neighbour == own
            level_sum += neighbour
        return Neighbourhood(inside, equal, level_sum)

    def present_levels(self) -> np.ndarray:
        """The grey levels that occur, ascending (int64)."""
        return np.flatnonzero(np.bincount(self.levels))

    @functools.cached_property
    def _reach(self) -> int:
        """The largest step of ``offsets``; no region voxel lies closer to the grid's start,
        as the box is padded by one voxel."""
        return int(np.abs(self.offsets).max())

    @functools.cached_property
    def _index_from_reach(self) -> np.ndarray:
        return self.index - self._reach


@dataclasses.dataclass(frozen=True)
class Neighbourhood:
    """Per-voxel counts over the 26 neighbours at distance 1 that lie inside the region.

    Attributes:
        inside: uint8 array (voxels,). Neighbours inside the region (0 to 26).
        equal: uint8 array (voxels,). Those of the voxel's own grey level.
        level_sum: int64 array (voxels,). Sum of their grey levels.
    """

    inside: np.ndarray
    equal: np.ndarray
    level_sum: np.ndarray
