"""Receptive-field block of Inf-Net ("RFB_modified"; spec section 2.1).

Four branches of ``ConvBN`` units with growing receptive fields (a 1x1 reduction, then 1xk, kx1
and a 3x3 convolution dilated by k, for k = 3, 5, 7), concatenated and fused by a 3x3 ``ConvBN``,
plus a 1x1 ``ConvBN`` residual of the input; a ReLU follows the sum only, as in the reference.
"""

from __future__ import annotations

import keras
from keras import ops

from tfcovid.models.layers import ConvBN

DILATIONS = (3, 5, 7)


@keras.saving.register_keras_serializable(package="tfcovid")
class ReceptiveFieldBlock(keras.layers.Layer):
    """Multi-branch dilated block reducing a backbone feature to ``filters`` channels.

    Sublayer names follow the reference (``branch1_2`` is ``rfb*_1.branch1.2``).

    Args:
        filters: int. Output channels (the reference's ``channel``, 32). Defaults to 32.

    Call args:
        inputs: tensor (batch, height, width, in_channels).

    Returns:
        Tensor (batch, height, width, filters), after a ReLU.

    Example:

    >>> import numpy as np
    >>> ReceptiveFieldBlock(8)(np.zeros((2, 5, 7, 16), "float32")).shape
    TensorShape([2, 5, 7, 8])
    """

    def __init__(self, filters: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        policy = self.dtype_policy
        self.branch0 = [ConvBN(filters, 1, dtype=policy, name="branch0_0")]
        self.branch1, self.branch2, self.branch3 = (
            [ConvBN(filters, 1, dtype=policy, name=f"branch{index}_0"),
             ConvBN(filters, (1, size), dtype=policy, name=f"branch{index}_1"),
             ConvBN(filters, (size, 1), dtype=policy, name=f"branch{index}_2"),
             ConvBN(filters, 3, dilation_rate=size, dtype=policy, name=f"branch{index}_3")]
            for index, size in enumerate(DILATIONS, start=1))
        self.conv_cat = ConvBN(filters, 3, dtype=policy, name="conv_cat")
        self.conv_res = ConvBN(filters, 1, dtype=policy, name="conv_res")

    def build(self, input_shape):
        for branch in (self.branch0, self.branch1, self.branch2, self.branch3):
            shape = input_shape
            for unit in branch:
                unit.build(shape)
                shape = unit.compute_output_shape(shape)
        self.conv_cat.build((*input_shape[:-1], 4 * self.filters))
        self.conv_res.build(input_shape)

    def call(self, inputs, training=None):
        branches = []
        for branch in (self.branch0, self.branch1, self.branch2, self.branch3):
            x = inputs
            for unit in branch:
                x = unit(x, training=training)
            branches.append(x)
        fused = self.conv_cat(ops.concatenate(branches, axis=-1), training=training)
        return ops.relu(fused + self.conv_res(inputs, training=training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}
