"""StichNet's semi-supervised training: a `tf.function` loop over labelled and unlabelled slices.

``train(experiment, workdir)`` (``tfcovid stichnet train``) runs spec section 5 with the
re-implementation's choices:

- the labelled cases are split by patient as every tfcovid run (`engine.split_cases`, same
  seed and fractions, hence the same held-out test cases as a supervised run of the same
  store); the unlabelled stream reads the store's unlabelled cases;
- each batch of ``train.batch_size`` holds ``stichnet.labelled_per_batch`` labelled slices
  (four classes from the label and the store's lung mask: background, healthy lung, GGO,
  consolidation) and the rest unlabelled ones, each stream shuffled per epoch on its own
  (the reference: 1 labelled of 3);
- inputs are whole slices resized to ``data.image_size`` (``stichnet.input: resize``), or
  ``stichnet.patch_size`` tiles of them (``patches``), 1 channel in [0, 1];
- one posterior sample per step; the loss is ``-(mean J_LAB + mean J_UN)``
  (`tfcovid.losses.stichnet.elbo_terms`), KL warm-up and free bits from the config; Adam
  (``optimizer.learning_rate``), gradients clipped per variable by norm
  (``stichnet.clip_norm``) then by value (``optimizer.clip_value``), as the reference clips
  both;
- after every epoch: the batch-norm statistics of the posterior-mean path re-estimated on
  ``stichnet.recalibration_batches`` training batches
  (`tfcovid.models.stichnet.prediction.recalibrate_batch_norm`); validation Dice of the
  posterior-mean prediction (mean over GGO and
  consolidation, `engine.foreground_dice`; tiled and stitched in patch mode), a checkpoint
  (network, optimizer, epoch, best Dice) in ``workdir/checkpoints``, TensorBoard scalars
  (``elbo/j_lab``, ``elbo/j_un``, ``elbo/total``, ``elbo/reconstruction``, ``elbo/label``,
  ``elbo/kl``, ``kl/z1`` ... ``kl/k5``, ``elbo/kl_weight``, ``validation/dice``) and image
  panels (CT | truth | prediction; CT | b | h | g | c style images) in
  ``workdir/tensorboard``, ``workdir/history.json`` and ``workdir/best.weights.h5`` when the
  Dice improves; at the end ``workdir/model.keras``.

A run started again in the same workdir resumes after its last finished epoch (optimizer
state, warm-up step and history included). The run folder is laid out as every tfcovid run,
so ``tfcovid evaluate --model WORKDIR`` scores it (the network's "logits" output).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import tensorflow as tf

import tfcovid.models
from tfcovid import config as config_lib
from tfcovid import memory, visualize
from tfcovid.data import patches, pipeline, transforms
from tfcovid.data.store import CaseStore
from tfcovid.errors import ConfigError, DataError
from tfcovid.losses import stichnet as stichnet_losses
from tfcovid.models.stichnet import prediction
from tfcovid.progress import progress_bar
from tfcovid.training import engine, summaries

logger = logging.getLogger(__name__)

MODEL_NAME = "stichnet"
IMAGES_SHOWN = 4
_KEYS = ("image", "label", "lung")


def train(experiment: config_lib.Experiment, workdir: str | os.PathLike | None = None, *,
          progress: bool = True) -> dict:
    """Trains StichNet as ``experiment`` says, in ``workdir``, resuming if it holds a run.

    Args:
        experiment: the resolved experiment, ``model.name`` "stichnet".
        workdir: folder of the run; None uses ``experiment.workdir``.
        progress: bool. Progress bar per epoch on a terminal. Defaults to True.

    Returns:
        the last record of ``history.json`` plus "best_val_dice" and "best_epoch".

    Raises:
        ConfigError: settings StichNet cannot train with (module docstring).
        DataError: unreadable store, or labelled cases without lung masks.
    """
    check_experiment(experiment)
    experiment, workdir = engine.prepare_run(experiment, workdir)
    return _Run(experiment, workdir, progress).fit()


def check_experiment(experiment: config_lib.Experiment) -> None:
    """Raises `ConfigError` for settings StichNet's loop does not support."""
    data, train, settings = experiment.data, experiment.train, experiment.stichnet
    if experiment.model.name != MODEL_NAME:
        raise ConfigError(f"model.name: {experiment.model.name!r}; tfcovid stichnet trains "
                          f"'{MODEL_NAME}' (use tfcovid train for other networks)")
    engine.check_no_recompute(experiment, "StichNet's loop")
    if data.channels != 1 or data.normalisation != "unit":
        raise ConfigError(f"data.channels: {data.channels}, data.normalisation: "
                          f"{data.normalisation!r}; StichNet takes 1 channel in [0, 1] "
                          f"(channels: 1, normalisation: unit)")
    if data.augmentation is not None or data.patch_size is not None:
        raise ConfigError("data.augmentation / data.patch_size: not supported by StichNet's "
                          "loop (the lung mask is not augmented along); leave them null and "
                          "set stichnet.input instead")
    if data.image_size is None or any(side % 32 for side in data.image_size):
        raise ConfigError(f"data.image_size: {data.image_size}; StichNet needs sides that are "
                          f"multiples of 32")
    if not 1 <= settings.labelled_per_batch <= train.batch_size:
        raise ConfigError(f"stichnet.labelled_per_batch: {settings.labelled_per_batch}; must "
                          f"lie in [1, train.batch_size = {train.batch_size}]")
    if settings.input == "patches" and any(side < settings.patch_size
                                           for side in data.image_size):
        raise ConfigError(f"stichnet.patch_size: {settings.patch_size} px is larger than "
                          f"data.image_size {data.image_size}")


