"""Lung parenchyma from a CT in Hounsfield units, with no trained weights (issue 6).

A classical segmenter in the spirit of Hu, Hoffman and Reinhardt (IEEE TMI 2001), written with
SciPy. ``segment_lungs`` works on a volume ``(slices, rows, columns)`` in the
readers' orientation (``tfcovid.data.readers.orientation``: rows anterior -> posterior, columns
patient right -> left, so the patient's right lung lies on the image's *left*):

1. **Threshold**: voxels below ``threshold_hu`` (-320 HU) are air-like.
2. **Outside air**: per slice, air-like regions touching the image border (room air, the
   out-of-field-of-view padding, air under the table) are removed.
3. **Airways**: per slice, regions no larger than ``max_airway_area_mm2`` (the trachea and
   main bronchi) are removed when their median is below ``airway_hu`` (-950 HU: lung
   parenchyma is about -900 .. -700 HU, an airway's lumen -1000 HU) or their centroid lies
   within ``airway_midline_mm`` of the body's midline (the trachea, whose partial volume lifts
   its median in coarse or thick slices; lung lies beside the mediastinum, not on it).
4. **Two lungs**: the two largest 3-D components (6-connected) are the lungs;
   a second component is kept when it lies across the body's midline from the first and holds
   at least ``min_lung_fraction`` of its volume (so one lung alone, or a small collapsed lung,
   still works). When the largest component spans both sides of the midline (lungs touching at
   the anterior junction), each slice of it is cut at its narrowest column near the midline.
5. **Smoothing**, per slice: before step 4 an opening (``opening_mm``) drops noise specks and
   thin bridges; after it, per lung, a closing (``closing_mm``) and the filling of holes up to
   ``max_hole_mm2`` take in vessels, airways inside the lung and lesions, including
   consolidation against the pleura, which a threshold alone cuts out (up to about the
   closing radius deep; larger pleural consolidation stays out, a limit of any classical
   segmenter). Larger holes are other organs: a diaphragm dome ringed by the lung's recess.
6. **Sides**: the lung whose centroid lies at the smaller column is the right lung (label 1),
   the other the left lung (label 2); a single lung is named by the side of the body's midline
   it lies on.

``label_lungs`` runs steps 4 and 6 alone, to split a binary lung mask (a store's ``lung``).
Slices without lung come back as zeros. Distances are in mm through ``spacing_mm``; without it
a voxel counts as 1 mm along every axis.

Example:

>>> volume = np.full((3, 40, 56), -1000, np.int16)          # room air
>>> volume[:, 4:36, 4:52] = 40                               # body (soft tissue)
>>> volume[:, 10:30, 8:24] = -850                            # patient's right lung
>>> volume[:, 10:30, 32:48] = -850                           # patient's left lung
>>> labels = segment_lungs(volume, spacing_mm=(5.0, 2.0, 2.0))
>>> [int(np.count_nonzero(labels == side)) for side in (RIGHT_LUNG, LEFT_LUNG)]
[960, 960]
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

BACKGROUND, RIGHT_LUNG, LEFT_LUNG = 0, 1, 2
"""Label values: 0 outside the lungs, 1 the patient's right lung, 2 the patient's left lung."""
LUNG_NAMES = {RIGHT_LUNG: "right", LEFT_LUNG: "left"}

_FACE_CONNECTED = ndimage.generate_binary_structure(3, 1)
_IN_PLANE = np.pad(ndimage.generate_binary_structure(2, 1)[None], ((1, 1), (0, 0), (0, 0)))
"""3-D structure joining the 4-neighbours within a slice only: one labelling of a volume
gives each slice's 2-D regions."""


