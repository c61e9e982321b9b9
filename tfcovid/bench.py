"""Speed and memory figures: `benchmark` times inference, training steps, the input pipeline or
``tfcovid predict`` on a whole volume; `cost_table` times training epochs of the SSInfNet models.

Every figure is measured, never asserted: warm-up calls (tracing, XLA compilation, allocator
growth) are excluded, then ``repeat`` timed calls give the median and the spread (min, max) of
the seconds per batch; ``seconds_per_image`` is the median divided by the batch size and
``images_per_second`` its inverse. Peak memory is the process's peak resident set (CPU) or the
accelerator's peak allocation (``tf.config.experimental.get_memory_info``).

Modes:

- ``infer``: the network in inference mode on random batches (batch, size, size, channels),
  one `tf.function` (XLA with ``xla``) called with a new batch of the same shape each time;
- ``train``: one optimizer step of the model's training task (`tfcovid.training.tasks`: deep
  supervision for Inf-Net, BCE on ``logits`` otherwise; for "ssinfnet", the inpainting step of
  pre-training: the coach's binary keep mask, the inpainting loss 0.99 L_rec + 0.01 L_con on
  the masked image; for "stichnet", the ELBO step on a batch whose first half is labelled)
  with Adam, at one scale, on random batches with random targets, the freed heap given back
  after each step as the training loops do (`tfcovid.memory`); with ``input_bound``, the input
  pipeline is timed too at the same batch and size;
- ``pipeline``: the labelled ``tf.data`` pipeline (windowing, edge maps, resizing, ImageNet
  scaling; augmentation unless ``augment=False``) over a phantom store written to a temporary
  folder; its figure is what the input side can feed, to compare with ``train``;
- ``predict``: `tfcovid.predict.predict_scan` end to end on a phantom chest CT of ``slices`` x
  ``size`` x ``size`` voxels written as NIfTI to a temporary folder, with the run of
  ``run_dir`` (its best weights, as ``tfcovid predict`` loads by default, else its final ones)
  or, without one, the untrained model saved as a run at ``network_size`` px (an all-zero
  prior for networks that take one); per repeat, the seconds per stage (load, read,
  inference, stitching, lung mask, severity, writing); "seconds per image" is per slice.

``traces`` counts the traces of the timed `tf.function` over warm-up and timed calls: 1 means
no retracing per batch.

Models: "infnet" (single-class Inf-Net), "multi_infnet" (multi-class Inf-Net, 6 channels),
"unet" (multi-class U-Net), "fcn8" (FCN-8s on VGG16), "ssinfnet" (the inpainting Inf-Net of
SSInfNet; inference is its segmentation forward pass), "stichnet" (the ladder VAE; inference
is its posterior-mean prediction graph, images in [0, 1], sides multiples of 32); ``tiny=True``
builds their tiny settings (tests). Predict mode takes the first four models. Precision:
"float32", "mixed_float16" or "mixed_bfloat16" (the global Keras dtype policy while the model
is built and run; predict mode saves the untrained run in float32, as training does, and
predicts with ``load_predictor(..., precision=...)``, as ``tfcovid predict --precision``).
``recompute`` (train mode) recomputes the backbone's activations in the backward pass
(`tfcovid.training.recompute`).

Example::

    figures = benchmark(BenchSettings(model="infnet", mode="infer", batch=8, size=352))
    figures["seconds_per_image"], figures["peak_memory_mb"], figures["traces"]
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Literal

import keras
import numpy as np
import tensorflow as tf

from tfcovid import memory
from tfcovid.precision import PRECISIONS, precision_policy

MODELS = {"infnet": "infnet", "multi_infnet": "infnet_multiclass", "unet": "unet_multiclass",
          "fcn8": "fcn8_vgg16", "ssinfnet": "infnet_inpainting", "stichnet": "stichnet"}
MODES = ("infer", "train", "pipeline", "predict")
STAGES = ("load", "read", "inference", "stitching", "lung_mask", "severity", "phenotypes",
          "writing")
KEEP_FRACTION = 0.75  # share of 16 x 16 cells the coach keeps (SSInfNet's drop_ratio)
PRETRAIN_CROP = 128  # SSInfNet pre-trains on 128 x 128 crops (spec 7.2)


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What to measure.

    Args:
        model: "infnet", "multi_infnet", "unet", "fcn8", "ssinfnet" or "stichnet". Defaults
            to "infnet".
        mode: "infer", "train", "pipeline" or "predict". Defaults to "infer".
        batch: int >= 1. Images per call (predict: slices per forward pass). Defaults to 8.
        size: int >= 32. Square input side in px (predict: the volume's side). Defaults to 352.
        precision: "float32", "mixed_float16" or "mixed_bfloat16". Defaults to "float32".
        xla: bool. XLA-compile the timed function (predict: the predictor's). Defaults to
            False.
        repeat: int >= 1. Timed calls. Defaults to 10.
        warmup: int >= 0. Untimed calls first (>= 1 except in predict mode). Defaults to 2.
        tiny: bool. Build the model's tiny setting. Defaults to False.
        augment: bool. Pipeline mode: include augmentation. Defaults to True.
        seed: int. Seeds the weights and the random batch. Defaults to 0.
        input_bound: bool. Train mode: also time the input pipeline at the same batch and
            size and report its share of a step. Defaults to False.
        slices: int >= 1. Predict mode: slices of the phantom volume. Defaults to 300.
        network_size: int >= 32. Predict mode without ``run_dir``: the saved run's input side
            in px. Defaults to 352.
        run_dir: str or None. Predict mode: a trained run folder to predict with. Defaults to
            None (the untrained model).
        recompute: bool. Train mode: recompute the backbone's activations in the backward
            pass (`tfcovid.training.recompute`; models with a backbone: "infnet"). Defaults to
            False.
        batches_at_once: int >= 1. Predict mode: slice batches run at once
            (`tfcovid.predict.Predictor`). Defaults to 2, ``tfcovid predict``'s.
    """

    model: Literal["infnet", "multi_infnet", "unet", "fcn8", "ssinfnet", "stichnet"] = "infnet"
    mode: Literal["infer", "train", "pipeline", "predict"] = "infer"
    batch: int = 8
    size: int = 352
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    xla: bool = False
    repeat: int = 10
    warmup: int = 2
    tiny: bool = False
    augment: bool = True
    seed: int = 0
    input_bound: bool = False
    slices: int = 300
    network_size: int = 352
    run_dir: str | None = None
    recompute: bool = False
    batches_at_once: int = 2

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {tuple(MODELS)}. Received: "
                             f"model={self.model!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}. Received: mode={self.mode!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}. Received: "
                             f"precision={self.precision!r}")
        least_warmup = 0 if self.mode == "predict" else 1
        if (self.batch < 1 or self.repeat < 1 or self.warmup < least_warmup or self.size < 32
                or self.slices < 1 or self.network_size < 32 or self.batches_at_once < 1):
            raise ValueError(f"batch, repeat, slices and batches_at_once must be >= 1, warmup >= "
                             f"{least_warmup}, size and network_size >= 32. Received: "
                             f"batch={self.batch}, repeat={self.repeat}, warmup={self.warmup}, "
                             f"size={self.size}, slices={self.slices}, "
                             f"network_size={self.network_size}, "
                             f"batches_at_once={self.batches_at_once}")
        multiple = {"ssinfnet": 16, "stichnet": 32}.get(self.model)  # coach cells, encoders
        if multiple and (self.mode == "predict" or self.size % multiple):
            raise ValueError(f"{self.model} is timed in infer and train modes at a size that is "
                             f"a multiple of {multiple}. Received: mode={self.mode!r}, "
                             f"size={self.size}")
        for option in ("input_bound", "recompute"):
            if getattr(self, option) and self.mode != "train":
                raise ValueError(f"{option} applies to train mode. Received: mode={self.mode!r}")


