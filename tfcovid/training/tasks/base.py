"""`Task`: a network and its objective as one `keras.Model`, shared by both training loops.

A task (STYLE section 3, "One engine, two loops"; the Model Garden's Task, keras-io's trainer
pattern) runs its network **once** per step, sums named loss terms (`loss_terms`, defined by
each subclass), and steps the optimizer. The same ``train_step`` serves the engine's custom
``tf.function`` loop and ``keras.Model.fit``. Each term and the total are averaged by a
`keras.metrics.Mean` tracker so every term reaches TensorBoard. Export saves ``task.network``,
never the task.

Input: the batch's "image", stacked with its prior (spec 5.3) when the network takes one: the
batch's "prior" (ground truth or zeros from the data pipeline) or, when the task holds a
``prior_network``, that frozen single-class network's min-max-normalised probability map
(`tfcovid.inference.prior_input`), computed in the step.

Distribution and clipping: each replica's loss is divided by the replica count (Keras sums
gradients over replicas). Gradients are clipped by value after the sum, as the reference clips
the full gradient: the task all-reduces them itself, clips, and hands the optimizer per-replica
shares (the clipped sum over the replica count) for Keras to sum again. Optimizers passed to
a task must therefore have no ``clipvalue`` of their own. Under ``mixed_float16`` the bound is
multiplied by the loss scale (the gradients are still scaled) and non-finite gradients are left
alone so the loss-scale optimizer still sees an overflow.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tfcovid import inference
from tfcovid.training.recompute import RecomputedForward

TOTAL = "loss"


def clip_summed_gradients(gradients: list, clip_value: float | None, scale=1.0) -> list:
    """Per-replica gradient shares whose sum is the clipped sum of ``gradients``.

    Args:
        gradients: list of tensors, this replica's gradients (Keras sums them over replicas).
        clip_value: float or None. Bound on every element of the summed gradient; None
            leaves the gradients as they are.
        scale: float tensor. The loss scale the gradients carry (1 without loss scaling).

    Returns:
        list of tensors: ``clip(sum over replicas) / replicas`` (the same on every replica),
        or ``gradients`` when ``clip_value`` is None.
    """
    if clip_value is None:
        return gradients
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        gradients = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, gradients)
    clipped = []
    for gradient in gradients:
        bound = tf.cast(clip_value * scale, gradient.dtype)
        finite = tf.math.is_finite(gradient)
        gradient = tf.where(finite, tf.clip_by_value(gradient, -bound, bound), gradient)
        clipped.append(gradient / replicas if replicas > 1 else gradient)
    return clipped


class Task(keras.Model):
    """Base of the segmentation tasks: input stacking, clipped steps, term trackers.

    Args:
        network: `keras.Model` mapping model input (batch, height, width, channels) to a dict
            of logits.
        term_names: sequence of str. Names of the loss terms `loss_terms` returns.
        clip_value: float or None. Element-wise bound on the summed gradient. Defaults to
            None.
        prior_network: `keras.Model` or None. Frozen single-class network whose probability
            map is the prior. Defaults to None.
        normalisation: "unit" or "imagenet". How the images are scaled, so the prior from
            ``prior_network`` is scaled alike. Defaults to "imagenet".
        recompute_backbone: bool. Recompute the backbone's activations in the backward pass
            (`tfcovid.training.recompute`: less memory, a slower step, the same results).
            Defaults to False.
        **kwargs: `keras.Model` arguments (``name``).
    """

    def __init__(self, network: keras.Model, term_names, clip_value: float | None = None,
                 prior_network: keras.Model | None = None, normalisation: str = "imagenet",
                 recompute_backbone: bool = False, **kwargs):
        super().__init__(**kwargs)
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"clip_value must be positive or None. Received: "
                             f"clip_value={clip_value}")
        self.network = network
        self.clip_value = clip_value
        self.prior_network = prior_network
        self.normalisation = normalisation
        self.recomputed_forward = RecomputedForward(network) if recompute_backbone else None
        if prior_network is not None:
            prior_network.trainable = False
        # "/" is not allowed in variable names, so trackers are named with "_".
        self.trackers = {name: keras.metrics.Mean(name=name.replace("/", "_"))
                         for name in (*term_names, TOTAL)}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    def model_input(self, batch: dict) -> tf.Tensor:
        """The network input of ``batch``: the image, stacked with its prior when the network
        takes one (float (batch, height, width, channels))."""
        image = batch["image"]
        channels = image.shape[-1]
        if not inference.takes_prior(self.network, channels):
            return image
        if self.prior_network is not None:
            prior = inference.prior_input(self.prior_network, image, channels,
                                          self.normalisation)
        elif "prior" in batch:
            prior = batch["prior"]
        else:
            raise ValueError(f"{self.network.name} takes a prior, but the batch has no "
                             f"'prior' and the task no prior_network. Received keys: "
                             f"{sorted(batch)}")
        return ops.concatenate([image, ops.cast(prior, image.dtype)], axis=-1)

    def loss_terms(self, batch: dict, outputs: dict) -> dict:
        """Each loss term averaged over the images of ``batch``: dict of float32 scalars."""
        raise NotImplementedError

    def _track(self, terms: dict, total) -> dict:
        for name, value in {**terms, TOTAL: total}.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data, update_metrics: bool = True):
        """One optimizer step on a batch dict.

        Args:
            data: dict of tensors with "image" (batch, height, width, channels) and the
                targets the task's loss needs.
            update_metrics: bool. Add this step's terms to the trackers (the multi-scale loop
                logs one scale only, as the reference). Defaults to True.

        Returns:
            dict of tracker results (running means) by term name, plus "loss".
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            inputs = self.model_input(data)
            outputs = (self.network(inputs, training=True) if self.recomputed_forward is None
                       else self.recomputed_forward(inputs))
            terms = self.loss_terms(data, outputs)
            total = ops.sum(ops.stack(list(terms.values())))
            # Keras sums gradients over replicas, so each replica's share of the mean is 1/n.
            scaled = self.optimizer.scale_loss(total / replicas)
        variables = self.network.trainable_variables
        gradients = tape.gradient(scaled, variables)
        scale = (self.optimizer.dynamic_scale
                 if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer) else 1.0)
        self.optimizer.apply(clip_summed_gradients(gradients, self.clip_value, scale), variables)
        if not update_metrics:
            return {}
        return self._track(terms, total)

    def test_step(self, data):
        """Loss terms of a batch in inference mode, added to the trackers."""
        outputs = self.network(self.model_input(data), training=False)
        terms = self.loss_terms(data, outputs)
        return self._track(terms, ops.sum(ops.stack(list(terms.values()))))
