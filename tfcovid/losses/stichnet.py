"""StichNet's evidence lower bounds: J_LAB for labelled slices, J_UN for unlabelled ones.

Spec section 4 (reference formulas, re-implementation), per image, with sums over pixels i and
levels n, every density a `tfp.distributions` object built from the network's logits and
Gaussian parameters:

- ``log p(x_i | c)``: Bernoulli with the class-c style logits, the windowed CT x in [0, 1] as
  a soft target (spec 4.1 [P]);
- ``log p(y_i = c | z, k)``: Psi's class log-probabilities (`class_log_probabilities`);
- ``KL_n = KL(q(z_n | x) || p(z_n | z_n+1))``: analytic (``tfd.kl_divergence`` of two
  diagonal Gaussians), at the posterior sample of the level above (the reference's
  single-sample estimate uses the same sample for the prior's parameters);
- J_LAB(x, y) = sum_i [log p(x_i | y_i) + label_weight * log p(y_i | z, k)] - sum_n KL_n;
- J_UN(x) = sum_i log sum_c p(y_i = c | z, k) p(x_i | c) - sum_n KL_n ("exact", the per-pixel
  marginal by log-sum-exp), or sum_i sum_c p(y_i = c) log p(x_i | c) - sum_n KL_n
  ("expected": the reference code's Jensen bound, spec 14.9).

Every bound is divided by the image's pixel count (the reference normalises "per image
pixel", spec 4), so the values are nats per pixel. Training minimises
``-(mean J_LAB + mean J_UN)`` over the batch's labelled and unlabelled images, with the KL
terms weighted by the warm-up factor beta and optionally floored by free bits (per level,
``free_bits`` nats per latent element; Kingma et al. 2016), both in `elbo_terms`.

Deviations from the reference code (deliberate, spec 4.3-4.4): analytic KL instead of the
single-sample estimate; J_LAB reconstructs labelled images with the true class (the write-up's
J_LAB) rather than the predicted map; categorical label likelihood of weight 1 by default
instead of focal loss x 100 (both available: ``label_weight`` and ``focal_gamma``).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

MARGINALS = ("exact", "expected")
LEVEL_NAMES = tuple(f"{hierarchy}{level}" for hierarchy in ("z", "k") for level in range(1, 6))


def four_class_labels(label, lung):
    """The store's labels as StichNet's four classes.

    Args:
        label: int (batch, height, width): 0 background, 1 GGO, 2 consolidation.
        lung: int or bool (batch, height, width): 1 inside the lung.

    Returns:
        int32 (batch, height, width): 0 background, 1 healthy lung (lung and label 0),
        2 GGO, 3 consolidation (lesions count wherever labelled).

    Example:

    >>> four_class_labels(tf.constant([[[0, 0, 1, 2]]]), tf.constant([[[0, 1, 1, 0]]])).numpy()
    array([[[0, 1, 2, 3]]], dtype=int32)
    """
    label = tf.cast(label, tf.int32)
    healthy = tf.cast(tf.cast(lung, tf.int32) > 0, tf.int32)
    return tf.where(label > 0, label + 1, healthy)


def image_log_likelihoods(images, style_logits):
    """log p(x_i | c) for every pixel and class: float32 (batch, height, width, 4).

    Args:
        images: float (batch, height, width, 1), windowed CT in [0, 1].
        style_logits: float (batch, height, width, 4), Bernoulli logits of the style images.
    """
    return tfd.Bernoulli(logits=tf.cast(style_logits, tf.float32), dtype=tf.float32
                         ).log_prob(tf.cast(images, tf.float32))


def gaussian_kl(posterior, prior):
    """KL(q || p) of two diagonal Gaussians given as (loc, log_var) pairs, summed over all
    latent elements of each image: float32 (batch,)."""

    def distribution(loc, log_var):
        return tfd.Independent(tfd.Normal(loc, tf.exp(0.5 * log_var)),
                               reinterpreted_batch_ndims=3)

    return tfd.kl_divergence(distribution(*posterior), distribution(*prior))


def level_kls(parts: dict) -> dict:
    """KL per level and image: {"z1": (batch,), ..., "k5": (batch,)} in nats, from
    `tfcovid.models.stichnet.StichNet.forward`'s "z" and "k" parts."""
    return {f"{name}{level + 1}": gaussian_kl(parts[name]["posterior"][level],
                                              parts[name]["prior"][level])
            for name in ("z", "k") for level in range(5)}


