"""The training engine: `train(experiment, workdir)` wires data, network, task and optimizer.

The one place that builds a run (STYLE section 3, "One engine, two loops"): ``tfcovid train``
and the pseudo-label loop call `train`; the Keras ``fit`` front door
(`tfcovid.training.keras_fit`) shares its pieces (`prepare_run`, `split_cases`,
`run_data_config`, `build_task`, `build_optimizer`, `steps_per_epoch`, `foreground_dice`). The
``custom`` loop follows the Inf-Net recipe (spec 4.1-4.4) for every network:

- seeds Python, NumPy and TensorFlow once (``keras.utils.set_random_seed(train.seed)``);
- splits the store's labelled cases by patient into train / validation (/ held-out test)
  parts (`tfcovid.data.splits.train_val_test_split`, seeded), or by the cases' ``split``
  attribute (``train.case_split: store``);
- builds the task: `InfNetTask` (deep supervision) for Inf-Net, `LogitsTask` for networks with
  one ``logits`` output; a prior-taking network gets its prior from the pipeline (ground
  truth, zeros) or from the frozen network of ``model.prior_run`` (kept as
  ``workdir/prior.keras``); ``train.init_from`` copies a finished run's weights at the start,
  or hands over a pre-trained inpainter's (``tfcovid pretrain``);
- per epoch, reads the training cases once (`tfcovid.data.pipeline.distributable_dataset`,
  epoch ``e`` is the pipeline's epoch ``e - 1``, so a resumed epoch sees the same shuffle),
  full batches only, at most ``train.steps_per_epoch`` of them;
- for every batch and every rate of ``train.scales``, in order, resizes the images and soft
  targets (bilinear, ``align_corners=True``; labels by nearest neighbour) to
  ``round(side * rate / 32) * 32`` px and takes one optimizer step (three per batch in the
  reference), each size its own traced `tf.function` (optionally XLA-compiled; eager with
  ``train.run_eagerly``) run through ``strategy.run``; losses are logged from the rate nearest
  1 only, as the reference;
- clips the gradient summed over replicas by value (the task, `clip_summed_gradients`) and
  follows the epoch schedule of `tfcovid.training.optimizers` (driven by the step counter, so
  it resumes exactly);
- after every epoch: validation Dice, a checkpoint (network, optimizer with its Lookahead slow
  weights, epoch, best Dice) in ``workdir/checkpoints``, TensorBoard summaries in
  ``workdir/tensorboard`` (every loss term, validation Dice, learning rate, seconds, images per
  second; CT | truth | prediction (| edge) panels of validation slices; the config as text at
  the start), ``workdir/history.json``, and ``workdir/best.weights.h5`` when the validation
  Dice improves;
- at the end, the network as ``workdir/model.keras``.

``workdir/config.yaml`` (the resolved experiment) is written before the first step. A run
started again in the same workdir resumes after its last finished epoch, optimizer state and
history included; raising ``train.epochs`` continues a finished run.

Validation Dice (`foreground_dice`): per slice and foreground class (infection; or
ground-glass opacity and consolidation), the Dice of the predicted class map (single-class:
probability above 0.5, the reference's test output; multi-class: the argmax), a slice with
empty truth and empty prediction counting 1 (most slices show no infection, and getting them
right is part of the job), averaged over classes, then over slices.

Deviation from the reference: full batches only (the reference keeps the last partial one),
so every replica gets an equal share.

Tracing costs: each traced size takes about 25 s to trace on two CPU cores for the tiny
Inf-Net, so the shipped ``infnet_phantom_tiny`` run (3 epochs of 8 batches at 64/96/128 px)
takes about 1 min 45 s, of which 80 s is the first epoch.

Example (a tiny run on a phantom store)::

    experiment = tfcovid.config.load_experiment("infnet_phantom_tiny",
                                                 ["data.store=phantom_tiny.h5"])
    final = tfcovid.training.engine.train(experiment, "runs/phantom_tiny")
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import tfcovid.models
from tfcovid import config as config_lib
from tfcovid import inference, memory
from tfcovid.data import pipeline, splits
from tfcovid.errors import ConfigError, TfcovidError
from tfcovid.losses import DeepSupervisionLoss, EdgeLoss, StructureLoss
from tfcovid.metrics import tensor
from tfcovid.models.layers import resize_bilinear
from tfcovid.precision import precision_policy
from tfcovid.progress import progress_bar
from tfcovid.data import transforms
from tfcovid.training import optimizers, recompute, summaries
from tfcovid.training.pretraining import handover
from tfcovid.training.tasks import InfNetTask, LogitsTask, Task

logger = logging.getLogger(__name__)

CONFIG_FILE = inference.CONFIG_FILE
HISTORY_FILE = "history.json"
BEST_WEIGHTS_FILE = inference.BEST_WEIGHTS_FILE
MODEL_FILE = inference.MODEL_FILE
PRIOR_MODEL_FILE = inference.PRIOR_MODEL_FILE
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
_SOFT_KEYS = ("image", "mask", "edge", "prior")  # resized bilinearly between scales
IMAGES_SHOWN = 4  # validation slices shown in TensorBoard per epoch


def train(experiment: config_lib.Experiment, workdir: str | os.PathLike | None = None, *,
          strategy: tf.distribute.Strategy | None = None, progress: bool = True) -> dict:
    """Trains ``experiment`` in ``workdir``, resuming from its last checkpoint if any.

    Args:
        experiment: the resolved `tfcovid.config.Experiment`.
        workdir: folder of the run; None uses ``experiment.workdir``.
        strategy: `tf.distribute.Strategy` or None (the current one,
            ``tf.distribute.get_strategy()``). The global batch ``train.batch_size`` is
            split over its replicas.
        progress: bool. Show a progress bar per epoch on a terminal. Defaults to True.

    Returns:
        the last epoch's record of ``history.json`` ("epoch", each loss term, "loss",
        "val_dice", "learning_rate", "seconds", "images_per_second") plus "best_val_dice"
        and "best_epoch" (None without validation).

    Raises:
        ConfigError: no workdir, no store, fewer training slices than one batch, or a
            network another loop trains (`OWN_LOOPS`).
        DataError: the store is missing or unreadable.
    """
    check_trained_here(experiment)
    experiment, workdir = prepare_run(experiment, workdir)
    strategy = strategy or tf.distribute.get_strategy()
    with precision_policy(experiment.train.precision), strategy.scope():
        return _Run(experiment, workdir, strategy, progress).fit()


OWN_LOOPS = {"infnet_inpainting": "tfcovid pretrain",
             "infnet_multiclass_inpainting": "tfcovid pretrain", "coach": "tfcovid pretrain",
             "stichnet": "tfcovid stichnet train"}
"""Networks trained by another loop than this engine's, and the command that trains them."""


