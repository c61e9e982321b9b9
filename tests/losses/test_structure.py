import numpy as np
import pytest

from tests.losses import references
from tfcovid.losses.structure import StructureLoss, structure_loss, weight_map


def soft_mask_and_logits(shape, seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape)
    mask[:, shape[1] // 4:3 * shape[1] // 4, shape[2] // 3:] = 1.0
    mask = np.clip(mask + rng.uniform(-0.3, 0.3, shape), 0.0, 1.0)  # soft, as resized masks
    return mask, rng.normal(0.0, 2.0, shape)


@pytest.mark.parametrize("shape", [(2, 5, 6, 1), (2, 33, 40, 2)])
def test_weight_map_matches_padded_box_filter(shape):
    mask, _ = soft_mask_and_logits(shape, seed=1)
    expected = 1.0 + 5.0 * np.abs(references.box_mean_31(mask) - mask)
    np.testing.assert_allclose(np.asarray(weight_map(mask.astype("float32"))), expected,
                               rtol=1e-5, atol=1e-6)


def test_weight_map_counts_padding_in_the_divisor():
    # a single foreground pixel in a 5 x 6 image: every window holds it and divides by 961
    mask = np.zeros((1, 5, 6, 1), "float32")
    mask[0, 2, 3] = 1.0
    expected = np.full(mask.shape, 1.0 + 5.0 / 961.0)
    expected[0, 2, 3] = 1.0 + 5.0 * (1.0 - 1.0 / 961.0)
    np.testing.assert_allclose(np.asarray(weight_map(mask)), expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 5, 6, 1), (2, 33, 40, 2)])
@pytest.mark.parametrize("bce_weighting", ["weighted", "as_run"])
@pytest.mark.parametrize("pixel_loss", ["bce", "focal"])
def test_structure_loss_matches_numpy(shape, bce_weighting, pixel_loss):
    mask, logits = soft_mask_and_logits(shape, seed=2)
    expected = references.structure_loss(mask, logits, bce_weighting, pixel_loss)
    got = structure_loss(mask.astype("float32"), logits.astype("float32"), bce_weighting,
                         pixel_loss)
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)


def test_as_run_batch_mean_is_the_reference_scalar():
    # reference (spec 3.1, as run): mean BCE over every pixel of the batch + mean_n wIoU_n
    mask, logits = soft_mask_and_logits((3, 24, 20, 1), seed=3)
    weights = 1.0 + 5.0 * np.abs(references.box_mean_31(mask) - mask)
    probability = references.sigmoid(logits)
    inter = (weights * probability * mask).sum(axis=(1, 2, 3))
    union = (weights * (probability + mask)).sum(axis=(1, 2, 3))
    expected = (references.naive_bce(mask, probability).mean()
                + np.mean(1.0 - (inter + 1.0) / (union - inter + 1.0)))
    loss = StructureLoss(bce_weighting="as_run")
    assert float(loss(mask, logits)) == pytest.approx(expected, rel=1e-5)
    weighted = float(StructureLoss()(mask, logits))
    assert abs(weighted - expected) > 1e-3  # the weighting matters near the boundary


def test_extreme_logits_give_finite_loss():
    mask = np.zeros((2, 8, 9, 1), "float32")
    mask[:, 2:6, 3:7] = 1.0
    logits = np.where(mask > 0, -500.0, 500.0).astype("float32")  # confidently wrong
    values = np.asarray(structure_loss(mask, logits, "as_run"))
    assert np.isfinite(values).all()
    # BCE: 500 per wrong pixel, all pixels wrong; IoU: p = 1 - G, so inter = 0 and
    # wIoU = 1 - 1 / (union + 1) with union = sum(W) over the whole image
    union = (1.0 + 5.0 * np.abs(references.box_mean_31(mask) - mask))[0].sum()
    np.testing.assert_allclose(values, 500.0 + 1.0 - 1.0 / (union + 1.0), rtol=1e-5)


def test_wrapper_config_round_trip(round_trip):
    mask, logits = soft_mask_and_logits((2, 12, 10, 1), seed=4)
    loss = StructureLoss(bce_weighting="as_run", pixel_loss="focal", name="focal_structure")
    rebuilt = round_trip(loss)
    assert rebuilt.get_config() == loss.get_config()
    assert float(rebuilt(mask, logits)) == pytest.approx(
        references.structure_loss(mask, logits, "as_run", "focal").mean(), rel=1e-5)


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError, match=r"bce_weighting=.*'mean'"):
        StructureLoss(bce_weighting="mean")
    with pytest.raises(ValueError, match=r"pixel_loss=.*'dice'"):
        structure_loss(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 1)), pixel_loss="dice")
    with pytest.raises(ValueError, match=r"logits.shape=\(4, 4\)"):
        structure_loss(np.zeros((4, 4)), np.zeros((4, 4)))
