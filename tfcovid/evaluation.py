"""Evaluation of a trained single-class Inf-Net run on held-out slices (spec section 10).

`evaluate_run` loads a run's resolved config and network, reads the cases to evaluate (the part
of the run's own split, `tfcovid.training.engine.split_cases`, or every labelled case of another
store), predicts every slice at the training size (``lateral_2``, sigmoid), resizes the
probability map back to the slice's true size (bilinear, half-pixel centres, as the reference's
``F.upsample(..., align_corners=False)``) and scores it against the true-size mask:

- per slice, the `tfcovid.metrics.evaluate_binary` measures (Dice, IoU, sensitivity,
  specificity, precision at ``threshold``; AUC; S-alpha, E-phi, weighted F, MAE), summarised
  over slices as mean and ``1.96 * std / sqrt(n)`` with undefined values (empty masks under
  ``empty="nan"``) left out and counted;
- the Inf-Net toolbox threshold sweep (`tfcovid.metrics.evaluate_threshold_sweep`: meanDic,
  meanSen, meanSpe, meanEm, ...).

The summary table is `tfcovid.metrics.summarize` over the per-slice rows, which is
``evaluate_binary(preds, truths, batch_size=1)`` without computing every metric twice.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path


from tfcovid import config as config_lib
from tfcovid import metrics
from tfcovid.data.store import CaseStore
from tfcovid.errors import ConfigError, DataError
from tfcovid.progress import progress_bar

SPLITS = ("test", "val", "train", "all")
WEIGHTS = ("best", "final")
OUTPUT = "lateral_2"


def evaluate_run(workdir: str | os.PathLike, store: str | os.PathLike | None = None,
                 split: str | None = None, weights: str = "best", threshold: float = 0.5,
                 empty: str = "nan", toolbox_compatible: bool = False, progress: bool = False,
                 return_predictions: bool = False) -> dict:
    """Evaluates a trained single-class run on one part of its split or on another store.

    Args:
        workdir: folder of a run written by `tfcovid.training.engine.train`.
        store: path of another HDF5 store whose labelled cases are all evaluated, or None for
            the run's own store (``data.store`` of its ``config.yaml``). Defaults to None.
        split: "test", "val", "train" (parts of the run's case split) or "all" (every
            labelled case); None means "test" for the run's store and "all" for another.
        weights: "best" (``best.weights.h5``, the best validation epoch) or "final"
            (``model.keras`` as saved at the end). Defaults to "best".
        threshold: float. Foreground where probability >= threshold. Defaults to 0.5.
        empty: str. Policy for undefined 0 / 0 ratios, see `tfcovid.metrics.overlap`.
            Defaults to "nan".
        toolbox_compatible: bool. Reproduce the toolbox's TP = 0 quirk in the sweep.
            Defaults to False.
        progress: bool. Show progress bars on a terminal. Defaults to False.
        return_predictions: bool. Add "predictions": a list of (probability map, truth mask),
            each (height, width) at the slice's true size, in row order. Defaults to False.

    Returns:
        dict with "settings" (workdir, store, split, weights, threshold, image_size,
        num_cases, num_slices), "summary" (metric name to `tfcovid.metrics.Summary`),
        "threshold_sweep" (name to float) and "rows" (one dict per slice: case_id,
        slice_index, then each metric).

    Raises:
        ValueError: unknown ``split`` or ``weights``, or ``split`` other than "all" with
            another store.
        DataError: missing run folder, network or weights file; a store without labels.
        ConfigError: the chosen part of the split holds no case.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}. Received: weights={weights!r}")
    split = split if split is not None else ("test" if store is None else "all")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
    if store is not None and split != "all":
        raise ValueError(f"another store is evaluated whole. Received: store={store}, "
                         f"split={split!r}")
    workdir = Path(workdir)
    experiment = _load_experiment(workdir)
    network = _load_network(workdir, weights)
    if store is not None:
        data = dataclasses.replace(experiment.data, store=os.fspath(store))
        case_ids = None
    else:
        data = experiment.data
        case_ids = _split_part(experiment, workdir, split)
    predictions = list(_predict(network, data, case_ids, experiment.train.run_eagerly,
                                progress))
    preds = [pred for _, _, pred, _ in predictions]
    truths = [truth for _, _, _, truth in predictions]
    rows = []
    for (case_id, slice_index, pred, truth) in progress_bar(
            predictions, description="metrics", enabled=progress, unit="slice"):
        table = metrics.evaluate_binary([pred], [truth], threshold=threshold, empty=empty)
        rows.append({"case_id": case_id, "slice_index": slice_index,
                     **{name: summary.mean for name, summary in table.items()}})
    names = [name for name in rows[0] if name not in ("case_id", "slice_index")]
    result = {
        "settings": {"workdir": os.fspath(workdir), "store": data.store, "split": split,
                     "weights": weights, "threshold": threshold,
                     "image_size": list(data.image_size),
                     "num_cases": len({row["case_id"] for row in rows}),
                     "num_slices": len(rows)},
        "summary": {name: metrics.summarize([row[name] for row in rows]) for name in names},
        "threshold_sweep": metrics.evaluate_threshold_sweep(
            preds, truths, toolbox_compatible=toolbox_compatible, empty=empty,
            progress=progress),
        "rows": rows,
    }
    if return_predictions:
        result["predictions"] = list(zip(preds, truths))
    return result


