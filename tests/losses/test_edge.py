import numpy as np
import pytest

from tests.losses.references import naive_bce, sigmoid
from tfcovid.losses.edge import EdgeLoss, edge_loss


def test_edge_loss_is_mean_bce_with_logits_per_image():
    rng = np.random.default_rng(5)
    edge = rng.uniform(0.0, 1.0, (2, 5, 6, 1))  # soft, as a bilinearly resized edge map
    logits = rng.normal(0.0, 3.0, edge.shape)
    expected = naive_bce(edge, sigmoid(logits)).mean(axis=(1, 2, 3))
    got = edge_loss(edge.astype("float32"), logits.astype("float32"))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)


def test_wrapper_averages_all_elements_and_round_trips(round_trip):
    rng = np.random.default_rng(6)
    edge = (rng.uniform(size=(3, 7, 9, 1)) > 0.8).astype("float32")
    logits = rng.normal(0.0, 2.0, edge.shape).astype("float32")
    expected = naive_bce(edge, sigmoid(logits.astype("float64"))).mean()  # BCEWithLogitsLoss
    rebuilt = round_trip(EdgeLoss(name="edge_bce"))
    assert rebuilt.name == "edge_bce"
    assert float(rebuilt(edge, logits)) == pytest.approx(expected, rel=1e-5)
