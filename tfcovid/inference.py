"""A finished training run as a predictor: its network, its prior network, its class probabilities.

Shared by evaluation, export and the training engine, so every path turns logits into
probabilities and builds the multi-class input the same way.

Network families, told apart by their outputs:

- "binary": a single-class network. Inf-Net returns ``lateral_5`` ... ``lateral_2`` and
  ``edge`` logits, of which ``lateral_2`` is the prediction (spec 2.6); a ``logits`` network
  with one channel is read the same way. Class probabilities are ``[1 - p, p]`` with
  ``p = sigmoid(logit)``: 0 background, 1 infection.
- "multiclass": a ``logits`` network with three channels (0 background, 1 ground-glass opacity,
  2 consolidation). Class probabilities are the softmax over channels. The references take the
  argmax of per-channel sigmoids (spec 5.6), which picks the same class.

Multi-class networks whose input has twice the image's channels take the CT image stacked with
an infection prior (spec 5.3): the min-max-normalised ``lateral_2`` probability of a
single-class network, repeated over the image's channels and scaled like the image
(`prior_input`). A run trained with a model prior keeps that network as ``prior.keras`` in its
folder, so the folder alone predicts.

Example (a run folder written by ``tfcovid train``)::

    run = load_run("runs/phantom_tiny")
    probabilities = class_probabilities(run.network, model_inputs(run, images))
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfcovid import config as config_lib
from tfcovid.data import transforms
from tfcovid.errors import DataError
from tfcovid.precision import PRECISIONS, precision_policy

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.keras"
BEST_WEIGHTS_FILE = "best.weights.h5"
PRIOR_MODEL_FILE = "prior.keras"
_KERAS_CONFIG = "config.json"  # the architecture inside a .keras archive
WEIGHTS = ("best", "final")
BINARY_OUTPUT = "lateral_2"
LOGITS_OUTPUT = "logits"
CLASS_NAMES = {"binary": ("background", "infection"),
               "multiclass": ("background", "ground_glass", "consolidation")}


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A trained run folder, loaded.

    Attributes:
        workdir: Path of the run folder.
        experiment: its resolved `tfcovid.config.Experiment` (``config.yaml``).
        network: the trained `keras.Model` with the chosen weights.
        prior_network: the single-class network giving the prior (``prior.keras``), or None.
    """

    workdir: Path
    experiment: config_lib.Experiment
    network: keras.Model
    prior_network: keras.Model | None

    @property
    def family(self) -> str:
        """"binary" or "multiclass" (module docstring)."""
        return network_family(self.network)

    @property
    def takes_prior(self) -> bool:
        """Whether the network's input stacks a prior after the image."""
        return takes_prior(self.network, self.experiment.data.channels)


def best_or_final(workdir: str | os.PathLike) -> str:
    """"best" when the run folder ``workdir`` holds ``best.weights.h5``, else "final": the
    weights to take from a run that may have trained without validation."""
    return "best" if (Path(workdir) / BEST_WEIGHTS_FILE).is_file() else "final"


def load_experiment(workdir: str | os.PathLike) -> config_lib.Experiment:
    """The resolved experiment of a run folder.

    Raises:
        DataError: no such folder, or no ``config.yaml`` in it.
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise DataError(f"{workdir}: no such run folder")
    path = workdir / CONFIG_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such file; is {workdir} a training run folder?")
    return config_lib.load_experiment(os.fspath(path))


def load_run(workdir: str | os.PathLike, weights: str = "best",
             precision: str | None = None) -> LoadedRun:
    """Loads a run folder written by `tfcovid.training.engine.train`.

    Args:
        workdir: the run folder.
        weights: "best" (``best.weights.h5``, the best validation epoch) or "final"
            (``model.keras`` as saved at the end). Defaults to "best".
        precision: None, or a dtype policy of `tfcovid.precision.PRECISIONS` to rebuild the
            network in (from the run's config, with the chosen weights; the prior network
            stays as saved). Defaults to None (the network as saved: float32 unless trained
            with mixed precision).

    Raises:
        ValueError: unknown ``weights`` or ``precision``.
        DataError: missing folder, config, network or weights file.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}. Received: weights={weights!r}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} or None. Received: "
                         f"precision={precision!r}")
    workdir = Path(workdir)
    experiment = load_experiment(workdir)
    network = _load_network(workdir, experiment, weights, precision)
    prior_path = workdir / PRIOR_MODEL_FILE
    prior_network = _load_model(prior_path) if prior_path.is_file() else None
    return LoadedRun(workdir, experiment, network, prior_network)