def check_trained_here(experiment: config_lib.Experiment) -> None:
    """Raises `ConfigError` for a network that another loop trains (`OWN_LOOPS`)."""
    name = experiment.model.name
    if name in OWN_LOOPS:
        raise ConfigError(f"model.name: {name!r} is trained by `{OWN_LOOPS[name]}`, not by "
                          f"`tfcovid train`")


def check_no_recompute(experiment: config_lib.Experiment, loop: str) -> None:
    """Raises `ConfigError` when ``train.recompute_backbone`` is set for ``loop`` (its name in
    the message), a loop that does not recompute (only `tfcovid train`'s tasks do)."""
    if experiment.train.recompute_backbone:
        raise ConfigError(f"train.recompute_backbone: applies to tfcovid train, not to {loop}; "
                          f"leave it false")


def prepare_run(experiment: config_lib.Experiment, workdir: str | os.PathLike | None
                ) -> tuple[config_lib.Experiment, Path]:
    """Checks the experiment, creates the run folder, writes ``config.yaml`` and seeds Python,
    NumPy and TensorFlow (and op determinism when asked).

    Returns:
        (the experiment with its workdir, the workdir as a Path).

    Raises:
        ConfigError: no workdir or no store.
    """
    workdir = workdir if workdir is not None else experiment.workdir
    if workdir is None:
        raise ConfigError("workdir: not set; pass --workdir or set workdir in the config")
    if not experiment.data.store:
        raise ConfigError("data.store: not set; name the HDF5 store to train on")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    experiment = dataclasses.replace(experiment, workdir=os.fspath(workdir))
    config_lib.dump(experiment, workdir / CONFIG_FILE)
    keras.utils.set_random_seed(experiment.train.seed)
    if experiment.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    return experiment, workdir


