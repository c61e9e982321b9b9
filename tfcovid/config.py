"""Experiment configuration: frozen dataclasses, loaded from YAML, overridden, validated, dumped.

An experiment is a tree of frozen dataclasses (STYLE section 3, "Configuration"), resolved in
the Model Garden's order:

1. the dataclass defaults (the paper's values);
2. a shipped experiment, ``tfcovid/configs/<name>.yaml``: named directly, or as ``base: <name>``
   at the top of a user YAML;
3. the user YAML (sections merge key by key; a mapping value such as ``loss.terms``, and a
   ``model`` section naming another network, replace the base's as a whole);
4. ``--set key=value`` overrides, each value parsed as YAML (``train.scales=[0.75, 1, 1.25]``);
5. validation: an unknown key, a wrong type or an out-of-range value is a `ConfigError`
   ``<source>: <dotted key>: <problem>``, the source being the file (or ``--set``) that set
   the key.

Sections: ``model`` (``name`` plus the options of the registered model's config dataclass,
written flat beside it), ``data`` (`tfcovid.data.pipeline.DataConfig` without ``batch_size``
and ``seed``, which come from ``train``), ``loss``, ``optimizer``, ``train``, ``pseudo_label``,
``pretrain``, ``stichnet`` and ``workdir``.
Relative paths (``data.store``, ``workdir``, ``model.prior_run``, ``train.init_from``) are
relative to the working directory.

Example:

>>> experiment = load_experiment("infnet_semiseg", overrides=["train.epochs=2"])
>>> experiment.train.epochs, experiment.train.batch_size, experiment.data.image_size
(2, 24, (352, 352))
>>> experiment.train.scale_sizes()
((256, 256), (352, 352), (448, 448))
>>> load_experiment("infnet_semiseg", overrides=["train.epoks=2"])
Traceback (most recent call last):
    ...
tfcovid.errors.ConfigError: --set train.epoks=2: train.epoks: unknown key; known: epochs, ...
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from tfcovid.data.pipeline import DataConfig
from tfcovid.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SIZE_MULTIPLE_PX = 32  # multi-scale sizes are rounded to the backbone's output stride
_TRAIN_OWNED_DATA_KEYS = ("batch_size", "seed")  # data keys set from the train section
_DEFAULTS_SOURCE = "defaults"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network: a name in `tfcovid.registry.MODELS` and the options of its config dataclass.

    Args:
        name: str. Registered model name. Defaults to "infnet".
        options: dict. Fields of the model's config dataclass (``InfNetConfig`` for "infnet");
            missing ones take that dataclass's defaults. Defaults to {}.
        prior_run: str or None. Folder of a trained single-class run whose network makes the
            prior of a multi-class network (spec 5.3): needed for ``prior: model``, and kept
            for prediction and export with any prior. Written flat beside ``name``.
            Defaults to None.
    """

    name: str = "infnet"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    prior_run: str | None = None

    def model_config(self) -> Any:
        """The registered config dataclass of ``name`` built from ``options``."""
        from tfcovid.registry import MODELS

        return MODELS.config(self.name)(**self.options)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Inf-Net deep supervision: structure loss on lateral_5..2 plus the edge loss (spec 3).

    Inf-Net networks (deep supervision, `tfcovid.training.tasks.InfNetTask`) read
    ``bce_weighting``, ``pixel_loss`` and ``weights``; networks with one ``logits`` output
    (`tfcovid.training.tasks.LogitsTask`) read ``terms``, ``focal_alpha`` and ``focal_gamma``.

    Args:
        bce_weighting: "weighted" (the intended weighted BCE) or "as_run" (the reference's
            unweighted batch mean, spec 3.1). Defaults to "weighted".
        pixel_loss: "bce" or "focal" (SSInfNet ``--focal_loss``, spec 3.4). Defaults to "bce".
        weights: dict from output name (lateral_5, lateral_4, lateral_3, lateral_2, edge) to
            its weight; missing names weigh 1. Defaults to {} (all 1, the reference).
        terms: dict from term name ("bce", "cross_entropy", "focal", "dice") to its weight.
            Defaults to {} ({"bce": 1}: the reference's multi-class criterion, spec 5.5).
        focal_alpha: float > 0. Focal loss scale (spec 8.1). Defaults to 1.0.
        focal_gamma: float >= 0. Focal loss exponent (spec 8.1). Defaults to 2.0.
    """

    bce_weighting: Literal["weighted", "as_run"] = "weighted"
    pixel_loss: Literal["bce", "focal"] = "bce"
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    terms: dict[str, float] = dataclasses.field(default_factory=dict)
    focal_alpha: float = 1.0
    focal_gamma: float = 2.0

    def __post_init__(self):
        known = ("lateral_5", "lateral_4", "lateral_3", "lateral_2", "edge")
        unknown = sorted(set(self.weights) - set(known))
        if unknown:
            raise ValueError(f"weights may only name {', '.join(known)}. Received: "
                             f"weights={dict(self.weights)}")
        terms = ("bce", "cross_entropy", "focal", "dice")
        if set(self.terms) - set(terms) or any(weight <= 0 for weight in self.terms.values()):
            raise ValueError(f"terms must map names from {', '.join(terms)} to positive "
                             f"weights. Received: terms={dict(self.terms)}")
        _require(self.focal_alpha > 0, "focal_alpha", self.focal_alpha, "must be positive")
        _require(self.focal_gamma >= 0, "focal_gamma", self.focal_gamma, "must be >= 0")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer, clipping, Lookahead and learning-rate schedule (spec 4.1, 4.4, 8.2, 15).

    Args:
        name: "adam" (beta 0.9/0.999, epsilon 1e-8) or "sgd" (`TorchSGD`). Defaults to "adam".
        learning_rate: float > 0. Base learning rate. Defaults to 1e-4.
        momentum: float in [0, 1). SGD only. Defaults to 0.0.
        weight_decay: float >= 0. Coupled L2 (PyTorch's), SGD only. Defaults to 0.0.
        clip_value: float > 0 or None. Every gradient element is clamped to
            [-clip_value, clip_value] before each step. Defaults to 0.5.
        lookahead: bool. Wrap the optimizer in `Lookahead`. Defaults to False.
        lookahead_k: int >= 1. Lookahead synchronisation period. Defaults to 5.
        lookahead_alpha: float in (0, 1]. Lookahead slow step size. Defaults to 0.5.
        schedule: "constant", "step" (intended ``lr 0.1^floor(epoch/50)``) or "as_run" (the
            reference's compounding decay, spec 4.4). Defaults to "step".
        decay_rate: float. Decay factor of the step schedules. Defaults to 0.1.
        decay_epochs: int >= 1. Epochs between decays. Defaults to 50.
    """

    name: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 1e-4
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip_value: float | None = 0.5
    lookahead: bool = False
    lookahead_k: int = 5
    lookahead_alpha: float = 0.5
    schedule: Literal["constant", "step", "as_run"] = "step"
    decay_rate: float = 0.1
    decay_epochs: int = 50

    def __post_init__(self):
        _require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be positive")
        _require(0 <= self.momentum < 1, "momentum", self.momentum, "must lie in [0, 1)")
        _require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        _require(self.clip_value is None or self.clip_value > 0, "clip_value", self.clip_value,
                 "must be positive or null")
        _require(self.lookahead_k >= 1, "lookahead_k", self.lookahead_k, "must be >= 1")
        _require(0 < self.lookahead_alpha <= 1, "lookahead_alpha", self.lookahead_alpha,
                 "must lie in (0, 1]")
        _require(self.decay_epochs >= 1, "decay_epochs", self.decay_epochs, "must be >= 1")
        _require(self.name == "sgd" or (self.momentum == 0 and self.weight_decay == 0),
                 "momentum", self.momentum, "and weight_decay apply to sgd only")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training loop (spec 4.1, 4.3).

    Args:
        epochs: int >= 1. Epochs, counted from 1. Defaults to 100.
        batch_size: int >= 1. Global batch size (split over replicas). Defaults to 24.
        seed: int >= 0. Seeds Python, NumPy, TensorFlow, the split and the data. Defaults to 0.
        deterministic: bool. Also enable TensorFlow's op determinism (slower). Defaults to
            False.
        loop: "custom": the `tf.function` loop with multi-scale steps. Defaults to "custom".
        precision: "float32", "mixed_float16" (with loss scaling) or "mixed_bfloat16".
            Defaults to "float32".
        jit_compile: bool. XLA-compile the training step. Defaults to False.
        recompute_backbone: bool. Recompute the backbone's activations in the backward pass
            (`tfcovid.training.recompute`; networks with a Res2Net or ResNet backbone): for
            Inf-Net 26 % less peak memory and a 19 % slower float32 step on CPU, the same
            results up to float rounding. Defaults to False.
        run_eagerly: bool. Run steps eagerly instead of tracing them (debugging; tiny test
            runs, where tracing costs more than the steps). Defaults to False.
        scales: tuple of float > 0. Multi-scale rates, one optimizer step per rate and batch,
            in this order; each size is ``round(image_size * rate / 32) * 32``. Defaults to
            (0.75, 1.0, 1.25).
        steps_per_epoch: int >= 1 or None. Cap on batches per epoch (None: every full batch
            of the training cases). Defaults to None.
        case_split: "random" (patient-level, stratified, seeded; the fractions below) or
            "store" (each case's ``split`` attribute, e.g. COVID-SemiSeg's published
            train/test parts: "test" cases are held out, "val" cases validate, and
            ``validation_fraction`` of the "train" cases validate when there is no "val").
            Defaults to "random".
        validation_fraction: float in [0, 1). Share of the cases (by patient) validated after
            every epoch; 0 turns validation and the best-weights file off. Defaults to 0.2.
        test_fraction: float in [0, 1). Share of the cases held out and never read by
            training ("random" split only). Defaults to 0.0.
        checkpoints_to_keep: int >= 1. Epoch checkpoints kept. Defaults to 3.
        init_from: str or None. Folder whose weights start this run, read only when the run
            starts, not when it resumes: a finished run of the same network (best validation
            epoch, else final), or a ``tfcovid pretrain`` folder, whose inpainting network
            hands over every weight the network has by name (spec 7.10; a ``transfer.json``
            report is written into the run). Defaults to None (fresh initialisation).
        init_skip: tuple of str or None. Only with a pretrain folder in ``init_from``:
            weight-path prefixes left freshly initialised. None leaves the network's
            prediction heads fresh ("all weights except the last layer", as the paper);
            ``[]`` copies every matching weight, as the reference code. Defaults to None.
    """

    epochs: int = 100
    batch_size: int = 24
    seed: int = 0
    deterministic: bool = False
    loop: Literal["custom"] = "custom"
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    jit_compile: bool = False
    recompute_backbone: bool = False
    run_eagerly: bool = False
    scales: tuple[float, ...] = (0.75, 1.0, 1.25)
    steps_per_epoch: int | None = None
    case_split: Literal["random", "store"] = "random"
    validation_fraction: float = 0.2
    test_fraction: float = 0.0
    checkpoints_to_keep: int = 3
    init_from: str | None = None
    init_skip: tuple[str, ...] | None = None

    def __post_init__(self):
        _require(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _require(self.seed >= 0, "seed", self.seed, "must be >= 0")
        _require(len(self.scales) >= 1 and min(self.scales) > 0, "scales", self.scales,
                 "must be one or more positive rates")
        _require(self.steps_per_epoch is None or self.steps_per_epoch >= 1, "steps_per_epoch",
                 self.steps_per_epoch, "must be >= 1 or null")
        _require(0 <= self.validation_fraction < 1, "validation_fraction",
                 self.validation_fraction, "must lie in [0, 1)")
        _require(0 <= self.test_fraction < 1 - self.validation_fraction, "test_fraction",
                 self.test_fraction, "must lie in [0, 1 - validation_fraction)")
        _require(self.checkpoints_to_keep >= 1, "checkpoints_to_keep", self.checkpoints_to_keep,
                 "must be >= 1")

    def scale_sizes(self, image_size: tuple[int, int] = (352, 352)) -> tuple[tuple[int, int], ...]:
        """(height, width) in px of each rate: ``round(side * rate / 32) * 32`` (spec 4.1)."""
        return tuple(tuple(max(SIZE_MULTIPLE_PX, round(side * rate / SIZE_MULTIPLE_PX)
                               * SIZE_MULTIPLE_PX) for side in image_size)
                     for rate in self.scales)


@dataclasses.dataclass(frozen=True)
class PseudoLabelConfig:
    """The Semi-Inf-Net pseudo-label loop (spec 6; `tfcovid.training.pseudo_label`).

    Args:
        initial_run: str or None. Folder of the supervised run that labels the first round
            (the reference's ``Inf-Net-100.pth``). Required by the loop. Defaults to None.
        per_round: int >= 1. Unlabelled slices labelled per round (K; the reference: 5).
            Defaults to 5.
        rounds: int >= 1 or None. Rounds to run; None runs until every unlabelled slice is
            labelled (1600 / 5 = 320 in the reference). Defaults to None.
        epochs_per_round: int >= 1. Fine-tuning epochs per round on the growing set (the
            reference's epoch argument 10 runs 9). Defaults to 9.
        learning_rate: float > 0. Adam learning rate of the rounds. Defaults to 3e-4.
        batch_size: int >= 1. Batch size of the rounds. Defaults to 16.
        threshold: float in (0, 1). A pseudo mask is the min-max-normalised probability map
            at this threshold. Defaults to 0.5.
    """

    initial_run: str | None = None
    per_round: int = 5
    rounds: int | None = None
    epochs_per_round: int = 9
    learning_rate: float = 3e-4
    batch_size: int = 16
    threshold: float = 0.5

    def __post_init__(self):
        _require(self.per_round >= 1, "per_round", self.per_round, "must be >= 1")
        _require(self.rounds is None or self.rounds >= 1, "rounds", self.rounds,
                 "must be >= 1 or null")
        _require(self.epochs_per_round >= 1, "epochs_per_round", self.epochs_per_round,
                 "must be >= 1")
        _require(self.learning_rate > 0, "learning_rate", self.learning_rate, "must be positive")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _require(0 < self.threshold < 1, "threshold", self.threshold, "must lie in (0, 1)")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """SSInfNet's self-supervised pre-training with the coach (spec 7;
    `tfcovid.training.pretraining`). The batch size, seed, split, ``steps_per_epoch``,
    ``checkpoints_to_keep`` and ``run_eagerly`` come from ``train``; ``train.epochs`` is unused.

    The schedule is a sequence of rounds, each a network phase (the inpainter learns, SGD) and
    a coach phase (the coach learns, Adam); the defaults are the paper's: 2000 epochs, the
    inpainter alone for 200 (random block masks: no coach is trained yet), the coach for 200,
    then alternating every 100, the network learning rate starting again at every network
    phase. The reference code's single-model run is ``rounds: 11, order: coach_first,
    later_learning_rate: 1.0e-5``; its multi-model run also sets ``first_round_coach: false``.

    Args:
        rounds: int >= 1. Rounds of the schedule. Defaults to 9.
        first_round_epochs: int >= 1. Epochs of each phase of round 0. Defaults to 200.
        round_epochs: int >= 1. Epochs of each phase of later rounds. Defaults to 100.
        order: "network_first" or "coach_first": which phase opens each round. Defaults to
            "network_first".
        first_round_coach: bool. Whether round 0 has a coach phase. Defaults to True.
        network_learning_rates: tuple of float > 0. SGD learning rate of each block of a
            network phase. Defaults to (0.1, 0.01, 0.001, 0.0001).
        network_boundaries: tuple of int. Epochs of a network phase (from 0) at which the next
            learning rate starts; the SGD momentum restarts there and at the phase start, as
            the reference re-creates its optimizer. Defaults to (40, 80, 90).
        later_learning_rate: float > 0 or None. A constant learning rate for the network
            phases of rounds >= 1 (the reference code: 1e-5); None repeats the table. Defaults
            to None.
        momentum: float in [0, 1). SGD momentum. Defaults to 0.9.
        weight_decay: float >= 0. SGD coupled L2 weight decay. Defaults to 5e-4.
        coach_learning_rate: float > 0. Adam learning rate of the coach, whose optimizer
            starts afresh at every coach phase. Defaults to 1e-5.
        keep_fraction: float in (0, 1). Fraction of 16 x 16 cells kept visible (the reference's
            "drop_ratio"). Defaults to 0.75.
        coach_sharpness: float > 0. alpha of the coach's soft masks while it learns.
            Defaults to 1.
        kl_weight: float >= 0. Weight of the coach's KL term. Defaults to 1e-6.
        reconstruction_weight: float >= 0. Weight of L_rec in the inpainter loss. Defaults to
            0.99.
        context_weight: float >= 0. Weight of L_con. Defaults to 0.01.
        crop_size: int, a multiple of 16. Side in px of the random training crop (128 in the
            reference). Defaults to 128.
        coach: mapping. Options of `tfcovid.models.ssinfnet.coach.CoachConfig` (e.g. narrow
            widths for a small run). Defaults to {} (the reference coach).
        prior_scaling: "image" (the prior is scaled and reconstructed like the CT image) or
            "as_run" (raw 0..255 input and target, which the tanh output cannot reach).
            Multi-class model only. Defaults to "image".
    """

    rounds: int = 9
    first_round_epochs: int = 200
    round_epochs: int = 100
    order: Literal["network_first", "coach_first"] = "network_first"
    first_round_coach: bool = True
    network_learning_rates: tuple[float, ...] = (0.1, 0.01, 0.001, 0.0001)
    network_boundaries: tuple[int, ...] = (40, 80, 90)
    later_learning_rate: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    coach_learning_rate: float = 1e-5
    keep_fraction: float = 0.75
    coach_sharpness: float = 1.0
    kl_weight: float = 1e-6
    reconstruction_weight: float = 0.99
    context_weight: float = 0.01
    crop_size: int = 128
    coach: dict[str, Any] = dataclasses.field(default_factory=dict)
    prior_scaling: Literal["image", "as_run"] = "image"

    def __post_init__(self):
        for name in ("rounds", "first_round_epochs", "round_epochs"):
            _require(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")
        _require(len(self.network_learning_rates) == len(self.network_boundaries) + 1,
                 "network_learning_rates", self.network_learning_rates,
                 "must hold one rate more than network_boundaries")
        _require(min(self.network_learning_rates) > 0, "network_learning_rates",
                 self.network_learning_rates, "must be positive")
        _require(list(self.network_boundaries) == sorted(set(self.network_boundaries))
                 and min(self.network_boundaries, default=1) >= 1, "network_boundaries",
                 self.network_boundaries, "must be increasing epochs >= 1")
        _require(self.later_learning_rate is None or self.later_learning_rate > 0,
                 "later_learning_rate", self.later_learning_rate, "must be positive or null")
        _require(0 <= self.momentum < 1, "momentum", self.momentum, "must lie in [0, 1)")
        for name in ("weight_decay", "kl_weight", "reconstruction_weight", "context_weight"):
            _require(getattr(self, name) >= 0, name, getattr(self, name), "must be >= 0")
        for name in ("coach_learning_rate", "coach_sharpness"):
            _require(getattr(self, name) > 0, name, getattr(self, name), "must be positive")
        _require(0 < self.keep_fraction < 1, "keep_fraction", self.keep_fraction,
                 "must lie in (0, 1)")
        _require(self.crop_size >= 16 and self.crop_size % 16 == 0, "crop_size", self.crop_size,
                 "must be a positive multiple of 16 (the coach's cell side)")


@dataclasses.dataclass(frozen=True)
class StichNetConfig:
    """StichNet's semi-supervised training (`tfcovid.training.stichnet`; spec 4-5, 9).

    Batch size, epochs, seed, split, ``steps_per_epoch`` and ``run_eagerly`` come from
    ``train``; learning rate and ``clip_value`` from ``optimizer`` (Adam).

    Args:
        labelled_per_batch: int >= 0. Labelled slices in each batch of ``train.batch_size``;
            the rest are unlabelled (the reference: 1 labelled of 3). Defaults to 1.
        input: "resize" (whole slices resized to ``data.image_size``, as the reference's
            64 px sister code) or "patches" (``patch_size`` tiles of slices at
            ``data.image_size``; prediction tiles and stitches). Defaults to "resize".
        patch_size: int, a multiple of 32. Tile side in px. Defaults to 64.
        patch_stride: int >= 1. Step between tiles in px at prediction (spec 9.1: 32).
            Defaults to 32.
        marginal: "exact" (log-sum-exp J_UN) or "expected" (the reference's bound).
            Defaults to "exact".
        label_weight: float >= 0. Weight of log p(y | z, k) in J_LAB. Defaults to 1.0.
        label_focal_gamma: float >= 0. Train the label term in the reference's focal form
            ``(1 - p)^gamma log p`` (spec 4.2: gamma 2, weight 100); 0 keeps the bound's
            log-likelihood. Defaults to 0.0.
        kl_warmup_steps: int >= 0. Steps of the linear KL warm-up; 0: beta 1 throughout, as
            the reference's final script. Defaults to 0.
        free_bits: float >= 0. Per-level KL floor in nats per latent element. Defaults to 0.
        clip_norm: float > 0 or None. Per-variable gradient-norm clip before
            ``optimizer.clip_value`` (the reference clips both). Defaults to 1.0.
        uncertainty_samples: int >= 0. Posterior samples of the entropy map at prediction.
            Defaults to 8.
        recalibration_batches: int >= 0. Training batches run through the posterior-mean
            path before each validation to re-estimate the batch-norm statistics
            (`tfcovid.models.stichnet.prediction.recalibrate_batch_norm`); 0 skips it.
            Defaults to 20.
    """

    labelled_per_batch: int = 1
    input: Literal["resize", "patches"] = "resize"
    patch_size: int = 64
    patch_stride: int = 32
    marginal: Literal["exact", "expected"] = "exact"
    label_weight: float = 1.0
    label_focal_gamma: float = 0.0
    kl_warmup_steps: int = 0
    free_bits: float = 0.0
    clip_norm: float | None = 1.0
    uncertainty_samples: int = 8
    recalibration_batches: int = 20

    def __post_init__(self):
        _require(self.labelled_per_batch >= 0, "labelled_per_batch", self.labelled_per_batch,
                 "must be >= 0")
        _require(self.patch_size >= 32 and self.patch_size % 32 == 0, "patch_size",
                 self.patch_size, "must be a positive multiple of 32")
        _require(self.patch_stride >= 1, "patch_stride", self.patch_stride, "must be >= 1")
        for name in ("label_weight", "label_focal_gamma", "free_bits"):
            _require(getattr(self, name) >= 0, name, getattr(self, name), "must be >= 0")
        _require(self.kl_warmup_steps >= 0, "kl_warmup_steps", self.kl_warmup_steps,
                 "must be >= 0")
        _require(self.clip_norm is None or self.clip_norm > 0, "clip_norm", self.clip_norm,
                 "must be positive or null")
        _require(self.uncertainty_samples >= 0, "uncertainty_samples",
                 self.uncertainty_samples, "must be >= 0")
        _require(self.recalibration_batches >= 0, "recalibration_batches",
                 self.recalibration_batches, "must be >= 0")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One training run: every setting, nothing else feeds hyper-parameters.

    Args:
        model, data, loss, optimizer, train: the sections; ``data.batch_size`` and
            ``data.seed`` are always ``train.batch_size`` and ``train.seed``.
        pseudo_label: the pseudo-label loop's settings (``tfcovid pseudo-label`` only).
        pretrain: the coach pre-training's settings (``tfcovid pretrain`` only).
        stichnet: StichNet's semi-supervised training (``tfcovid stichnet train`` only).
        workdir: str or None. Folder of checkpoints, logs and the trained network; the
            ``tfcovid train --workdir`` flag and ``train(..., workdir=)`` take precedence.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    pseudo_label: PseudoLabelConfig = dataclasses.field(default_factory=PseudoLabelConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    stichnet: StichNetConfig = dataclasses.field(default_factory=StichNetConfig)
    workdir: str | None = None

    def __post_init__(self):
        data = dataclasses.replace(self.data, batch_size=self.train.batch_size,
                                   seed=self.train.seed)
        object.__setattr__(self, "data", data)


def _require(condition: bool, name: str, value: Any, problem: str) -> None:
    if not condition:
        raise ValueError(f"{name} {problem}. Received: {name}={value!r}")


def shipped_names() -> tuple[str, ...]:
    """Names of the experiments in ``tfcovid/configs/``, sorted."""
    return tuple(sorted(path.stem for path in CONFIG_DIR.glob("*.yaml")))


def load_experiment(path_or_name: str | os.PathLike, overrides: Sequence[str] = ()) -> Experiment:
    """Resolves an experiment: shipped YAML, user YAML, ``key=value`` overrides, validation.

    Args:
        path_or_name: a YAML file (optionally starting from a shipped experiment with
            ``base: <name>``) or the name of a shipped experiment (``shipped_names()``).
        overrides: sequence of "dotted.key=value" strings, values parsed as YAML.

    Returns:
        the validated `Experiment`.

    Raises:
        ConfigError: an unknown experiment name or key, a wrong type, an out-of-range value,
            an unreadable file or a malformed override; the message names the source and the
            dotted key.
    """
    text = os.fspath(path_or_name)
    if text.endswith((".yaml", ".yml")) or os.sep in text or os.path.isfile(text):
        layers = _with_bases(text, _read_yaml(Path(text)))
    else:
        layers = _with_bases(*_shipped_layer(text, "experiment"))
    for override in overrides:
        layers.append((f"--set {override}", _parse_override(override)))
    raw, sources = {}, {}
    for source, tree in layers:
        _merge(raw, tree, source, sources, "")
    return _build_experiment(raw, sources)


def to_yaml(experiment: Experiment) -> str:
    """The resolved experiment as YAML text that `load_experiment` reads back unchanged."""
    tree = _plain(dataclasses.asdict(experiment))
    model = tree["model"]
    tree["model"] = {"name": model["name"], **model["options"]}
    if model["prior_run"] is not None:
        tree["model"]["prior_run"] = model["prior_run"]
    for key in _TRAIN_OWNED_DATA_KEYS:
        del tree["data"][key]
    return ("# resolved by tfcovid.config; load with tfcovid.config.load_experiment\n"
            + yaml.safe_dump(tree, sort_keys=False))


def dump(experiment: Experiment, path: str | os.PathLike) -> None:
    """Writes `to_yaml(experiment)` to ``path``.

    Written to a temporary file moved into place, so ``path`` is never half written.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(to_yaml(experiment))
    os.replace(temporary, path)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _read_yaml(path: Path) -> dict:
    try:
        with open(path) as file:
            tree = yaml.safe_load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(tree).__name__}")
    return tree


def _with_bases(source: str, tree: dict, seen: tuple[str, ...] = ()) -> list[tuple[str, dict]]:
    """The layers of a YAML tree: those of its ``base:`` experiment (recursively), then its own.

    Raises:
        ConfigError: an unknown base, or bases that name each other in a cycle.
    """
    tree = dict(tree)
    base = tree.pop("base", None)
    if base is None:
        return [(source, tree)]
    if base in seen:
        raise ConfigError(f"{source}: base: {base!r} is its own base ({' -> '.join(seen)})")
    return [*_with_bases(*_shipped_layer(base, f"{source}: base"), (*seen, base)),
            (source, tree)]


def _shipped_layer(name: Any, source: str) -> tuple[str, dict]:
    if not isinstance(name, str) or name not in shipped_names():
        raise ConfigError(f"{source}: unknown experiment {name!r}; known: "
                          f"{', '.join(shipped_names())}, or a path to a .yaml file")
    path = CONFIG_DIR / f"{name}.yaml"
    return f"configs/{name}.yaml", _read_yaml(path)


def _parse_override(override: str) -> dict:
    key, separator, text = override.partition("=")
    key = key.strip()
    if not separator or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
        raise ConfigError(f"--set {override}: expected dotted.key=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"--set {override}: value is not valid YAML") from None
    tree = value
    for part in reversed(key.split(".")):
        tree = {part: tree}
    return tree


def _merge(raw: dict, tree: Mapping, source: str, sources: dict, prefix: str) -> None:
    """Merges ``tree`` into ``raw``, noting each key's source: sections key by key, while a
    mapping value inside a section (``loss.terms``, ``pretrain.coach``) replaces the earlier
    one as a whole, so a config can drop a base's loss term, and so does a ``model`` section
    naming another network (the base's options belong to the base's network)."""
    if not isinstance(tree, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'top level'}: expected a mapping, "
                          f"got {tree!r}")
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        sources[dotted] = source
        if (isinstance(value, Mapping) and isinstance(raw.get(key), dict) and not prefix
                and not _names_another_model(key, value, raw[key])):
            _merge(raw[key], value, source, sources, f"{dotted}.")
        elif isinstance(value, Mapping):
            raw[key] = {}
            _merge(raw[key], value, source, sources, f"{dotted}.")
        else:
            raw[key] = value


def _names_another_model(key: str, section: Mapping, earlier: dict) -> bool:
    return key == "model" and section.get("name", earlier.get("name")) != earlier.get("name")


def _source(sources: dict, dotted: str) -> str:
    while dotted:
        if dotted in sources:
            return sources[dotted]
        dotted = dotted.rpartition(".")[0]
    return _DEFAULTS_SOURCE


def _build_experiment(raw: dict, sources: dict) -> Experiment:
    raw = dict(raw)
    model_raw = raw.pop("model", {})
    data_raw = raw.get("data", {})
    for key in _TRAIN_OWNED_DATA_KEYS:
        if isinstance(data_raw, Mapping) and key in data_raw:
            raise ConfigError(f"{_source(sources, f'data.{key}')}: data.{key}: set by "
                              f"train.{key}; set that instead")
    if not isinstance(model_raw, Mapping):
        raise ConfigError(f"{_source(sources, 'model')}: model: expected a mapping, got "
                          f"{model_raw!r}")
    model_raw = dict(model_raw)
    name = _coerce(str, model_raw.pop("name", ModelConfig.name), "model.name", sources)
    prior_run = _coerce(str | None, model_raw.pop("prior_run", None), "model.prior_run",
                        sources)
    from tfcovid.registry import MODELS

    try:
        config_type = MODELS.config(name)
    except ConfigError as error:
        raise ConfigError(f"{_source(sources, 'model.name')}: {error}") from None
    options = _build(config_type, model_raw, "model.", sources)
    model = ModelConfig(name, dataclasses.asdict(options), prior_run)
    partial = _build(Experiment, {**raw, "data": {**data_raw}}, "", sources)
    return dataclasses.replace(partial, model=model)


def _build(cls: type, raw: Any, prefix: str, sources: dict) -> Any:
    """A ``cls`` instance from a mapping, every value checked against the field's type."""
    section = prefix.rstrip(".") or "top level"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{_source(sources, section)}: {section}: expected a mapping, got "
                          f"{raw!r}")
    fields = [field.name for field in dataclasses.fields(cls) if field.init]
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            known = [field for field in fields
                     if not (cls is DataConfig and field in _TRAIN_OWNED_DATA_KEYS)]
            raise ConfigError(f"{_source(sources, prefix + str(key))}: {prefix}{key}: unknown "
                              f"key; known: {', '.join(known)}")
    values = {key: _coerce(hints[key], value, prefix + key, sources)
              for key, value in raw.items()}
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:
        named = re.search(r"Received: (\w+)=", str(error))
        dotted = prefix + named.group(1) if named else section
        raise ConfigError(f"{_source(sources, dotted)}: {dotted}: "
                          f"{' '.join(str(error).split())}") from None


def _coerce(hint: Any, value: Any, dotted: str, sources: dict) -> Any:
    """``value`` checked against (and converted to) the type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def fail(expected: str):
        raise ConfigError(f"{_source(sources, dotted)}: {dotted}: expected {expected}, got "
                          f"{value!r}")

    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1 and value is not None:  # its own error names the inner problem
            return _coerce(options[0], value, dotted, sources)
        for option in options:
            try:
                return _coerce(option, value, dotted, sources)
            except ConfigError:
                continue
        fail(" or ".join("null" if arg is type(None) else _describe(arg) for arg in args))
    if origin is Literal:
        return value if value in args else fail(f"one of {', '.join(map(repr, args))}")
    if hint is bool:
        return value if isinstance(value, bool) else fail("true or false")
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else fail("an int")
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                fail("a number")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        fail("a number")
    if hint is str:
        return value if isinstance(value, str) else fail("a string")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            fail(_describe(hint))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], item, dotted, sources) for item in value)
        if len(value) != len(args):
            fail(_describe(hint))
        return tuple(_coerce(arg, item, dotted, sources) for arg, item in zip(args, value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            fail("a mapping")
        return {_coerce(args[0], key, dotted, sources):
                _coerce(args[1], item, f"{dotted}.{key}", sources) for key, item in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{dotted}.", sources)
    raise TypeError(f"unsupported config field type. Received: {dotted}: {hint!r}")


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} values"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return {int: "an int", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, getattr(hint, "__name__", str(hint)))