def segment_lungs(volume_hu: np.ndarray, spacing_mm: Sequence[float] | None = None,
                  threshold_hu: float = -320.0, airway_hu: float = -950.0,
                  max_airway_area_mm2: float = 1000.0, airway_midline_mm: float = 15.0,
                  min_lung_fraction: float = 0.01, opening_mm: float = 1.0,
                  closing_mm: float = 12.0, max_hole_mm2: float = 2500.0) -> np.ndarray:
    """Right and left lung of a CT volume or slice (module docstring).

    Args:
        volume_hu: array (slices, rows, columns) or (rows, columns), integer or float, in HU.
        spacing_mm: (slice, row, column) voxel size in mm ((row, column) for a 2-D slice), or
            None for 1 mm. Defaults to None.
        threshold_hu: float. Air-like below this, in HU. Defaults to -320.
        airway_hu: float. A small region with its median below this (HU) is an airway.
            Defaults to -950.
        max_airway_area_mm2: float >= 0. Largest airway cross-section, in mm^2. Defaults to
            1000 (a 36 mm disc; the adult trachea is 15-25 mm wide).
        airway_midline_mm: float >= 0. A small region whose centroid lies this close to the
            body's midline is an airway whatever its median: in thick or coarse slices the
            trachea's partial volume lifts it above ``airway_hu``. Defaults to 15 mm.
        min_lung_fraction: float in [0, 1]. Smallest second lung, as a fraction of the first
            lung's volume. Defaults to 0.01.
        opening_mm: float >= 0. Radius of the per-slice opening disc, in mm. Defaults to 1.
        closing_mm: float >= 0. Radius of the per-slice closing disc, in mm. Defaults to 12.
        max_hole_mm2: float >= 0. Largest hole filled inside a lung cross-section, in mm^2.
            Defaults to 2500 (a 56 mm disc).

    Returns:
        uint8 array shaped like ``volume_hu``: 0 outside, 1 right lung, 2 left lung.

    Raises:
        ValueError: not a 2-D or 3-D numeric array, NaN or infinite values, or a spacing or
            parameter out of range.
    """
    volume, spacing, squeeze = _as_volume(volume_hu, spacing_mm)
    settings = _check_settings(min_lung_fraction=min_lung_fraction, opening_mm=opening_mm,
                               closing_mm=closing_mm, max_hole_mm2=max_hole_mm2)
    _check_settings(max_airway_area_mm2=max_airway_area_mm2, airway_midline_mm=airway_midline_mm)
    air = volume < threshold_hu
    body = ~_border_connected(air)
    air &= body
    midline_px = _centroid_column(body, np.arange(volume.shape[2]))
    box = _bounding_box(air, 0)
    if box is not None:  # a view of ``air``: the airways are cleared in place
        _remove_airways(air[box], volume[box], airway_hu,
                        max_airway_area_mm2 / (spacing[1] * spacing[2]),
                        midline_px - box[2].start, airway_midline_mm / spacing[2])
    labels = _label_sides(air, body, spacing, settings)
    return labels[0] if squeeze else labels


def label_lungs(mask: np.ndarray, spacing_mm: Sequence[float] | None = None,
                min_lung_fraction: float = 0.01) -> np.ndarray:
    """Splits a binary lung mask into right (1) and left (2) lung, keeping its voxels as they are.

    For per-lung results from a store's ``lung`` mask (1 inside parenchyma). Steps 4 and 6 of
    the module docstring find and name the lungs, with the image's centre column as the
    midline (a mask has no body to measure); no voxel is added or removed: voxels outside the
    two lungs found (small pieces, a second lung below ``min_lung_fraction``) take the label
    of the nearest lung voxel.

    Args:
        mask: integer or bool array (slices, rows, columns) or (rows, columns); nonzero inside
            the lungs.
        spacing_mm, min_lung_fraction: as ``segment_lungs``.

    Returns:
        uint8 array shaped like ``mask``: 0 where ``mask`` is 0, else 1 right lung or 2 left
        lung.

    Raises:
        ValueError: as ``segment_lungs``.
    """
    volume, spacing, squeeze = _as_volume(mask, spacing_mm, allow_bool=True)
    settings = _check_settings(min_lung_fraction=min_lung_fraction, opening_mm=0.0,
                               closing_mm=0.0, max_hole_mm2=0.0)
    lungs = volume != 0
    labels = _label_sides(lungs, np.ones_like(lungs), spacing, settings)
    if labels.any() and (lungs & (labels == BACKGROUND)).any():
        nearest = ndimage.distance_transform_edt(labels == BACKGROUND, sampling=spacing,
                                                 return_distances=False, return_indices=True)
        labels = np.where(lungs, labels[tuple(nearest)], BACKGROUND).astype(np.uint8)
    return labels[0] if squeeze else labels


def holds_labels(values: np.ndarray, highest: int = 2) -> bool:
    """Whether ``values`` is an integer array of labels 0 .. ``highest`` (checked by its minimum
    and maximum: on a whole volume, several times faster than ``np.isin``)."""
    values = np.asarray(values)
    return bool(np.issubdtype(values.dtype, np.integer)
                and (values.size == 0 or (values.min() >= 0 and values.max() <= highest)))