def unlabelled_cases(store: str) -> list[str]:
    """The store's cases without labels, sorted."""
    with CaseStore(store) as cases:
        return [case_id for case_id in cases.case_ids
                if not cases.case_attributes(case_id)["labelled"]]


class LungReader:
    """Reads the lung mask of (case, slice) from a store, for ``tf.numpy_function``.

    Args:
        store: path of the HDF5 store.
        case_ids: the cases that will be read; each must hold a lung mask.

    Raises:
        DataError: a case has no lung mask.
    """

    def __init__(self, store: str, case_ids):
        with CaseStore(store) as cases:
            for case_id in case_ids:
                if not cases.case_attributes(case_id)["has_lung"]:
                    raise DataError(f"{store}: case {case_id!r} has no lung mask; StichNet's "
                                    f"healthy-lung class needs one per labelled case")
        self._file = h5py.File(store, "r")

    def read(self, case_id, slice_index) -> np.ndarray:
        group = self._file[case_id.decode() if isinstance(case_id, bytes) else case_id]
        height, width = (group["sizes"][slice_index] if "sizes" in group
                         else group["image"].shape[1:])
        return group["lung"][slice_index, :height, :width].astype(np.uint8)

    def add_lung(self, element: dict, size: tuple[int, int]) -> dict:
        """``element`` with "lung": uint8 (height, width) at ``size`` (nearest neighbour)."""
        lung = tf.numpy_function(self.read, [element["case_id"], element["slice_index"]],
                                 tf.uint8, stateful=False)
        lung.set_shape([None, None])
        lung = transforms.resize_tf(lung[..., None], size, key="label")[..., 0]
        return {**element, "lung": tf.cast(lung, tf.int32)}


def tile_element(element: dict, size: int) -> tf.data.Dataset:
    """Non-overlapping ``size`` tiles of one element's image (and label, lung)."""
    tiles = {}
    for key, value in element.items():
        value = tf.convert_to_tensor(value)
        planar = value if value.shape.rank == 3 else value[..., None]
        cut = patches.extract_patches(planar[None], size, size)
        tiles[key] = cut if value.shape.rank == 3 else cut[..., 0]
    return tf.data.Dataset.from_tensor_slices(tiles)


