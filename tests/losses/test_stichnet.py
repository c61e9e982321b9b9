"""StichNet's ELBO terms against direct NumPy/SciPy computations on tiny cases."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import expit, logsumexp

from tfcovid.losses import stichnet as losses

BATCH, HEIGHT, WIDTH = 2, 3, 5  # distinct sizes, so a swapped axis fails


def random_maps(seed):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (BATCH, HEIGHT, WIDTH, 1)).astype("float32")
    style_logits = rng.normal(0, 2, (BATCH, HEIGHT, WIDTH, 4)).astype("float32")
    class_logits = rng.normal(0, 2, (BATCH, HEIGHT, WIDTH, 4))
    log_py = (class_logits - logsumexp(class_logits, axis=-1, keepdims=True)).astype("float32")
    labels = rng.integers(0, 4, (BATCH, HEIGHT, WIDTH)).astype("int32")
    return images, style_logits, log_py, labels


def numpy_log_px(images, style_logits):
    # soft-target Bernoulli: x log s + (1 - x) log(1 - s), s = sigmoid(logit)
    s = expit(style_logits.astype(np.float64))
    return images * np.log(s) + (1 - images) * np.log(1 - s)


def test_image_log_likelihood_is_the_soft_bernoulli():
    images, style_logits, _, _ = random_maps(0)
    got = losses.image_log_likelihoods(images, style_logits).numpy()
    assert got.shape == (BATCH, HEIGHT, WIDTH, 4)
    np.testing.assert_allclose(got, numpy_log_px(images, style_logits), rtol=1e-5, atol=1e-5)


def test_gaussian_kl_matches_the_closed_form():
    rng = np.random.default_rng(1)
    shape = (BATCH, 2, 3, 1)
    loc_q, loc_p = rng.normal(size=shape), rng.normal(size=shape)
    log_var_q, log_var_p = rng.normal(size=shape), rng.normal(size=shape)
    # KL(N(mq, vq) || N(mp, vp)) = 1/2 [log vp/vq + (vq + (mq - mp)^2) / vp - 1], summed
    expected = 0.5 * (log_var_p - log_var_q + (np.exp(log_var_q) + (loc_q - loc_p) ** 2)
                      / np.exp(log_var_p) - 1)
    got = losses.gaussian_kl((tf.constant(loc_q), tf.constant(log_var_q)),
                             (tf.constant(loc_p), tf.constant(log_var_p))).numpy()
    np.testing.assert_allclose(got, expected.sum(axis=(1, 2, 3)), rtol=1e-6)


def test_labelled_objective_counts_the_true_class():
    images, style_logits, log_py, labels = random_maps(2)
    log_px = numpy_log_px(images, style_logits)
    kl = np.array([3.0, 7.5])
    picked = np.take_along_axis(log_px + 0.5 * log_py, labels[..., None], -1)[..., 0]
    expected = picked.mean(axis=(1, 2)) - kl / (HEIGHT * WIDTH)
    got = losses.labelled_objective(tf.constant(log_px, tf.float32), log_py, labels,
                                    tf.constant(kl, tf.float32), label_weight=0.5).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_unlabelled_objective_marginalises_and_bounds(seed):
    images, style_logits, log_py, labels = random_maps(seed)
    log_px = numpy_log_px(images, style_logits).astype("float32")
    kl = tf.constant([1.0, 2.0])
    exact = losses.unlabelled_objective(log_px, log_py, kl, "exact").numpy()
    expected = (logsumexp(log_py + log_px, axis=-1).mean(axis=(1, 2))
                - np.array([1.0, 2.0]) / (HEIGHT * WIDTH))
    np.testing.assert_allclose(exact, expected, rtol=1e-5)
    jensen = losses.unlabelled_objective(log_px, log_py, kl, "expected").numpy()
    np.testing.assert_allclose(
        jensen, (np.exp(log_py) * log_px).sum(-1).mean(axis=(1, 2)) - np.array([1.0, 2.0]) / 15,
        rtol=1e-5)
    # log sum_c p_c q_c >= log p_y + log q_y for any y, and >= sum_c p_c log q_c (Jensen)
    labelled = losses.labelled_objective(log_px, log_py, labels, kl).numpy()
    assert np.all(exact >= labelled - 1e-6)
    assert np.all(exact >= jensen - 1e-6)


def test_unknown_marginal_is_rejected():
    with pytest.raises(ValueError, match="marginal=.*'mean'"):
        losses.unlabelled_objective(tf.zeros((1, 2, 2, 4)), tf.zeros((1, 2, 2, 4)),
                                    tf.zeros(1), "mean")


def test_four_classes_from_label_and_lung():
    label = np.array([[[0, 0, 1, 2, 1]]])
    lung = np.array([[[0, 1, 1, 1, 0]]])
    # background, healthy lung, GGO, consolidation; a lesion counts outside the lung mask too
    assert losses.four_class_labels(label, lung).numpy().tolist() == [[[0, 1, 2, 3, 2]]]


def test_kl_warmup_is_a_linear_ramp_to_one():
    assert [float(losses.kl_warmup(step, 10)) for step in (0, 4, 9, 50)] == pytest.approx(
        [0.1, 0.5, 1.0, 1.0])
    assert float(losses.kl_warmup(3, 0)) == 1.0


def fake_parts(seed):
    """`StichNet.forward`-like parts from variables: 2 labelled + 1 unlabelled image."""
    rng = np.random.default_rng(seed)
    parts = {"style": tf.Variable(rng.normal(size=(3, 4, 6, 4)), dtype=tf.float32)}
    logits = tf.Variable(rng.normal(size=(3, 4, 6, 4)), dtype=tf.float32)
    parts["class_log_probs"] = tf.nn.log_softmax(logits)
    for name in ("z", "k"):
        levels = [(3, 4 // 2 ** n or 1, 6 // 2 ** n or 1, 1) for n in range(5)]
        parts[name] = {
            "posterior": [(tf.Variable(rng.normal(size=s), dtype=tf.float32),
                           tf.Variable(rng.normal(size=s), dtype=tf.float32)) for s in levels],
            "prior": [(tf.Variable(rng.normal(size=s), dtype=tf.float32),
                       tf.Variable(rng.normal(size=s), dtype=tf.float32)) for s in levels]}
    return parts, logits


def test_elbo_terms_combine_the_bounds_and_have_finite_gradients():
    parts, logits = fake_parts(3)
    rng = np.random.default_rng(3)
    images = rng.uniform(size=(3, 4, 6, 1)).astype("float32")
    labels = rng.integers(0, 4, (2, 4, 6)).astype("int32")
    with tf.GradientTape() as tape:
        parts["class_log_probs"] = tf.nn.log_softmax(logits)
        terms = losses.elbo_terms(parts, images, labels, num_labelled=2)
    assert float(terms["loss"]) == pytest.approx(-float(terms["j_lab"]) - float(terms["j_un"]),
                                                 rel=1e-6)
    kl_z1 = losses.gaussian_kl(parts["z"]["posterior"][0], parts["z"]["prior"][0]).numpy()
    assert float(terms["kl/z1"]) == pytest.approx(kl_z1.mean(), rel=1e-6)
    gradients = tape.gradient(terms["loss"], [parts["style"], logits,
                                              parts["k"]["posterior"][4][1]])
    assert all(np.all(np.isfinite(gradient.numpy())) for gradient in gradients)
    # beta scales the KL part of the loss only; the reported bounds stay at beta 1
    half = losses.elbo_terms(parts, images, labels, num_labelled=2, kl_weight=0.5)
    assert float(half["j_lab"]) == pytest.approx(float(terms["j_lab"]))
    assert float(half["loss"]) < float(terms["loss"])
    # a free-bits floor above every level's KL replaces each by its floor, in both bounds
    floored = losses.elbo_terms(parts, images, labels, num_labelled=2, free_bits=100.0)
    kl = sum(losses.gaussian_kl(q, p).numpy() for name in "zk"
             for q, p in zip(parts[name]["posterior"], parts[name]["prior"]))
    elements = sum(np.prod(q[0].shape[1:]) for name in "zk" for q in parts[name]["posterior"])
    pixels = 4 * 6
    expected = float(terms["loss"]) + (2 * 100.0 * elements - kl[:2].mean() - kl[2]) / pixels
    assert float(floored["loss"]) == pytest.approx(expected, rel=1e-5)


def test_focal_label_term_is_the_reference_form():
    _, _, log_py, labels = random_maps(4)
    p = np.take_along_axis(np.exp(log_py), labels[..., None], -1)[..., 0]
    # spec 4.2: FL = -(1 - p)^2 log p; the term is its negative, a log-likelihood-like value
    np.testing.assert_allclose(losses.label_term(log_py, labels, 2.0).numpy(),
                               (1 - p) ** 2 * np.log(p), rtol=1e-5)
    np.testing.assert_allclose(losses.label_term(log_py, labels).numpy(), np.log(p), rtol=1e-5)
