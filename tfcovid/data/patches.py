"""Sliding-window tiling of image batches and stitching of per-patch predictions.

StichNet trains on 64 x 64 patches and predicts full slices by tiling them (StichNet spec,
sections 1.3 and 9). ``tile`` cuts ``(batch, height, width, channels)`` into ``size x size``
patches every ``stride`` pixels, padding the bottom and right with zeros so that any size fits;
``stitch`` puts patches back, averaging overlaps as a sum of values divided by a count of
contributions (MONAI's splitter and merger). Both are vectorised TensorFlow ops:
``tf.image.extract_patches`` and one ``tf.tensor_scatter_nd_add``.

Patch layout along one axis of n pixels: ``count = ceil(max(n - size, 0) / stride) + 1``
windows starting at ``0, stride, 2 * stride, ...``, covering ``(count - 1) * stride + size``
pixels (n plus the padding).

Example:

>>> import numpy as np
>>> images = np.arange(2 * 5 * 8, dtype="float32").reshape(2, 5, 8, 1)
>>> patches, grid = tile(images, size=4, stride=3)
>>> tuple(patches.shape), (grid.rows, grid.cols)
((12, 4, 4, 1), (2, 3))
>>> bool(np.array_equal(stitch(patches, grid).numpy(), images))
True
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


def patch_count(length: int, size: int, stride: int) -> int:
    """Number of windows of ``size`` px every ``stride`` px needed to cover ``length`` px."""
    return -(-max(length - size, 0) // stride) + 1


def _check(size: int, stride: int) -> None:
    if size < 1:
        raise ValueError(f"The patch size must be at least 1 px. Received: size={size}")
    if not 1 <= stride <= size:
        raise ValueError(f"The stride must lie in 1..size so that patches cover the image. "
                         f"Received: stride={stride}, size={size}")


@dataclasses.dataclass(frozen=True)
class PatchGrid:
    """Layout of the patches cut from one batch, as ``stitch`` needs it.

    Args:
        height: int. Image height in px before padding.
        width: int. Image width in px before padding.
        size: int. Patch side in px.
        stride: int. Step between patch origins in px.
    """

    height: int
    width: int
    size: int
    stride: int

    @property
    def rows(self) -> int:
        return patch_count(self.height, self.size, self.stride)

    @property
    def cols(self) -> int:
        return patch_count(self.width, self.size, self.stride)

    @property
    def padded_height(self) -> int:
        return (self.rows - 1) * self.stride + self.size

    @property
    def padded_width(self) -> int:
        return (self.cols - 1) * self.stride + self.size


def extract_patches(images: tf.Tensor, size: int, stride: int) -> tf.Tensor:
    """Patches of a batch whose height and width may be known only at run time.

    Args:
        images: tensor (batch, height, width, channels), any real dtype.
        size: int. Patch side in px.
        stride: int. Step between patch origins in px, 1..size.

    Returns:
        tensor (batch * rows * cols, size, size, channels), ordered by image, then row, then
        column; the same dtype as ``images``.
    """
    _check(size, stride)
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    pad_height = (-tf.math.floordiv(-tf.maximum(shape[1] - size, 0), stride)) * stride + size
    pad_width = (-tf.math.floordiv(-tf.maximum(shape[2] - size, 0), stride)) * stride + size
    padded = tf.pad(images, [[0, 0], [0, pad_height - shape[1]], [0, pad_width - shape[2]],
                             [0, 0]])
    patches = tf.image.extract_patches(padded, sizes=[1, size, size, 1],
                                       strides=[1, stride, stride, 1], rates=[1, 1, 1, 1],
                                       padding="VALID")
    return tf.reshape(patches, [-1, size, size, images.shape[-1] or shape[3]])


def tile(images, size: int = 64, stride: int | None = None) -> tuple[tf.Tensor, PatchGrid]:
    """Cuts a batch of images into square patches, padding the bottom and right with zeros.

    Args:
        images: array or tensor (batch, height, width, channels) with known height and width.
        size: int. Patch side in px. Defaults to 64.
        stride: int. Step between patch origins in px, 1..size. Defaults to ``size`` (no
            overlap).

    Returns:
        (patches, grid): patches (batch * grid.rows * grid.cols, size, size, channels), ordered
        by image, then row, then column; grid, the ``PatchGrid`` that ``stitch`` takes.

    Raises:
        ValueError: ``images`` is not 4-D with known height and width, or ``size``/``stride``
            are out of range.
    """
    stride = size if stride is None else stride
    images = tf.convert_to_tensor(images)
    if images.shape.rank != 4 or images.shape[1] is None or images.shape[2] is None:
        raise ValueError(f"tile takes (batch, height, width, channels) with known height and "
                         f"width. Received: shape={images.shape}")
    grid = PatchGrid(height=images.shape[1], width=images.shape[2], size=size, stride=stride)
    return extract_patches(images, size, stride), grid


def stitch(patches, grid: PatchGrid) -> tf.Tensor:
    """Puts patches back into full images, averaging where patches overlap.

    Every pixel is the sum of the patch values covering it divided by their count, accumulated
    in float64 so that identical overlapping values come back bit for bit (float32 sums of many
    copies round); the padding added by ``tile`` is cropped away.

    Args:
        patches: float tensor (batch * grid.rows * grid.cols, size, size, channels), in
            ``tile``'s order, e.g. per-patch probabilities.
        grid: the ``PatchGrid`` returned by ``tile``.

    Returns:
        tensor (batch, grid.height, grid.width, channels), the dtype of ``patches``.
    """
    patches = tf.convert_to_tensor(patches)
    if not patches.dtype.is_floating:
        raise ValueError(f"stitch averages values and needs float patches. Received: "
                         f"dtype={patches.dtype.name}")
    per_image = grid.rows * grid.cols
    if patches.shape.rank != 4 or tuple(patches.shape[1:3]) != (grid.size, grid.size):
        raise ValueError(f"Patches must be (n, {grid.size}, {grid.size}, channels). Received: "
                         f"shape={patches.shape}")
    if patches.shape[0] is not None and patches.shape[0] % per_image:
        raise ValueError(f"The grid holds {per_image} patches per image. Received: "
                         f"{patches.shape[0]} patches")
    batch = tf.shape(patches)[0] // per_image
    channels = tf.shape(patches)[3]
    # Canvas (row, col) of every patch pixel of one image, in the order of the patch values.
    origin_rows, origin_cols, offset_rows, offset_cols = tf.meshgrid(
        tf.range(grid.rows) * grid.stride, tf.range(grid.cols) * grid.stride,
        tf.range(grid.size), tf.range(grid.size), indexing="ij")
    image_indices = tf.stack([tf.reshape(origin_rows + offset_rows, [-1]),
                              tf.reshape(origin_cols + offset_cols, [-1])], axis=-1)
    canvas = [grid.padded_height, grid.padded_width]
    counts = tf.tensor_scatter_nd_add(tf.zeros(canvas, tf.float64), image_indices,
                                      tf.ones([tf.shape(image_indices)[0]], tf.float64))
    batch_indices = tf.repeat(tf.range(batch), tf.shape(image_indices)[0])
    indices = tf.concat([batch_indices[:, None], tf.tile(image_indices, [batch, 1])], axis=1)
    values = tf.reshape(tf.cast(patches, tf.float64), [-1, channels])
    sums = tf.tensor_scatter_nd_add(tf.zeros(tf.concat([[batch], canvas, [channels]], 0),
                                             tf.float64), indices, values)
    mean = sums / counts[None, :, :, None]
    return tf.cast(mean[:, :grid.height, :grid.width, :], patches.dtype)