def _check_settings(**settings: float) -> dict:
    """Returns ``settings``; raises ValueError for a negative one or a fraction above 1."""
    for name, value in settings.items():
        high = 1.0 if name.endswith("fraction") else np.inf
        if not 0.0 <= value <= high:
            raise ValueError(f"{name} must lie in [0, {high}]. Received: {name}={value}")
    return settings


def _as_volume(array: np.ndarray, spacing_mm, allow_bool: bool = False
               ) -> tuple[np.ndarray, tuple[float, ...], bool]:
    """Checks the input; returns it as 3-D, the 3-D spacing and whether it was 2-D."""
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an array (slices, rows, columns) or (rows, columns). "
                         f"Received: shape={array.shape}")
    numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if not (numeric or (allow_bool and array.dtype == bool)):
        raise ValueError(f"expected an integer or float array. Received: dtype={array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ValueError(f"expected finite values. Received: "
                         f"{np.count_nonzero(~np.isfinite(array))} NaN or infinite values")
    if min(array.shape) == 0:
        raise ValueError(f"expected a non-empty array. Received: shape={array.shape}")
    squeeze = array.ndim == 2
    if spacing_mm is None:
        spacing = (1.0,) * 3
    else:
        spacing = tuple(float(value) for value in spacing_mm)
        if len(spacing) != array.ndim or not all(value > 0 for value in spacing):
            raise ValueError(f"spacing_mm must hold {array.ndim} positive sizes in mm. "
                             f"Received: spacing_mm={spacing_mm}")
        if squeeze:
            spacing = (1.0,) + spacing
    return (array[None] if squeeze else array), spacing, squeeze


def _border_connected(air: np.ndarray) -> np.ndarray:
    """The regions of each slice of a 3-D ``air`` mask that touch the image border."""
    regions, count = ndimage.label(air, _IN_PLANE)
    touching = np.zeros(count + 1, bool)
    for edge in (regions[:, 0], regions[:, -1], regions[:, :, 0], regions[:, :, -1]):
        touching[edge] = True
    touching[0] = False
    return touching[regions]


def _remove_airways(air: np.ndarray, volume: np.ndarray, airway_hu: float,
                    max_area_px: float, midline_px: float, midline_band_px: float) -> None:
    """Clears, in place, the airways of each slice of a 3-D ``air`` mask (see
    ``segment_lungs``): regions of one slice no larger than ``max_area_px`` whose median HU is
    below ``airway_hu`` or whose centroid column lies within ``midline_band_px`` of
    ``midline_px``."""
    regions, count = ndimage.label(air, _IN_PLANE)
    if count == 0:
        return
    flat = regions.ravel()
    areas = np.bincount(flat, minlength=count + 1)
    small = areas <= max_area_px
    small[0] = False
    inside = np.flatnonzero(small[flat])  # voxels of small regions, a small share of the air
    if inside.size == 0:
        return
    labels = flat[inside]
    centroids = (np.bincount(labels, inside % air.shape[2], count + 1)
                 / np.maximum(areas, 1))
    airway = small & (np.abs(centroids - midline_px) <= midline_band_px)
    dark = ~airway[labels]
    if dark.any():
        airway[np.unique(labels[dark])] = _median_per_label(
            labels[dark], volume.ravel()[inside[dark]]) < airway_hu
    air[airway[regions]] = False


