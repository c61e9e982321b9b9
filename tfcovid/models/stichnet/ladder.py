"""The Ladder-VAE posterior: precision-weighted combination and reparameterised sampling.

Spec section 3.5 (Sønderby et al., "Ladder Variational Autoencoders", NeurIPS 2016, eq. 18-19):
with precisions ``tau = exp(-log_var)``, the posterior of a level combines the bottom-up
evidence (``loc_hat``, ``log_var_hat``) and the top-down prior (``loc_p``, ``log_var_p``) as

    var_q = 1 / (tau_hat + tau_p),    loc_q = (loc_hat * tau_hat + loc_p * tau_p) * var_q.

Deviation from the reference (flagged, spec 3.4 recommendation): ``log_var`` is clamped to
[-``LOG_VAR_LIMIT``, ``LOG_VAR_LIMIT``] before use, so exp() cannot overflow early in training;
the reference has no floor or ceiling.
"""

from __future__ import annotations

import keras
from keras import ops

LOG_VAR_LIMIT = 10.0


def clamp_log_var(log_var):
    """``log_var`` clipped to [-10, 10] (variances between 4.5e-5 and 2.2e4)."""
    return ops.clip(log_var, -LOG_VAR_LIMIT, LOG_VAR_LIMIT)


def precision_weighted(loc_hat, log_var_hat, loc_prior, log_var_prior):
    """The precision-weighted combination of two diagonal Gaussians (module docstring).

    Args:
        loc_hat, log_var_hat: float tensors of one shape: the bottom-up evidence.
        loc_prior, log_var_prior: float tensors of the same shape: the top-down prior.

    Returns:
        (loc, log_var) of the posterior, same shape.

    Example:

    >>> import numpy as np
    >>> loc, log_var = precision_weighted(np.float32(1.0), np.float32(0.0),
    ...                                   np.float32(-1.0), np.float32(np.log(3.0)))
    >>> # tau 1 and 1/3: var 1 / (4/3) = 0.75, loc (1 - 1/3) * 0.75 = 0.5
    >>> round(float(loc), 6), round(float(np.exp(log_var)), 6)
    (0.5, 0.75)
    """
    precision_hat = ops.exp(-log_var_hat)
    precision_prior = ops.exp(-log_var_prior)
    precision = precision_hat + precision_prior
    loc = (loc_hat * precision_hat + loc_prior * precision_prior) / precision
    return loc, -ops.log(precision)


@keras.saving.register_keras_serializable(package="tfcovid")
class GaussianSampler(keras.layers.Layer):
    """Reparameterised draws ``loc + exp(log_var / 2) * eps``, eps ~ N(0, I), from its own
    seeded `keras.random.SeedGenerator` (as keras-hub's VAE layers), so runs replay.

    Args:
        seed: int. Seed of the generator. Defaults to 0.
    """

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, loc, log_var):
        noise = keras.random.normal(ops.shape(loc), seed=self.seed_generator, dtype=loc.dtype)
        return loc + ops.exp(0.5 * log_var) * noise

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