@dataclasses.dataclass(frozen=True)
class _Timed:
    """One timed unit: ``call`` runs it and waits for it; ``traces`` counts the traces of its
    `tf.function`; ``stage_seconds`` collects predict mode's stage timings, one dict a call."""

    call: Callable[[], object]
    traces: Callable[[], int] | None = None
    stage_seconds: list | None = None


def benchmark(settings: BenchSettings) -> dict:
    """Measures ``settings``; returns the figures (module docstring) as a flat dict.

    Returns:
        dict with "model", "mode", "batch", "size", "precision", "xla", "recompute", "repeat",
        "seconds_per_batch" (list, the timed calls), "seconds_per_image" (median),
        "seconds_per_image_min", "seconds_per_image_max", "images_per_second", "traces" (int,
        or None for the pipeline), "peak_memory_mb" and the keys of `environment`; with
        ``input_bound`` also "input_seconds_per_batch" (median) and "input_bound_fraction"
        (input pipeline seconds per batch over training seconds per step: above 1 the
        pipeline is the bottleneck);
        in predict mode also "slices", "network_size", "batches_at_once",
        "seconds_per_volume" (median) and "stage_seconds" (stage name to median seconds;
        `STAGES`).
    """
    keras.utils.set_random_seed(settings.seed)
    extra = {}
    # predict mode saves its run in float32, as training does, and predicts in the precision
    policy = "float32" if settings.mode == "predict" else settings.precision
    with tempfile.TemporaryDirectory(prefix="tfcovid-bench-") as folder, \
            precision_policy(policy):
        timed = _prepare(settings, Path(folder))
        times = _time(timed.call, settings.warmup, settings.repeat)
        if settings.input_bound:
            feed = _time(_pipeline_call(settings, Path(folder)).call, settings.warmup,
                         settings.repeat)
            extra = {"input_seconds_per_batch": statistics.median(feed),
                     "input_bound_fraction": statistics.median(feed) / statistics.median(times)}
    per_call = settings.slices if settings.mode == "predict" else settings.batch
    median = statistics.median(times)
    if settings.mode == "predict":
        measured = timed.stage_seconds[settings.warmup:]
        extra = {"slices": settings.slices, "network_size": settings.network_size,
                 "batches_at_once": settings.batches_at_once, "seconds_per_volume": median,
                 "stage_seconds": {stage: statistics.median(run.get(stage, 0.0)
                                                            for run in measured)
                                   for stage in STAGES}}
    traces = None if timed.traces is None else int(timed.traces())
    return {"model": settings.model, "mode": settings.mode, "batch": settings.batch,
            "size": settings.size, "precision": settings.precision, "xla": settings.xla,
            "recompute": settings.recompute, "repeat": settings.repeat,
            "seconds_per_batch": times,
            "seconds_per_image": median / per_call,
            "seconds_per_image_min": min(times) / per_call,
            "seconds_per_image_max": max(times) / per_call,
            "images_per_second": per_call / median, "traces": traces, **extra,
            "peak_memory_mb": peak_memory_mb(), **environment()}