def split_cases(experiment: config_lib.Experiment) -> splits.Split:
    """The run's case-level split of the store's labelled cases (patients kept together).

    ``train.case_split`` "random" splits by the configured fractions; "store" follows each
    case's ``split`` attribute (see `tfcovid.config.TrainConfig`).

    Raises:
        ConfigError: "store" split on a store whose labelled cases name no "train" part.
    """
    case_ids, patient_ids, severities = splits.store_case_table(experiment.data.store,
                                                                labelled_only=True)
    train = experiment.train
    if train.case_split == "store":
        return _store_split(experiment.data.store, case_ids, patient_ids, severities, train)
    fractions = (1 - train.validation_fraction - train.test_fraction,
                 train.validation_fraction, train.test_fraction)
    return splits.train_val_test_split(case_ids, fractions, patient_ids=patient_ids,
                                       severities=severities, seed=train.seed)


def _store_split(store: str, case_ids, patient_ids, severities,
                 train: config_lib.TrainConfig) -> splits.Split:
    parts = splits.store_split_attributes(store, case_ids)
    named = {part: [case for case, name in zip(case_ids, parts) if name == part]
             for part in ("train", "val", "test")}
    if not named["train"]:
        raise ConfigError(f"train.case_split: {store} has no labelled cases with split "
                          f"'train'; use case_split 'random'")
    if named["val"] or train.validation_fraction == 0:
        return splits.Split(sorted(named["train"]), sorted(named["val"]), sorted(named["test"]))
    keep = [index for index, name in enumerate(parts) if name == "train"]
    inner = splits.train_val_test_split(
        [case_ids[i] for i in keep], (1 - train.validation_fraction, train.validation_fraction,
                                      0.0),
        patient_ids=[patient_ids[i] for i in keep], severities=[severities[i] for i in keep],
        seed=train.seed)
    return splits.Split(inner.train, inner.val, sorted(named["test"]))


