"""CT severity score (CT-SS) from an opacity mask and right/left lung labels (issue 6).

The seed papers score 20 lung regions (from a lobe and segment map) 0/1/2 by opacified fraction,
a total of 0-40 (spec section 9.2, background only). Without a lobe map this module uses an
**approximation with 12 regions**, 6 per lung:

- 3 zones along the slice axis, upper / middle / lower, by thirds of the slices the lung spans
  (a voxel in slice z of a lung spanning slices z0 .. z1 is in third
  ``floor(3 (z - z0) / (z1 - z0 + 1))``, counted from the superior end);
- 2 parts, anterior / posterior, split at the middle of the rows the lung spans over the whole
  volume (rows run anterior -> posterior in the readers' orientation).

Each region scores 0 when none of its lung voxels is opacified, 1 when less than half is, 2
when half or more is; the total is 0-24. A region without lung voxels (a missing lung, or a
lung over fewer than 3 slices) scores 0 with ``opacified_fraction`` None.

Example:

>>> lung = np.zeros((6, 4, 3), np.uint8); lung[:, :, 0] = 1; lung[:, :, 2] = 2
>>> opacity = np.zeros_like(lung); opacity[4:6, 0:2, 0] = 1     # right lung, rows 0-1
>>> score = ct_severity_score(opacity, lung, slice_order="inferior_to_superior")
>>> score.total, [(r["zone"], r["part"], r["score"]) for r in score.regions if r["score"]]
(2, [('upper', 'anterior', 2)])
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from tfcovid.severity.lung import LEFT_LUNG, LUNG_NAMES, RIGHT_LUNG, holds_labels

ZONES = ("upper", "middle", "lower")
PARTS = ("anterior", "posterior")


@dataclasses.dataclass(frozen=True)
class CTSeverityScore:
    """A CT severity score with its regions.

    Attributes:
        total: int in [0, 24]. Sum of the region scores.
        regions: 12 dicts, right lung first, then zone (upper, middle, lower), then part
            (anterior, posterior): ``lung`` ("right" or "left"), ``zone``, ``part``,
            ``lung_voxels``, ``opacified_voxels``, ``opacified_fraction`` (float in [0, 1],
            None without lung voxels) and ``score`` (0, 1 or 2).
    """

    total: int
    regions: list[dict]


def ct_severity_score(opacity: np.ndarray, lung: np.ndarray,
                      slice_order: Literal["inferior_to_superior",
                                           "superior_to_inferior"] = "inferior_to_superior"
                      ) -> CTSeverityScore:
    """Scores the 12 zone regions of the module docstring.

    Args:
        opacity: integer or bool array (slices, rows, columns); nonzero where opacified (a
            label volume 0 / 1 GGO / 2 consolidation, or a probability map the caller
            thresholded).
        lung: integer array (slices, rows, columns): 0 outside, 1 right lung, 2 left lung
            (``tfcovid.severity.lung``).
        slice_order: which end slice 0 is. "inferior_to_superior" is the readers' orientation
            (``tfcovid.data.readers.orientation``); the phantom's slice 0 is the most cranial,
            "superior_to_inferior". Defaults to "inferior_to_superior".

    Returns:
        ``CTSeverityScore``.

    Raises:
        ValueError: shapes that differ or are not 3-D, float opacity, lung labels other than
            0, 1, 2, or an unknown ``slice_order``.
    """
    opacity, lung = np.asarray(opacity), np.asarray(lung)
    if slice_order not in ("inferior_to_superior", "superior_to_inferior"):
        raise ValueError(f"slice_order must be 'inferior_to_superior' or "
                         f"'superior_to_inferior'. Received: slice_order={slice_order!r}")
    if lung.ndim != 3 or opacity.shape != lung.shape:
        raise ValueError(f"opacity and lung must be arrays (slices, rows, columns) of one "
                         f"shape. Received: opacity shape={opacity.shape}, "
                         f"lung shape={lung.shape}")
    if not (opacity.dtype == bool or np.issubdtype(opacity.dtype, np.integer)):
        raise ValueError(f"opacity must be integer or bool (threshold probabilities first). "
                         f"Received: dtype={opacity.dtype}")
    if not holds_labels(lung):
        raise ValueError(f"lung must be integer labels 0, 1, 2. Received: dtype={lung.dtype}")
    if slice_order == "inferior_to_superior":
        opacity, lung = opacity[::-1], lung[::-1]
    regions = []
    opacified = opacity != 0
    for side in (RIGHT_LUNG, LEFT_LUNG):
        inside = lung == side
        # voxels per (slice, row): a region is a set of whole slice rows
        lung_counts = np.count_nonzero(inside, axis=2)
        opacified_counts = np.count_nonzero(inside & opacified, axis=2)
        zone_of, part_of = _zone_and_part(lung_counts)
        for zone_index, zone in enumerate(ZONES):
            for part_index, part in enumerate(PARTS):
                region = (zone_of == zone_index) & (part_of == part_index)
                lung_voxels = int(lung_counts[region].sum())
                opacified_voxels = int(opacified_counts[region].sum())
                fraction = opacified_voxels / lung_voxels if lung_voxels else None
                score = 0 if not opacified_voxels else 1 if fraction < 0.5 else 2
                regions.append({"lung": LUNG_NAMES[side], "zone": zone, "part": part,
                                "lung_voxels": lung_voxels,
                                "opacified_voxels": opacified_voxels,
                                "opacified_fraction": fraction, "score": score})
    return CTSeverityScore(total=sum(region["score"] for region in regions), regions=regions)


def _zone_and_part(lung_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zone index (slices, 1) and part index (1, rows) grids of one lung, superior first, from
    its voxel counts per (slice, row).

    Outside the lung's extent both are -1.
    """
    slices = np.nonzero(lung_counts.any(axis=1))[0]
    rows = np.nonzero(lung_counts.any(axis=0))[0]
    zone = np.full((lung_counts.shape[0], 1), -1)
    part = np.full((1, lung_counts.shape[1]), -1)
    if slices.size:
        span = slices[-1] - slices[0] + 1
        zone[slices[0]:slices[-1] + 1, 0] = 3 * np.arange(span) // span
        middle = rows[0] + (rows[-1] - rows[0] + 1) / 2
        part[0, rows[0]:rows[-1] + 1] = np.arange(rows[0], rows[-1] + 1) >= middle
    return zone, part