def _median_per_label(labels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Median of ``values`` per distinct label, in increasing label order (the mean of the two
    middle values for an even count, as ``np.median``)."""
    order = np.lexsort((values, labels))
    labels, values = labels[order], values[order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    counts = np.diff(np.r_[starts, labels.size])
    return (values[starts + (counts - 1) // 2] + values[starts + counts // 2]) / 2


def _label_sides(candidates: np.ndarray, body: np.ndarray, spacing: tuple[float, ...],
                 settings: dict) -> np.ndarray:
    """Steps 4-6 of the module docstring on a 3-D candidate mask.

    They run inside the candidates' bounding box, grown in-plane by the reach of the opening and
    closing discs and a background margin, which gives the same labels as the whole volume:
    nothing outside the box is a candidate or within a disc's reach of one.
    """
    labels = np.zeros(candidates.shape, np.uint8)
    midline = _centroid_column(body, np.arange(candidates.shape[2]))
    reach_mm = max(settings["opening_mm"], settings["closing_mm"])
    box = _bounding_box(candidates, int(np.ceil(reach_mm / min(spacing[1:]))) + 2)
    if box is not None:
        labels[box] = _label_sides_in_box(candidates[box], body[box], midline - box[2].start,
                                          spacing, settings)
    return labels


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice] | None:
    """The slices holding ``mask`` and its rows and columns grown by ``margin`` px (within
    the array), or None for an empty mask."""
    box = []
    for axis, grow in zip(range(3), (0, margin, margin)):
        present = np.flatnonzero(mask.any(axis=tuple(other for other in range(3)
                                                     if other != axis)))
        if present.size == 0:
            return None
        box.append(slice(max(present[0] - grow, 0), present[-1] + grow + 1))
    return tuple(box)


def _label_sides_in_box(candidates: np.ndarray, body: np.ndarray, midline: float,
                        spacing: tuple[float, ...], settings: dict) -> np.ndarray:
    """`_label_sides` on a box, ``midline`` in the box's column coordinates."""
    labels = np.zeros(candidates.shape, np.uint8)
    columns = np.arange(candidates.shape[2])
    opened = _opening(candidates, settings["opening_mm"], spacing[1:])
    regions, count = ndimage.label(opened, _FACE_CONNECTED)
    if count == 0:
        return labels
    sizes = np.bincount(regions.ravel())[1:]
    order = np.argsort(sizes, kind="stable")[::-1]
    first = regions == order[0] + 1
    lungs = _split_at_midline(first, midline)
    if lungs is None:
        lungs = [first]
        if count > 1 and sizes[order[1]] >= settings["min_lung_fraction"] * sizes[order[0]]:
            second = regions == order[1] + 1
            if (_centroid_column(second, columns) - midline) \
                    * (_centroid_column(first, columns) - midline) < 0:
                lungs.append(second)
    # SciPy's morphology releases the GIL, so the two lungs are smoothed side by side: about
    # 1.8x faster on two cores
    with concurrent.futures.ThreadPoolExecutor(len(lungs), "tfcovid-lung") as pool:
        lungs = list(pool.map(lambda lung: _smooth(lung, body, spacing, settings["closing_mm"],
                                                   settings["max_hole_mm2"]), lungs))
    centroids = [_centroid_column(lung, columns) for lung in lungs]
    if len(lungs) == 1:
        sides = [RIGHT_LUNG if centroids[0] < midline else LEFT_LUNG]
    else:
        sides = [RIGHT_LUNG, LEFT_LUNG] if centroids[0] < centroids[1] else [LEFT_LUNG,
                                                                             RIGHT_LUNG]
    for lung, side in zip(lungs, sides):
        labels[lung & (labels == BACKGROUND)] = side
    return labels


def _split_at_midline(component: np.ndarray, midline: float) -> list[np.ndarray] | None:
    """Cuts a component spanning both sides of the midline into two, or returns None.

    It spans both sides when each holds at least a quarter of its voxels; then each slice's
    cross-section is cut at the column with the fewest voxels within the middle third of the
    component's column range (the one nearest the midline among equals); the cut column goes
    to the left lung.
    """
    columns = np.nonzero(component.any(axis=(0, 1)))[0]
    counts = component.sum(axis=(0, 1))
    right = counts[:max(int(np.floor(midline)) + 1, 0)].sum()
    if min(right, counts.sum() - right) < 0.25 * counts.sum():
        return None
    width = columns[-1] - columns[0] + 1
    low = max(columns[0] + width // 3, 0)
    high = min(columns[-1] - width // 3, component.shape[2] - 1)
    right_part = np.zeros_like(component)
    for index in np.nonzero(component.any(axis=(1, 2)))[0]:
        profile = component[index].sum(axis=0)[low:high + 1]
        narrowest = low + np.flatnonzero(profile == profile.min())
        cut = int(narrowest[np.argmin(np.abs(narrowest + 0.5 - midline))])
        right_part[index, :, :cut] = component[index, :, :cut]
    return [right_part, component & ~right_part]


def _smooth(lung: np.ndarray, body: np.ndarray, spacing: tuple[float, ...],
            closing_mm: float, max_hole_mm2: float) -> np.ndarray:
    """Closing and filling of holes up to ``max_hole_mm2`` per slice, kept inside the body.

    Each slice is worked on in its lung's bounding box, grown by the closing's reach and a
    background margin: nothing beyond it can change the result, and the box is a fraction of
    the image.
    """
    smoothed = np.zeros(lung.shape, bool)  # not zeros_like: it writes pages no box reaches
    max_hole_px = max_hole_mm2 / (spacing[1] * spacing[2])
    margin = int(np.ceil(closing_mm / min(spacing[1:]))) + 1
    for index in np.nonzero(lung.any(axis=(1, 2)))[0]:
        box = _bounding_box(lung[index][None], margin)[1:]
        plane = _closing(lung[index][box], closing_mm, spacing[1:])
        holes, count = ndimage.label(ndimage.binary_fill_holes(plane) & ~plane)
        if count:
            areas = np.bincount(holes.ravel())
            areas[0] = max_hole_px + 1
            plane |= (areas <= max_hole_px)[holes]
        smoothed[index][box] = plane & body[index][box]
    return smoothed


def _opening(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Opening of each slice of a 3-D mask by a disc of ``radius_mm`` (the pixels whose centres
    lie within ``radius_mm`` of the disc's centre, ``spacing`` (row, column) apart); pixels
    beyond the image border count as inside for the erosion."""
    disc = _disc(radius_mm, spacing)
    return _by_disc_rows(_by_disc_rows(mask, disc, erode=True), disc, erode=False)


def _by_disc_rows(mask: np.ndarray, disc: np.ndarray, erode: bool) -> np.ndarray:
    """Erosion (pixels beyond the border inside) or dilation (beyond the border outside) of
    each slice of a 3-D mask by a `_disc`, as `ndimage.binary_erosion` and
    `ndimage.binary_dilation` with ``border_value`` 1 and 0 give it.

    A pixel's value combines (AND to erode, OR to dilate) the pixels at the disc's offsets
    from it (a disc is its own mirror image). Each row of a disc is one centred run of
    columns, so the combination over a row is a 1-D minimum or maximum filter along the
    columns, read ``offset`` rows away: on a scan's air, 2.8x faster than SciPy's morphology
    for the 3 x 3 square disc (1 mm at 0.7 mm pixels), 1.6x for the 3 x 3 cross (0.75 mm).
    """
    combine, filter_1d = ((np.logical_and, ndimage.minimum_filter1d) if erode
                          else (np.logical_or, ndimage.maximum_filter1d))
    combined = np.full(mask.shape, erode)
    along_columns = {}
    for offset, width in zip(range(-(disc.shape[0] // 2), disc.shape[0] // 2 + 1),
                             disc.sum(axis=1)):
        overlap = mask.shape[1] - abs(offset)  # rows that have a row ``offset`` away
        if overlap <= 0:
            continue
        if width not in along_columns:
            along_columns[width] = filter_1d(mask, int(width), axis=2, mode="constant",
                                             cval=erode)
        target = slice(max(-offset, 0), max(-offset, 0) + overlap)
        source = slice(max(offset, 0), max(offset, 0) + overlap)
        combine(combined[:, target], along_columns[width][:, source],
                out=combined[:, target])
    return combined


def _disc(radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Boolean (2 r + 1, 2 c + 1) disc of ``radius_mm`` for pixels ``spacing`` (row, column)
    mm apart."""
    reach = [int(np.floor(radius_mm / size)) for size in spacing]
    rows, columns = np.ogrid[-reach[0]:reach[0] + 1, -reach[1]:reach[1] + 1]
    return np.sqrt((rows * spacing[0]) ** 2 + (columns * spacing[1]) ** 2) <= radius_mm


def _closing(plane: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Closing by a disc of ``radius_mm``; the image border does not erode (padded with 0).

    The disc is large (about 27 px across at the default radius), so the dilation and erosion
    threshold Euclidean distance maps, which cost the same whatever the radius."""
    pad = int(np.ceil(radius_mm / min(spacing))) + 1
    dilated = _distance(~np.pad(plane, pad), spacing) <= radius_mm
    closed = _distance(dilated, spacing) > radius_mm
    return closed[pad:-pad, pad:-pad] | plane


def _distance(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance in mm from each pixel of ``mask`` to the nearest pixel outside it (0 outside)."""
    if mask.all():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(mask, sampling=spacing)


def _centroid_column(mask: np.ndarray, columns: np.ndarray) -> float:
    counts = mask.sum(axis=(0, 1))
    return float((counts * columns).sum() / max(counts.sum(), 1))
