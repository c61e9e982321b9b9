"""Inf-Net deep supervision: one loss per side output plus the edge loss (spec section 3.3).

``L = edge(outputs["edge"], E) + sum_i structure(outputs["lateral_i"], G)`` over
``i = 5, 4, 3, 2``, all weights 1 in the reference. Every side output is already upsampled to
the input size by the network and compared with the full-resolution mask; the terms come back
as a dict named ``"<side loss name>/<output>"`` and ``"edge"``, so each reaches TensorBoard.

Example:

>>> import numpy as np
>>> mask = np.zeros((2, 32, 40, 1), "float32"); mask[:, 8:24, 10:30] = 1
>>> outputs = {name: np.zeros_like(mask) for name in SIDE_OUTPUTS + (EDGE_OUTPUT,)}
>>> loss = DeepSupervisionLoss()
>>> sorted(loss.terms({"mask": mask, "edge": mask}, outputs))
['edge', 'structure/lateral_2', 'structure/lateral_3', 'structure/lateral_4', 'structure/lateral_5']
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import keras
from keras import ops

from tfcovid.losses.edge import EdgeLoss, edge_loss
from tfcovid.losses.structure import StructureLoss, structure_loss

SIDE_OUTPUTS = ("lateral_5", "lateral_4", "lateral_3", "lateral_2")
EDGE_OUTPUT = "edge"
MASK_KEY, EDGE_KEY = "mask", "edge"  # keys of the ground-truth dict (the data elements')


def deep_supervision_terms(y_true: Mapping, y_pred: Mapping,
                           side_loss: Callable = structure_loss,
                           edge_loss_fn: Callable = edge_loss,
                           side_outputs: Sequence[str] = SIDE_OUTPUTS,
                           weights: Mapping[str, float] | None = None,
                           side_name: str = "structure") -> dict:
    """Weighted per-image loss terms, one per side output plus the edge term.

    Args:
        y_true: dict with "mask" (batch, height, width, 1) in [0, 1] and "edge" (same shape)
            in [0, 1].
        y_pred: dict of logits (batch, height, width, 1) keyed by output name: each of
            ``side_outputs`` and "edge".
        side_loss: callable ``(mask, logits) -> (batch,)`` for every side output. Defaults to
            `structure_loss`.
        edge_loss_fn: callable ``(edge, logits) -> (batch,)``. Defaults to `edge_loss`.
        side_outputs: sequence of str. Side outputs supervised by the mask. Defaults to
            ``SIDE_OUTPUTS``.
        weights: dict from output name to float, or None. Missing names weigh 1. Defaults to
            None (all 1, the reference).
        side_name: str. Prefix of the side-output term names. Defaults to "structure".

    Returns:
        dict from term name (``"<side_name>/<output>"``, then "edge") to a (batch,) tensor,
        already weighted: the per-image total is the sum of the values.

    Raises:
        ValueError: ``weights`` names an output that is not supervised, or ``y_pred`` lacks one.
    """
    weights = dict(weights or {})
    known = tuple(side_outputs) + (EDGE_OUTPUT,)
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ValueError(f"weights may only name {known}. Received: weights={weights}")
    missing = [name for name in known if name not in y_pred]
    if missing:
        raise ValueError(f"y_pred lacks outputs {missing}. Received keys: {sorted(y_pred)}")
    terms = {f"{side_name}/{name}": weights.get(name, 1.0) * side_loss(y_true[MASK_KEY],
                                                                       y_pred[name])
             for name in side_outputs}
    terms[EDGE_OUTPUT] = weights.get(EDGE_OUTPUT, 1.0) * edge_loss_fn(y_true[EDGE_KEY],
                                                                      y_pred[EDGE_OUTPUT])
    return terms


@keras.saving.register_keras_serializable(package="tfcovid")
class DeepSupervisionLoss(keras.losses.Loss):
    """Sum of `deep_supervision_terms` as a Keras loss over dicts.

    ``loss(y_true, y_pred)`` is the reduced total; `terms` gives each named term reduced the
    same way (mean over images), so the terms sum to the total.

    Args:
        side_loss: `keras.losses.Loss` or None. Loss of every side output; its ``name``
            prefixes the term names. Defaults to None (`StructureLoss()`).
        edge_loss: `keras.losses.Loss` or None. Loss of the edge output. Defaults to None
            (`EdgeLoss()`).
        side_outputs: sequence of str. Defaults to ``SIDE_OUTPUTS``.
        weights: dict from output name to float, or None. Defaults to None (all 1).
        name: str. Defaults to "deep_supervision".
        **kwargs: `keras.losses.Loss` arguments (``reduction``, ``dtype``).
    """

    def __init__(self, side_loss: keras.losses.Loss | None = None,
                 edge_loss: keras.losses.Loss | None = None,
                 side_outputs: Sequence[str] = SIDE_OUTPUTS,
                 weights: Mapping[str, float] | None = None,
                 name: str = "deep_supervision", **kwargs):
        super().__init__(name=name, **kwargs)
        self.side_loss = side_loss if side_loss is not None else StructureLoss()
        self.edge_loss = edge_loss if edge_loss is not None else EdgeLoss()
        self.side_outputs = tuple(side_outputs)
        self.weights = dict(weights) if weights else None

    def _terms(self, y_true, y_pred):
        return deep_supervision_terms(y_true, y_pred, self.side_loss.call, self.edge_loss.call,
                                      self.side_outputs, self.weights, self.side_loss.name)

    def terms(self, y_true: Mapping, y_pred: Mapping) -> dict:
        """Each weighted term averaged over images (scalars), keyed as `deep_supervision_terms`."""
        return {name: ops.mean(value) for name, value in self._terms(y_true, y_pred).items()}

    def call(self, y_true, y_pred):
        return ops.sum(ops.stack(list(self._terms(y_true, y_pred).values())), axis=0)

    def get_config(self):
        return {**super().get_config(),
                "side_loss": keras.saving.serialize_keras_object(self.side_loss),
                "edge_loss": keras.saving.serialize_keras_object(self.edge_loss),
                "side_outputs": list(self.side_outputs), "weights": self.weights}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("side_loss", "edge_loss"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
