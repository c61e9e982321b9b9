"""The pre-training loop end to end on a tiny phantom: schedule, logs, resume, the hand-over to
fine-tuning, and the multi-class model with a ground-truth prior."""

import json
import shutil

import keras
import numpy as np
import pytest

from tfcovid import config
from tfcovid.data.phantom import write_phantom
from tfcovid.errors import ConfigError, DivergedError
from tfcovid.models.ssinfnet.inpainting import INFNET_HEADS
from tfcovid.training import engine
from tfcovid.training.pretraining import handover, loop
from tests.training.test_summaries import read_events

TINY = ["data.image_size=[64, 64]", "pretrain.crop_size=32", "pretrain.rounds=2",
        "pretrain.network_learning_rates=[0.001]", "train.batch_size=2",
        "train.steps_per_epoch=1", "train.run_eagerly=true", "train.validation_fraction=0.25",
        "train.test_fraction=0.25"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "phantom.h5"
    write_phantom(path, num_cases=6, num_slices=3, size=64, progress=False,
                  unlabelled_cases=2)
    return path


def _experiment(store, *overrides):
    return config.load_experiment("ssinfnet_phantom_tiny_pretrain",
                                  [f"data.store={store}", *TINY, *overrides])


@pytest.fixture(scope="module")
def runs(store, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    straight = loop.pretrain(_experiment(store), root / "straight", progress=False)
    first = loop.pretrain(_experiment(store), root / "resumed", progress=False, max_epochs=2)
    resumed = loop.pretrain(_experiment(store), root / "resumed", progress=False)
    return {"root": root, "straight": straight, "first": first, "resumed": resumed}


def test_schedule_runs_network_and_coach_phases_in_order(runs):
    history = json.loads((runs["root"] / "straight" / engine.HISTORY_FILE).read_text())
    assert [(r["epoch"], r["round"], r["phase"]) for r in history] == [
        (0, None, None), (1, 0, "network"), (2, 0, "coach"), (3, 1, "network"),
        (4, 1, "coach")]
    assert all(r["fraction_erased"] == 0.25 for r in history[1:])  # 2 x 2 cells, 3 kept
    assert "val_reconstruction" in history[3] and "val_reconstruction" not in history[2]
    assert history[2]["learning_rate"] == pytest.approx(1e-5)
    summary = runs["straight"]
    assert summary["finished"] and summary["epochs_done"] == summary["total_epochs"] == 4
    assert summary["reconstruction_before"] == history[0]["reconstruction"]
    assert np.isfinite(summary["reconstruction_after"])
    folder = runs["root"] / "straight"
    assert json.loads((folder / loop.SUMMARY_FILE).read_text()) == summary
    for name in (handover.INPAINTER_FILE, loop.COACH_FILE, "rounds/round_00/inpainter.weights.h5",
                 "rounds/round_01/coach.weights.h5"):
        assert (folder / name).is_file(), name


def test_tensorboard_has_both_losses_the_erased_fraction_and_the_panels(runs):
    values = read_events(runs["root"] / "straight" / engine.TENSORBOARD_DIR)
    scalars = {(tag, step): content for tag, step, plugin, content in values
               if plugin == "scalars"}
    images = {(tag, step): content for tag, step, plugin, content in values
              if plugin == "images"}
    assert ("validation/reconstruction", 0) in scalars
    assert ("loss/inpainter", 1) in scalars and ("loss/coach", 2) in scalars
    assert float(scalars[("mask/fraction_erased", 2)]) == pytest.approx(0.25)
    panels = images[("validation/masked_mask_reconstruction_target", 1)]
    assert panels[:2].tolist() == [b"128", b"32"]  # four 32 px panels side by side
    assert ("coach/masked_mask_reconstruction_target", 2) in images


def test_interrupted_run_resumes_to_the_same_networks(runs):
    assert not runs["first"]["finished"] and runs["first"]["epochs_done"] == 2
    assert runs["resumed"]["reconstruction_after"] == pytest.approx(
        runs["straight"]["reconstruction_after"], rel=1e-5)
    for name in (handover.INPAINTER_FILE, loop.COACH_FILE):
        straight = keras.saving.load_model(runs["root"] / "straight" / name)
        resumed = keras.saving.load_model(runs["root"] / "resumed" / name)
        for a, b in zip(straight.weights, resumed.weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=a.path)


def test_hand_over_copies_all_but_the_heads_bit_for_bit(runs):
    source = runs["root"] / "straight"
    inpainter = keras.saving.load_model(source / handover.INPAINTER_FILE)
    experiment = config.load_experiment("ssinfnet_phantom_tiny")
    network = engine.build_task(experiment).network
    fresh = {w.path: w.numpy().copy() for w in network.weights}
    report = handover.initialise_from_pretraining(network, source, None,
                                                  source / "transfer_test.json")
    assert report["skip"] == list(INFNET_HEADS)
    assert json.loads((source / "transfer_test.json").read_text()) == report
    pretrained = {w.path: w.numpy() for w in inpainter.weights}
    heads = [w for w in network.weights
             if any(w.path.startswith(head + "/") for head in INFNET_HEADS)]
    assert sorted(w.path for w in heads) == sorted(report["fresh"])
    for weight in network.weights:
        if weight.path in report["fresh"]:
            np.testing.assert_array_equal(weight.numpy(), fresh[weight.path])
        else:
            np.testing.assert_array_equal(weight.numpy(), pretrained[weight.path])
    backbone = [w.path for w in network.backbone.weights]
    assert backbone and not set(backbone) & set(report["fresh"])
    assert report["unused"] > 0  # the reconstruction heads stay behind


def test_fine_tuning_from_a_pretrain_run_and_its_errors(runs, store, tmp_path):
    source = runs["root"] / "straight"
    experiment = config.load_experiment("ssinfnet_phantom_tiny", [
        f"data.store={store}", "data.image_size=[64, 64]", "train.epochs=1",
        "train.steps_per_epoch=1", "train.batch_size=2", "train.scales=[1.0]",
        "train.run_eagerly=true", "train.validation_fraction=0.25", "train.test_fraction=0.25",
        f"train.init_from={source}"])
    engine.train(experiment, tmp_path / "finetune", progress=False)
    report = json.loads((tmp_path / "finetune" / handover.TRANSFER_REPORT_FILE).read_text())
    assert report["copied"] > 100 and report["skip"] == list(INFNET_HEADS)
    unfinished = tmp_path / "unfinished"  # a pretrain run stopped before its end
    unfinished.mkdir()
    shutil.copy(source / engine.CONFIG_FILE, unfinished / engine.CONFIG_FILE)
    network = engine.build_task(experiment).network
    with pytest.raises(ConfigError, match="pre-training has not finished"):
        handover.initialise_from_pretraining(network, unfinished, None, tmp_path / "r.json")
    wider = engine.build_task(config.load_experiment("ssinfnet_phantom_tiny",
                                                     ["model.channels=16"])).network
    with pytest.raises(ConfigError, match="does not fit"):
        handover.initialise_from_pretraining(wider, source, None, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_multi_model_pretrains_on_labelled_slices_with_ground_truth_priors(store, tmp_path):
    experiment = config.load_experiment("multi_ssinfnet_phantom_tiny_pretrain", [
        f"data.store={store}", *TINY, "pretrain.rounds=1"])
    summary = loop.pretrain(experiment, tmp_path / "multi", progress=False)
    assert summary["finished"] and summary["epochs_done"] == 2
    history = json.loads((tmp_path / "multi" / engine.HISTORY_FILE).read_text())
    assert [r["phase"] for r in history] == [None, "network", "coach"]
    assert all(np.isfinite(r["reconstruction"]) for r in history)
    # Fine-tuning a baseline U-Net from the improved inpainter: shapes differ, loudly.
    network = engine.build_task(config.load_experiment("infnet_multiclass_phantom_tiny", [
        "model.variant=baseline"])).network
    with pytest.raises(ConfigError, match="does not fit"):
        handover.initialise_from_pretraining(network, tmp_path / "multi", None,
                                             tmp_path / "x.json")
    improved = engine.build_task(config.load_experiment("infnet_multiclass_phantom_tiny", [
        "model.variant=improved"])).network
    report = handover.initialise_from_pretraining(improved, tmp_path / "multi", None,
                                                  tmp_path / "x.json")
    assert report["fresh"] == ["outc_conv/bias", "outc_conv/kernel"]


def test_not_an_inpainting_network_and_divergence_are_clear_errors(store, tmp_path):
    with pytest.raises(ConfigError, match="model.name: 'infnet' is not an inpainting network"):
        loop.pretrain(config.load_experiment("infnet_phantom_tiny", [f"data.store={store}"]),
                      tmp_path / "wrong", progress=False)
    assert not (tmp_path / "wrong").exists()
    with pytest.raises(ConfigError, match="train.recompute_backbone: applies to tfcovid train"):
        loop.pretrain(config.load_experiment("multi_ssinfnet_phantom_tiny_pretrain", [
            f"data.store={store}", "train.recompute_backbone=true"]), tmp_path / "wrong",
            progress=False)
    diverging = config.load_experiment("multi_ssinfnet_phantom_tiny_pretrain", [
        f"data.store={store}", *TINY, "pretrain.network_learning_rates=[1.0e+30]"])
    with pytest.raises(DivergedError, match="epoch 1 .network phase of round 0.: .* not finite"):
        loop.pretrain(diverging, tmp_path / "diverged", progress=False)
    assert not list((tmp_path / "diverged" / engine.CHECKPOINT_DIR).glob("ckpt-*"))
