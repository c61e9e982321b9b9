import numpy as np
import pytest

from tests.losses import references
from tfcovid.losses.deep_supervision import (
    SIDE_OUTPUTS,
    DeepSupervisionLoss,
    deep_supervision_terms,
)
from tfcovid.losses.structure import StructureLoss


def batch(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((2, 9, 11, 1))
    mask[:, 2:7, 3:9] = 1.0
    edge = np.zeros_like(mask)
    edge[:, 2, 3:9] = 1.0
    outputs = {name: rng.normal(0, 2, mask.shape) for name in SIDE_OUTPUTS + ("edge",)}
    return {"mask": mask, "edge": edge}, outputs


def expected_terms(y_true, outputs):
    terms = {f"structure/{name}": references.structure_loss(y_true["mask"], outputs[name])
             for name in SIDE_OUTPUTS}
    terms["edge"] = references.naive_bce(y_true["edge"],
                                         references.sigmoid(outputs["edge"])).mean(axis=(1, 2, 3))
    return terms


def as_float32(tree):
    return {key: value.astype("float32") for key, value in tree.items()}


def test_terms_are_named_and_match_numpy():
    y_true, outputs = batch(14)
    expected = expected_terms(y_true, outputs)
    got = deep_supervision_terms(as_float32(y_true), as_float32(outputs))
    assert list(got) == [f"structure/{name}" for name in SIDE_OUTPUTS] + ["edge"]
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(got[name]), value, rtol=1e-5, err_msg=name)


def test_weighted_total_is_the_sum_of_terms(round_trip):
    y_true, outputs = batch(15)
    expected = expected_terms(y_true, outputs)
    weights = {"lateral_2": 0.5, "edge": 2.0}
    loss = DeepSupervisionLoss(weights=weights)
    total = sum(value.mean() * weights.get(name.split("/")[-1], 1.0)
                for name, value in expected.items())
    assert float(loss(as_float32(y_true), as_float32(outputs))) == pytest.approx(total, rel=1e-5)
    terms = loss.terms(as_float32(y_true), as_float32(outputs))
    assert float(terms["edge"]) == pytest.approx(2.0 * expected["edge"].mean(), rel=1e-5)
    assert sum(float(value) for value in terms.values()) == pytest.approx(total, rel=1e-5)
    rebuilt = round_trip(loss)
    assert rebuilt.get_config() == loss.get_config()
    assert float(rebuilt(as_float32(y_true), as_float32(outputs))) == pytest.approx(total, rel=1e-5)


def test_side_loss_is_configurable_and_names_the_terms(round_trip):
    y_true, outputs = batch(16)
    side_loss = StructureLoss(bce_weighting="as_run", name="as_run")
    loss = round_trip(DeepSupervisionLoss(side_loss=side_loss, side_outputs=("lateral_2",)))
    terms = loss.terms(as_float32(y_true), as_float32(outputs))
    assert sorted(terms) == ["as_run/lateral_2", "edge"]
    expected = references.structure_loss(y_true["mask"], outputs["lateral_2"], "as_run").mean()
    assert float(terms["as_run/lateral_2"]) == pytest.approx(expected, rel=1e-5)


def test_misuse_is_reported():
    y_true, outputs = batch(17)
    with pytest.raises(ValueError, match=r"weights=\{'lateral_1': 1.0\}"):
        deep_supervision_terms(y_true, outputs, weights={"lateral_1": 1.0})
    del outputs["lateral_3"]
    with pytest.raises(ValueError, match=r"lacks outputs \['lateral_3'\]"):
        deep_supervision_terms(y_true, outputs)