class _Run:
    """One call of `train`: data streams, network, optimizer, checkpoint, logs."""

    def __init__(self, experiment: config_lib.Experiment, workdir: Path, progress: bool):
        self.experiment, self.workdir, self.progress = experiment, workdir, progress
        self.settings, train = experiment.stichnet, experiment.train
        self.data = dataclasses.replace(experiment.data, include_edge=False,
                                        include_prior=False)
        self.split = engine.split_cases(experiment)
        if not self.split.train:
            raise ConfigError(f"{self.data.store}: no labelled cases left to train on after "
                              f"the split; lower train.validation_fraction")
        self.num_labelled = self.settings.labelled_per_batch
        self.num_unlabelled = train.batch_size - self.num_labelled
        self.unlabelled = unlabelled_cases(self.data.store)
        if self.num_unlabelled and not self.unlabelled:
            raise ConfigError(f"{self.data.store}: no unlabelled cases for the "
                              f"{self.num_unlabelled} unlabelled slices per batch; lower "
                              f"train.batch_size to stichnet.labelled_per_batch")
        self.lungs = LungReader(self.data.store, self.split.train + self.split.val)
        self.patch_size = (self.settings.patch_size if self.settings.input == "patches"
                           else None)
        tiles = 1
        if self.patch_size:
            tiles = int(np.prod([side // self.patch_size for side in self.data.image_size]))
        slices = pipeline.slice_count(self.data, self.split.train) * tiles
        self.steps = min(max(1, slices // self.num_labelled),
                         train.steps_per_epoch or slices)
        self.network = tfcovid.models.build(MODEL_NAME, experiment.model.model_config())
        self.optimizer = keras.optimizers.Adam(experiment.optimizer.learning_rate)
        self.optimizer.build(self.network.trainable_variables)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self._term_names()}
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_dice = tf.Variable(-np.inf, dtype=tf.float64, trainable=False,
                                     name="best_val_dice")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        checkpoint = tf.train.Checkpoint(network=self.network,
                                         network_variables=engine.network_state(self.network),
                                         optimizer=self.optimizer,
                                         epoch=self.epoch, best_val_dice=self.best_dice,
                                         best_epoch=self.best_epoch)
        self.manager = tf.train.CheckpointManager(checkpoint, workdir / engine.CHECKPOINT_DIR,
                                                  max_to_keep=train.checkpoints_to_keep)
        self.history = engine.resume(checkpoint, self.manager, workdir, self.epoch) or []
        self.writer = tf.summary.create_file_writer(os.fspath(workdir / engine.TENSORBOARD_DIR))
        if int(self.epoch.numpy()) == 0:
            summaries.write_text(self.writer, 0, "config", summaries.config_text(
                config_lib.to_yaml(experiment)))
        self.step = (self._train_step if train.run_eagerly
                     else tf.function(self._train_step, jit_compile=train.jit_compile))
        self.predict = (self._predict_labels if train.run_eagerly
                        else tf.function(self._predict_labels))
        self.recalibrate_forward = None if train.run_eagerly else tf.function(
            lambda images: self.network(images, training=True))
        self.shown = None

    def _term_names(self) -> list[str]:
        names = ["loss", "elbo", "reconstruction", "kl", "kl_weight", "j_lab", "label"]
        names += ["j_un"] if self.num_unlabelled else []
        return names + [f"kl/{name}" for name in stichnet_losses.LEVEL_NAMES]

    def _stream(self, labelled: bool, epoch: int) -> tf.data.Dataset:
        build = pipeline.labelled_dataset if labelled else pipeline.unlabelled_dataset
        cases = self.split.train if labelled else self.unlabelled
        dataset = build(self.data, cases, training=True, epochs=None, first_epoch=epoch - 1,
                        batch=False)
        if labelled:
            dataset = dataset.map(lambda element: self.lungs.add_lung(
                element, self.data.image_size), num_parallel_calls=pipeline.AUTOTUNE)
        dataset = dataset.map(lambda element: {key: element[key] for key in _KEYS
                                               if key in element},
                              num_parallel_calls=pipeline.AUTOTUNE)
        if self.patch_size:
            dataset = dataset.flat_map(lambda element: tile_element(element, self.patch_size))
            dataset = dataset.shuffle(self.data.shuffle_buffer, seed=self.data.seed + epoch)
        count = self.num_labelled if labelled else self.num_unlabelled
        return dataset.batch(count, drop_remainder=True)

    def _batches(self, epoch: int) -> tf.data.Dataset:
        labelled = self._stream(True, epoch)
        if not self.num_unlabelled:
            return labelled.map(lambda batch: (batch, None)).take(self.steps)
        return tf.data.Dataset.zip(labelled, self._stream(False, epoch)).take(
            self.steps).prefetch(pipeline.AUTOTUNE)

    def _train_step(self, labelled: dict, unlabelled: dict | None) -> None:
        settings = self.settings
        images = labelled["image"] if unlabelled is None else tf.concat(
            [labelled["image"], unlabelled["image"]], axis=0)
        labels = stichnet_losses.four_class_labels(labelled["label"], labelled["lung"])
        kl_weight = stichnet_losses.kl_warmup(self.optimizer.iterations,
                                              settings.kl_warmup_steps)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            parts = self.network.forward(images, mode="sample", training=True)
            terms = stichnet_losses.elbo_terms(
                parts, images, labels, self.num_labelled, kl_weight, settings.free_bits,
                settings.label_weight, settings.marginal, settings.label_focal_gamma)
        gradients = tape.gradient(terms["loss"], variables)
        clip_value = self.experiment.optimizer.clip_value
        clipped = []
        for gradient in gradients:
            if gradient is not None and settings.clip_norm is not None:
                gradient = tf.clip_by_norm(gradient, settings.clip_norm)
            if gradient is not None and clip_value is not None:
                gradient = tf.clip_by_value(gradient, -clip_value, clip_value)
            clipped.append(gradient)
        self.optimizer.apply(clipped, variables)
        terms["kl_weight"] = tf.cast(kl_weight, tf.float32)
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])

    def _predict_labels(self, images) -> dict:
        """"label": int32 (batch, height, width) classes of the posterior-mean path (tiled in
        patch mode); "styles": the style images (batch, height, width, 4), whole-slice mode
        only (zeros (batch, height, width, 1) in patch mode)."""
        if self.patch_size is None:
            outputs = self.network(images, training=False)
            return {"label": tf.argmax(outputs["logits"], axis=-1, output_type=tf.int32),
                    "styles": outputs["styles"]}
        probabilities = prediction.predict_probabilities(
            self.network, images, self.patch_size, self.settings.patch_stride)
        return {"label": tf.argmax(probabilities, axis=-1, output_type=tf.int32),
                "styles": tf.zeros_like(images)}

    def fit(self) -> dict:
        epochs = self.experiment.train.epochs
        if int(self.epoch.numpy()) >= epochs:
            logger.info("%s already trained %d epochs", self.workdir, int(self.epoch.numpy()))
        for epoch in range(int(self.epoch.numpy()) + 1, epochs + 1):
            self._train_epoch(epoch)
        engine.save_network(self.network, self.workdir / engine.MODEL_FILE)
        final = dict(self.history[-1]) if self.history else {}
        best = float(self.best_dice.numpy())
        final["best_val_dice"] = best if np.isfinite(best) else None
        final["best_epoch"] = int(self.best_epoch.numpy()) if np.isfinite(best) else None
        return final

    def _train_epoch(self, epoch: int) -> None:
        for tracker in self.trackers.values():
            tracker.reset_state()
        start = time.perf_counter()
        for labelled, unlabelled in progress_bar(
                self._batches(epoch), total=self.steps, enabled=self.progress, unit="batch",
                description=f"epoch {epoch}/{self.experiment.train.epochs}"):
            self.step(labelled, unlabelled)
            memory.release_free_memory()
        seconds = time.perf_counter() - start
        self._recalibrate(epoch)
        record = {"epoch": epoch,
                  **{name: float(tracker.result()) for name, tracker in self.trackers.items()},
                  "val_dice": self._validate(), "seconds": seconds,
                  "images_per_second": self.steps * self.experiment.train.batch_size / seconds}
        engine.end_epoch(self, self.network, record)
        self._summarise(record)
        logger.info("epoch %d: loss %.4f, elbo %.4f, val dice %s, %.1f s", epoch,
                    record["loss"], record["elbo"],
                    "n/a" if record["val_dice"] is None else f"{record['val_dice']:.4f}",
                    seconds)

    def _recalibrate(self, epoch: int) -> None:
        """Batch-norm statistics of the prediction path from training images
        (`prediction.recalibrate_batch_norm`), before validation and saving."""
        count = self.settings.recalibration_batches
        if not count:
            return
        images = self._batches(epoch).take(count).map(
            lambda labelled, unlabelled: labelled["image"] if unlabelled is None
            else tf.concat([labelled["image"], unlabelled["image"]], axis=0))
        prediction.recalibrate_batch_norm(self.network, images, self.recalibrate_forward)

    def _validate(self) -> float | None:
        """Mean over validation slices of the mean Dice over GGO and consolidation."""
        if not self.split.val:
            return None
        scores, self.shown = [], None
        for batch in pipeline.labelled_dataset(self.data, self.split.val):
            predicted = self.predict(batch["image"])
            if self.shown is None:
                self.shown = {"image": batch["image"][:IMAGES_SHOWN].numpy(),
                              "truth": batch["label"][:IMAGES_SHOWN].numpy(),
                              **{key: value[:IMAGES_SHOWN].numpy()
                                 for key, value in predicted.items()}}
            scores.append(engine.foreground_dice(batch["label"], predicted["label"], 3))
        return float(np.mean(np.concatenate(scores)))

    def _summarise(self, record: dict) -> None:
        scalars = {f"elbo/{'total' if name == 'elbo' else name}": record[name]
                   for name in self.trackers if not name.startswith("kl/")}
        scalars.update({name: record[name] for name in self.trackers if name.startswith("kl/")})
        scalars.update({"validation/dice": record["val_dice"],
                        "time/epoch_seconds": record["seconds"],
                        "time/images_per_second": record["images_per_second"]})
        summaries.write_scalars(self.writer, record["epoch"], scalars)
        if self.shown is None:
            return
        shown = self.shown
        summaries.write_images(self.writer, record["epoch"], "validation/ct_truth_prediction",
                               summaries.prediction_panels(shown["image"], shown["truth"],
                                                           shown["label"]))
        if self.patch_size is None:
            panels = np.stack([visualize.side_by_side(
                [visualize.grey(image[..., 0])] + [visualize.grey(styles[..., c])
                                                   for c in range(styles.shape[-1])])
                for image, styles in zip(shown["image"], shown["styles"])])
            summaries.write_images(self.writer, record["epoch"], "validation/ct_styles_bhgc",
                                   panels)
