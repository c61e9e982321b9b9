"""`fit(experiment, workdir)`: the Keras ``fit`` twin of `tfcovid.training.engine.train`.

The front door of ``train_scripts/`` (STYLE section 3, "One engine, two loops"): the same
split (`engine.split_cases`), data settings (`engine.run_data_config`), task and loss
(`engine.build_task`), optimizer and schedule (`engine.build_optimizer`; under
``mixed_float16`` inside a `keras.optimizers.LossScaleOptimizer`), prior network
(`engine.load_prior_network`) and ``train.init_from`` (`engine.initialise_from`), driven by
``task.fit`` with callbacks instead of the engine's loop:

- training at the base ``data.image_size`` only: ``train.scales`` (multi-scale steps) belong to
  the custom loop, so a fit epoch takes one optimizer step per batch;
- the engine's data: fit epoch ``e`` (from 1) reads the first ``steps`` full batches of the
  pipeline's epoch ``e - 1`` (`training_batches`), ``steps`` being every full batch of the
  training cases, capped by ``train.steps_per_epoch``;
- validation on the validation cases after every epoch (`Validation`): the task's
  ``test_step`` (``val_loss`` and each ``val_loss/<term>``) and the engine's validation Dice
  (`validation_dice` of `predict_labels`, ``val_dice``);
- ``workdir/best.weights.h5``: the *network's* weights whenever ``val_dice`` improves, so
  `tfcovid.inference.load_run` reads a fit run folder as an engine one;
- ``workdir/history.json`` (one record per epoch: "epoch", the terms, "loss", "val_loss",
  the ``val_loss/`` terms, "val_dice", "learning_rate", "seconds", "images_per_second"; the
  engine's record plus the validation losses) and TensorBoard scalars
  in ``workdir/tensorboard`` (`tfcovid.training.summaries.write_scalars`);
- the heap memory each step freed goes back to the system (`ReleaseFreeMemory`,
  `tfcovid.memory`), as in the engine's loop;
- ``keras.callbacks.BackupAndRestore`` in ``workdir/fit_backup``, kept after the run: the
  task's weights and optimizer state (Lookahead slow weights and step counter included) and the
  epoch. A run started again in the same workdir resumes after its last finished epoch, with
  the data of the next epoch; raising ``train.epochs`` continues a finished run;
- ``workdir/config.yaml`` first, ``workdir/prior.keras`` for a model prior, and the network as
  ``workdir/model.keras`` at the end.

Differences from the engine: no multi-scale steps; a checkpoint is a ``BackupAndRestore``
backup (one, overwritten every epoch) rather than ``checkpoints/``; elements of the training
cases beyond ``steps`` full batches are read and dropped (the engine never reads them).

Example (a tiny run on a phantom store)::

    experiment = tfcovid.config.load_experiment("infnet_phantom_tiny",
                                                 ["data.store=phantom_tiny.h5"])
    final = tfcovid.training.keras_fit.fit(experiment, "runs/phantom_tiny_fit")
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfcovid import config as config_lib
from tfcovid import inference, memory
from tfcovid.data import pipeline
from tfcovid.errors import ConfigError, TfcovidError
from tfcovid.precision import precision_policy
from tfcovid.training import engine, summaries
from tfcovid.training.tasks.base import TOTAL

logger = logging.getLogger(__name__)

BACKUP_DIR = "fit_backup"
_BACKUP_METADATA = "training_metadata.json"  # BackupAndRestore's record of finished epochs
_MODEL_KEYS = ("image", "mask", "edge", "label", "prior")  # what tasks read from a batch


def fit(experiment: config_lib.Experiment, workdir: str | os.PathLike | None = None,
        progress: bool = True) -> dict:
    """Trains ``experiment`` with ``keras.Model.fit`` in ``workdir``, resuming its backup if any.

    Runs under the current `tf.distribute.Strategy`; ``train.batch_size`` is the global batch.

    Args:
        experiment: the resolved `tfcovid.config.Experiment`. ``train.scales`` is not used.
        workdir: folder of the run; None uses ``experiment.workdir``.
        progress: bool. Show Keras's progress bar on a terminal. Defaults to True.

    Returns:
        the last epoch's record of ``history.json`` plus "best_val_dice" and "best_epoch"
        (None without validation).

    Raises:
        ConfigError: no workdir, no store, or fewer training slices than one batch.
        DataError: the store is missing or unreadable.
    """
    engine.check_trained_here(experiment)
    experiment, workdir = engine.prepare_run(experiment, workdir)
    with precision_policy(experiment.train.precision):
        return _fit(experiment, workdir, progress)


def _fit(experiment: config_lib.Experiment, workdir: Path, progress: bool) -> dict:
    train = experiment.train
    split = engine.split_cases(experiment)  # reads the store first: fails before any build
    prior_network = engine.load_prior_network(experiment)
    task = engine.build_task(experiment, prior_network=(
        prior_network if inference.prior_source(experiment) == "model" else None))
    network = task.network
    data = engine.run_data_config(experiment, network)
    steps = engine.steps_per_epoch(experiment, data, split.train)
    optimizer = engine.build_optimizer(experiment.optimizer, steps)
    if train.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    task.compile(optimizer=optimizer, jit_compile=train.jit_compile,
                 run_eagerly=train.run_eagerly)
    task.build(network.inputs[0].shape)  # BackupAndRestore restores built models only
    optimizer.build(network.trainable_variables)  # the task's step reads the loss scale

    finished = finished_epochs(workdir)
    history = _read_history(workdir, finished)
    if finished:
        logger.info("resuming %s after epoch %d", workdir, finished)
    elif train.init_from is not None:
        engine.initialise_from(network, train, workdir)
    if prior_network is not None and not (workdir / engine.PRIOR_MODEL_FILE).exists():
        engine.save_network(prior_network, workdir / engine.PRIOR_MODEL_FILE)

    validation = None
    if split.val:
        batches = -(-pipeline.slice_count(data, split.val) // train.batch_size)
        validation = _model_batches(pipeline.labelled_dataset(data, split.val)).apply(
            tf.data.experimental.assert_cardinality(batches))  # Keras then expects its end
    validate = Validation(validation, run_eagerly=train.run_eagerly)
    best = BestNetworkWeights(workdir / engine.BEST_WEIGHTS_FILE, *_best(history))
    recorder = EpochRecorder(workdir, history, steps * train.batch_size)
    backup = keras.callbacks.BackupAndRestore(os.fspath(workdir / BACKUP_DIR),
                                              delete_checkpoint=False)
    if finished >= train.epochs:
        logger.info("%s already trained %d epochs", workdir, finished)
    task.fit(training_batches(data, split.train, steps, first_epoch=finished),
             epochs=train.epochs, initial_epoch=finished, steps_per_epoch=steps,
             callbacks=[validate, best, recorder, backup, ReleaseFreeMemory()], shuffle=False,
             verbose=1 if progress and sys.stdout.isatty() else 0)
    engine.save_network(network, workdir / engine.MODEL_FILE)
    final = dict(recorder.history[-1]) if recorder.history else {}
    found = np.isfinite(best.best_dice)
    final["best_val_dice"] = float(best.best_dice) if found else None
    final["best_epoch"] = best.best_epoch if found else None
    return final


def finished_epochs(workdir: str | os.PathLike) -> int:
    """Epochs a fit run in ``workdir`` has finished and backed up (0 for a new run)."""
    path = Path(workdir) / BACKUP_DIR / _BACKUP_METADATA
    return int(json.loads(path.read_text())["epoch"]) if path.is_file() else 0


def _read_history(workdir: Path, finished: int) -> list[dict]:
    path = workdir / engine.HISTORY_FILE
    if not finished or not path.is_file():
        return []
    return [record for record in json.loads(path.read_text()) if record["epoch"] <= finished]


def _best(history: list[dict]) -> tuple[float, int | None]:
    """The best validation Dice of ``history`` and its epoch; (-inf, None) if none."""
    scored = [record for record in history if record["val_dice"] is not None]
    if not scored:
        return -np.inf, None
    best = max(scored, key=lambda record: record["val_dice"])
    return best["val_dice"], best["epoch"]


def _model_batches(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Batches with the keys tasks read (no strings, so steps can be XLA-compiled)."""
    return dataset.map(lambda batch: {key: batch[key] for key in _MODEL_KEYS if key in batch},
                       num_parallel_calls=tf.data.AUTOTUNE)


