"""Training augmentation with albumentations, replayable from a stateless seed.

What is drawn, in order (SSInfNet spec section 8.3; StichNet spec section 1.4):

1. with ``crop_probability`` a random square crop of side ``floor(crop_fraction * min(H, W))``
   at a uniformly random position, resized back to (H, W);
2. horizontal flip, vertical flip, rotation by a multiple of 90 degrees, rotation by a uniform
   angle, each with its own probability;
3. random cutout by fraction (SSInfNet ``--random_cutout r``): with ``cutout_probability`` a
   rectangle whose height and width are drawn independently from the integers
   ``0 .. floor(r * min(H, W))``, placed so that it fits, filled with one grey level
   ``g / 255``, ``g`` uniform in 0..255 (the expected erased area is about r^2 / 4);
4. square cutout (StichNet write-up): with ``square_cutout_probability`` a square of a side
   drawn from ``square_cutout_sizes_px``, centred on a uniformly drawn pixel, clipped at the
   border and set to 0.

Geometric steps move every key together: the image, edge and prior are interpolated bilinearly,
the mask, label and lung masks with nearest neighbour. Cutouts change the image only; masks,
edges and priors keep what the hole hides (as in both references). Augmentation runs on a
copy, never in place (SSInfNet's cached images accumulated cutouts; spec section 8.3).

Reproducibility. Every call takes a seed, in the pipeline ``(config seed, stream, epoch,
element index)``; a NumPy ``SeedSequence`` of it seeds the NumPy and Python generators that
albumentations draws from, so the same seed always gives the same augmentation whatever the
thread, order or process. Each thread keeps its own albumentations pipelines, whose transforms
hold per-call state.

Example:

>>> import numpy as np
>>> augmenter = build_augmenter(AugmentConfig())
>>> element = {"image": np.random.default_rng(0).random((40, 56, 1), dtype=np.float32),
...            "mask": np.zeros((40, 56, 1), np.float32)}
>>> first, again = augmenter(element, seed=(0, 3, 17)), augmenter(element, seed=(0, 3, 17))
>>> bool(np.array_equal(first["image"], again["image"])), first["image"].shape
(True, (40, 56, 1))
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
from collections.abc import Sequence

# albumentations asks PyPI for a newer version at import; a library must not reach the network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from albumentations.augmentations.geometric import functional as geometric  # noqa: E402

AUGMENTED_KEYS = ("image", "mask", "label", "lung", "edge", "prior")
_TARGET_TYPES = {"edge": "image", "prior": "image", "label": "mask", "lung": "mask"}
_INTEGER_KEYS = ("label", "lung")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings; the defaults are SSInfNet's single-model fine-tuning recipe.

    SSInfNet's multi-class model uses ``cutout_probability=0.5``; the StichNet write-up uses
    flips with ``square_cutout_sizes_px=(64, 128, 256)`` and no fraction cutout.

    Args:
        crop_probability: float. Chance of the square crop resized back. Defaults to 0.5.
        crop_fraction: float in (0, 1]. Crop side over the shorter image side. Defaults to 0.8.
        horizontal_flip_probability: float. Defaults to 0.5.
        vertical_flip_probability: float. Defaults to 0.5.
        rotate90_probability: float. Chance of a rotation by 0, 90, 180 or 270 degrees (swaps
            height and width of non-square slices). Defaults to 0 (StichNet's code used 0.5).
        rotate_probability: float. Chance of a rotation by a uniform angle. Defaults to 0.
        rotate_limit_degrees: float. The angle is drawn from [-limit, limit]. Defaults to 0.
        cutout_fraction: float in [0, 1]. Largest cutout side over the shorter image side;
            0 turns the fraction cutout off. Defaults to 0.5 (the SSInfNet paper's best).
        cutout_probability: float. Chance of the fraction cutout. Defaults to 1.0.
        square_cutout_sizes_px: tuple of int. Sides of the square cutout in px; empty turns it
            off. Defaults to ().
        square_cutout_probability: float. Chance of the square cutout. Defaults to 0.25.
    """

    crop_probability: float = 0.5
    crop_fraction: float = 0.8
    horizontal_flip_probability: float = 0.5
    vertical_flip_probability: float = 0.5
    rotate90_probability: float = 0.0
    rotate_probability: float = 0.0
    rotate_limit_degrees: float = 0.0
    cutout_fraction: float = 0.5
    cutout_probability: float = 1.0
    square_cutout_sizes_px: tuple[int, ...] = ()
    square_cutout_probability: float = 0.25

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("probability") and not 0 <= value <= 1:
                raise ValueError(f"{field.name} must lie in [0, 1]. Received: "
                                 f"{field.name}={value}")
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f"crop_fraction must lie in (0, 1]. Received: "
                             f"crop_fraction={self.crop_fraction}")
        if not 0 <= self.cutout_fraction <= 1:
            raise ValueError(f"cutout_fraction must lie in [0, 1]. Received: "
                             f"cutout_fraction={self.cutout_fraction}")
        if any(int(size) < 1 for size in self.square_cutout_sizes_px):
            raise ValueError(f"square_cutout_sizes_px must be positive. Received: "
                             f"square_cutout_sizes_px={self.square_cutout_sizes_px}")


