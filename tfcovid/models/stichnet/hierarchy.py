"""StichNet's bottom-up encoder and its five-level latent hierarchy (spec 3.3-3.6).

``MobileNetUNetEncoder`` is the U-Net inference network of spec 3.3 (variant U, recommended):
a randomly initialised MobileNetV2 on the 1-channel image (scaled to [-1, 1] as MobileNetV2's
preprocessing) tapped at ``block_1_expand_relu`` (stride 2), ``block_3_expand_relu`` (4),
``block_6_expand_relu`` (8), ``block_13_expand_relu`` (16) and ``out_relu`` (32), and four
decoder blocks giving one feature map per level: level n at stride 2^n with ``widths[n-1]``
channels (level 5 is the bottleneck ``out_relu`` itself).

``LatentHierarchy`` runs the top-down pass for n = 5 ... 1 (spec 3.4, 3.5): the prior of
level 5 is N(0, I), that of level n < 5 is ``FilterCrush_n(Infer_n(FilterExpand_{n+1}(z_{n+1})))``;
the evidence is ``FilterCrush_n(features_n)`` with the *same* ``FilterCrush_n`` (the reference's
shared heads); the posterior is their precision-weighted combination; ``z_n`` is drawn from
it and expanded by ``FilterExpand_n`` for the level below.

Deviations from the reference, deliberate:

- each decoder block upsamples with ``Infer`` (TransposeX2, LightSmooth) where the swap-file
  library used TransposeX2 then SkelaSmooth: one block type fewer, same shapes;
- ``log_var`` is clamped to [-10, 10] (`tfcovid.models.stichnet.ladder.clamp_log_var`);
- the top prior is ``zeros_like`` the evidence, so any batch size works (spec 13).
"""

from __future__ import annotations

import keras
from keras import ops

from tfcovid.models.stichnet import blocks, ladder

NUM_LEVELS = 5
TAPS = ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
        "block_13_expand_relu", "out_relu")
MODES = ("mean", "sample", "prior")