def training_batches(data: pipeline.DataConfig, case_ids, steps: int,
                     first_epoch: int = 0) -> tf.data.Dataset:
    """An endless stream of training batches, ``steps`` per epoch, as the engine reads them.

    Epoch ``first_epoch + k`` of the stream is the first ``steps`` batches of the pipeline's
    epoch ``first_epoch + k`` (`tfcovid.data.pipeline.distributable_dataset`, whose shuffle
    and augmentation are seeded by the epoch): the elements of the pipeline's endless stream
    are counted per epoch and those past ``steps * batch_size`` dropped, so no batch straddles
    two epochs and a resumed run reads what an uninterrupted one would.

    Args:
        data: the run's data settings (`tfcovid.training.engine.run_data_config`).
        case_ids: the training cases.
        steps: int >= 1, at most the full batches of one epoch.
        first_epoch: int. Pipeline epoch to start from (finished fit epochs). Defaults to 0.

    Returns:
        a ``tf.data.Dataset`` of global batches of the keys tasks read.
    """
    slices = pipeline.slice_count(data, case_ids)
    if not 1 <= steps <= slices // data.batch_size:
        raise ValueError(f"steps must lie in 1..{slices // data.batch_size} (full batches of "
                         f"{slices} slices). Received: steps={steps}")
    kept_per_epoch = steps * data.batch_size
    # distributable_dataset over endless epochs never drops a remainder, so unbatching it
    # gives the pipeline's element stream back, exactly `slices` elements per epoch.
    elements = pipeline.distributable_dataset(data, case_ids, epochs=None,
                                              first_epoch=first_epoch).unbatch()
    kept = elements.enumerate().filter(
        lambda index, element: index % slices < kept_per_epoch).map(
        lambda index, element: element, num_parallel_calls=tf.data.AUTOTUNE)
    return _model_batches(pipeline.batch_dataset(kept, data.batch_size, drop_remainder=True))