class SquareCropResize(A.DualTransform):
    """Random square crop of side ``floor(fraction * min(H, W))``, resized back to (H, W).

    Images and image-like targets are resized bilinearly (half-pixel centres), masks with
    nearest neighbour (half-pixel centres, ``cv2.INTER_NEAREST_EXACT``).
    """

    def __init__(self, fraction: float = 0.8, p: float = 0.5):
        super().__init__(p=p)
        self.fraction = fraction

    def get_params_dependent_on_data(self, params, data):
        height, width = params["shape"][:2]
        side = max(int(self.fraction * min(height, width)), 1)
        top = self.py_random.randint(0, height - side)
        left = self.py_random.randint(0, width - side)
        return {"box": (top, left, top + side, left + side), "size": (height, width)}

    def apply(self, img, box, size, **params):
        top, left, bottom, right = box
        return geometric.resize(img[top:bottom, left:right], size, cv2.INTER_LINEAR)

    def apply_to_mask(self, mask, box, size, **params):
        top, left, bottom, right = box
        return geometric.resize(mask[top:bottom, left:right], size, cv2.INTER_NEAREST_EXACT)

    def get_transform_init_args_names(self):
        return ("fraction",)


class FractionCutout(A.ImageOnlyTransform):
    """SSInfNet's random cutout: an a x b box, a and b uniform in 0..floor(r * min(H, W)).

    The box is placed uniformly so that it fits and is filled with one grey level ``g / 255``
    (``g`` uniform in 0..255), the same in every channel; images are in [0, 1].
    """

    def __init__(self, max_side_fraction: float = 0.5, p: float = 1.0):
        super().__init__(p=p)
        self.max_side_fraction = max_side_fraction

    def get_params_dependent_on_data(self, params, data):
        height, width = params["shape"][:2]
        max_side = int(self.max_side_fraction * min(height, width))
        box_height = self.py_random.randint(0, max_side)
        box_width = self.py_random.randint(0, max_side)
        top = self.py_random.randint(0, height - box_height)
        left = self.py_random.randint(0, width - box_width)
        grey = self.py_random.randint(0, 255) / 255.0
        return {"box": (top, left, top + box_height, left + box_width), "fill": grey}

    def apply(self, img, box, fill, **params):
        top, left, bottom, right = box
        erased = img.copy()
        erased[top:bottom, left:right] = fill
        return erased

    def get_transform_init_args_names(self):
        return ("max_side_fraction",)


class SquareCutout(A.ImageOnlyTransform):
    """StichNet's cutout: a square of a side drawn from ``sizes_px`` set to 0.

    The square is centred on a uniformly drawn pixel (top-left ``centre - side // 2``) and
    clipped at the image border.
    """

    def __init__(self, sizes_px: Sequence[int] = (64, 128, 256), p: float = 0.25):
        super().__init__(p=p)
        self.sizes_px = tuple(int(size) for size in sizes_px)

    def get_params_dependent_on_data(self, params, data):
        height, width = params["shape"][:2]
        side = self.py_random.choice(self.sizes_px)
        top = self.py_random.randint(0, height - 1) - side // 2
        left = self.py_random.randint(0, width - 1) - side // 2
        return {"box": (max(top, 0), max(left, 0), min(top + side, height),
                        min(left + side, width))}

    def apply(self, img, box, **params):
        top, left, bottom, right = box
        erased = img.copy()
        erased[top:bottom, left:right] = 0
        return erased

    def get_transform_init_args_names(self):
        return ("sizes_px",)