def build_optimizer(optimizer: config_lib.OptimizerConfig,
                    steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The configured optimizer; ``steps_per_epoch`` counts optimizer steps (batches x scales).

    Epochs are numbered from 1, as the reference's schedule. ``clip_value`` is not the
    optimizer's: the task clips the gradient summed over replicas (`build_task`).
    """
    if optimizer.schedule == "constant":
        learning_rate = optimizer.learning_rate
    else:
        schedule_type = (optimizers.StepDecay if optimizer.schedule == "step"
                         else optimizers.CompoundingStepDecay)
        learning_rate = schedule_type(steps_per_epoch, optimizer.learning_rate,
                                      optimizer.decay_rate, optimizer.decay_epochs)
    if optimizer.name == "adam":
        result = optimizers.adam(learning_rate, clipvalue=None)
    else:
        result = optimizers.TorchSGD(learning_rate, momentum=optimizer.momentum,
                                     coupled_weight_decay=optimizer.weight_decay)
    if optimizer.lookahead:
        result = optimizers.Lookahead(result, sync_period=optimizer.lookahead_k,
                                      slow_step_size=optimizer.lookahead_alpha)
    return result


def build_task(experiment: config_lib.Experiment, network: keras.Model | None = None,
               prior_network: keras.Model | None = None) -> Task:
    """The network inside its task: `InfNetTask` for Inf-Net outputs, `LogitsTask` for
    networks with one ``logits`` output; both clip at ``optimizer.clip_value``.

    Args:
        experiment: the resolved experiment.
        network: the network, or None to build it from ``experiment.model`` (registry).
        prior_network: frozen single-class network giving the prior, or None.

    Raises:
        ConfigError: loss settings that do not fit the network, or
            ``train.recompute_backbone`` for a network without a backbone.
    """
    if network is None:
        network = tfcovid.models.build(experiment.model.name, experiment.model.model_config())
    loss, data = experiment.loss, experiment.data
    common = {"clip_value": experiment.optimizer.clip_value, "prior_network": prior_network,
              "normalisation": data.normalisation,
              "recompute_backbone": experiment.train.recompute_backbone}
    if experiment.train.recompute_backbone:
        try:
            recompute.recomputed_backbone(network)
        except ValueError as error:
            raise ConfigError(f"train.recompute_backbone: {error}") from None
    if inference.BINARY_OUTPUT in network.output:
        if loss.terms:
            raise ConfigError(f"loss.terms: {experiment.model.name} is trained with the Inf-Net "
                              f"deep supervision loss; leave loss.terms out")
        side = StructureLoss(bce_weighting=loss.bce_weighting, pixel_loss=loss.pixel_loss)
        return InfNetTask(network, DeepSupervisionLoss(side, EdgeLoss(),
                                                       weights=loss.weights or None), **common)
    return LogitsTask(network, loss.terms or None, focal_alpha=loss.focal_alpha,
                      focal_gamma=loss.focal_gamma, **common)


def steps_per_epoch(experiment: config_lib.Experiment, data: pipeline.DataConfig,
                    train_cases) -> int:
    """Full batches of the training cases per epoch, capped by ``train.steps_per_epoch``.

    Raises:
        ConfigError: no training cases, or fewer training slices than one batch.
    """
    train = experiment.train
    if not train_cases:
        raise ConfigError(f"{experiment.data.store}: no labelled cases left to train on "
                          f"after the split; lower train.validation_fraction")
    slices = pipeline.slice_count(data, train_cases)
    full_batches = slices // train.batch_size
    if full_batches == 0:
        raise ConfigError(f"train.batch_size: {train.batch_size} is more than the {slices} "
                          f"training slices of {experiment.data.store}")
    return min(full_batches, train.steps_per_epoch or full_batches)


def foreground_dice(truth: tf.Tensor, labels: tf.Tensor, classes: int) -> np.ndarray:
    """Per slice, the mean Dice over the foreground classes: the validation score.

    Args:
        truth: int (batch, height, width) true labels: 0 background, 1 ground-glass opacity,
            2 consolidation.
        labels: int (batch, height, width) predicted classes.
        classes: int. The network's output channels; with 1 (single-class networks) the
            truth is read as infection (label > 0) and the one foreground class is 1.

    Returns:
        float array (batch,): per slice and class the Dice of the class maps, an empty truth
        and empty prediction counting 1, averaged over the classes.
    """
    truth = truth if classes > 1 else tf.cast(truth > 0, truth.dtype)
    per_class = [tensor.dice_score(tf.cast(truth == c, tf.float32),
                                   tf.cast(labels == c, tf.float32), axis=(1, 2),
                                   empty="one").numpy()
                 for c in range(1, max(classes, 2))]
    return np.mean(per_class, axis=0)


def run_data_config(experiment: config_lib.Experiment,
                    network: keras.Model) -> pipeline.DataConfig:
    """The data settings the network needs: edges for Inf-Net only, priors from the pipeline
    for prior-taking networks whose prior is ground truth or zeros."""
    data = experiment.data
    needs_prior = (inference.takes_prior(network, data.channels)
                   and inference.prior_source(experiment) != "model")
    return dataclasses.replace(
        data, include_edge=inference.BINARY_OUTPUT in network.output,
        include_prior=needs_prior,
        prior_source=inference.prior_source(experiment) if needs_prior else data.prior_source)


def load_prior_network(experiment: config_lib.Experiment) -> keras.Model | None:
    """The single-class network of ``model.prior_run`` (best weights, else final), or None.

    Raises:
        ConfigError: ``prior: model`` without ``model.prior_run``, or a prior run that
            cannot be loaded or is not single-class.
    """
    prior_run = experiment.model.prior_run
    if prior_run is None:
        if inference.prior_source(experiment) == "model":
            raise ConfigError("model.prior_run: not set; prior 'model' needs the folder of a "
                              "trained single-class run")
        return None
    run = _load_finished_run(prior_run, "model.prior_run")
    if run.family != "binary":
        raise ConfigError(f"model.prior_run: {prior_run} holds a {run.family} network; the "
                          f"prior comes from a single-class one")
    return run.network


def _load_finished_run(workdir: str, key: str) -> inference.LoadedRun:
    try:
        return inference.load_run(workdir, inference.best_or_final(workdir))
    except TfcovidError as error:
        raise ConfigError(f"{key}: {error}") from None


def initialise_from(network: keras.Model, train: config_lib.TrainConfig,
                    workdir: Path) -> None:
    """Starts ``network`` from ``train.init_from``: a finished run of the same network (its
    best, else final, weights) or a ``tfcovid pretrain`` run, whose inpainter hands over
    its weights by name (`tfcovid.training.pretraining.handover`; report in
    ``workdir/transfer.json``).

    Raises:
        ConfigError: the run cannot be loaded or its network does not fit.
    """
    source_dir = train.init_from
    if handover.is_pretrain_run(source_dir):
        report = handover.initialise_from_pretraining(network, source_dir, train.init_skip,
                                                      workdir / handover.TRANSFER_REPORT_FILE)
        logger.info("initialised %s from the inpainter of %s: %d weights copied, %d left "
                    "fresh (%s)", network.name, source_dir, report["copied"],
                    len(report["fresh"]), ", ".join(report["skip"]) or "none skipped")
        return
    source = _load_finished_run(source_dir, "train.init_from").network
    try:
        network.set_weights(source.get_weights())
    except ValueError as error:
        raise ConfigError(f"train.init_from: {source_dir}: its network does not fit "
                          f"{network.name} ({' '.join(str(error).split())[:200]})") from None
    logger.info("initialised %s from %s", network.name, source_dir)


def _resize_batch(batch: dict, size: tuple[int, int]) -> dict:
    """The batch at another training scale: soft maps bilinearly (``align_corners=True``, as
    the reference), class labels by nearest neighbour."""
    resized = {key: resize_bilinear(value, size, align_corners=True)
               for key, value in batch.items() if key in _SOFT_KEYS}
    if "label" in batch:
        resized["label"] = tf.image.resize(batch["label"][..., None], size,
                                           method="nearest")[..., 0]
    return {**batch, **resized}


def _windowed(images: np.ndarray, normalisation: str) -> np.ndarray:
    """The windowed CT in [0, 1] (first channel) of model-ready images."""
    first = images[..., 0]
    if normalisation == "imagenet":
        first = first * transforms.IMAGENET_STD[0] + transforms.IMAGENET_MEAN[0]
    return np.clip(first, 0.0, 1.0)


def resume(checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager, workdir: Path,
           epoch: tf.Variable) -> list[dict] | None:
    """Restores the latest checkpoint of ``manager`` into ``checkpoint``, if there is one.

    Args:
        checkpoint: the run's checkpoint object.
        manager: its manager over ``workdir/checkpoints``.
        workdir: the run folder.
        epoch: the checkpointed variable counting finished epochs.

    Returns:
        None for a fresh run; else the records of ``workdir/history.json`` up to the restored
        epoch (records of a later, unsaved epoch are dropped).

    Raises:
        ConfigError: the checkpoint was written by another experiment's networks or optimizer.
    """
    if not manager.latest_checkpoint:
        return None
    try:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError):
        raise ConfigError(f"{manager.latest_checkpoint}: does not fit this experiment's network "
                          f"or optimizer; train in a new workdir") from None
    done = int(epoch.numpy())
    history_path = workdir / HISTORY_FILE
    records = json.loads(history_path.read_text()) if history_path.exists() else []
    logger.info("resuming %s after epoch %d", workdir, done)
    return [record for record in records if record["epoch"] <= done]


def network_state(network: keras.Model) -> list:
    """Every variable of ``network``, to list in a `tf.train.Checkpoint` beside the network.

    TensorFlow's checkpoint graph does not reach sublayers that a Keras 3 layer keeps in a
    Python list (Inf-Net's RFB branches and reverse-attention convolutions), so without this
    list their batch-norm statistics would not be saved, and a resumed run would restart them.
    """
    return list(network.weights)


def save_network(network: keras.Model, path: Path) -> None:
    """Saves ``network`` as a ``.keras`` file through a temporary file and ``os.replace``."""
    temporary = path.with_name(f".tmp.{path.name}")
    network.save(temporary)
    os.replace(temporary, path)


def end_epoch(loop, network: keras.Model, record: dict) -> None:
    """The bookkeeping closing an epoch of a training loop with validation Dice.

    Sets ``loop.epoch`` to ``record["epoch"]``; when ``record["val_dice"]`` beats
    ``loop.best_dice``, records it and the epoch (``loop.best_epoch``) and writes the network's
    weights whole to ``loop.workdir / BEST_WEIGHTS_FILE``; saves the epoch checkpoint
    (``loop.manager``) and appends ``record`` to ``loop.history`` and ``history.json``.

    Args:
        loop: the loop's state: ``epoch``, ``best_dice``, ``best_epoch`` (`tf.Variable`),
            ``workdir`` (Path), ``manager`` (`tf.train.CheckpointManager`), ``history`` (list).
        network: the network whose weights are the best ones.
        record: the epoch's history record, with "epoch" and "val_dice" (None without
            validation).
    """
    epoch = record["epoch"]
    loop.epoch.assign(epoch)
    if record["val_dice"] is not None and record["val_dice"] > float(loop.best_dice):
        loop.best_dice.assign(record["val_dice"])
        loop.best_epoch.assign(epoch)
        temporary = loop.workdir / f".tmp.{BEST_WEIGHTS_FILE}"
        network.save_weights(temporary)
        os.replace(temporary, loop.workdir / BEST_WEIGHTS_FILE)
    loop.manager.save(checkpoint_number=epoch)
    loop.history.append(record)
    write_json(loop.workdir / HISTORY_FILE, loop.history)


def write_json(path: Path, value) -> None:
    """Writes ``value`` as indented JSON through a temporary file and ``os.replace``."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(temporary, path)


class _Run:
    """The state of one call of `train`: datasets, task, optimizer, checkpoint, logs."""

    def __init__(self, experiment, workdir: Path, strategy, progress: bool):
        self.experiment, self.workdir, self.strategy = experiment, workdir, strategy
        self.progress = progress
        train = experiment.train
        prior_network = load_prior_network(experiment)
        self.task = build_task(experiment, prior_network=(
            prior_network if inference.prior_source(experiment) == "model" else None))
        network = self.task.network
        self.data = run_data_config(experiment, network)
        self.split = split_cases(experiment)
        self.steps = steps_per_epoch(experiment, self.data, self.split.train)
        self.sizes = train.scale_sizes(experiment.data.image_size)
        self.logged_scale = int(np.argmin([abs(rate - 1) for rate in train.scales]))
        self.optimizer = build_optimizer(experiment.optimizer, self.steps * len(self.sizes))
        if train.precision == "mixed_float16":
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        self.task.compile(optimizer=self.optimizer)
        self.optimizer.build(network.trainable_variables)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_dice = tf.Variable(-np.inf, dtype=tf.float64, trainable=False,
                                     name="best_val_dice")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        checkpoint = tf.train.Checkpoint(network=network, network_variables=network_state(network),
                                         optimizer=self.optimizer,
                                         epoch=self.epoch, best_val_dice=self.best_dice,
                                         best_epoch=self.best_epoch)
        self.manager = tf.train.CheckpointManager(checkpoint, workdir / CHECKPOINT_DIR,
                                                  max_to_keep=train.checkpoints_to_keep)
        resumed = resume(checkpoint, self.manager, workdir, self.epoch)
        self.history = resumed or []
        if resumed is None and train.init_from is not None:
            initialise_from(network, train, workdir)
        if prior_network is not None and not (workdir / PRIOR_MODEL_FILE).exists():
            save_network(prior_network, workdir / PRIOR_MODEL_FILE)
        self.writer = tf.summary.create_file_writer(os.fspath(workdir / TENSORBOARD_DIR))
        self.shown = None
        if int(self.epoch.numpy()) == 0:
            summaries.write_text(self.writer, 0, "config", summaries.config_text(
                config_lib.to_yaml(experiment)))
        self.step_functions = [self._step_function(size, index == self.logged_scale)
                               for index, size in enumerate(self.sizes)]
        outputs = network.output
        self.classes = outputs[inference.prediction_key(outputs)].shape[-1]
        self.predict = self._predict_labels
        if not train.run_eagerly:
            self.predict = tf.function(self.predict)

    def _step_function(self, size: tuple[int, int], update_metrics: bool):
        image_size = tuple(self.experiment.data.image_size)
        train = self.experiment.train

        def step(batch):
            if tuple(size) != image_size:
                batch = _resize_batch(batch, size)
            return self.task.train_step(batch, update_metrics=update_metrics)

        if train.jit_compile and not train.run_eagerly:
            # XLA compiles the replica's step; it takes no strings, so "case_id" stays out
            step = tf.function(step, jit_compile=True)

        def replica_step(batch):
            return step({key: value for key, value in batch.items() if value.dtype != tf.string})

        def distributed_step(batch):
            return self.strategy.run(replica_step, args=(batch,))

        return distributed_step if train.run_eagerly else tf.function(distributed_step)

    def fit(self) -> dict:
        if int(self.epoch.numpy()) >= self.experiment.train.epochs:
            logger.info("%s already trained %d epochs", self.workdir, int(self.epoch.numpy()))
        for epoch in range(int(self.epoch.numpy()) + 1, self.experiment.train.epochs + 1):
            self._train_epoch(epoch)
        save_network(self.task.network, self.workdir / MODEL_FILE)
        final = dict(self.history[-1]) if self.history else {}
        best = float(self.best_dice.numpy())
        final["best_val_dice"] = best if np.isfinite(best) else None
        final["best_epoch"] = int(self.best_epoch) if np.isfinite(best) else None
        return final

    def _train_epoch(self, epoch: int) -> None:
        dataset = pipeline.distributable_dataset(self.data, self.split.train, epochs=1,
                                                 first_epoch=epoch - 1).take(self.steps)
        batches = self.strategy.experimental_distribute_dataset(dataset)
        self.task.reset_metrics()
        learning_rate = self._learning_rate()
        start = time.perf_counter()
        for batch in progress_bar(batches, total=self.steps, enabled=self.progress, unit="batch",
                                  description=f"epoch {epoch}/{self.experiment.train.epochs}"):
            for step_function in self.step_functions:
                step_function(batch)
            memory.release_free_memory()
        seconds = time.perf_counter() - start
        record = {"epoch": epoch,
                  **{name: float(tracker.result()) for name, tracker in
                     self.task.trackers.items()},
                  "val_dice": self._validate(), "learning_rate": learning_rate,
                  "seconds": seconds,
                  "images_per_second": self.steps * self.experiment.train.batch_size / seconds}
        end_epoch(self, self.task.network, record)
        self._summarise(record)
        logger.info("epoch %d: loss %.4f, val dice %s, %.1f s", epoch, record["loss"],
                    "n/a" if record["val_dice"] is None else f"{record['val_dice']:.4f}",
                    seconds)

    def _learning_rate(self) -> float:
        """Learning rate at the optimizer's current step (the epoch about to run)."""
        learning_rate = self.optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(learning_rate))

    def _predict_labels(self, batch: dict) -> dict:
        """"label": predicted class per pixel, int32 (batch, height, width); "edge": the
        predicted edge probability (batch, height, width, 1) of Inf-Net networks."""
        outputs = self.task.network(self.task.model_input(batch), training=False)
        logits = inference.prediction_logits(outputs)
        classes = (tf.cast(logits[..., 0] > 0, tf.int32) if logits.shape[-1] == 1
                   else tf.argmax(logits, axis=-1, output_type=tf.int32))
        prediction = {"label": classes}
        if "edge" in outputs:
            prediction["edge"] = tf.sigmoid(tf.cast(outputs["edge"], tf.float32))
        return prediction

    def _validate(self) -> float | None:
        """Mean over validation slices of the mean Dice over the foreground classes."""
        if not self.split.val:
            return None
        data = dataclasses.replace(self.data, include_edge=False)
        scores = []
        self.shown = None
        for batch in pipeline.labelled_dataset(data, self.split.val):
            batch = {key: batch[key] for key in ("image", "label", "prior") if key in batch}
            prediction = self.predict(batch)
            labels = prediction["label"]
            if self.shown is None:
                self.shown = {"image": batch["image"][:IMAGES_SHOWN].numpy(),
                              "truth": batch["label"][:IMAGES_SHOWN].numpy(),
                              **{key: value[:IMAGES_SHOWN].numpy()
                                 for key, value in prediction.items()}}
            scores.append(foreground_dice(batch["label"], labels, self.classes))
        return float(np.mean(np.concatenate(scores)))

    def _summarise(self, record: dict) -> None:
        scalars = {f"loss/{'total' if name == 'loss' else name}": record[name]
                   for name in self.task.trackers}
        scalars.update({"validation/dice": record["val_dice"],
                        "learning_rate": record["learning_rate"],
                        "time/epoch_seconds": record["seconds"],
                        "time/images_per_second": record["images_per_second"]})
        summaries.write_scalars(self.writer, record["epoch"], scalars)
        if self.shown is not None:
            shown = self.shown
            panels = summaries.prediction_panels(
                _windowed(shown["image"], self.data.normalisation), shown["truth"],
                shown["label"], shown.get("edge"))
            summaries.write_images(self.writer, record["epoch"],
                                   "validation/ct_truth_prediction" + (
                                       "_edge" if "edge" in shown else ""), panels)
