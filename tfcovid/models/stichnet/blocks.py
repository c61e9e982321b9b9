"""StichNet building blocks (spec section 3.1, the author's ``worker_layers.py``).

Every block has a "low" form for ``filters <= 64`` and a bottleneck "high" form for wider ones,
as the reference. Convolutions are "same"-padded with bias; batch norm uses Keras defaults
(momentum 0.99, epsilon 1e-3), as the reference's Keras code.

Composite blocks (spec 3.1):

- ``Infer(f)`` = ``TransposeX2(f)`` then ``LightSmooth(f)``: doubles the spatial size;
- ``FilterExpand(f)`` (latent sample -> feature map, same size) = ``Up(f/4)``,
  ``LightSmooth(f/4)``, ``Up(f/2)``, ``LightSmooth(f/2)``, ``Smooth(f)``;
- ``FilterCrush(f)`` (feature map -> Gaussian ``loc`` and ``log_var``, same size): trunk
  ``Down(f/2)``, ``LightSmooth(f/2)``, then two branches ``Down(f/4)``, ``LightSmooth(f/4)``,
  linear conv 3 with ``latent_channels`` outputs.

``compact=True`` (a deviation for tests and CPU smoke runs, where the reference's ~450 layers
per hierarchy take a minute to build) keeps every block's input and output shapes but drops
the residual smoothing: ``Smooth`` and ``LightSmooth`` become one conv 3, BN, ReLU;
``Infer`` is ``TransposeX2`` alone; ``FilterExpand`` is ``Up(f)``; ``FilterCrush`` is
``Down(f/2)`` then the two linear heads; ``Visual`` is ``Down`` then its head.
"""

from __future__ import annotations

import keras
from keras import layers

from tfcovid.models.batch_norm import BatchNormalization

HIGH_ABOVE = 64  # blocks wider than this use the bottleneck form (spec 3.1)