def _geometric_steps(config: AugmentConfig) -> list:
    steps = []
    if config.crop_probability > 0:
        steps.append(SquareCropResize(config.crop_fraction, p=config.crop_probability))
    if config.horizontal_flip_probability > 0:
        steps.append(A.HorizontalFlip(p=config.horizontal_flip_probability))
    if config.vertical_flip_probability > 0:
        steps.append(A.VerticalFlip(p=config.vertical_flip_probability))
    if config.rotate90_probability > 0:
        steps.append(A.RandomRotate90(p=config.rotate90_probability))
    if config.rotate_probability > 0 and config.rotate_limit_degrees > 0:
        steps.append(A.Rotate(limit=config.rotate_limit_degrees, interpolation=cv2.INTER_LINEAR,
                              mask_interpolation=cv2.INTER_NEAREST,
                              border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0,
                              p=config.rotate_probability))
    return steps


def _erasing_steps(config: AugmentConfig) -> list:
    steps = []
    if config.cutout_fraction > 0 and config.cutout_probability > 0:
        steps.append(FractionCutout(config.cutout_fraction, p=config.cutout_probability))
    if config.square_cutout_sizes_px and config.square_cutout_probability > 0:
        steps.append(SquareCutout(config.square_cutout_sizes_px,
                                  p=config.square_cutout_probability))
    return steps


class Augmenter:
    """Applies an ``AugmentConfig`` to the keys of one element, replayably from a seed.

    Args:
        config: the augmentation settings.

    Call with ``(element, seed)``: ``element`` a dict of NumPy arrays (height, width, channels)
    keyed by names from ``AUGMENTED_KEYS`` (others are returned untouched), ``seed`` a sequence
    of non-negative ints. Returns a new dict; the inputs are not modified.
    """

    def __init__(self, config: AugmentConfig):
        self.config = config
        self._local = threading.local()

    @property
    def changes_shape(self) -> bool:
        """Whether outputs may have height and width swapped (rotations by 90 degrees)."""
        return self.config.rotate90_probability > 0

    def _pipelines(self) -> tuple[A.Compose, A.Compose]:
        if not hasattr(self._local, "pipelines"):
            self._local.pipelines = (
                A.Compose(_geometric_steps(self.config), additional_targets=_TARGET_TYPES),
                A.Compose(_erasing_steps(self.config)))
        return self._local.pipelines

    def __call__(self, element: dict, seed: Sequence[int]) -> dict:
        sequence = np.random.SeedSequence([int(value) for value in seed])
        numpy_sequence, python_sequence = sequence.spawn(2)
        generator = np.random.default_rng(numpy_sequence)
        python_random = random.Random(int(python_sequence.generate_state(1, np.uint64)[0]))
        geometric_pipeline, erasing_pipeline = self._pipelines()
        # OpenCV warps take no int32: label maps (values 0..2) travel as uint8.
        arrays = {key: np.ascontiguousarray(value, np.uint8 if key in _INTEGER_KEYS else None)
                  for key, value in element.items() if key in AUGMENTED_KEYS}
        geometric_pipeline.set_random_state(generator, python_random)
        moved = geometric_pipeline(**arrays)
        erasing_pipeline.set_random_state(generator, python_random)
        moved["image"] = erasing_pipeline(image=moved["image"])["image"]
        result = dict(element)
        for key in arrays:
            result[key] = np.asarray(moved[key], dtype=np.asarray(element[key]).dtype)
        return result


def build_augmenter(config: AugmentConfig) -> Augmenter:
    """The ``Augmenter`` for ``config``."""
    return Augmenter(config)


def augment_tf(augmenter: Augmenter, element: dict, seed: tf.Tensor) -> dict:
    """Runs ``augmenter`` on the arrays of a ``tf.data`` element through ``tf.numpy_function``.

    Args:
        augmenter: the ``Augmenter``.
        element: dict of tensors; keys in ``AUGMENTED_KEYS`` must be (height, width, channels)
            and are augmented together, others pass through.
        seed: int64 tensor (n,) of non-negative values, e.g. (config seed, stream, epoch,
            index).

    Returns:
        a new element dict with the same dtypes and static shapes (height and width become
        unknown when the augmenter may rotate non-square slices by 90 degrees).
    """
    keys = [key for key in AUGMENTED_KEYS if key in element]

    def apply(seed_values, *arrays):
        result = augmenter(dict(zip(keys, arrays)), seed_values)
        return [result[key] for key in keys]

    outputs = tf.numpy_function(apply, [seed] + [element[key] for key in keys],
                                [element[key].dtype for key in keys], stateful=False)
    result = dict(element)
    for key, output in zip(keys, outputs):
        shape = element[key].shape
        if augmenter.changes_shape and shape[0] != shape[1]:
            shape = tf.TensorShape([None, None, shape[2]])
        output.set_shape(shape)
        result[key] = output
    return result