def _time(call, warmup: int, repeat: int) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _prepare(settings: BenchSettings, folder: Path) -> _Timed:
    if settings.mode == "pipeline":
        return _pipeline_call(settings, folder)
    if settings.mode == "predict":
        return _predict_call(settings, folder)
    network = build_network(settings.model, settings.tiny)
    batches = random_batches(settings.batch, settings.size, network.inputs[0].shape[-1],
                             settings.seed)
    if settings.mode == "infer":
        keys = _prediction_keys(network)

        def forward(images):  # one pass, its segmentation outputs
            outputs = network(images, training=False)
            return {key: outputs[key] for key in keys}

        traced = tf.function(forward, jit_compile=settings.xla)
        images = itertools.cycle([tf.sigmoid(batch["image"]) if settings.model == "stichnet"
                                  else batch["image"] for batch in batches])
        return _Timed(lambda: _finish(traced(next(images))),
                      traced.experimental_get_tracing_count)
    if settings.model == "ssinfnet":
        step = inpainting_step(network, build_network("coach", settings.tiny),
                               _optimizer(settings.precision))
    elif settings.model == "stichnet":
        step = elbo_step(network, _optimizer(settings.precision))
    else:
        step = training_step(network, _optimizer(settings.precision),
                             recompute_backbone=settings.recompute)
    traced = tf.function(step, jit_compile=settings.xla)
    cycle = itertools.cycle(batches)

    def train_call():  # as the training loops: the freed heap goes back after each step
        _finish(traced(next(cycle)))
        memory.release_free_memory()

    return _Timed(train_call, traced.experimental_get_tracing_count)


def build_network(model: str, tiny: bool, **options) -> keras.Model:
    """The network of a bench model name (`MODELS`, or a registry name), default or tiny,
    with ``options`` replacing fields of its config."""
    import tfcovid.models

    name = MODELS.get(model, model)
    config_type = tfcovid.models.MODELS.config(name)
    return tfcovid.models.build(name, config_type.tiny(**options) if tiny
                                else config_type(**options))


