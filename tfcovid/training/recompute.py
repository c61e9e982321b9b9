"""Training forward passes that recompute the backbone's activations in the backward pass.

Gradient checkpointing (Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016):
the backbone runs as a chain of segments, each ending at a block boundary; a segment keeps only
its inputs for the backward pass, and its inner activations are computed again when its
gradient is needed. The network's weights, outputs and gradients are unchanged; a training
step costs one more forward pass of the backbone and holds one segment's activations at a time
instead of all of them (Inf-Net, Res2Net-50, 352 x 352, batch 4 on CPU: peak memory and step
time in ``benchmarks/RESULTS.md``).

Segments end where the backbone names a boundary (``BOUNDARY_LAYERS``): the stem's
``maxpool``, every block's output ``layer{stage}_{block}_out`` and, inside a Res2Net block, the
concatenation of its splits ``layer{stage}_{block}_cat``. A segment's inputs are the earlier
boundaries its layers read (the block input for the shortcut after a ``_cat``), found from the
Keras graph. Layers whose state changes in training mode (batch-norm moving statistics) update
it once per step, as without recomputation: the recomputation's updates are undone.

Example::

    forward = RecomputedForward(network)       # an Inf-Net with a Res2Net or ResNet backbone
    with tf.GradientTape() as tape:
        outputs = forward(images)              # as network(images, training=True)
"""

from __future__ import annotations

import re

import keras
import tensorflow as tf

BOUNDARY_LAYERS = re.compile(r"maxpool|layer\d+_\d+_(out|cat)")
"""Names of the backbone layers whose outputs end a recomputed segment."""


class RecomputedForward:
    """``network(images, training=True)`` with the backbone recomputed in the backward pass.

    Args:
        network: a functional `keras.Model` whose ``backbone`` attribute is a functional
            `keras.Model` called once on the network's image input, with layers named as
            ``BOUNDARY_LAYERS`` (`tfcovid.models.backbones` Res2Net and ResNet).

    Call args:
        images: float tensor (batch, height, width, channels), the network's input.

    Call returns:
        the network's outputs, equal to ``network(images, training=True)``.

    Raises:
        ValueError: a network without such a backbone.
    """

    def __init__(self, network: keras.Model):
        backbone = recomputed_backbone(network)
        boundaries = [layer.output for layer in backbone.layers
                      if BOUNDARY_LAYERS.fullmatch(layer.name)]
        known = [backbone.input]
        self.segments = []
        for boundary in boundaries:
            sources = _sources(boundary, known)
            self.segments.append(([_position(source, known) for source in sources],
                                  _Segment(keras.Model(sources, boundary))))
            known.append(boundary)
        self.feature_positions = {key: _position(tensor, known)
                                  for key, tensor in backbone.output.items()}
        node_features = keras.tree.pack_sequence_as(
            backbone.output, keras.tree.flatten(backbone._inbound_nodes[0].output_tensors))
        self.head = keras.Model([network.input, node_features], network.output)

    def __call__(self, images):
        values = [images]
        for positions, segment in self.segments:
            values.append(segment(*[values[index] for index in positions]))
        features = {key: values[index] for key, index in self.feature_positions.items()}
        return self.head([images, features], training=True)


def recomputed_backbone(network: keras.Model) -> keras.Model:
    """The backbone `RecomputedForward` would segment.

    Raises:
        ValueError: ``network`` has no functional ``backbone`` called once with layers named
            as ``BOUNDARY_LAYERS``.
    """
    backbone = getattr(network, "backbone", None)
    if not (isinstance(backbone, keras.Model) and hasattr(backbone, "_inbound_nodes")
            and len(backbone._inbound_nodes) == 1):
        raise ValueError(f"recomputation needs a network with a functional backbone called "
                         f"once; {network.name} has none")
    if not any(BOUNDARY_LAYERS.fullmatch(layer.name) for layer in backbone.layers):
        raise ValueError(f"recomputation needs backbone layers named like "
                         f"{BOUNDARY_LAYERS.pattern!r}; {backbone.name} has none")
    return backbone


class _Segment:
    """A backbone segment in training mode whose backward pass recomputes its forward pass.

    As ``tf.recompute_grad``, with two differences: the recomputation's updates of the
    segment's non-trainable state are undone, and it runs on inputs made to depend on the
    output gradient, so the graph cannot schedule it before the backward pass reaches it.
    """

    def __init__(self, model: keras.Model):
        self.model = model

    def __call__(self, *inputs):
        model = self.model

        def run(values):
            return model(values[0] if len(values) == 1 else list(values), training=True)

        @tf.custom_gradient
        def forward(*inputs):
            def backward(output_gradient, variables=None):
                variables = list(variables or [])
                state = model.non_trainable_variables  # not among ``variables``
                saved = [tf.identity(variable.value) for variable in state]
                anchor = tf.reshape(output_gradient, [-1])[:1]
                late = [value + tf.cast(tf.where(tf.math.is_nan(anchor), anchor, 0.0)[0],
                                        value.dtype) for value in inputs]
                with tf.GradientTape() as tape:
                    tape.watch(late)
                    again = run(late)
                gradients = tape.gradient(again, late + variables,
                                          output_gradients=output_gradient)
                # Undone after the recomputation's own updates: stateful operations on a
                # variable run in program order (automatic control dependencies).
                for variable, value in zip(state, saved):
                    variable.assign(value)
                return gradients[:len(inputs)], gradients[len(inputs):]

            return run(inputs), backward

        return forward(*inputs)


def _sources(tensor, known: list) -> list:
    """The tensors of ``known`` that ``tensor`` is computed from, stopping at each (graph
    order)."""
    found, stack, seen = [], [tensor], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current is not tensor and any(current is item for item in known):
            found.append(current)
            continue
        operation, node_index, _ = current._keras_history
        stack.extend(operation._inbound_nodes[node_index].input_tensors)
    return sorted(found, key=lambda item: _position(item, known))


def _position(tensor, known: list) -> int:
    return next(index for index, item in enumerate(known) if item is tensor)
