"""Hands a pre-trained inpainter to the segmentation network it was made from (spec 7.10).

``train.init_from`` may name a ``tfcovid pretrain`` folder: every weight the segmentation
network has is copied from ``inpainter.keras`` by weight path
(`tfcovid.training.transfer.transfer_weights`), except those under ``train.init_skip``
(default: the network's prediction heads, `prediction_heads`). The inpainter holds every
segmentation layer under the same name, so any other weight left fresh means the two do not
belong together: that is an error, as is a weight whose shape differs (e.g. a "baseline" U-Net
fine-tuned from an "improved" inpainter). What was copied and what was left fresh is written
to the run's ``transfer.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras

from tfcovid import inference
from tfcovid.errors import ConfigError, WeightsError
from tfcovid.models.ssinfnet.inpainting import INFNET_HEADS
from tfcovid.training.transfer import transfer_weights

INPAINTING_NETWORKS = ("infnet_inpainting", "infnet_multiclass_inpainting")
INPAINTER_FILE = "inpainter.keras"
TRANSFER_REPORT_FILE = "transfer.json"
UNET_HEADS = ("outc_conv",)


def is_pretrain_run(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a ``tfcovid pretrain`` run, finished or not."""
    if not (Path(folder) / inference.CONFIG_FILE).is_file():
        return False
    return inference.load_experiment(folder).model.name in INPAINTING_NETWORKS


def prediction_heads(network: keras.Model) -> tuple[str, ...]:
    """Weight-path prefixes of the network's prediction heads: Inf-Net's five (partial
    decoder, three reverse-attention heads, edge head) or the U-Net's ``outc_conv``."""
    return INFNET_HEADS if inference.BINARY_OUTPUT in network.output else UNET_HEADS


def initialise_from_pretraining(network: keras.Model, folder: str | os.PathLike,
                                skip: tuple[str, ...] | None,
                                report_path: str | os.PathLike) -> dict:
    """Copies the pre-trained inpainter's weights into ``network`` and writes the report.

    Args:
        network: the segmentation network, built; changed in place.
        folder: a finished ``tfcovid pretrain`` run.
        skip: weight-path prefixes left fresh; None means ``prediction_heads(network)``.
        report_path: where the JSON report goes.

    Returns:
        the report: "source", "skip", "copied" (count), "fresh" (weight paths left fresh),
        "unused" (count of inpainter weights the network has not: the reconstruction heads).

    Raises:
        ConfigError: the run has not finished, a weight differs in shape, or a weight the
            network has is missing from the inpainter and not skipped.
    """
    source = Path(folder) / INPAINTER_FILE
    if not source.is_file():
        raise ConfigError(f"train.init_from: {folder}: pre-training has not finished (no "
                          f"{INPAINTER_FILE}); run `tfcovid pretrain` on it again to complete it")
    skip = prediction_heads(network) if skip is None else tuple(skip)
    try:
        report = transfer_weights(source, network, skip=skip)
    except WeightsError as error:
        raise ConfigError(f"train.init_from: {error}") from None
    missing = [path for path in report.fresh
               if not any(path == prefix or path.startswith(prefix.rstrip("/") + "/")
                          for prefix in skip)]
    if missing:
        raise ConfigError(f"train.init_from: {source}: has no weight {missing[0]} of "
                          f"{network.name} ({len(missing)} missing); pre-train the inpainting "
                          f"variant of this network with the same settings")
    result = {"source": os.fspath(source), "skip": list(skip), "copied": len(report.copied),
              "fresh": list(report.fresh), "unused": len(report.skipped)}
    temporary = Path(report_path).with_name(f".{Path(report_path).name}.tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(temporary, report_path)
    return result