def _load_network(workdir: Path, experiment: config_lib.Experiment, weights: str,
                  precision: str | None) -> keras.Model:
    """`load_run`'s network, read no more than needed (Inf-Net, 2 CPU cores):

    - "final": ``model.keras``, rebuilt in ``precision`` with its weights copied when that
      differs from the saved policy (copying beats loading ``model.keras`` into the rebuilt
      network several times over);
    - "best": the architecture in ``model.keras`` with ``best.weights.h5`` (the saved weights
      are not read: 2.3-2.6 s instead of 3.3-3.8), or, given a ``precision``, the network
      built in it from the run's config with ``best.weights.h5`` (bfloat16: 2.3-3.1 s instead
      of 5.3-5.6).
    """
    model_path, best_path = workdir / MODEL_FILE, workdir / BEST_WEIGHTS_FILE
    if not model_path.is_file():
        raise DataError(f"{model_path}: no such file; the run has not finished training")
    if weights == "best" and not best_path.is_file():
        raise DataError(f"{best_path}: no such file (the run had no validation); use "
                        f"weights 'final'")
    if weights == "best" and precision is not None:
        network = _build_network(experiment, precision)
        _load_weights(network, best_path)
        return network
    saved = _load_model(model_path, best_path if weights == "best" else None)
    if precision in (None, saved.dtype_policy.name):
        return saved
    network = _build_network(experiment, precision)
    network.set_weights(saved.get_weights())
    return network


def _build_network(experiment: config_lib.Experiment, precision: str) -> keras.Model:
    """The run's network, untrained, in the dtype policy ``precision``."""
    import tfcovid.models

    with precision_policy(precision):
        return tfcovid.models.build(experiment.model.name, experiment.model.model_config())


def _load_model(path: Path, weights_path: Path | None = None) -> keras.Model:
    """The network saved in the existing ``.keras`` file ``path``; with ``weights_path`` (a
    ``.weights.h5`` file), its architecture with those weights instead of the saved ones."""
    import tfcovid.models  # noqa: F401 (registers the classes .keras files name)

    with _unreadable_as_data_error(path):
        if weights_path is None:
            return keras.saving.load_model(path)
        with zipfile.ZipFile(path) as archive:
            network = keras.models.model_from_json(archive.read(_KERAS_CONFIG).decode("utf-8"))
    _load_weights(network, weights_path)
    return network


def _load_weights(network: keras.Model, path: Path) -> None:
    """Loads the ``.weights.h5`` file ``path`` into ``network``."""
    with _unreadable_as_data_error(path):
        network.load_weights(path)


@contextlib.contextmanager
def _unreadable_as_data_error(path: Path):
    """Turns the errors of reading a corrupt or mismatched file ``path`` into a one-line
    `DataError` naming it."""
    try:
        yield
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise DataError(f"{path}: cannot be loaded ({first_line or type(error).__name__})"
                        ) from error


def network_family(network: keras.Model) -> str:
    """"binary" or "multiclass", from the network's output names and channels."""
    outputs = network.output if isinstance(network.output, dict) else {}
    if BINARY_OUTPUT in outputs:
        return "binary"
    if LOGITS_OUTPUT in outputs:
        return "binary" if outputs[LOGITS_OUTPUT].shape[-1] == 1 else "multiclass"
    raise ValueError(f"{network.name}: outputs neither {BINARY_OUTPUT!r} nor "
                     f"{LOGITS_OUTPUT!r}; not a tfcovid segmentation network")


def takes_prior(network: keras.Model, image_channels: int) -> bool:
    """Whether ``network`` expects the image (``image_channels``) stacked with a prior."""
    return network.inputs[0].shape[-1] == 2 * image_channels


def prediction_key(outputs: dict) -> str:
    """The name of the prediction among a network's outputs: "lateral_2" or "logits"."""
    return BINARY_OUTPUT if BINARY_OUTPUT in outputs else LOGITS_OUTPUT


def prediction_logits(outputs: dict) -> tf.Tensor:
    """The prediction among a network's outputs as float32 (batch, height, width, channels)."""
    return tf.cast(outputs[prediction_key(outputs)], tf.float32)


def class_probabilities(network: keras.Model, inputs: tf.Tensor) -> tf.Tensor:
    """Per-pixel class probabilities of ``network`` in inference mode.

    Args:
        network: a binary or multi-class tfcovid network.
        inputs: float32 (batch, height, width, channels) model input.

    Returns:
        float32 (batch, height, width, classes) summing to 1 over classes: 2 classes
        (background, infection) for binary networks, 3 (background, ground-glass opacity,
        consolidation) for multi-class ones.
    """
    logits = prediction_logits(network(inputs, training=False))
    if logits.shape[-1] == 1:
        infection = tf.sigmoid(logits)
        return tf.concat([1.0 - infection, infection], axis=-1)
    return tf.nn.softmax(logits, axis=-1)


def infection_probability(network: keras.Model, images: tf.Tensor) -> tf.Tensor:
    """sigmoid(lateral_2) of a single-class network: float32 (batch, height, width, 1)."""
    return tf.sigmoid(prediction_logits(network(images, training=False)))


