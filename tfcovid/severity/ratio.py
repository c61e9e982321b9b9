"""Infected fraction of the lung, per slice, per lung and per case (spec section 9.2; issue 6).

The ratio is the infection inside the lung over the lung's area (or volume), a number in [0, 1]:

- ``mode="soft"``: the sum of infection probability over lung voxels / the lung voxel count, as
  the reference (spec 9.2: ratio = sum of p over |P|), but at one resolution and inside the lung
  mask only;
- ``mode="area"``: the count of lung voxels predicted infected / the lung voxel count, a
  voxel being infected when its probability reaches ``threshold`` (one infection map) or when
  GGO or consolidation is its most probable class (class probabilities).

A label volume (0 background, 1 ground-glass opacity, 2 consolidation) is its own one-hot
probability map, so both modes give the labelled area. Voxels count equally: on a volume of
equal voxels the case ratio is a volume fraction; no spacing is needed.

Classes, in this order: "infection" (GGO and consolidation together), then "ggo" and
"consolidation" when the input tells them apart. Lungs, in this order: right (label 1), left
(label 2) of ``tfcovid.severity.lung``. A ratio over no lung voxel (a slice without lung, an
absent lung) is NaN.

Example:

>>> labels = np.array([[[0, 1, 2, 0]]])                     # one slice, 1 x 4 px
>>> lung = np.array([[[1, 1, 2, 2]]])                       # right lung 2 px, left lung 2 px
>>> ratios = infection_ratios(labels, lung)
>>> ratios.classes, ratios.per_case.tolist(), ratios.per_lung.tolist()
(('infection', 'ggo', 'consolidation'), [0.5, 0.25, 0.25], [[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]])
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from tfcovid.severity.lung import LEFT_LUNG, LUNG_NAMES, RIGHT_LUNG, holds_labels

INFECTION_CLASSES = ("infection", "ggo", "consolidation")
_PROBABILITY_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class InfectionRatios:
    """Infected fractions of lung; NaN where there is no lung voxel.

    Attributes:
        classes: ("infection",) or ("infection", "ggo", "consolidation"): the last axis below.
        per_case: array (classes,): over every lung voxel of the volume.
        per_lung: array (2, classes): right lung, then left lung.
        per_slice: array (slices, classes): both lungs of each slice.
        per_slice_lung: array (slices, 2, classes).
        lung_voxels: int array (slices, 2): lung voxels of each slice, right then left.
    """

    classes: tuple[str, ...]
    per_case: np.ndarray
    per_lung: np.ndarray
    per_slice: np.ndarray
    per_slice_lung: np.ndarray
    lung_voxels: np.ndarray

    def to_dict(self) -> dict:
        """The ratios as a JSON-ready dict, NaN written as None.

        Returns:
            ``{"case": {class: ratio}, "lungs": {"right": {class: ratio}, "left": {...}},
            "slices": [{"index", "lung_voxels", "ratios", "right", "left"}, ...]}``.
        """
        def named(values):
            return {name: None if np.isnan(value) else float(value)
                    for name, value in zip(self.classes, values)}
        lung_names = [LUNG_NAMES[RIGHT_LUNG], LUNG_NAMES[LEFT_LUNG]]
        slices = [{"index": index, "lung_voxels": int(self.lung_voxels[index].sum()),
                   "ratios": named(self.per_slice[index]),
                   **{name: named(self.per_slice_lung[index, side])
                      for side, name in enumerate(lung_names)}}
                  for index in range(self.per_slice.shape[0])]
        return {"case": named(self.per_case),
                "lungs": {name: named(self.per_lung[side])
                          for side, name in enumerate(lung_names)},
                "slices": slices}


def infection_ratios(infection: np.ndarray, lung: np.ndarray,
                     mode: Literal["soft", "area"] = "soft",
                     threshold: float = 0.5) -> InfectionRatios:
    """Infected fraction of the lung by slice, lung and class (module docstring).

    Args:
        infection: one of
            - float array (slices, rows, columns): infection probability in [0, 1];
            - float array (slices, rows, columns, 3): class probabilities (background, GGO,
              consolidation), each voxel summing to 1 (``tfcovid.inference.class_probabilities``);
            - integer array (slices, rows, columns): labels 0 background, 1 GGO,
              2 consolidation.
            A single slice may drop the leading slice axis.
        lung: integer array (slices, rows, columns): 0 outside, 1 right lung, 2 left lung
            (``segment_lungs``, or ``label_lungs`` for a binary mask, which otherwise counts
            as right lung only).
        mode: "soft" (sum of probabilities) or "area" (count of infected voxels). Defaults to
            "soft".
        threshold: float in (0, 1]. Infection probability that makes a voxel infected in
            "area" mode with one infection map. Defaults to 0.5.

    Returns:
        ``InfectionRatios``.

    Raises:
        ValueError: shapes that do not match, probabilities outside [0, 1] or not summing to 1
            (logits passed by mistake), labels other than 0, 1, 2, an unknown ``mode``, or a
            lung mask with no lung voxel at all (the case ratio is undefined).
    """
    if mode not in ("soft", "area"):
        raise ValueError(f"mode must be 'soft' or 'area'. Received: mode={mode!r}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1]. Received: threshold={threshold}")
    lung = np.asarray(lung)
    if lung.ndim == 2:
        lung = lung[None]
    if lung.ndim != 3 or not holds_labels(lung):
        raise ValueError(f"lung must be integer labels (slices, rows, columns) with values 0, "
                         f"1, 2. Received: shape={lung.shape}, dtype={lung.dtype}")
    class_maps = _class_maps(np.asarray(infection), lung.shape, mode, threshold)
    # one region per slice and side, 3 * slice + side, over the lung voxels; sums in float64
    inside = np.flatnonzero(lung)
    if inside.size == 0:
        raise ValueError("lung mask has no lung voxel; the infection ratio is undefined")
    regions = lung.ravel()[inside] + 3 * (inside // (lung.shape[1] * lung.shape[2]))
    index = (3 * np.arange(lung.shape[0])[:, None] + np.array([RIGHT_LUNG, LEFT_LUNG])).ravel()
    lung_voxels = np.bincount(regions, minlength=3 * lung.shape[0])[index].reshape(-1, 2)
    sums = np.stack([np.bincount(regions, class_map.ravel()[inside], 3 * lung.shape[0])[index]
                     .reshape(-1, 2) for class_map in class_maps], axis=-1)  # (slices, 2, classes)
    return InfectionRatios(
        classes=INFECTION_CLASSES[:len(class_maps)],
        per_case=_divide(sums.sum(axis=(0, 1)), lung_voxels.sum()),
        per_lung=_divide(sums.sum(axis=0), lung_voxels.sum(axis=0)[:, None]),
        per_slice=_divide(sums.sum(axis=1), lung_voxels.sum(axis=1)[:, None]),
        per_slice_lung=_divide(sums, lung_voxels[..., None]),
        lung_voxels=lung_voxels)


def _class_maps(infection: np.ndarray, shape: tuple[int, ...], mode: str,
                threshold: float) -> list[np.ndarray]:
    """Infection per voxel (slices, rows, columns) of each class, as listed in ``classes``."""
    voxel_shapes = [shape] + ([shape[1:]] if shape[0] == 1 else [])
    floating = np.issubdtype(infection.dtype, np.floating)
    if infection.shape in voxel_shapes and np.issubdtype(infection.dtype, np.integer):
        labels = infection.reshape(shape)
        if not holds_labels(labels):
            raise ValueError(f"labels must be 0, 1 or 2. Received: values "
                             f"{np.unique(labels).tolist()}")
        return _label_maps(labels)
    if infection.shape in voxel_shapes and floating:
        probability = infection.reshape(shape)
        _check_probabilities(probability)
        return [probability >= threshold if mode == "area" else probability]
    if infection.shape in [(*voxel_shape, 3) for voxel_shape in voxel_shapes] and floating:
        probabilities = infection.reshape(*shape, 3)
        _check_probabilities(probabilities)
        if np.abs(probabilities.sum(axis=-1, dtype=np.float64) - 1.0).max() \
                > _PROBABILITY_TOLERANCE:
            raise ValueError("class probabilities must sum to 1 over the last axis (softmax, "
                             "not logits)")
        if mode == "area":
            return _label_maps(probabilities.argmax(axis=-1))
        ggo, consolidation = probabilities[..., 1], probabilities[..., 2]
        return [ggo + consolidation, ggo, consolidation]
    raise ValueError(f"infection must be float probabilities (slices, rows, columns) or "
                     f"(slices, rows, columns, 3), or integer labels (slices, rows, columns), "
                     f"matching the lung mask {shape}. Received: shape={infection.shape}, "
                     f"dtype={infection.dtype}")


def _label_maps(labels: np.ndarray) -> list[np.ndarray]:
    return [labels > 0, labels == 1, labels == 2]


def _check_probabilities(values: np.ndarray) -> None:
    if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
        raise ValueError(f"probabilities must lie in [0, 1] (sigmoid or softmax, not logits). "
                         f"Received: range [{np.nanmin(values)}, {np.nanmax(values)}]")


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with NaN where the denominator is 0."""
    denominator = np.broadcast_to(denominator, numerator.shape).astype(np.float64)
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan),
                     where=denominator > 0)