def random_batches(batch: int, size: int, channels: int, seed: int, count: int = 2) -> list:
    """``count`` random training batches of one shape: "image" float32 (batch, size, size,
    channels) N(0, 1); "mask" and "edge" float32 {0, 1} (batch, size, size, 1), the same map;
    "label" int32 (batch, size, size) in {0, 1, 2}."""
    rng = np.random.default_rng(seed)
    shape = (batch, size, size)
    batches = []
    for _ in range(count):
        mask = tf.constant((rng.random(shape + (1,)) > 0.7).astype("float32"))
        batches.append({"image": tf.constant(rng.normal(size=shape + (channels,)), tf.float32),
                        "mask": mask, "edge": mask,
                        "label": tf.constant(rng.integers(0, 3, size=shape), tf.int32)})
    return batches


def _prediction_keys(network: keras.Model) -> tuple:
    """Outputs of a segmentation forward pass: everything but reconstructions."""
    return tuple(key for key in network.output if not key.startswith("reconstruction"))


def _optimizer(precision: str) -> keras.optimizers.Optimizer:
    optimizer = keras.optimizers.Adam(1e-4)
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def training_step(network: keras.Model, optimizer: keras.optimizers.Optimizer,
                  terms: dict | None = None,
                  recompute_backbone: bool = False) -> Callable[[dict], dict]:
    """The segmentation task's ``train_step`` (`tfcovid.training.tasks`: `InfNetTask` for
    Inf-Net outputs, `LogitsTask` with ``terms`` otherwise), gradients clipped at 0.5; see
    `tfcovid.training.tasks.Task` for ``recompute_backbone``."""
    from tfcovid.training.tasks import InfNetTask, LogitsTask

    options = {"clip_value": 0.5, "recompute_backbone": recompute_backbone}
    task = (InfNetTask(network, **options) if "lateral_2" in network.output
            else LogitsTask(network, terms, **options))
    task.compile(optimizer=optimizer)
    optimizer.build(network.trainable_variables)
    return task.train_step


def inpainting_step(network: keras.Model, coach: keras.Model,
                    optimizer: keras.optimizers.Optimizer) -> Callable[[dict], object]:
    """One inpainter step of SSInfNet pre-training (spec 7.4, 7.7): the coach (inference mode)
    scores the image, its binary mask keeps the top ``KEEP_FRACTION`` of the 16 x 16 cells, and
    the inpainter learns to restore the masked image (0.99 L_rec + 0.01 L_con). The single
    model reconstructs the image from its five heads; the multi model (6 channels, image then
    prior) its "reconstruction" of both; the coach reads the first 3 channels."""
    from tfcovid.losses import inpainting
    from tfcovid.models.ssinfnet import masks
    from tfcovid.training import optimizers

    variables = network.trainable_variables
    optimizer.build(variables)

    def step(batch):
        image = batch["image"]
        score = coach(image[..., :3], training=False)["score"]
        mask = masks.coach_mask(score, KEEP_FRACTION, binary=True)
        with tf.GradientTape() as tape:
            outputs = network(masks.apply_mask(image, mask), training=True)
            if "reconstruction" in outputs:
                terms = inpainting.multi_inpainting_terms(outputs["reconstruction"],
                                                          image[..., :3], image[..., 3:], mask)
            else:
                terms = inpainting.inpainting_terms(outputs, image, mask)
            loss = inpainting.inpainting_loss(terms)
            scaled = optimizer.scale_loss(loss)
        optimizers.apply_reached(optimizer, tape.gradient(scaled, variables), variables)
        return loss

    return step


