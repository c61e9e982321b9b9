"""Pre-training inputs: the reference's scaling constants, crops that keep image and prior
together, seeded and resumable augmentation."""

import numpy as np
import tensorflow as tf

from tfcovid.data import splits
from tfcovid.data.phantom import write_phantom
from tfcovid.data.pipeline import DataConfig
from tfcovid.training.pretraining import inputs

MEAN = np.array([85.5518, 92.6692, 86.8148])
STD = np.array([32.8860, 31.7342, 31.5361])


def test_input_and_target_follow_the_reference_constants():
    image = np.random.default_rng(0).uniform(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(inputs.network_input(image), 255 * image - MEAN, rtol=1e-5,
                               atol=1e-4)
    expected = np.clip((255 * image - MEAN) / (3 * STD), -1, 1)
    np.testing.assert_allclose(inputs.reconstruction_target(image), expected, atol=1e-6)
    # Display inverts the target where it was not clipped.
    np.testing.assert_allclose(inputs.target_to_image(expected), np.clip(
        (expected * 3 * STD + MEAN) / 255, 0, 1), atol=1e-6)
    raw_input, raw_target = inputs.prior_input_and_target(image, "as_run")
    np.testing.assert_allclose(raw_input, 255 * image, rtol=1e-6)
    np.testing.assert_allclose(raw_target, 255 * image, rtol=1e-6)


def test_augment_crops_image_and_prior_together_and_repeats_with_the_seed():
    rng = np.random.default_rng(1)
    image = rng.uniform(size=(48, 48, 3)).astype("float32")
    element = {"image": tf.constant(image), "prior": tf.constant(image)}
    seen = set()
    for position in range(12):
        seed = tf.constant([5, position], tf.int64)
        first = inputs.augment(element, seed, 32)
        again = inputs.augment(element, seed, 32)
        assert first["image"].shape == (32, 32, 3)
        np.testing.assert_array_equal(first["image"], first["prior"])
        np.testing.assert_array_equal(first["image"], again["image"])
        # Each crop is a flipped/rotated window of the image: its pixels are the image's.
        found = _window_transform(image, first["image"].numpy())
        assert found is not None
        seen.add(found)
    assert len(seen) > 3  # offsets, flips and turns vary with the position


def _window_transform(image, crop):
    size = crop.shape[0]
    for turns in range(4):
        for flip in (False, True):
            undone = np.rot90(crop, -turns)
            undone = undone[:, ::-1] if flip else undone
            for top in range(image.shape[0] - size + 1):
                for left in range(image.shape[1] - size + 1):
                    if np.array_equal(image[top:top + size, left:left + size], undone):
                        return top, left, flip, turns
    return None


def test_centre_crop_takes_the_middle():
    image = np.arange(6 * 8 * 3, dtype="float32").reshape(6, 8, 3)
    crop = inputs.centre_crop({"image": tf.constant(image)}, 4)["image"].numpy()
    np.testing.assert_array_equal(crop, image[1:5, 2:6])


def test_dataset_reads_every_slice_as_unit_crops(tmp_path):
    store = tmp_path / "phantom.h5"
    write_phantom(store, num_cases=3, num_slices=3, size=64, progress=False,
                  unlabelled_cases=1)
    case_ids = splits.store_case_table(store)[0]
    data = DataConfig(store=str(store), image_size=(64, 64), normalisation="unit",
                      channels=3)
    batches = list(inputs.pretraining_dataset(
        data, case_ids, labelled=False, training=True,
        epoch=1, crop_size=32, seed=0, batch_size=4))
    assert len(batches) == 2  # 9 slices, full batches only
    images = np.concatenate([batch["image"].numpy() for batch in batches])
    assert images.shape == (8, 32, 32, 3) and 0 <= images.min() and images.max() <= 1
    again = list(inputs.pretraining_dataset(
        data, case_ids, labelled=False, training=True,
        epoch=1, crop_size=32, seed=0, batch_size=4))
    np.testing.assert_array_equal(images, np.concatenate([b["image"] for b in again]))
