"""The ladder combination and the sampler against NumPy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcovid.models.stichnet import ladder


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_precision_weighting_matches_the_formula(seed):
    rng = np.random.default_rng(seed)
    loc_hat, loc_p = rng.normal(0, 3, (2, 3, 4, 1)), rng.normal(0, 3, (2, 3, 4, 1))
    log_var_hat, log_var_p = rng.uniform(-4, 4, (2, 3, 4, 1)), rng.uniform(-4, 4, (2, 3, 4, 1))
    tau_hat, tau_p = np.exp(-log_var_hat), np.exp(-log_var_p)
    loc, log_var = ladder.precision_weighted(loc_hat, log_var_hat, loc_p, log_var_p)
    np.testing.assert_allclose(np.exp(np.asarray(log_var)), 1 / (tau_hat + tau_p), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(loc), (loc_hat * tau_hat + loc_p * tau_p)
                               / (tau_hat + tau_p), rtol=1e-6, atol=1e-9)


def test_equal_precisions_average_the_means():
    loc, log_var = ladder.precision_weighted(np.float32(2.0), np.float32(0.0),
                                             np.float32(4.0), np.float32(0.0))
    assert (float(loc), float(np.exp(log_var))) == pytest.approx((3.0, 0.5))


def test_sampler_draws_have_the_posterior_moments_and_replay():
    loc = np.full((20000,), 1.5, "float32")
    log_var = np.full((20000,), np.log(0.25), "float32")
    draws = np.asarray(ladder.GaussianSampler(seed=3)(loc, log_var))
    # mean 1.5 +- 4 standard errors (0.5 / sqrt(20000) = 0.0035); variance 0.25
    assert abs(draws.mean() - 1.5) < 0.015 and abs(draws.var() - 0.25) < 0.01
    again = np.asarray(ladder.GaussianSampler(seed=3)(loc, log_var))
    np.testing.assert_array_equal(draws, again)
    assert ladder.GaussianSampler(seed=3).get_config()["seed"] == 3


def test_log_var_clamp():
    assert np.asarray(ladder.clamp_log_var(np.array([-50.0, 0.5, 50.0]))).tolist() == [
        -10.0, 0.5, 10.0]
