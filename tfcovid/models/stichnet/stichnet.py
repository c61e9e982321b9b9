"""StichNet: semi-supervised COVID-19 CT segmentation as a two-hierarchy ladder VAE.

Reference: the seed report's StichNet and the author's stitchnet / gm-for-ssss code, as
described in ``spec/reference-stichnet.md`` (sections 2-3, 12-15). Generative model
p(x, y, z, k) = p(z_5) p(k_5) prod_n p(z_n | z_n+1) p(k_n | k_n+1) p(y | z, k) p(x | y, z, k):
a style hierarchy z and a semantic hierarchy k (`LatentHierarchy`, five levels each, one
latent channel by default), each inferred by its own MobileNetV2 U-Net
(`MobileNetUNetEncoder`) with the ladder's precision-weighted posterior; decoders
(`StichDecoder`) give four Bernoulli style images, the lung map fb from (z, k) and the lesion
map l from k alone; Psi combines fb and l into the four classes (0 background, 1 healthy lung,
2 ground-glass opacity, 3 consolidation).

The Keras graph (what ``model(images)`` returns, saves and exports) is the deterministic
prediction path: every latent at its posterior mean. Its outputs:

- "logits": float32 (batch, height, width, 3) log-probabilities over the store's classes
  (0 background or healthy lung, 1 GGO, 2 consolidation), so softmax gives the class
  probabilities and `tfcovid.inference` reads it as any multi-class network;
- "class_log_probs": float32 (batch, height, width, 4), log p(y | z, k) over the four classes;
- "styles": float32 (batch, height, width, 4) in [0, 1], the Bernoulli means of the style
  images b, h, g, c ("this slice if every pixel were background / healthy / GGO /
  consolidation", spec 12);
- "reconstruction": float32 (batch, height, width, 1), Phi's image mean.

Training and uncertainty use `StichNet.forward` (posterior samples, prior and posterior
parameters of every level). Images enter in [0, 1] (1 channel, the data pipeline's "unit"
normalisation); height and width must be multiples of 32.

Deliberate deviations from the reference code: the two-hierarchy design of spec 3.8 (the COVID
code has one hierarchy); the U-Net inference network of spec 3.3 (blocks cut at MobileNetV2
block boundaries, no broken residual); Bernoulli style images (spec [P]) rather than Beta;
Psi from fb and l (spec 3.7 recommendation); log-variances clamped to [-10, 10]; inference-mode
batch norm at prediction (spec 9.2).
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from tfcovid.models.base import TfcovidModel
from tfcovid.models.stichnet import decoders
from tfcovid.models.stichnet.hierarchy import LatentHierarchy, MobileNetUNetEncoder
from tfcovid.registry import MODELS

HIERARCHIES = ("z", "k")
SIZE_MULTIPLE_PX = 32  # the encoders' output stride


@keras.saving.register_keras_serializable(package="tfcovid")
class StichNet(TfcovidModel):
    """The StichNet network (module docstring).

    Args:
        widths: five ints, the level widths f_1 ... f_5. Defaults to (32, 64, 128, 256, 512).
        latent_channels: int. Channels of every latent. Defaults to 1.
        alpha: float. MobileNetV2 width multiplier of both encoders. Defaults to 1.0.
        decoder_width: int. Full-resolution decoder trunk width. Defaults to 16.
        visual_width: int. Width of each head's trunk. Defaults to 8.
        seed: int. Seed of the latent samplers (k uses ``seed + 1``). Defaults to 0.
        compact: bool. Compact blocks for tests and CPU runs
            (`tfcovid.models.stichnet.blocks`). Defaults to False.

    Example (building even the tiny network takes 10-40 s on two CPU cores, so not run)::

        model = tfcovid.models.build("stichnet", StichNetModelConfig.tiny())
        outputs = model(np.zeros((2, 32, 64, 1), "float32"))
        # logits (2, 32, 64, 3), class_log_probs (2, 32, 64, 4), styles (2, 32, 64, 4),
        # reconstruction (2, 32, 64, 1)
    """

    def __init__(self, widths=(32, 64, 128, 256, 512), latent_channels: int = 1,
                 alpha: float = 1.0, decoder_width: int = 16, visual_width: int = 8,
                 seed: int = 0, compact: bool = False, **kwargs):
        widths = tuple(int(width) for width in widths)
        encoders = {name: MobileNetUNetEncoder(widths, alpha, compact, name=f"{name}_encoder")
                    for name in HIERARCHIES}
        hierarchies = {name: LatentHierarchy(widths, latent_channels, seed + index, compact,
                                             name=f"{name}_hierarchy")
                       for index, name in enumerate(HIERARCHIES)}
        decoder = decoders.StichDecoder(decoder_width, visual_width, compact, name="decoder")
        images = keras.Input((None, None, 1), name="image")
        parts = _forward(encoders, hierarchies, decoder, images, "mean", None)
        super().__init__(images, prediction_outputs(parts), **kwargs)
        self.widths, self.latent_channels, self.alpha = widths, latent_channels, alpha
        self.decoder_width, self.visual_width, self.seed = decoder_width, visual_width, seed
        self.compact = compact
        self.encoders, self.hierarchies, self.decoder = encoders, hierarchies, decoder

    def forward(self, images, mode: str = "sample", training=None) -> dict:
        """The full pass: encoders, both hierarchies in ``mode``, decoders.

        Args:
            images: float (batch, height, width, 1) in [0, 1].
            mode: "sample" (posterior draws, training), "mean" (posterior means) or
                "prior" (generation from the prior). Defaults to "sample".
            training: bool. Batch-norm mode.

        Returns:
            dict: "z", "k" (each `LatentHierarchy`'s output), "style", "fb", "lesion" logits
            (`StichDecoder`) and "class_log_probs" (Psi).
        """
        return _forward(self.encoders, self.hierarchies, self.decoder, images, mode, training)

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths),
                "latent_channels": self.latent_channels, "alpha": self.alpha,
                "decoder_width": self.decoder_width, "visual_width": self.visual_width,
                "seed": self.seed, "compact": self.compact}


def _forward(encoders, hierarchies, decoder, images, mode, training) -> dict:
    latents = {name: hierarchies[name](encoders[name](images, training=training), mode=mode,
                                       training=training)
               for name in HIERARCHIES}
    heads = decoder(latents["z"]["features"], latents["k"]["features"], training=training)
    return {**latents, **heads,
            "class_log_probs": decoders.class_log_probabilities(heads["fb"], heads["lesion"])}


def prediction_outputs(parts: dict) -> dict:
    """The graph's outputs (module docstring) from `StichNet.forward`'s parts."""
    log_probabilities = parts["class_log_probs"]
    return {"logits": decoders.store_class_log_probabilities(log_probabilities),
            "class_log_probs": log_probabilities,
            "styles": ops.sigmoid(parts["style"]),
            "reconstruction": decoders.stitch(ops.exp(log_probabilities), parts["style"])}


@dataclasses.dataclass(frozen=True)
class StichNetModelConfig:
    """Settings of the StichNet network (`StichNet`); defaults are the spec's (section 15).

    Attributes:
        widths: (int, int, int, int, int). Level widths f_1 ... f_5.
        latent_channels: int. Channels of every latent (1 in the reference).
        alpha: float. MobileNetV2 width multiplier.
        decoder_width: int. Full-resolution decoder trunk width.
        visual_width: int. Width of each head's trunk.
        seed: int. Seed of the latent samplers.
        compact: bool. Compact blocks (tests, CPU runs; `tfcovid.models.stichnet.blocks`).
    """

    widths: tuple[int, int, int, int, int] = (32, 64, 128, 256, 512)
    latent_channels: int = 1
    alpha: float = 1.0
    decoder_width: int = 16
    visual_width: int = 8
    seed: int = 0
    compact: bool = False

    def __post_init__(self):
        if min(self.widths) < 1 or self.latent_channels < 1 or self.alpha <= 0:
            raise ValueError(f"widths and latent_channels must be positive ints and alpha a "
                             f"positive number. Received: widths={self.widths}, "
                             f"latent_channels={self.latent_channels}, alpha={self.alpha}")

    @classmethod
    def tiny(cls, **overrides) -> StichNetModelConfig:
        """A narrow, compact StichNet for tests and CPU runs (widths 8, MobileNetV2 alpha 0.35).

        Args:
            **overrides: fields replacing the tiny values.
        """
        return cls(**{"widths": (8, 8, 8, 8, 8), "alpha": 0.35, "decoder_width": 8,
                      "visual_width": 4, "compact": True, **overrides})


@MODELS.register("stichnet", config=StichNetModelConfig)
def build_stichnet(cfg: StichNetModelConfig) -> StichNet:
    """StichNet, the two-hierarchy ladder VAE (spec sections 2-3)."""
    return StichNet(**dataclasses.asdict(cfg), name="stichnet")