def _latent_elements(parts: dict, name: str) -> float:
    hierarchy, level = name[0], int(name[1:]) - 1
    shape = parts[hierarchy]["posterior"][level][0].shape
    return float(shape[1] * shape[2] * shape[3])


def label_term(log_py, labels, focal_gamma: float = 0.0):
    """Per-pixel label term: log p(y_i | z, k), or the reference's focal form
    ``(1 - p(y_i))^gamma log p(y_i)`` (spec 4.2, gamma 2) when ``focal_gamma`` > 0.

    Args:
        log_py: float (batch, height, width, 4), log p(y | z, k).
        labels: int (batch, height, width), the four classes.
        focal_gamma: float >= 0. Defaults to 0.0 (the plain log-likelihood).

    Returns:
        float32 (batch, height, width).
    """
    picked = tf.reduce_sum(tf.one_hot(labels, 4, dtype=tf.float32) * log_py, axis=-1)
    if focal_gamma == 0:
        return picked
    return (1.0 - tf.exp(picked)) ** focal_gamma * picked


def labelled_objective(log_px, log_py, labels, kl, label_weight: float = 1.0,
                       focal_gamma: float = 0.0):
    """J_LAB per image, in nats per pixel (module docstring).

    Args:
        log_px: float (batch, height, width, 4), `image_log_likelihoods`.
        log_py: float (batch, height, width, 4), log p(y | z, k).
        labels: int (batch, height, width), the four classes (`four_class_labels`).
        kl: float (batch,), the summed KL terms in nats.
        label_weight: float. Weight of log p(y | z, k). Defaults to 1.0.
        focal_gamma: float >= 0. Focal form of the label term (`label_term`); 0 keeps the
            bound. Defaults to 0.0.

    Returns:
        float32 (batch,).
    """
    onehot = tf.one_hot(labels, 4, dtype=tf.float32)
    per_pixel = (tf.reduce_sum(onehot * log_px, axis=-1)
                 + label_weight * label_term(log_py, labels, focal_gamma))
    pixels = tf.cast(tf.reduce_prod(tf.shape(labels)[1:]), tf.float32)
    return tf.reduce_mean(per_pixel, axis=(1, 2)) - kl / pixels


def unlabelled_objective(log_px, log_py, kl, marginal: str = "exact"):
    """J_UN per image, in nats per pixel (module docstring).

    Args:
        log_px, log_py: float (batch, height, width, 4), as `labelled_objective`.
        kl: float (batch,), the summed KL terms in nats.
        marginal: "exact" (log-sum-exp over the classes) or "expected" (the reference's
            expectation under p(y | z, k)). Defaults to "exact".

    Returns:
        float32 (batch,).

    Raises:
        ValueError: unknown ``marginal``.
    """
    if marginal == "exact":
        per_pixel = tf.reduce_logsumexp(log_py + log_px, axis=-1)
    elif marginal == "expected":
        per_pixel = tf.reduce_sum(tf.exp(log_py) * log_px, axis=-1)
    else:
        raise ValueError(f"marginal must be one of {MARGINALS}. Received: marginal={marginal!r}")
    pixels = tf.cast(tf.reduce_prod(tf.shape(log_px)[1:3]), tf.float32)
    return tf.reduce_mean(per_pixel, axis=(1, 2)) - kl / pixels


def kl_warmup(step, warmup_steps: int):
    """The KL weight beta at optimizer step ``step`` (0-based): a linear ramp from
    1 / warmup_steps to 1 over ``warmup_steps`` steps, then 1; 1 throughout when 0.

    >>> [float(kl_warmup(step, 4)) for step in (0, 1, 3, 9)], float(kl_warmup(0, 0))
    ([0.25, 0.5, 1.0, 1.0], 1.0)
    """
    if warmup_steps <= 0:
        return tf.constant(1.0)
    return tf.minimum(1.0, tf.cast(step + 1, tf.float32) / float(warmup_steps))