def predict_labels(task, batch: dict) -> tf.Tensor:
    """Predicted class per pixel of a batch: the argmax of the network's class probabilities
    (`tfcovid.inference.class_probabilities`; probability above 0.5 for single-class
    networks), int32 (batch, height, width).

    Args:
        task: `tfcovid.training.tasks.Task` holding the network.
        batch: dict with "image" and, for prior-taking networks without a prior network,
            "prior".
    """
    probabilities = inference.class_probabilities(task.network, task.model_input(batch))
    return tf.argmax(probabilities, axis=-1, output_type=tf.int32)


def validation_dice(predict, batches, classes: int) -> float:
    """Mean over slices of the mean Dice over the foreground classes, as the engine validates.

    Per slice and class ``c`` (1 infection for single-class networks; 1 ground-glass opacity
    and 2 consolidation for multi-class ones), the Dice of the predicted against the true
    class map, an empty truth and empty prediction counting 1.

    Args:
        predict: callable from a batch dict ("image", "prior") to int32 class maps
            (batch, height, width), e.g. `predict_labels` bound to a task.
        batches: iterable of batch dicts with "image", "label" ((batch, height, width) int32:
            0 background, 1 ground-glass opacity, 2 consolidation) and optionally "prior".
        classes: int. The network's output channels (1 for single-class networks).

    Returns:
        float in [0, 1].
    """
    scores = [engine.foreground_dice(
        batch["label"], predict({key: batch[key] for key in ("image", "prior") if key in batch}),
        classes) for batch in batches]
    return float(np.mean(np.concatenate(scores)))


class Validation(keras.callbacks.Callback):
    """Adds the validation scores to every epoch's logs.

    ``val_loss`` and ``val_loss/<term>``: the task's loss terms on the validation batches
    (its ``test_step``, through ``evaluate``); ``val_dice``: `validation_dice`, the engine's
    score. Keras's own ``validation_data`` would name the terms ``val_<term>``, and a "dice"
    loss term would then collide with the score.

    Args:
        batches: ``tf.data.Dataset`` of validation batches, or None (no validation:
            ``val_dice`` is None).
        run_eagerly: bool. Predict eagerly instead of in a ``tf.function``. Defaults to False.
    """

    def __init__(self, batches: tf.data.Dataset | None, run_eagerly: bool = False):
        super().__init__()
        self.batches, self.run_eagerly = batches, run_eagerly

    def on_train_begin(self, logs=None):
        self.predict = functools.partial(predict_labels, self.model)
        if not self.run_eagerly:
            self.predict = tf.function(self.predict)  # traced once per run, not per epoch
        outputs = self.model.network.output
        self.classes = outputs[inference.prediction_key(outputs)].shape[-1]

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self.batches is None:
            logs["val_dice"] = None
            return
        terms = self.model.evaluate(self.batches, verbose=0, return_dict=True)
        logs.update({"val_loss" if name == TOTAL else f"val_loss/{name}": value
                     for name, value in terms.items()})
        logs["val_dice"] = validation_dice(self.predict, self.batches, self.classes)


