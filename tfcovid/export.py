"""A trained run as a TensorFlow SavedModel that takes raw Hounsfield units.

`export_run` writes the run's network (and its prior network, for multi-class runs) with one
``serving_default`` signature:

- input ``hu``: float32 (batch, height, width), Hounsfield units, any height and width;
- output ``probabilities``: float32 (batch, height, width, classes), per-pixel class
  probabilities summing to 1: 2 classes (0 background, 1 infection) for single-class runs,
  3 (0 background, 1 ground-glass opacity, 2 consolidation) for multi-class ones;
- output ``label``: int32 (batch, height, width), the argmax of ``probabilities``;
- output ``infected_fraction``: float32 (batch,), the share of each slice's pixels whose label
  is not background, over the whole slice (not over the lung).

Inside the graph, as `tfcovid.inference.predict_unit_slices` in Python: the run's HU window
maps the slices onto [0, 1]; they are resized to the run's ``image_size`` (bilinear,
half-pixel centres, no antialiasing), given the model's channels and scaling (and, for
multi-class networks, the prior made by the run's prior network, or zeros); the class
probabilities come back resized to each input's size (bilinear). So a served model needs
nothing of tfcovid, and `predict_hu` computes the same outputs eagerly in Python.

The SavedModel documents itself: the variables ``class_names`` (str), ``image_size``
((height, width) px), ``window_hu`` ((level, width) HU) and ``config_yaml`` (the run's resolved
``config.yaml``) hang on the loaded object, and ``assets/config.yaml`` is the same text.

Example::

    export_run("runs/phantom_tiny", "saved_models/phantom_tiny")
    # then, anywhere with TensorFlow and without tfcovid:
    served = tf.saved_model.load("saved_models/phantom_tiny")
    outputs = served.signatures["serving_default"](hu=tf.constant(slices_hu, tf.float32))
    outputs["label"], served.class_names.numpy()
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfcovid import atomic, inference
from tfcovid.data import transforms
from tfcovid.errors import DataError

logger = logging.getLogger(__name__)

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "hu"
OUTPUT_NAMES = ("probabilities", "label", "infected_fraction")
CONFIG_ASSET = "config.yaml"


def load_export_run(workdir: str | os.PathLike, weights: str = "best",
                    prior_run: str | os.PathLike | None = None,
                    precision: str | None = None) -> inference.LoadedRun:
    """Loads a run to export (`tfcovid.inference.load_run`), with its prior network.

    Args:
        workdir: the run folder.
        weights: "best" or "final", as `tfcovid.inference.load_run`. Defaults to "best".
        prior_run: folder of a single-class run whose network (best weights, else final)
            makes the prior of a multi-class run that keeps no ``prior.keras`` (trained with
            ground-truth priors), or None. Defaults to None.
        precision: None (the network as saved) or a dtype policy to rebuild it in, as
            `tfcovid.inference.load_run`. Defaults to None.

    Returns:
        the loaded run, its ``prior_network`` taken from ``prior_run`` when given.

    Raises:
        ValueError: unknown ``weights`` or ``precision``.
        DataError: a missing or unfinished run; a run with ``image_size: null``; a
            multi-class run that needs a prior network and has none; a ``prior_run`` that
            the run does not use or that is not single-class.
    """
    run = inference.load_run(workdir, weights, precision)
    if run.experiment.data.image_size is None:
        raise DataError(f"{run.workdir}: data.image_size is null (patch mode); only whole-slice "
                        f"runs can be exported")
    uses_zero_prior = inference.prior_source(run.experiment) == "zeros"
    if prior_run is not None:
        if not run.takes_prior or uses_zero_prior or run.prior_network is not None:
            reason = ("keeps its own " + inference.PRIOR_MODEL_FILE if run.prior_network
                      else "takes no model prior")
            raise DataError(f"{prior_run}: {run.workdir} {reason}; leave out the prior run")
        prior = inference.load_run(prior_run, inference.best_or_final(prior_run))
        if prior.family != "binary":
            raise DataError(f"{prior_run}: holds a {prior.family} network; the prior comes "
                            f"from a single-class run")
        run = dataclasses.replace(run, prior_network=prior.network)
    elif run.takes_prior and run.prior_network is None and not uses_zero_prior:
        raise DataError(f"{run.workdir}: the network takes a prior but the run has no "
                        f"{inference.PRIOR_MODEL_FILE}; pass the single-class run that makes "
                        f"it (--prior-model RUN_DIR)")
    return run


def predict_tensors(run: inference.LoadedRun, slices_hu: tf.Tensor) -> dict:
    """The exported computation on a batch of raw slices; traced by `export_run`.

    Args:
        run: a run loaded by `load_export_run`.
        slices_hu: float32 tensor (batch, height, width), Hounsfield units.

    Returns:
        dict of tensors: "probabilities" float32 (batch, height, width, classes), "label"
        int32 (batch, height, width), "infected_fraction" float32 (batch,); see the module
        docstring.
    """
    data = run.experiment.data
    slices_hu = tf.convert_to_tensor(slices_hu, tf.float32)
    unit = transforms.window_hu_tf(slices_hu, data.window_level_hu, data.window_width_hu)
    probabilities = inference.unit_probabilities(run, unit[..., None],
                                                 tf.shape(slices_hu)[1:3])
    label = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    infected_fraction = tf.reduce_mean(tf.cast(label > 0, tf.float32), axis=(1, 2))
    return {"probabilities": probabilities, "label": label,
            "infected_fraction": infected_fraction}


def predict_hu(run: inference.LoadedRun, slices_hu: np.ndarray) -> dict:
    """`predict_tensors` run eagerly, as NumPy: what the exported signature returns.

    Args:
        run: a run loaded by `load_export_run`.
        slices_hu: array (batch, height, width), Hounsfield units.

    Returns:
        dict of NumPy arrays with the keys and shapes of `predict_tensors`.

    Raises:
        ValueError: ``slices_hu`` is not 3-D.
    """
    slices_hu = np.asarray(slices_hu, np.float32)
    if slices_hu.ndim != 3:
        raise ValueError(f"slices_hu must be (batch, height, width). Received: "
                         f"shape={slices_hu.shape}")
    return {key: value.numpy() for key, value in predict_tensors(run, slices_hu).items()}


class _Servable(tf.Module):
    """The serving function, the variables it reads and the description of the run."""

    def __init__(self, run: inference.LoadedRun, config_path: Path):
        super().__init__(name="tfcovid_segmenter")
        # Variables only, as keras.export.ExportArchive: tracking the Keras networks themselves
        # makes saving walk every layer and writes a larger graph for nothing.
        networks = [run.network] + ([run.prior_network] if run.prior_network else [])
        self.network_variables = [variable for network in networks
                                  for variable in network.variables]
        data = run.experiment.data
        self.class_names = tf.Variable(inference.CLASS_NAMES[run.family], trainable=False,
                                       name="class_names")
        self.image_size = tf.Variable(data.image_size, dtype=tf.int32, trainable=False,
                                      name="image_size")
        self.window_hu = tf.Variable((data.window_level_hu, data.window_width_hu),
                                     dtype=tf.float32, trainable=False, name="window_hu")
        self.config_yaml = tf.Variable(config_path.read_text(), trainable=False,
                                       name="config_yaml")
        self.config_asset = tf.saved_model.Asset(os.fspath(config_path))

        def serve(hu):
            return predict_tensors(run, hu)

        self.serve = tf.function(serve, input_signature=[
            tf.TensorSpec([None, None, None], tf.float32, name=INPUT_NAME)])


def export_run(workdir: str | os.PathLike, out: str | os.PathLike, weights: str = "best",
               prior_run: str | os.PathLike | None = None, overwrite: bool = False) -> dict:
    """Writes a run as a SavedModel with a raw-HU ``serving_default`` signature.

    The SavedModel is written to a temporary folder beside ``out`` and renamed into place, so
    ``out`` never holds half a model.

    Args:
        workdir: the run folder (written by ``tfcovid train``).
        out: folder of the SavedModel; its parent is created.
        weights: "best" or "final", as `tfcovid.inference.load_run`. Defaults to "best".
        prior_run: single-class run folder making the prior of a multi-class run without
            ``prior.keras``; see `load_export_run`. Defaults to None.
        overwrite: bool. Replace an existing ``out``. Defaults to False.

    Returns:
        dict: "path" (str, ``out``), "signature" (str, e.g. ``"serving_default(hu: float32
        [N, H, W]) -> probabilities: float32 [N, H, W, 2], label: int32 [N, H, W],
        infected_fraction: float32 [N]"``), "class_names" (tuple of str), "image_size"
        ((height, width) px), "window_hu" ((level, width) HU), "weights" (str).

    Raises:
        DataError: ``out`` exists and ``overwrite`` is False, or the run cannot be exported
            (see `load_export_run`).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; choose another --out")
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; pass --overwrite to replace it")
    run = load_export_run(workdir, weights, prior_run)
    servable = _Servable(run, run.workdir / inference.CONFIG_FILE)
    serve = servable.serve.get_concrete_function()
    with atomic.folder_replaced(out) as temporary:
        tf.saved_model.save(servable, os.fspath(temporary), signatures={SIGNATURE_KEY: serve})
    data = run.experiment.data
    class_names = inference.CLASS_NAMES[run.family]
    result = {"path": os.fspath(out), "signature": _describe(len(class_names)),
              "class_names": class_names, "image_size": tuple(data.image_size),
              "window_hu": (data.window_level_hu, data.window_width_hu), "weights": weights}
    logger.info("exported %s (%s weights) to %s", run.workdir, weights, out)
    return result


def _describe(num_classes: int) -> str:
    return (f"{SIGNATURE_KEY}({INPUT_NAME}: float32 [N, H, W]) -> probabilities: float32 "
            f"[N, H, W, {num_classes}], label: int32 [N, H, W], infected_fraction: float32 [N]")
