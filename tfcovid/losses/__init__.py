"""Losses: each a pure ``keras.ops`` function plus a serialisable `keras.losses.Loss` wrapper.

Functions return one value per image (shape (batch,)); the wrappers' default reduction averages
them over images, which reproduces the references' batch means.
"""

from tfcovid.losses.bce import binary_crossentropy
from tfcovid.losses.deep_supervision import DeepSupervisionLoss, deep_supervision_terms
from tfcovid.losses.dice import DiceLoss, dice_loss
from tfcovid.losses.edge import EdgeLoss, edge_loss
from tfcovid.losses.focal import FocalLoss, focal_loss
from tfcovid.losses.multiclass import (
    MultiClassBCE,
    SoftmaxCrossEntropy,
    multiclass_bce,
    softmax_cross_entropy,
)
from tfcovid.losses.structure import StructureLoss, structure_loss, weight_map

__all__ = [
    "DeepSupervisionLoss", "DiceLoss", "EdgeLoss", "FocalLoss", "MultiClassBCE",
    "SoftmaxCrossEntropy", "StructureLoss", "binary_crossentropy", "deep_supervision_terms",
    "dice_loss", "edge_loss", "focal_loss", "multiclass_bce", "softmax_cross_entropy",
    "structure_loss", "weight_map",
]