def min_max_normalise(maps: tf.Tensor) -> tf.Tensor:
    """Each map of (batch, height, width, 1) rescaled to [0, 1] by its own min and max, as
    the reference saves its predictions (spec 2.6); a constant map becomes zeros."""
    low = tf.reduce_min(maps, axis=(1, 2, 3), keepdims=True)
    high = tf.reduce_max(maps, axis=(1, 2, 3), keepdims=True)
    return tf.math.divide_no_nan(maps - low, high - low)


def prior_input(prior_network: keras.Model, images: tf.Tensor, channels: int,
                normalisation: str) -> tf.Tensor:
    """The prior channels for ``images`` from a single-class network (spec 5.3).

    Args:
        prior_network: the single-class network; it takes ``images`` as they are.
        images: float32 (batch, height, width, channels), the model-ready CT images.
        channels, normalisation: the image's, see `tfcovid.data.transforms.model_input_tf`.

    Returns:
        float32 (batch, height, width, channels): the min-max-normalised probability map,
        scaled like the image.
    """
    probability = min_max_normalise(infection_probability(prior_network, images))
    return transforms.model_input_tf(probability, channels, normalisation)


def zero_prior_input(images: tf.Tensor, channels: int, normalisation: str) -> tf.Tensor:
    """An all-zero prior scaled like the image (the "zeros" ablation)."""
    return transforms.model_input_tf(tf.zeros_like(images[..., :1]), channels, normalisation)


def prior_source(experiment: config_lib.Experiment) -> str:
    """Where a prior-taking network's prior comes from: "model", "ground_truth" or "zeros";
    the model's ``prior`` option (multi-class Inf-Net), else ``data.prior_source``."""
    return experiment.model.options.get("prior", experiment.data.prior_source)


def model_inputs(run: LoadedRun, images: tf.Tensor, prior: tf.Tensor | None = None) -> tf.Tensor:
    """The network input for model-ready ``images``: the images, or the images stacked with
    their prior.

    The prior follows the run's training: zeros for a "zeros" run; the run's prior network for
    a "model" run; for a "ground_truth" run, ``prior`` when given (the data pipeline's ground
    truth, an oracle), else the run's prior network (as the reference tests its ground-truth
    trained model on predicted priors).

    Raises:
        DataError: the network needs a prior and the run has no way to make one.
    """
    if not run.takes_prior:
        return images
    data = run.experiment.data
    source = prior_source(run.experiment)
    if source == "zeros":
        prior = zero_prior_input(images, data.channels, data.normalisation)
    elif source == "model" or prior is None:
        if run.prior_network is None:
            raise DataError(f"{run.workdir}: the network takes a prior but the run has no "
                            f"{PRIOR_MODEL_FILE}; train with model.prior_run set")
        prior = prior_input(run.prior_network, images, data.channels, data.normalisation)
    return tf.concat([images, prior], axis=-1)


def unit_probabilities(run: LoadedRun, unit: tf.Tensor, output_size=None) -> tf.Tensor:
    """Class probabilities of windowed slices, the prediction path of export and pseudo labels.

    Each slice is resized to the run's ``image_size`` unless already that size (bilinear,
    half-pixel centres, as the data pipeline), given the model's channels and scaling (and
    prior), and its probabilities are resized to ``output_size``.

    Args:
        run: the loaded run.
        unit: float32 (batch, height, width, 1), windowed CT in [0, 1].
        output_size: (height, width) of the returned maps, or None for ``image_size``.

    Returns:
        float32 (batch, height, width, classes).
    """
    data = run.experiment.data
    resized = (unit if tuple(unit.shape[1:3]) == tuple(data.image_size)
               else transforms.resize_tf(unit, data.image_size))
    inputs = model_inputs(run, transforms.model_input_tf(resized, data.channels,
                                                         data.normalisation))
    probabilities = class_probabilities(run.network, inputs)
    if output_size is None:
        return probabilities
    return tf.image.resize(probabilities, output_size, method="bilinear")


def predict_unit_slices(run: LoadedRun, images: list, batch_size: int = 8) -> list:
    """Class probabilities (`unit_probabilities`) of windowed slices, each at its own size.

    Args:
        run: the loaded run.
        images: list of float arrays (height, width) in [0, 1] (windowed CT).
        batch_size: int. Slices per forward pass. Defaults to 8.

    Returns:
        list of float32 arrays (height, width, classes), aligned with ``images``.
    """
    size = run.experiment.data.image_size
    results = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = tf.stack([transforms.resize_tf(np.asarray(image, np.float32)[..., None], size)
                          for image in chunk])
        probabilities = unit_probabilities(run, batch)
        for image, probability in zip(chunk, probabilities):
            results.append(tf.image.resize(probability, np.shape(image), method="bilinear"
                                           ).numpy())
    return results
