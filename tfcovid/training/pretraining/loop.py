"""The resumable pre-training loop: ``pretrain(experiment, workdir)``, ``tfcovid pretrain``.

Runs the schedule of `tfcovid.training.pretraining.schedule` epoch by epoch with the steps of
`tfcovid.training.pretraining.steps`:

- the network (``model.name``: ``infnet_inpainting`` for the single model,
  ``infnet_multiclass_inpainting`` for the multi-class one) is the inpainter; the coach is
  `tfcovid.models.ssinfnet.coach.CoachNetwork` with ``pretrain.coach`` options;
- training reads every slice of the training cases: the labelled cases of the run's split
  (``train.case_split``) and all unlabelled cases, labels unused; the validation cases
  validate; the held-out test cases are never read. The multi model's prior comes from the
  frozen network of ``model.prior_run`` (``model.prior: model``; any slice), or from the
  pipeline's ground truth (labelled slices only, as the reference's prior folder);
- after every epoch: a checkpoint in ``workdir/checkpoints`` (both networks, both
  optimizers, both samplers, epochs done, the round's best validation loss), a record in
  ``workdir/history.json`` ("epoch", "round", "phase", the step's terms, "fraction_erased",
  validation terms after network epochs, "learning_rate", "seconds") and TensorBoard
  summaries in ``workdir/tensorboard``: both losses, the erased fraction, learning rates, and
  masked input | mask | reconstruction | target panels of validation slices;
- validation: the inpainter's loss under fixed random block masks on centre crops, after
  each network epoch (coach epochs do not change the inpainter); epoch 0 is the untrained
  inpainter, the "before" figure. Whenever it improves within a round, the round's best
  weights go to ``workdir/rounds/round_RR/{inpainter,coach}.weights.h5``, as the reference;
- at the end: ``workdir/inpainter.keras`` (the last round's best weights, else the final
  ones), ``workdir/coach.keras`` and ``workdir/pretrain.json`` (reconstruction loss before
  and after, the weights used, the epochs). ``train.init_from: workdir`` then fine-tunes from
  it (`tfcovid.training.engine.initialise_from`).

A run started again in the same workdir resumes after its last finished epoch, in the middle
of a phase if need be; raising ``pretrain.rounds`` continues a finished schedule.
``max_epochs`` stops a call early (for time-limited jobs), resumable like an interruption.

The coach learns against the inpainter in inference mode, whose batch-norm statistics come
from the network phases: a coach phase before any network phase needs a pre-trained backbone
(the reference starts from ImageNet weights), or the inpainter's outputs overflow and the run
stops with a `DivergedError` rather than saving non-finite weights.

Deviations: validation uses centre crops and fixed random masks (the reference: random crops
and the coach's masks, so its validation loss is stochastic and not comparable across
rounds); the last partial training batch is dropped; one device only (no tf.distribute).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

import tfcovid.models
from tfcovid import config as config_lib
from tfcovid import inference, memory
from tfcovid.data import pipeline, splits
from tfcovid.errors import ConfigError, DivergedError
from tfcovid.models.ssinfnet.coach import CoachConfig, build_coach
from tfcovid.progress import progress_bar
from tfcovid.training import engine, summaries
from tfcovid.training.pretraining import inputs, schedule
from tfcovid.training.pretraining.handover import INPAINTER_FILE, INPAINTING_NETWORKS
from tfcovid.training.pretraining.steps import Pretrainer

logger = logging.getLogger(__name__)

COACH_FILE = "coach.keras"
SUMMARY_FILE = "pretrain.json"
ROUNDS_DIR = "rounds"
IMAGES_SHOWN = 4
_SHOWN_RECONSTRUCTION = {"single": "reconstruction_2", "multi": "reconstruction"}


def pretrain(experiment: config_lib.Experiment, workdir: str | os.PathLike | None = None, *,
             progress: bool = True, max_epochs: int | None = None) -> dict:
    """Pre-trains ``experiment``'s inpainter against the coach in ``workdir``, resuming.

    Args:
        experiment: the resolved experiment (``model``: an inpainting network; ``pretrain``).
        workdir: folder of the run; None uses ``experiment.workdir``.
        progress: bool. Show a progress bar per epoch on a terminal. Defaults to True.
        max_epochs: int >= 1 or None. Stop after this many epochs in this call. Defaults to
            None (run the schedule to its end).

    Returns:
        the summary of ``pretrain.json`` ("finished", "epochs_done", "total_epochs",
        "reconstruction_before", "reconstruction_after", "weights") when the schedule is
        complete, else the same keys with "finished" False and no "after" figure.

    Raises:
        ConfigError: a network that is not an inpainting one, bad coach options, no
            training slices, or a checkpoint of another experiment.
        DivergedError: an epoch's loss is not finite (that epoch is not saved).
    """
    if max_epochs is not None and max_epochs < 1:
        raise ValueError(f"max_epochs must be >= 1 or None. Received: max_epochs={max_epochs}")
    name = experiment.model.name
    if name not in INPAINTING_NETWORKS:
        raise ConfigError(f"model.name: {name!r} is not an inpainting network; pre-train "
                          f"one of {', '.join(INPAINTING_NETWORKS)}")
    engine.check_no_recompute(experiment, "pre-training")
    experiment, workdir = engine.prepare_run(experiment, workdir)
    return _Pretraining(experiment, workdir, progress).run(max_epochs)


def _split(experiment: config_lib.Experiment) -> tuple[list[str], list[str]]:
    """(training cases, validation cases): every unlabelled case trains."""
    case_ids, _, _ = splits.store_case_table(experiment.data.store)
    labelled = set(splits.store_case_table(experiment.data.store, labelled_only=True)[0])
    unlabelled = [case for case in case_ids if case not in labelled]
    if not labelled:
        return unlabelled, []
    split = engine.split_cases(experiment)
    return sorted(split.train) + unlabelled, sorted(split.val)


class _Pretraining:
    """The state of one call of `pretrain`."""

    def __init__(self, experiment: config_lib.Experiment, workdir: Path, progress: bool):
        self.experiment, self.workdir, self.progress = experiment, workdir, progress
        self.config, train = experiment.pretrain, experiment.train
        self.phases = schedule.phases(self.config)
        inpainter = tfcovid.models.build(experiment.model.name, experiment.model.model_config())
        try:
            coach = build_coach(CoachConfig(**self.config.coach))
        except TypeError as error:
            raise ConfigError(f"pretrain.coach: {error}") from None
        self.multi = "reconstruction" in inpainter.output
        prior_network = engine.load_prior_network(experiment) if self.multi else None
        prior_normalisation = (inference.load_experiment(experiment.model.prior_run)
                               .data.normalisation if prior_network is not None else "imagenet")
        self.pretrainer = Pretrainer(inpainter, coach, self.config,
                                     prior_network=prior_network,
                                     prior_normalisation=prior_normalisation, seed=train.seed)
        self.labelled_only = self.multi and prior_network is None
        self.data = dataclasses.replace(experiment.data, normalisation="unit", channels=3,
                                        include_edge=False, include_prior=self.labelled_only,
                                        prior_source=(inference.prior_source(experiment)
                                                      if self.labelled_only
                                                      else experiment.data.prior_source))
        self.train_cases, self.val_cases = _split(experiment)
        if self.labelled_only:
            labelled = set(splits.store_case_table(experiment.data.store, True)[0])
            self.train_cases = [case for case in self.train_cases if case in labelled]
        self.steps = self._steps_per_epoch()
        self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
        self.best_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_loss")
        checkpoint = tf.train.Checkpoint(**self.pretrainer.checkpointables(),
                                         epochs_done=self.epochs_done, best_loss=self.best_loss)
        self.manager = tf.train.CheckpointManager(checkpoint, workdir / engine.CHECKPOINT_DIR,
                                                  max_to_keep=train.checkpoints_to_keep)
        self.history = engine.resume(checkpoint, self.manager, workdir, self.epochs_done) or []
        self.shown = None
        self.writer = tf.summary.create_file_writer(os.fspath(workdir / engine.TENSORBOARD_DIR))
        self.network_step = self._compile(self.pretrainer.network_step)
        self.coach_step = self._compile(self.pretrainer.coach_step)

    def _compile(self, step):
        train = self.experiment.train
        return step if train.run_eagerly else tf.function(step, jit_compile=train.jit_compile)

    def _steps_per_epoch(self) -> int:
        train = self.experiment.train
        if not self.train_cases:
            raise ConfigError(f"{self.experiment.data.store}: no slices left to pre-train on "
                              f"after the split")
        slices = pipeline.slice_count(self.data, self.train_cases, labelled=self.labelled_only)
        if slices < train.batch_size:
            raise ConfigError(f"train.batch_size: {train.batch_size} is more than the {slices} "
                              f"training slices of {self.experiment.data.store}")
        return min(slices // train.batch_size, train.steps_per_epoch or slices)

    def _dataset(self, cases, training: bool, epoch: int) -> tf.data.Dataset:
        return inputs.pretraining_dataset(
            self.data, cases, labelled=self.labelled_only, training=training, epoch=epoch,
            crop_size=self.config.crop_size, seed=self.experiment.train.seed,
            batch_size=self.experiment.train.batch_size)

    def run(self, max_epochs: int | None) -> dict:
        if not self.history:
            summaries.write_text(self.writer, 0, "config", summaries.config_text(
                config_lib.to_yaml(self.experiment)))
            self._finish_epoch({"epoch": 0, "round": None, "phase": None,
                                **self._validate(coach_masks=False)}, save=False)
        ran = 0
        while (located := schedule.locate(self.config, int(self.epochs_done.numpy()))):
            if max_epochs is not None and ran >= max_epochs:
                return self._summary(finished=False)
            self._run_epoch(*located)
            ran += 1
        return self._finish()

    def _run_epoch(self, phase: schedule.Phase, phase_epoch: int) -> None:
        epoch = int(self.epochs_done.numpy()) + 1
        if phase_epoch == 0 and (phase.index == 0
                                 or self.phases[phase.index - 1].round != phase.round):
            self.best_loss.assign(np.inf)
        network = phase.kind == schedule.NETWORK
        if network:
            learning_rate = schedule.network_learning_rate(self.config, phase.round, phase_epoch)
            if schedule.restarts_momentum(self.config, phase_epoch):
                self.pretrainer.restart_network_optimizer(learning_rate)
        else:
            learning_rate = self.config.coach_learning_rate
            if phase_epoch == 0:
                self.pretrainer.restart_coach_optimizer()
        sums, start = {}, time.perf_counter()
        batches = self._dataset(self.train_cases, True, epoch).take(self.steps)
        description = (f"epoch {epoch}/{schedule.total_epochs(self.config)} round "
                       f"{phase.round} {phase.kind}")
        for batch in progress_bar(batches, total=self.steps, enabled=self.progress,
                                  unit="batch", description=description):
            terms = (self.network_step(batch, phase.coach_masks) if network
                     else self.coach_step(batch))
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            memory.release_free_memory()
        record = {"epoch": epoch, "round": phase.round, "phase": phase.kind,
                  **{key: value / self.steps for key, value in sums.items()},
                  "learning_rate": learning_rate, "seconds": time.perf_counter() - start}
        self._check_finite(record, phase)
        if network:
            record.update({f"val_{key}": value for key, value in
                           self._validate(phase.coach_masks).items()})
            self._check_finite(record, phase)
        self.epochs_done.assign(epoch)
        self._finish_epoch(record, save=True)

    def _check_finite(self, record: dict, phase: schedule.Phase) -> None:
        diverged = [key for key, value in record.items()
                    if isinstance(value, float) and not np.isfinite(value)]
        if diverged:
            raise DivergedError(
                f"{self.workdir}: epoch {record['epoch']} ({phase.kind} phase of round "
                f"{phase.round}): {diverged[0]} is not finite; nothing of this epoch was saved. "
                f"Lower the learning rate, or let the inpainter learn before the coach (order: "
                f"network_first) so its batch-norm statistics exist, and run again")

    def _validate(self, coach_masks: bool) -> dict:
        """The inpainter's validation terms; keeps panels of the first batch for TensorBoard."""
        if not self.val_cases:
            self.shown = None
            return {}
        sums, batches = {}, 0
        self.shown = None
        for batch in self._dataset(self.val_cases, False, 1):
            terms = self.pretrainer.validation_terms(batch)
            for key in ("loss", "reconstruction", "context"):
                sums[key] = sums.get(key, 0.0) + float(terms[key])
            batches += 1
            if self.shown is None:
                self.shown = self._panels(terms, coach_masks)
        return {key: value / batches for key, value in sums.items()}

    def _panels(self, terms: dict, coach_masks: bool) -> np.ndarray:
        """masked input | mask | reconstruction | target, grey, uint8 (images, h, 4 w, 3)."""
        prepared, mask = terms["prepared"], terms["mask"]
        outputs = terms["outputs"]
        if coach_masks:
            # The coach samples: put its sampler back so that showing masks changes nothing.
            sampler = self.pretrainer.coach.sampler.state
            state = sampler.numpy()
            mask = self.pretrainer.coach_masks(prepared["input"])["mask"]
            sampler.assign(state)
            outputs = self.pretrainer.inpainter(self.pretrainer.masked_input(prepared, mask),
                                                training=False)
        key = _SHOWN_RECONSTRUCTION["multi" if self.multi else "single"]
        reconstruction = outputs[key][..., :3]
        image = inputs.target_to_image(prepared["target"])
        columns = [image * mask, tf.repeat(mask, 3, axis=-1),
                   inputs.target_to_image(reconstruction), image]
        panels = tf.concat([column[:IMAGES_SHOWN] for column in columns], axis=2)
        return np.round(np.nan_to_num(panels.numpy()) * 255).astype(np.uint8)

    def _finish_epoch(self, record: dict, save: bool) -> None:
        validation = record.get("val_loss", record.get("loss") if record["epoch"] == 0 else None)
        if save:
            phase = record["phase"]
            if phase == schedule.NETWORK and validation is not None and validation < float(
                    self.best_loss.numpy()):
                self.best_loss.assign(validation)
                self._save_round_best(record["round"])
            self.manager.save(checkpoint_number=record["epoch"])
        self.history.append(record)
        engine.write_json(self.workdir / engine.HISTORY_FILE, self.history)
        self._summarise(record)
        logger.info("epoch %d %s: %s", record["epoch"], record["phase"] or "start", ", ".join(
            f"{key} {value:.4g}" for key, value in record.items()
            if isinstance(value, float) and key != "seconds"))

    def _save_round_best(self, round_index: int) -> None:
        folder = self.workdir / ROUNDS_DIR / f"round_{round_index:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, network in (("inpainter", self.pretrainer.inpainter),
                              ("coach", self.pretrainer.coach)):
            temporary = folder / f".tmp.{name}.weights.h5"
            network.save_weights(temporary)
            os.replace(temporary, folder / f"{name}.weights.h5")

    def _summarise(self, record: dict) -> None:
        names = {"loss": "loss/inpainter", "reconstruction": "loss/reconstruction",
                 "context": "loss/context", "coach_loss": "loss/coach", "kl": "loss/coach_kl",
                 "fraction_erased": "mask/fraction_erased", "val_loss": "validation/loss",
                 "val_reconstruction": "validation/reconstruction",
                 "val_context": "validation/context", "seconds": "time/epoch_seconds"}
        scalars = {tag: record.get(key) for key, tag in names.items()}
        if record["epoch"] == 0:
            scalars.update({"validation/loss": record.get("loss"),
                            "validation/reconstruction": record.get("reconstruction"),
                            "loss/inpainter": None, "loss/reconstruction": None,
                            "loss/context": None})
        if record["phase"] is not None:
            scalars[f"learning_rate/{record['phase']}"] = record["learning_rate"]
            scalars["schedule/round"] = record["round"]
        summaries.write_scalars(self.writer, record["epoch"], scalars)
        if self.shown is not None and record["phase"] != schedule.COACH:
            summaries.write_images(self.writer, record["epoch"],
                                   "validation/masked_mask_reconstruction_target", self.shown)
        if record["phase"] == schedule.COACH:
            self._summarise_coach(record["epoch"])

    def _summarise_coach(self, epoch: int) -> None:
        """The coach's new masks on validation slices, after a coach epoch."""
        if not self.val_cases:
            return
        batch = next(iter(self._dataset(self.val_cases, False, 1)))
        terms = self.pretrainer.validation_terms(batch)
        summaries.write_images(self.writer, epoch, "coach/masked_mask_reconstruction_target",
                               self._panels(terms, coach_masks=True))

    def _finish(self) -> dict:
        inpainter = self.pretrainer.inpainter
        rounds_with_best = [phase.round for phase in self.phases
                            if (self.workdir / ROUNDS_DIR / f"round_{phase.round:02d}"
                                / "inpainter.weights.h5").is_file()]
        weights = "final"
        if rounds_with_best:
            best_round = max(rounds_with_best)
            inpainter.load_weights(self.workdir / ROUNDS_DIR / f"round_{best_round:02d}"
                                   / "inpainter.weights.h5")
            weights = f"round {best_round} best"
        engine.save_network(inpainter, self.workdir / INPAINTER_FILE)
        engine.save_network(self.pretrainer.coach, self.workdir / COACH_FILE)
        after = self._validate(coach_masks=False)
        summary = self._summary(finished=True, weights=weights,
                                after=after.get("reconstruction"))
        engine.write_json(self.workdir / SUMMARY_FILE, summary)
        return summary

    def _summary(self, finished: bool, weights: str | None = None,
                 after: float | None = None) -> dict:
        before = self.history[0].get("reconstruction") if self.history else None
        return {"finished": finished, "epochs_done": int(self.epochs_done.numpy()),
                "total_epochs": schedule.total_epochs(self.config),
                "reconstruction_before": before, "reconstruction_after": after,
                "weights": weights}
