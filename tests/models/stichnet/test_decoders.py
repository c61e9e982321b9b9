"""Psi and Phi, StichNet's class map and stitched image, against NumPy."""

import numpy as np
from scipy.special import expit, softmax

from tfcovid.models.stichnet import decoders


def test_psi_is_fb_times_lesion_map():
    rng = np.random.default_rng(0)
    fb = rng.normal(size=(2, 3, 5, 1)).astype("float32")
    lesion = rng.normal(size=(2, 3, 5, 3)).astype("float32")
    probabilities = np.exp(np.asarray(decoders.class_log_probabilities(fb, lesion)))
    inside, lesions = expit(fb), softmax(lesion, axis=-1)
    expected = np.concatenate([1 - inside, inside * lesions], axis=-1)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)


def test_phi_picks_each_pixels_style():
    styles = np.array([[[[-2.0, 0.0, 1.0, 3.0]] * 2]], "float32")  # (1, 1, 2, 4)
    onehot = np.array([[[[0, 0, 1, 0], [1, 0, 0, 0]]]], "float32")
    stitched = np.asarray(decoders.stitch(onehot, styles))[..., 0]
    np.testing.assert_allclose(stitched, [[[expit(1.0), expit(-2.0)]]], rtol=1e-6)


def test_store_classes_merge_background_and_healthy():
    log_p = np.log(np.array([[[[0.1, 0.2, 0.3, 0.4]]]], "float32"))
    merged = np.exp(np.asarray(decoders.store_class_log_probabilities(log_p)))
    np.testing.assert_allclose(merged, [[[[0.3, 0.3, 0.4]]]], rtol=1e-6)
