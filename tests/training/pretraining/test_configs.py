"""The SSInfNet experiment configs: each differs from its baseline in what its name says, and
each trains a step (at tiny widths)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfcovid import config
from tfcovid.models.unet import UNetConfig
from tfcovid.training import engine, optimizers

MULTI = ("multi_sinfnet_semiseg", "multi_ssinfnet_semiseg", "multi_ssinfnet_semiseg_no_focal",
         "multi_ssinfnet_semiseg_no_lookahead", "multi_ssinfnet_semiseg_plain")
EXPECTED = {  # (loss terms, Lookahead, starts from a pre-training)
    "multi_sinfnet_semiseg": ({"focal": 1.0}, True, False),
    "multi_ssinfnet_semiseg": ({"focal": 1.0}, True, True),
    "multi_ssinfnet_semiseg_no_focal": ({"bce": 1.0}, True, True),
    "multi_ssinfnet_semiseg_no_lookahead": ({"focal": 1.0}, False, True),
    "multi_ssinfnet_semiseg_plain": ({"bce": 1.0}, False, True)}


@pytest.mark.parametrize("name", MULTI)
def test_multi_configs_switch_exactly_focal_lookahead_and_pretraining(name):
    experiment = config.load_experiment(name)
    terms, lookahead, pretrained = EXPECTED[name]
    assert experiment.loss.terms == terms and experiment.optimizer.lookahead == lookahead
    assert (experiment.train.init_from == "runs/multi_ssinfnet_pretrain") == pretrained
    base = config.load_experiment("multi_ssinfnet_semiseg")
    # Everything else is the same recipe: improved U-Net, SGD 0.01 momentum 0.7, focal(1, 2).
    assert experiment.model == base.model and experiment.data == base.data
    assert dataclasses.replace(experiment.optimizer, lookahead=True) == base.optimizer
    assert (experiment.loss.focal_alpha, experiment.loss.focal_gamma) == (1.0, 2.0)
    assert experiment.model.options["variant"] == "improved"  # the inpainter's shapes

    tiny = dataclasses.asdict(UNetConfig.tiny())
    options = {**experiment.model.options, "stackwise_filters": tiny["stackwise_filters"]}
    experiment = dataclasses.replace(experiment, model=dataclasses.replace(
        experiment.model, options=options))
    task = engine.build_task(experiment)
    optimizer = engine.build_optimizer(experiment.optimizer, steps_per_epoch=1)
    assert isinstance(optimizer, optimizers.Lookahead) == lookahead
    task.compile(optimizer=optimizer)
    rng = np.random.default_rng(0)
    label = rng.integers(0, 3, size=(2, 32, 32))
    batch = {"image": tf.constant(rng.normal(size=(2, 32, 32, 3)), tf.float32),
             "prior": tf.constant(rng.uniform(size=(2, 32, 32, 3)), tf.float32),
             "label": tf.constant(label, tf.int32),
             "mask": tf.constant((label > 0)[..., None], tf.float32)}
    logs = task.train_step(batch)
    assert sorted(logs) == sorted([*terms, "loss"]) and np.isfinite(float(logs["loss"]))


def test_single_configs_are_the_resnet50_infnet_with_and_without_pretraining():
    sinfnet, ssinfnet = (config.load_experiment(name)
                         for name in ("sinfnet_semiseg", "ssinfnet_semiseg"))
    assert sinfnet.model.options["backbone"] == "resnet50"
    assert sinfnet.train.init_from is None
    assert ssinfnet.train.init_from == "runs/ssinfnet_pretrain"
    assert dataclasses.replace(ssinfnet.train, init_from=None) == sinfnet.train
    pretrain = config.load_experiment("ssinfnet_semiseg_pretrain")
    # The pre-trained inpainter has the fine-tuned network's backbone and widths.
    for key in ("backbone", "channels", "reverse_attention_channels", "edge_channels"):
        assert pretrain.model.options[key] == sinfnet.model.options[key], key
    multi = config.load_experiment("multi_ssinfnet_semiseg_pretrain")
    fine_tuned = config.load_experiment("multi_ssinfnet_semiseg")
    for key in ("variant", "stackwise_filters", "num_classes"):
        assert multi.model.options[key] == fine_tuned.model.options[key], key