class BestNetworkWeights(keras.callbacks.Callback):
    """Saves the task's *network* weights to ``path`` whenever ``val_dice`` improves.

    Written to a temporary file moved into place; the file loads into the network alone
    (`tfcovid.inference.load_run`), unlike a ``ModelCheckpoint`` of the task.

    Args:
        path: the ``.weights.h5`` file.
        best_dice: float. Best ``val_dice`` so far (-inf for a new run).
        best_epoch: int or None. Its epoch, counted from 1.
    """

    def __init__(self, path: str | os.PathLike, best_dice: float = -np.inf,
                 best_epoch: int | None = None):
        super().__init__()
        self.path, self.best_dice, self.best_epoch = Path(path), best_dice, best_epoch

    def on_epoch_end(self, epoch, logs=None):
        dice = (logs or {}).get("val_dice")
        if dice is None or not dice > self.best_dice:
            return
        self.best_dice, self.best_epoch = dice, epoch + 1
        temporary = self.path.with_name(f".tmp.{self.path.name}")
        self.model.network.save_weights(temporary)
        os.replace(temporary, self.path)


class ReleaseFreeMemory(keras.callbacks.Callback):
    """Gives the heap memory each step freed back to the system, as the engine's loop does
    (`tfcovid.memory`)."""

    def on_train_batch_end(self, batch, logs=None):
        memory.release_free_memory()


class EpochRecorder(keras.callbacks.Callback):
    """Appends each epoch's record to ``history.json`` and writes it to TensorBoard.

    Args:
        workdir: the run folder.
        history: list of the records of finished epochs (kept when resuming).
        images_per_epoch: int. Training images per epoch, for the throughput.
    """

    def __init__(self, workdir: Path, history: list[dict], images_per_epoch: int):
        super().__init__()
        self.workdir, self.history = workdir, list(history)
        self.images_per_epoch = images_per_epoch
        self.writer = tf.summary.create_file_writer(os.fspath(workdir / engine.TENSORBOARD_DIR))

    def on_epoch_begin(self, epoch, logs=None):
        self.start = self.last_batch_end = time.perf_counter()
        self.learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        self.last_batch_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.last_batch_end - self.start
        record = {"epoch": epoch + 1,
                  **{name: None if value is None else float(value)
                     for name, value in (logs or {}).items()},
                  "learning_rate": self.learning_rate, "seconds": seconds,
                  "images_per_second": self.images_per_epoch / seconds}
        self.history.append(record)
        engine.write_json(self.workdir / engine.HISTORY_FILE, self.history)
        summaries.write_scalars(self.writer, record["epoch"], _scalars(record))
        logger.info("epoch %d: loss %.4f, val dice %s, %.1f s", record["epoch"], record["loss"],
                    "n/a" if record.get("val_dice") is None else f"{record['val_dice']:.4f}",
                    seconds)


def _scalars(record: dict) -> dict:
    """TensorBoard tags of a history record: the engine's ("loss/total", "loss/<term>",
    "validation/dice", ...) plus "validation/loss" and "validation/loss/<term>"."""
    scalars = {}
    for name, value in record.items():
        if name in ("epoch", "learning_rate", "seconds", "images_per_second"):
            continue
        if name.startswith("val_"):
            scalars[f"validation/{name[len('val_'):]}"] = value
        else:
            scalars[f"loss/{'total' if name == 'loss' else name}"] = value
    scalars.update({"learning_rate": record["learning_rate"],
                    "time/epoch_seconds": record["seconds"],
                    "time/images_per_second": record["images_per_second"]})
    return scalars


def script_main(argv, *, program: str, families: tuple[str, ...], default_config: str,
                description: str) -> int:
    """The command line of a ``train_scripts/`` page: CONFIG, ``--set``, ``--workdir``,
    ``--quiet``; `fit`; the summary. Returns the exit status (2 on a `TfcovidError`, printed
    as one line ``<program>: error: ...``).

    Args:
        argv: list of str or None (``sys.argv[1:]``).
        program: str. The script's file name, for messages.
        families: model names the script trains; others are refused.
        default_config: str. Shipped experiment used without CONFIG.
        description: str. The ``--help`` text.
    """
    from tfcovid.cli.train import format_summary

    parser = argparse.ArgumentParser(prog=program, description=description)
    parser.add_argument("config", nargs="?", default=default_config,
                        metavar="CONFIG.yaml|NAME",
                        help=f"experiment YAML or shipped name (default: {default_config})")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config key (repeatable)")
    parser.add_argument("--workdir", metavar="DIR", help="run folder (default: the config's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or info logs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s")
    try:
        experiment = config_lib.load_experiment(args.config, args.overrides)
        if experiment.model.name not in families:
            raise ConfigError(f"model.name: {experiment.model.name}: this script trains "
                              f"{', '.join(families)}; see train_scripts/README.md")
        workdir = args.workdir if args.workdir is not None else experiment.workdir
        final = fit(experiment, workdir, progress=not args.quiet)
    except TfcovidError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    print(format_summary(str(workdir), final))
    return 0
