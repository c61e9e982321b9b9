"""Tests of tfcovid.data.augment: replay from seeds, keys moving together, cutout bounds."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcovid.data import augment

HEIGHT, WIDTH = 40, 56
NO_OP = augment.AugmentConfig(crop_probability=0, horizontal_flip_probability=0,
                              vertical_flip_probability=0, cutout_fraction=0)
seeds = st.tuples(st.integers(0, 2**31), st.integers(0, 1000), st.integers(0, 10**6))


def blob_element():
    """A lesion blob whose image intensity equals its mask, plus soft maps of distinct values."""
    mask = np.zeros((HEIGHT, WIDTH, 1), np.float32)
    mask[5:17, 30:50] = 1
    mask[25:31, 3:9] = 1
    label = (mask * 2).astype(np.int32)
    ramp = np.linspace(0, 1, HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH, 1)
    return {"image": mask.copy(), "mask": mask, "label": label, "edge": ramp,
            "prior": 1 - ramp, "case_id": "a"}


def test_same_seed_same_output_other_epoch_other_output():
    augmenter = augment.build_augmenter(augment.AugmentConfig())
    element = blob_element()
    first = augmenter(element, (7, 0, 3))
    again = augment.build_augmenter(augment.AugmentConfig())(element, (7, 0, 3))
    next_epoch = augmenter(element, (7, 1, 3))
    for key in augment.AUGMENTED_KEYS[:2] + ("edge", "prior"):
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["image"], next_epoch["image"])
    np.testing.assert_array_equal(element["image"], blob_element()["image"])  # input untouched


@pytest.mark.parametrize("field, axis", [("horizontal_flip_probability", 1),
                                         ("vertical_flip_probability", 0)])
def test_flip_moves_every_key_like_numpy(field, axis):
    augmenter = augment.build_augmenter(dataclasses.replace(NO_OP, **{field: 1.0}))
    element = blob_element()
    flipped = augmenter(element, (0, 0, 0))
    for key in ("image", "mask", "label", "edge", "prior"):
        np.testing.assert_array_equal(flipped[key], np.flip(element[key], axis))
        assert flipped[key].dtype == element[key].dtype
    assert flipped["case_id"] == "a"


@settings(max_examples=25, deadline=None)
@given(seeds)
def test_geometric_steps_keep_image_and_mask_aligned(seed):
    # Image == mask before; after flips and rotations by 90 degrees they stay equal; after
    # the crop (bilinear image, nearest mask) the nearest source pixel weighs >= 1/4 in the
    # bilinear sum, so mask 1 -> image >= 0.25 and mask 0 -> image <= 0.75.
    config = dataclasses.replace(augment.AugmentConfig(), cutout_fraction=0,
                                 rotate90_probability=0.5)
    element = {key: value[:, :HEIGHT] if key != "case_id" else value  # square: rotations
               for key, value in blob_element().items()}                # keep the shape
    moved = augment.build_augmenter(config)(element, seed)
    mask = moved["mask"][..., 0] > 0
    assert mask.sum() > 0
    assert np.all(moved["image"][..., 0][mask] >= 0.25 - 1e-6)
    assert np.all(moved["image"][..., 0][~mask] <= 0.75 + 1e-6)
    np.testing.assert_array_equal(moved["label"] > 0, moved["mask"] > 0)
    exact = augment.build_augmenter(dataclasses.replace(config, crop_probability=0))
    exact_moved = exact(element, seed)
    np.testing.assert_array_equal(exact_moved["image"], exact_moved["mask"])


@settings(max_examples=40, deadline=None)
@given(seeds, st.sampled_from([0.2, 0.4, 0.5]))
def test_fraction_cutout_touches_image_only_within_bound(seed, fraction):
    augmenter = augment.build_augmenter(dataclasses.replace(NO_OP, cutout_fraction=fraction))
    element = blob_element()
    element["image"] = np.full((HEIGHT, WIDTH, 1), 0.3, np.float32)  # 0.3 * 255 is no integer
    out = augmenter(element, seed)
    for key in ("mask", "label", "edge", "prior"):
        np.testing.assert_array_equal(out[key], element[key])
    changed = np.argwhere(out["image"][..., 0] != 0.3)
    if changed.size:
        side_bound = int(fraction * min(HEIGHT, WIDTH))  # floor(r * shorter side)
        extent = changed.max(0) - changed.min(0) + 1
        assert extent.max() <= side_bound
        assert len(changed) == extent.prod()  # one filled rectangle
        grey = out["image"][tuple(changed[0])][0] * 255
        assert abs(grey - round(grey)) < 1e-4
        assert np.all(out["image"][..., 0][out["image"][..., 0] != 0.3] == out["image"][
            tuple(changed[0])][0])


def test_fraction_cutout_reaches_its_bound():
    # Sides are uniform on 0..floor(0.5 * 40) = 0..20, so over 200 draws both ends appear.
    augmenter = augment.build_augmenter(dataclasses.replace(NO_OP, cutout_fraction=0.5))
    image = {"image": np.full((HEIGHT, WIDTH, 1), 0.3, np.float32)}
    extents = []
    for index in range(200):
        changed = np.argwhere(augmenter(image, (0, 0, index))["image"][..., 0] != 0.3)
        extents.append(0 if not changed.size else (changed.max(0) - changed.min(0) + 1).max())
    assert max(extents) == 20 and min(extents) == 0


@settings(max_examples=25, deadline=None)
@given(seeds)
def test_square_cutout_zeroes_a_clipped_square_of_the_image(seed):
    config = dataclasses.replace(NO_OP, square_cutout_sizes_px=(8, 16),
                                 square_cutout_probability=1.0)
    element = blob_element()
    element["image"] = np.full((HEIGHT, WIDTH, 1), 0.5, np.float32)
    out = augment.build_augmenter(config)(element, seed)
    zeroed = np.argwhere(out["image"][..., 0] == 0)
    extent = zeroed.max(0) - zeroed.min(0) + 1
    assert len(zeroed) == extent.prod() and extent.max() <= 16
    assert np.all(out["image"][out["image"] != 0] == 0.5)
    np.testing.assert_array_equal(out["mask"], element["mask"])


def test_tf_wrapper_sets_shapes_dtypes_and_replays_numpy():
    augmenter = augment.build_augmenter(augment.AugmentConfig())
    element = blob_element()
    tensors = {key: tf.constant(value) for key, value in element.items()}
    seed = tf.constant([5, 2, 9], tf.int64)
    dataset = tf.data.Dataset.from_tensors(tensors).map(
        lambda e: augment.augment_tf(augmenter, e, seed))
    for key in ("image", "mask", "label", "edge", "prior"):
        assert dataset.element_spec[key].shape == (HEIGHT, WIDTH, 1)
        assert dataset.element_spec[key].dtype == tensors[key].dtype
    result = next(iter(dataset))
    expected = augmenter(element, (5, 2, 9))
    for key in ("image", "mask", "label", "edge", "prior"):
        np.testing.assert_array_equal(result[key].numpy(), expected[key])
    rotating = augment.build_augmenter(augment.AugmentConfig(rotate90_probability=0.5))
    spec = tf.data.Dataset.from_tensors(tensors).map(
        lambda e: augment.augment_tf(rotating, e, seed)).element_spec
    assert spec["image"].shape.as_list() == [None, None, 1]


def test_config_rejects_out_of_range_values():
    with pytest.raises(ValueError, match=r"crop_probability=1.5"):
        augment.AugmentConfig(crop_probability=1.5)
    with pytest.raises(ValueError, match=r"cutout_fraction=2"):
        augment.AugmentConfig(cutout_fraction=2)
    with pytest.raises(ValueError, match=r"crop_fraction=0"):
        augment.AugmentConfig(crop_fraction=0)