@keras.saving.register_keras_serializable(package="tfcovid")
class DecoderBlock(keras.layers.Layer):
    """Upsample the coarser map, concatenate the skip, ``Down(f)`` and ``LightSmooth(f)``.

    Args:
        filters: int. Output channels (the level's width).
        upsample_filters: int. Channels of the upsampled coarser map.
        compact: bool. Compact blocks (`tfcovid.models.stichnet.blocks`). Defaults to False.
    """

    def __init__(self, filters: int, upsample_filters: int, compact: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.upsample_filters, self.compact = filters, upsample_filters, compact
        self.upsample = blocks.Infer(upsample_filters, compact, name="upsample")
        self.down = blocks.ConvStack(blocks.down_specs(filters), name="down")
        self.smooth = blocks.Smooth(filters, 1, compact, name="smooth")

    def call(self, coarse, skip, training=None):
        merged = ops.concatenate([skip, self.upsample(coarse, training=training)], axis=-1)
        return self.smooth(self.down(merged, training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "upsample_filters": self.upsample_filters, "compact": self.compact}


@keras.saving.register_keras_serializable(package="tfcovid")
class MobileNetUNetEncoder(keras.layers.Layer):
    """Bottom-up U-Net with a MobileNetV2 encoder (spec 3.3).

    Args:
        widths: five ints, the level widths f_1 ... f_5 (32, 64, 128, 256, 512 in the spec).
        alpha: float. MobileNetV2 width multiplier. Defaults to 1.0.
        compact: bool. Compact decoder blocks. Defaults to False.

    Call args:
        images: float (batch, height, width, 1) in [0, 1]; height and width multiples of 32.

    Returns:
        list of five feature maps, level n at stride 2^n: (batch, height / 2^n,
        width / 2^n, widths[n-1]) for n < 5 and the MobileNetV2 output for n = 5.
    """

    def __init__(self, widths, alpha: float = 1.0, compact: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.widths, self.alpha, self.compact = tuple(widths), alpha, compact
        if len(self.widths) != NUM_LEVELS:
            raise ValueError(f"widths must hold {NUM_LEVELS} ints. Received: widths={widths}")
        base = keras.applications.MobileNetV2(input_shape=(None, None, 1), alpha=alpha,
                                              include_top=False, weights=None)
        self.backbone = keras.Model(base.input, [base.get_layer(tap).output for tap in TAPS],
                                    name="mobilenet_v2")
        self.decoder_blocks = [DecoderBlock(self.widths[level - 1], self.widths[level],
                                            compact, name=f"decoder_{level}")
                               for level in range(1, NUM_LEVELS)]

    def call(self, images, training=None):
        taps = self.backbone(images * 2.0 - 1.0, training=training)
        features = [None] * (NUM_LEVELS - 1) + [taps[-1]]
        for level in range(NUM_LEVELS - 1, 0, -1):
            features[level - 1] = self.decoder_blocks[level - 1](
                features[level], taps[level - 1], training=training)
        return features

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths), "alpha": self.alpha,
                "compact": self.compact}


@keras.saving.register_keras_serializable(package="tfcovid")
class LatentHierarchy(keras.layers.Layer):
    """Five-level ladder hierarchy: priors, shared Gaussian heads, expansions (module docstring).

    Args:
        widths: five ints, level widths f_1 ... f_5.
        latent_channels: int. Channels of every latent (1 in the reference). Defaults to 1.
        seed: int. Seed of the sampler. Defaults to 0.
        compact: bool. Compact blocks. Defaults to False.

    Call args:
        features: the encoder's five feature maps (level 1 first).
        mode: "mean" (z_n = posterior mean: the deterministic prediction path), "sample"
            (reparameterised draws from the posterior) or "prior" (ancestral sampling from
            the prior, the evidence ignored: spec 3.6's generation mode).

    Returns:
        dict: "features" the expanded level-1 latent (batch, height / 2, width / 2, widths[0]);
        "posterior", "prior": lists of (loc, log_var) per level, level 1 first, each
        (batch, height / 2^n, width / 2^n, latent_channels); "samples": the z_n.
    """

    def __init__(self, widths, latent_channels: int = 1, seed: int = 0, compact: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.widths, self.latent_channels, self.seed = tuple(widths), latent_channels, seed
        self.compact = compact
        self.heads = [blocks.FilterCrush(width, latent_channels, compact, name=f"crush_{n + 1}")
                      for n, width in enumerate(self.widths)]
        self.expansions = [blocks.FilterExpand(width, compact, name=f"expand_{n + 1}")
                           for n, width in enumerate(self.widths)]
        self.infers = [blocks.Infer(width, compact, name=f"infer_{n + 1}")
                       for n, width in enumerate(self.widths[:-1])]
        self.sampler = ladder.GaussianSampler(seed, name="sampler")

    def build(self, input_shape):
        # Sublayers build on the first call; the feature list has no single input shape.
        self.built = True

    def call(self, features, mode: str = "mean", training=None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
        posterior, prior, samples = [None] * NUM_LEVELS, [None] * NUM_LEVELS, [None] * NUM_LEVELS
        expanded = None
        for n in range(NUM_LEVELS - 1, -1, -1):
            loc_hat, log_var_hat = self.heads[n](features[n], training=training)
            log_var_hat = ladder.clamp_log_var(log_var_hat)
            if expanded is None:
                loc_p, log_var_p = ops.zeros_like(loc_hat), ops.zeros_like(log_var_hat)
            else:
                loc_p, log_var_p = self.heads[n](self.infers[n](expanded, training=training),
                                                 training=training)
                log_var_p = ladder.clamp_log_var(log_var_p)
            if mode == "prior":
                loc_q, log_var_q = loc_p, log_var_p
            else:
                loc_q, log_var_q = ladder.precision_weighted(loc_hat, log_var_hat, loc_p,
                                                             log_var_p)
            posterior[n], prior[n] = (loc_q, log_var_q), (loc_p, log_var_p)
            samples[n] = loc_q if mode == "mean" else self.sampler(loc_q, log_var_q)
            expanded = self.expansions[n](samples[n], training=training)
        return {"features": expanded, "posterior": posterior, "prior": prior,
                "samples": samples}

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths),
                "latent_channels": self.latent_channels, "seed": self.seed,
                "compact": self.compact}
