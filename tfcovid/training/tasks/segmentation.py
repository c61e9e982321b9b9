"""Single-class Inf-Net objective as a task: named deep-supervision terms over one forward pass.

`SegmentationTask` wraps a network returning ``{"lateral_5", "lateral_4", "lateral_3",
"lateral_2", "edge"}`` logits (STYLE section 3, "One engine, two loops"; the Model Garden's
Task, keras-io's trainer pattern). Its ``train_step`` runs the network **once**, sums the
terms of `tfcovid.losses.DeepSupervisionLoss` (spec 3.3: structure loss on every lateral map,
edge loss on the edge map), divides by the replica count (Keras sums gradients over replicas),
scales the loss under ``mixed_float16`` and steps the optimizer; clipping is the optimizer's
(``clipvalue``). Each term, and the total, is averaged by a `keras.metrics.Mean` tracker, so the
engine can log every term to TensorBoard. Export saves ``task.network``, never the task.

Example:

>>> import numpy as np, keras
>>> import tfcovid.models
>>> from tfcovid.models.infnet import InfNetConfig
>>> task = SegmentationTask(tfcovid.models.build("infnet", InfNetConfig.tiny()))
>>> task.compile(optimizer=keras.optimizers.Adam(1e-3))
>>> mask = np.zeros((2, 32, 64, 1), "float32"); mask[:, 8:24, 16:40] = 1
>>> batch = {"image": np.random.default_rng(0).random((2, 32, 64, 3), "float32"),
...          "mask": mask, "edge": np.zeros_like(mask)}
>>> logs = task.train_step(batch)
>>> sorted(logs)[:3], len(logs)  # the four structure/lateral_i terms follow
(['edge', 'loss', 'structure/lateral_2'], 6)
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tfcovid.losses import DeepSupervisionLoss

TOTAL = "loss"


@keras.saving.register_keras_serializable(package="tfcovid")
class SegmentationTask(keras.Model):
    """Inf-Net training objective around a network.

    Args:
        network: `keras.Model` mapping images (batch, height, width, channels) to a dict of
            float32 logits (batch, height, width, 1) with the keys above.
        loss: `DeepSupervisionLoss` or None. The named terms. Defaults to None
            (``DeepSupervisionLoss()``: structure losses plus the edge loss, weights 1).
        **kwargs: `keras.Model` arguments (``name``).
    """

    def __init__(self, network: keras.Model, loss: DeepSupervisionLoss | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.deep_supervision = loss if loss is not None else DeepSupervisionLoss()
        names = [f"{self.deep_supervision.side_loss.name}/{output}"
                 for output in self.deep_supervision.side_outputs] + ["edge", TOTAL]
        # "/" is not allowed in variable names, so trackers are named with "_".
        self.trackers = {name: keras.metrics.Mean(name=name.replace("/", "_")) for name in names}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=None):
        return self.network(images, training=training)

    def loss_terms(self, batch, outputs) -> dict:
        """Each term averaged over the images of ``batch``, keyed "structure/lateral_5", ...,
        "edge"; float32 scalars."""
        return self.deep_supervision.terms(batch, outputs)

    def _track(self, terms: dict, total) -> dict:
        for name, value in {**terms, TOTAL: total}.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data, update_metrics: bool = True):
        """One optimizer step on a batch dict with "image", "mask" and "edge".

        Args:
            data: dict of tensors: "image" (batch, height, width, channels), "mask" and
                "edge" (batch, height, width, 1) in [0, 1].
            update_metrics: bool. Add this step's terms to the trackers (the multi-scale loop
                logs one scale only, as the reference). Defaults to True.

        Returns:
            dict of tracker results (running means) by term name, plus "loss".
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            outputs = self.network(data["image"], training=True)
            terms = self.loss_terms(data, outputs)
            total = ops.sum(ops.stack(list(terms.values())))
            # Keras sums gradients over replicas, so each replica's share of the mean is 1/n.
            scaled = self.optimizer.scale_loss(total / replicas)
        variables = self.network.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        if not update_metrics:
            return {}
        return self._track(terms, total)

    def test_step(self, data):
        """Loss terms of a batch in inference mode, added to the trackers."""
        outputs = self.network(data["image"], training=False)
        terms = self.loss_terms(data, outputs)
        return self._track(terms, ops.sum(ops.stack(list(terms.values()))))

    def get_config(self):
        return {**super().get_config(),
                "network": keras.saving.serialize_keras_object(self.network),
                "loss": keras.saving.serialize_keras_object(self.deep_supervision)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        network = keras.saving.deserialize_keras_object(config.pop("network"))
        loss = keras.saving.deserialize_keras_object(config.pop("loss"))
        return cls(network, loss, **config)