def elbo_terms(parts: dict, images, labels, num_labelled: int, kl_weight=1.0,
               free_bits: float = 0.0, label_weight: float = 1.0,
               marginal: str = "exact", focal_gamma: float = 0.0) -> dict:
    """The training loss and its named terms for one batch, labelled images first.

    Args:
        parts: `tfcovid.models.stichnet.StichNet.forward`'s output for ``images``.
        images: float (batch, height, width, 1) in [0, 1].
        labels: int (num_labelled, height, width), four classes of the labelled images.
        num_labelled: int. The first ``num_labelled`` images are labelled, the rest not.
        kl_weight: float or scalar tensor. Warm-up factor beta of the KL terms in the loss.
            Defaults to 1.0.
        free_bits: float >= 0. Floor of each level's KL in nats per latent element (loss
            only). Defaults to 0.0.
        label_weight: float. Weight of log p(y | z, k) in J_LAB. Defaults to 1.0.
        marginal: "exact" or "expected" J_UN. Defaults to "exact".
        focal_gamma: float >= 0. Focal label term in the loss. Defaults to 0.0.

    Returns:
        dict of float32 scalars: "loss" (minimised: ``-(mean J_LAB + mean J_UN)`` with
        weighted, floored KL and the weighted, possibly focal, label term); the true bounds
        "j_lab", "j_un" (label weight 1, beta 1, no floor; present when the batch has such
        images) and "elbo" (their mean over the batch);
        "reconstruction" (mean log p(x | y) per pixel, true class for labelled images,
        marginal for the others), "label" (mean log p(y | z, k) per pixel, labelled images);
        "kl" (nats per pixel) and "kl/z1" ... "kl/k5" (nats per image).
    """
    kls = level_kls(parts)
    floored = {name: tf.maximum(value, free_bits * _latent_elements(parts, name))
               for name, value in kls.items()}
    kl = tf.add_n(list(kls.values()))
    kl_loss = kl_weight * tf.add_n(list(floored.values()))
    log_px = image_log_likelihoods(images, parts["style"])
    log_py = tf.cast(parts["class_log_probs"], tf.float32)
    pixels = float(images.shape[1] * images.shape[2])
    terms, losses, bounds, reconstruction = {}, [], [], []
    if num_labelled > 0:
        labelled = slice(0, num_labelled)
        j_lab = labelled_objective(log_px[labelled], log_py[labelled], labels, kl[labelled])
        terms["j_lab"] = tf.reduce_mean(j_lab)
        bounds.append(j_lab)
        losses.append(-tf.reduce_mean(labelled_objective(
            log_px[labelled], log_py[labelled], labels, kl_loss[labelled], label_weight,
            focal_gamma)))
        onehot = tf.one_hot(labels, 4, dtype=tf.float32)
        reconstruction.append(tf.reduce_mean(tf.reduce_sum(onehot * log_px[labelled], -1),
                                             axis=(1, 2)))
        terms["label"] = tf.reduce_mean(tf.reduce_sum(onehot * log_py[labelled], -1))
    if num_labelled < images.shape[0]:
        rest = slice(num_labelled, None)
        j_un = unlabelled_objective(log_px[rest], log_py[rest], kl[rest], marginal)
        terms["j_un"] = tf.reduce_mean(j_un)
        bounds.append(j_un)
        losses.append(-tf.reduce_mean(unlabelled_objective(log_px[rest], log_py[rest],
                                                           kl_loss[rest], marginal)))
        reconstruction.append(tf.reduce_mean(tf.reduce_logsumexp(log_py[rest] + log_px[rest],
                                                                 -1), axis=(1, 2)))
    terms["loss"] = tf.add_n(losses)
    terms["elbo"] = tf.reduce_mean(tf.concat(bounds, 0))
    terms["reconstruction"] = tf.reduce_mean(tf.concat(reconstruction, 0))
    terms["kl"] = tf.reduce_mean(kl) / pixels
    terms.update({f"kl/{name}": tf.reduce_mean(value) for name, value in kls.items()})
    return terms