def _quarter(filters: int) -> int:
    return max(1, filters // 4)


@keras.saving.register_keras_serializable(package="tfcovid")
class ConvStack(keras.layers.Layer):
    """Convolutions, each followed by batch norm and ReLU unless marked linear.

    Args:
        specs: sequence of (filters, kernel_size, activate) triples; ``activate`` False leaves
            the convolution's output as it is (no batch norm, no ReLU).
        transpose_stride: int or None. When set, the first convolution is a transposed one
            with this stride (upsampling by it). Defaults to None.
    """

    def __init__(self, specs, transpose_stride: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.specs = [tuple(spec) for spec in specs]
        self.transpose_stride = transpose_stride
        self.convs, self.norms = [], []
        for index, (filters, kernel_size, activate) in enumerate(self.specs):
            if index == 0 and transpose_stride:
                conv = layers.Conv2DTranspose(filters, kernel_size, strides=transpose_stride,
                                              padding="same", name=f"conv_{index}")
            else:
                conv = layers.Conv2D(filters, kernel_size, padding="same", name=f"conv_{index}")
            self.convs.append(conv)
            self.norms.append(BatchNormalization(name=f"bn_{index}") if activate
                              else None)

    def call(self, inputs, training=None):
        outputs = inputs
        for conv, norm in zip(self.convs, self.norms):
            outputs = conv(outputs)
            if norm is not None:
                outputs = keras.ops.relu(norm(outputs, training=training))
        return outputs

    def get_config(self):
        return {**super().get_config(), "specs": [list(spec) for spec in self.specs],
                "transpose_stride": self.transpose_stride}


def down_specs(filters: int) -> list:
    """``Down(f)``: conv 3, BN, ReLU; high: conv 1 then conv 3, each with BN and ReLU."""
    if filters <= HIGH_ABOVE:
        return [(filters, 3, True)]
    return [(filters, 1, True), (filters, 3, True)]


def up_specs(filters: int) -> list:
    """``Up(f)``: conv 3 (low) or conv 1 (high), BN, ReLU."""
    return [(filters, 3 if filters <= HIGH_ABOVE else 1, True)]


@keras.saving.register_keras_serializable(package="tfcovid")
class ResBlock(keras.layers.Layer):
    """Pre-activation residual block with an identity shortcut (spec 3.1 ``ResBlock``).

    Low (f <= 64): BN, ReLU, conv 3, BN, ReLU, conv 3, add the input. High: BN, ReLU,
    conv 1 f/4, BN, ReLU, conv 3 f/4, BN, ReLU, conv 1 f, add the input.

    Args:
        filters: int. Channels of the input and output.
    """

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        if filters <= HIGH_ABOVE:
            shapes = [(filters, 3), (filters, 3)]
        else:
            shapes = [(_quarter(filters), 1), (_quarter(filters), 3), (filters, 1)]
        self.norms = [BatchNormalization(name=f"bn_{i}") for i in range(len(shapes))]
        self.convs = [layers.Conv2D(width, size, padding="same", name=f"conv_{i}")
                      for i, (width, size) in enumerate(shapes)]

    def call(self, inputs, training=None):
        outputs = inputs
        for norm, conv in zip(self.norms, self.convs):
            outputs = conv(keras.ops.relu(norm(outputs, training=training)))
        return inputs + outputs

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tfcovid")
class Smooth(keras.layers.Layer):
    """``LightSmooth(f)`` (one residual block) or ``Smooth(f)`` (three), spec 3.1.

    Low: conv 3, BN, ReLU, conv 3, ResBlocks, BN, ReLU. High: conv 1 f/4, BN, ReLU,
    conv 3 f/4, BN, ReLU, conv 1 f, ResBlocks, BN, ReLU.

    Args:
        filters: int. Output channels.
        num_blocks: int. Residual blocks: 1 for LightSmooth, 3 for Smooth. Defaults to 1.
        compact: bool. One conv 3, BN, ReLU instead (module docstring). Defaults to False.
    """

    def __init__(self, filters: int, num_blocks: int = 1, compact: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.num_blocks, self.compact = filters, num_blocks, compact
        if compact:
            specs = [(filters, 3, True)]
        elif filters <= HIGH_ABOVE:
            specs = [(filters, 3, True), (filters, 3, False)]
        else:
            specs = [(_quarter(filters), 1, True), (_quarter(filters), 3, True),
                     (filters, 1, False)]
        self.head = ConvStack(specs, name="head")
        self.blocks = [] if compact else [ResBlock(filters, name=f"res_{i}")
                                          for i in range(num_blocks)]
        self.norm = None if compact else BatchNormalization(name="bn")

    def call(self, inputs, training=None):
        outputs = self.head(inputs, training=training)
        if self.compact:
            return outputs
        for block in self.blocks:
            outputs = block(outputs, training=training)
        return keras.ops.relu(self.norm(outputs, training=training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "num_blocks": self.num_blocks,
                "compact": self.compact}


@keras.saving.register_keras_serializable(package="tfcovid")
class Infer(keras.layers.Layer):
    """``TransposeX2(f)`` then ``LightSmooth(f)``: doubles height and width (spec 3.1).

    ``TransposeX2`` low: transposed conv f, kernel 4, stride 2, BN, ReLU; high: conv 1 f/4,
    BN, ReLU, transposed conv f/4 kernel 4 stride 2, BN, ReLU, conv 1 f, BN, ReLU.

    Args:
        filters: int. Output channels.
        compact: bool. ``TransposeX2`` alone (module docstring). Defaults to False.
    """

    def __init__(self, filters: int, compact: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.compact = filters, compact
        if filters <= HIGH_ABOVE or compact:
            self.reduce = None
            self.upsample = ConvStack([(filters, 4, True)], transpose_stride=2,
                                      name="transpose")
        else:
            self.reduce = ConvStack([(_quarter(filters), 1, True)], name="reduce")
            self.upsample = ConvStack([(_quarter(filters), 4, True), (filters, 1, True)],
                                      transpose_stride=2, name="transpose")
        self.smooth = None if compact else Smooth(filters, 1, name="smooth")

    def call(self, inputs, training=None):
        outputs = inputs if self.reduce is None else self.reduce(inputs, training=training)
        outputs = self.upsample(outputs, training=training)
        return outputs if self.smooth is None else self.smooth(outputs, training=training)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "compact": self.compact}


@keras.saving.register_keras_serializable(package="tfcovid")
class FilterExpand(keras.layers.Layer):
    """Latent sample to a feature map of ``filters`` channels at the same size (spec 3.1).

    Args:
        filters: int. Output channels.
        compact: bool. ``Up(f)`` alone (module docstring). Defaults to False.
    """

    def __init__(self, filters: int, compact: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.compact = filters, compact
        self.up_full = ConvStack(up_specs(filters), name="up_full")
        if compact:
            return
        quarter, half = _quarter(filters), max(1, filters // 2)
        self.up_quarter = ConvStack(up_specs(quarter), name="up_quarter")
        self.smooth_quarter = Smooth(quarter, 1, name="smooth_quarter")
        self.up_half = ConvStack(up_specs(half), name="up_half")
        self.smooth_half = Smooth(half, 1, name="smooth_half")
        self.smooth = Smooth(filters, 3, name="smooth")

    def call(self, inputs, training=None):
        if self.compact:
            return self.up_full(inputs, training=training)
        outputs = self.smooth_quarter(self.up_quarter(inputs, training=training),
                                      training=training)
        outputs = self.smooth_half(self.up_half(outputs, training=training), training=training)
        # Smooth(f) starts with a conv to f channels; up_full matches the reference's width.
        return self.smooth(self.up_full(outputs, training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "compact": self.compact}


@keras.saving.register_keras_serializable(package="tfcovid")
class FilterCrush(keras.layers.Layer):
    """Feature map to diagonal-Gaussian parameters at the same size (spec 3.1).

    Args:
        filters: int. Width of the level (f_n); the trunk has f/2 channels, each branch f/4.
        latent_channels: int. Channels of the latent (1 in the reference). Defaults to 1.
        compact: bool. ``Down(f/2)`` then the heads (module docstring). Defaults to False.

    Returns:
        (loc, log_var), each (batch, height, width, latent_channels) float32.
    """

    def __init__(self, filters: int, latent_channels: int = 1, compact: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.latent_channels, self.compact = filters, latent_channels, compact
        half, quarter = max(1, filters // 2), _quarter(filters)
        self.trunk = ConvStack(down_specs(half), name="trunk_down")
        self.loc_head = layers.Conv2D(latent_channels, 3, padding="same", dtype="float32",
                                      name="loc_head")
        self.log_var_head = layers.Conv2D(latent_channels, 3, padding="same", dtype="float32",
                                          name="log_var_head")
        if compact:
            return
        self.trunk_smooth = Smooth(half, 1, name="trunk_smooth")
        self.loc_down = ConvStack(down_specs(quarter), name="loc_down")
        self.loc_smooth = Smooth(quarter, 1, name="loc_smooth")
        self.log_var_down = ConvStack(down_specs(quarter), name="log_var_down")
        self.log_var_smooth = Smooth(quarter, 1, name="log_var_smooth")

    def call(self, inputs, training=None):
        if self.compact:
            trunk = self.trunk(inputs, training=training)
            return self.loc_head(trunk), self.log_var_head(trunk)
        trunk = self.trunk_smooth(self.trunk(inputs, training=training), training=training)
        loc = self.loc_head(self.loc_smooth(self.loc_down(trunk, training=training),
                                            training=training))
        log_var = self.log_var_head(self.log_var_smooth(
            self.log_var_down(trunk, training=training), training=training))
        return loc, log_var

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "latent_channels": self.latent_channels, "compact": self.compact}


@keras.saving.register_keras_serializable(package="tfcovid")
class Visual(keras.layers.Layer):
    """Decoder head: ``Down(8)``, ``LightSmooth(8)``, then a linear conv 7 (spec 3.7).

    Args:
        channels: int. Output channels of the final conv 7 (logits).
        width: int. Trunk width (8 in the reference). Defaults to 8.
        compact: bool. No ``LightSmooth`` (module docstring). Defaults to False.
    """

    def __init__(self, channels: int, width: int = 8, compact: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.width, self.compact = channels, width, compact
        self.down = ConvStack(down_specs(width), name="down")
        self.smooth = None if compact else Smooth(width, 1, name="smooth")
        self.head = layers.Conv2D(channels, 7, padding="same", dtype="float32", name="head")

    def call(self, inputs, training=None):
        trunk = self.down(inputs, training=training)
        if self.smooth is not None:
            trunk = self.smooth(trunk, training=training)
        return self.head(trunk)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "width": self.width,
                "compact": self.compact}