def elbo_step(network: keras.Model,
              optimizer: keras.optimizers.Optimizer) -> Callable[[dict], object]:
    """One StichNet step (`tfcovid.training.stichnet`'s, without its clipping and trackers):
    posterior samples, the ELBO loss with the first half of the batch labelled (at least one
    image), Adam. Images are squashed into [0, 1] by a sigmoid."""
    from tfcovid.losses import stichnet as stichnet_losses
    from tfcovid.training import optimizers

    variables = network.trainable_variables
    optimizer.build(variables)

    def step(batch):
        images = tf.sigmoid(batch["image"])
        labelled = max(1, images.shape[0] // 2)
        with tf.GradientTape() as tape:
            parts = network.forward(images, mode="sample", training=True)
            loss = stichnet_losses.elbo_terms(parts, images, batch["label"][:labelled],
                                              labelled)["loss"]
            scaled = optimizer.scale_loss(loss)
        optimizers.apply_reached(optimizer, tape.gradient(scaled, variables), variables)
        return loss

    return step


def _finish(outputs) -> None:
    """Waits for the computation: reads one value of every output back to the host."""
    for value in tf.nest.flatten(outputs):
        np.asarray(tf.reshape(value, [-1])[:1])


def _pipeline_call(settings: BenchSettings, folder: Path) -> _Timed:
    from tfcovid.data import pipeline
    from tfcovid.data.augment import AugmentConfig
    from tfcovid.data.phantom import write_phantom

    store = folder / "phantom.h5"
    if not store.exists():
        write_phantom(store, num_cases=2, num_slices=max(4, settings.batch), size=256,
                      seed=settings.seed, progress=False)
    config = pipeline.DataConfig(store=os.fspath(store),
                                 image_size=(settings.size, settings.size),
                                 batch_size=settings.batch, seed=settings.seed,
                                 augmentation=AugmentConfig() if settings.augment else None)
    batches = iter(pipeline.distributable_dataset(config, epochs=None))
    return _Timed(lambda: _finish(next(batches)["image"]))


def _predict_call(settings: BenchSettings, folder: Path) -> _Timed:
    """`predict_scan` from the NIfTI file to the report, once per call."""
    from tfcovid import inference, predict

    scan = write_phantom_nifti(folder / "phantom.nii.gz", settings.slices, settings.size,
                               settings.seed)
    run_dir = settings.run_dir or save_untrained_run(
        folder / "run", settings.model, settings.network_size, settings.tiny)
    weights = inference.best_or_final(run_dir)  # best: `tfcovid predict`'s default
    stage_seconds, predictors = [], []

    def call():
        timings = {}
        start = time.perf_counter()
        predictors[:] = [predict.load_predictor(run_dir, weights, jit_compile=settings.xla,
                                                precision=settings.precision,
                                                batches_at_once=settings.batches_at_once)]
        timings["load"] = time.perf_counter() - start
        out = folder / "out"
        predict.predict_scan(scan, predictors[0], out, weights=weights,
                             batch_size=settings.batch, overwrite=True, progress=False,
                             timings=timings)
        shutil.rmtree(out)
        stage_seconds.append(timings)

    def traces():  # of the last call's predictor, loaded afresh as by `tfcovid predict`
        return predictors[0].traced_predict.experimental_get_tracing_count()

    return _Timed(call, traces, stage_seconds)


def write_phantom_nifti(path: Path, slices: int, size: int, seed: int = 0) -> Path:
    """A phantom chest CT (`tfcovid.data.phantom`, case 0) of (slices, size, size) voxels as a
    NIfTI file in HU whose axes point to the patient's left, posterior and superior."""
    import nibabel

    from tfcovid import predict
    from tfcovid.data.phantom import make_phantom_case

    case = make_phantom_case(0, num_slices=slices, height=size, width=size, seed=seed)
    slice_mm, row_mm, column_mm = case.spacing_mm
    affine = np.diag([-column_mm, -row_mm, slice_mm, 1.0])
    # The phantom's slice 0 is cranial; the +z axis points superior, so the first stored slice
    # is the last (most inferior) phantom slice.
    stored = predict.to_stored_order(case.image[::-1], affine).astype(np.int16)
    nibabel.save(nibabel.Nifti1Image(stored, affine), path)
    return path


def save_untrained_run(workdir: Path, model: str, image_size: int, tiny: bool) -> Path:
    """A run folder (``config.yaml``, ``model.keras``, ``best.weights.h5``) of an untrained
    bench model, as training leaves it, for ``load_run`` with "best" or "final" weights (the
    same values); networks that take a prior get an all-zero one."""
    import tfcovid.models
    from tfcovid import config as config_lib
    from tfcovid import inference

    name = MODELS[model]
    options = {"prior": "zeros"} if model == "multi_infnet" else {}
    if tiny:
        options = {**dataclasses.asdict(tfcovid.models.MODELS.config(name).tiny()), **options}
    model_config = config_lib.ModelConfig(name, options)
    experiment = config_lib.Experiment(
        model=model_config, data=config_lib.DataConfig(image_size=(image_size, image_size),
                                                       prior_source="zeros"))
    workdir.mkdir(parents=True, exist_ok=True)
    config_lib.dump(experiment, workdir / "config.yaml")
    network = tfcovid.models.build(name, model_config.model_config())
    network.save(workdir / inference.MODEL_FILE)
    network.save_weights(workdir / inference.BEST_WEIGHTS_FILE)
    return workdir


def cost_table(size: int = 352, batch: int = 4, images: int = 50, repeat: int = 5,
               warmup: int = 2, tiny: bool = False, seed: int = 0) -> dict:
    """Seconds per training epoch of FCN8, multi SInfNet and multi SSInfNet, relative to multi
    SInfNet (the SSInfNet supplement's Table 8).

    An epoch is ``ceil(images / batch)`` optimizer steps of ``batch`` images (the default 50
    images are COVID-SemiSeg's labelled training slices); its seconds are the median step time
    over ``repeat`` timed steps (after ``warmup``) times the steps. Rows, each one traced
    `tf.function` step with Adam on random data at ``size`` px:

    - "FCN8": FCN-8s on VGG16, BCE on the logits;
    - "Multi SInfNet": multi-class Inf-Net (U-Net, "baseline", image + prior, 6 channels),
      BCE;
    - "Multi SSInfNet": its fine-tuning: the "improved" U-Net with the focal loss and
      Lookahead (k 5, alpha 0.5) around Adam, as SSInfNet fine-tunes;
    - "Multi SSInfNet pre-training": one pre-training epoch of the inpainting U-Net at the
      128 px crops of spec 7.2 (coach mask, inpainter step; the coach's own steps, which
      alternate with the inpainter's in rounds, are not counted);
    - "Multi SSInfNet total": pre-training plus fine-tuning epoch.

    Returns:
        dict: "size", "batch", "images", "steps_per_epoch", "seconds_per_epoch" and
        "relative" (row name to value), plus `environment`.
    """
    from tfcovid.training import optimizers

    steps = math.ceil(images / batch)

    def segmentation(model, options=None, terms=None, lookahead=False):
        network = build_network(model, tiny, **(options or {}))
        optimizer = keras.optimizers.Adam(1e-4)
        if lookahead:
            optimizer = optimizers.Lookahead(optimizer, sync_period=5, slow_step_size=0.5)
        return (training_step(network, optimizer, terms), size, network.inputs[0].shape[-1])

    def pretraining():
        network = build_network("infnet_multiclass_inpainting", tiny)
        step = inpainting_step(network, build_network("coach", tiny), keras.optimizers.Adam(1e-4))
        return step, PRETRAIN_CROP, network.inputs[0].shape[-1]

    rows = {"FCN8": lambda: segmentation("fcn8"),
            "Multi SInfNet": lambda: segmentation("multi_infnet"),
            "Multi SSInfNet": lambda: segmentation("multi_infnet", {"variant": "improved"},
                                                   {"focal": 1.0}, lookahead=True),
            "Multi SSInfNet pre-training": pretraining}
    seconds = {}
    for name, make in rows.items():
        keras.utils.set_random_seed(seed)
        step, side, channels = make()
        traced = tf.function(step)
        cycle = itertools.cycle(random_batches(batch, side, channels, seed))
        times = _time(lambda: _finish(traced(next(cycle))), warmup, repeat)
        seconds[name] = statistics.median(times) * steps
    seconds["Multi SSInfNet total"] = (seconds["Multi SSInfNet"]
                                       + seconds["Multi SSInfNet pre-training"])
    reference = seconds["Multi SInfNet"]
    return {"size": size, "batch": batch, "images": images, "steps_per_epoch": steps,
            "seconds_per_epoch": seconds,
            "relative": {name: value / reference for name, value in seconds.items()},
            **environment()}


def peak_memory_mb() -> float:
    """Peak memory in MB: the accelerator's peak allocation, else the process's peak RSS."""
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_memory_info(gpus[0].name)["peak"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def environment() -> dict:
    """Device name, TensorFlow version, thread settings, glibc's ``MALLOC_ARENA_MAX`` (fewer
    malloc arenas fragment less, which lowers the CPU peak memory) and NumPy's
    ``NUMPY_MADVISE_HUGEPAGE`` (0: no transparent huge pages for NumPy's arrays, which changes
    the predict stages' times; ``benchmarks/RESULTS.md``), each None when unset."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    else:
        device = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return {"device": device, "tensorflow": tf.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"),
            "numpy_madvise_hugepage": os.environ.get("NUMPY_MADVISE_HUGEPAGE")}