def _load_experiment(workdir: Path) -> config_lib.Experiment:
    if not workdir.is_dir():
        raise DataError(f"{workdir}: no such run folder")
    path = workdir / "config.yaml"
    if not path.is_file():
        raise DataError(f"{path}: no such file; is {workdir} a training run folder?")
    return config_lib.load_experiment(os.fspath(path))


def _load_network(workdir: Path, weights: str):
    import keras

    import tfcovid.models  # noqa: F401  (registers the layers model.keras names)
    from tfcovid.training import engine

    model_path = workdir / engine.MODEL_FILE
    if not model_path.is_file():
        raise DataError(f"{model_path}: no such file; the run has not finished training")
    network = keras.saving.load_model(model_path)
    if weights == "best":
        weights_path = workdir / engine.BEST_WEIGHTS_FILE
        if not weights_path.is_file():
            raise DataError(f"{weights_path}: no such file (the run had no validation); use "
                            f"weights 'final'")
        network.load_weights(weights_path)
    return network


def _split_part(experiment: config_lib.Experiment, workdir: Path, split: str) -> list[str]:
    from tfcovid.training import engine

    if split == "all":
        with CaseStore(experiment.data.store) as store:
            case_ids = [case_id for case_id in store.case_ids
                        if store.case_attributes(case_id)["labelled"]]
        if not case_ids:
            raise DataError(f"{experiment.data.store}: no labelled cases to evaluate")
        return case_ids
    case_ids = getattr(engine.split_cases(experiment), split)
    if not case_ids:
        raise ConfigError(f"{workdir / 'config.yaml'}: the run's {split} part holds no case; "
                          f"evaluate another part (split) or another store")
    return case_ids


def _predict(network, data, case_ids, eager: bool, progress: bool):
    """Yields (case_id, slice_index, probability map, true mask), maps at true slice size."""
    import tensorflow as tf

    from tfcovid.data import pipeline

    data = dataclasses.replace(data, include_edge=False)
    dataset = pipeline.labelled_dataset(data, case_ids, training=False)
    total = math.ceil(pipeline.slice_count(data, case_ids) / data.batch_size)

    def probabilities(images):
        return tf.sigmoid(tf.cast(network(images, training=False)[OUTPUT], tf.float32))

    if not eager:
        probabilities = tf.function(probabilities)
    with CaseStore(data.store) as store:
        cases = {}
        for batch in progress_bar(dataset, total=total, description="predicting",
                                  enabled=progress, unit="batch"):
            maps = probabilities(batch["image"])
            for case_id, slice_index, prob in zip(batch["case_id"].numpy(),
                                                  batch["slice_index"].numpy(), maps):
                case_id = case_id.decode()
                if case_id not in cases:
                    cases = {case_id: store.read(case_id)}
                truth = cases[case_id].slice_arrays(int(slice_index))["label"] > 0
                resized = tf.image.resize(prob, truth.shape, method="bilinear")
                yield case_id, int(slice_index), resized.numpy()[..., 0], truth


def to_json(result: dict) -> dict:
    """The result of `evaluate_run` as plain JSON values (NaN written as null)."""

    def plain(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        return value

    summary = {name: {field: plain(value) for field, value in item._asdict().items()}
               for name, item in result["summary"].items()}
    return {"settings": result["settings"], "summary": summary,
            "threshold_sweep": {name: plain(value)
                                for name, value in result["threshold_sweep"].items()},
            "rows": [{key: plain(value) for key, value in row.items()}
                     for row in result["rows"]]}


def write_json(result: dict, path: str | os.PathLike) -> None:
    """Writes `to_json(result)` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(to_json(result), indent=2) + "\n")
    os.replace(temporary, path)
