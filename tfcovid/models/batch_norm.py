"""Batch normalisation on TensorFlow's fused kernel, the layer every tfcovid network uses.

Keras 3 normalises with separate moment, subtract, scale and shift operations; on 4-D
channels-last inputs `BatchNormalization` runs one fused kernel instead
(``FusedBatchNormV3``), which keeps fewer tensors for the backward pass. Measured on Inf-Net at
352 px, batch 4, on 2 CPU cores: a float32 training step about 10 % faster with a 120 MB lower
peak, a bfloat16 one 25 % faster; inference unchanged within the noise (benchmarks/RESULTS.md).

It is `keras.layers.BatchNormalization` in every other respect (arguments, variables, their
names and checkpoints, serialisation) and computes the same function up to float rounding:

- training mode normalises by the batch's mean and *biased* variance over (batch, height,
  width) and moves ``moving_mean`` and ``moving_variance`` by ``momentum`` towards them, as
  Keras does (the kernel reports the unbiased variance n / (n - 1) times larger, n values per
  channel; it is scaled back);
- inference mode normalises by the moving statistics;
- inputs of float16 or bfloat16 are normalised in float32 inside the kernel and returned in
  their own dtype.

Other inputs (not 4-D, a channel axis other than the last, a mask, ``center`` or ``scale``
off, ``synchronized``) take Keras' own path.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfcovid")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by the fused kernel (module docstring).

    Call args:
        inputs: float tensor (batch, height, width, channels) (other shapes: Keras' path).
        training: bool or None. Normalise by the batch's statistics and update the moving
            ones (only while the layer is trainable). Defaults to None (inference).
        mask: None; a mask takes Keras' path.

    Returns:
        Tensor of the input's shape in the layer's compute dtype.
    """

    def call(self, inputs, training=None, mask=None):
        if (mask is not None or len(inputs.shape) != 4 or self.axis not in (-1, 3)
                or not (self.center and self.scale) or self.synchronized):
            return super().call(inputs, training=training, mask=mask)
        inputs = tf.cast(inputs, self.compute_dtype)
        gamma, beta = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)
        if not (training and self.trainable):
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=tf.convert_to_tensor(self.moving_mean),
                variance=tf.convert_to_tensor(self.moving_variance), epsilon=self.epsilon,
                is_training=False)
            return outputs
        outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, is_training=True)
        per_channel = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        variance = unbiased * (per_channel - 1.0) / per_channel
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + variance * (1.0 - self.momentum))
        return outputs
