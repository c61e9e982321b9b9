"""Multi-class Inf-Net (Fan et al., IEEE TMI 2020; spec sections 5.1-5.3): the
multi-class U-Net fed the CT image stacked with an infection prior.

The network itself is ``tfcovid.models.unet.UNet`` with 3 + 3 = 6 input channels and 3 classes
(0 background, 1 ground-glass opacity, 2 consolidation; the corrected one-hot order of spec 5.4).
What makes it the multi-class *Inf-Net* is the prior: a single-class network's min-max-normalised
infection probability map (spec 2.6) repeated over 3 channels. The data pipeline builds it and
stacks it after the image; ``prior`` records where it comes from, so a saved model says what it
must be fed:

- ``"model"``: predictions of a single-class Inf-Net or Semi-Inf-Net (the paper's pipeline and
  the reference test scripts);
- ``"ground_truth"``: the binarised infection mask (the SSInfNet training data, spec 5.3; at
  test time the reference then feeds model predictions, a train/test mismatch);
- ``"zeros"``: an all-zero prior, an ablation that keeps the 6-channel layout.

Deviations: as ``UNet`` (dict output, float32 logits, size-agnostic re-injection); the prior
travels inside the 6-channel input rather than as a second model input, so the training engine
and export treat this model like any other image-to-logits network.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import keras

from tfcovid.models.unet.unet import UNet
from tfcovid.registry import MODELS

IMAGE_CHANNELS = 3
PRIOR_CHANNELS = 3
PRIORS = ("model", "ground_truth", "zeros")


@keras.saving.register_keras_serializable(package="tfcovid")
class InfNetMultiClass(UNet):
    """Multi-class Inf-Net: U-Net over concat[CT image (3), prior (3)] (spec 5.1-5.3).

    Args:
        prior: "model", "ground_truth" or "zeros". Where the data pipeline takes the prior
            from (module docstring); stored in the config, not used by the graph.
            Defaults to "model".
        num_classes: int. Logit channels: 0 background, 1 ground-glass opacity,
            2 consolidation. Defaults to 3.
        variant: "baseline" (spec 5.1) or "improved" (spec 5.2). Defaults to "baseline".
        stackwise_filters: (int, int, int, int). See ``UNet``. Defaults to (64, 128, 256, 512).
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call args:
        inputs: float (batch, height, width, 6): the normalised CT image in channels 0-2 and
            the prior in channels 3-5.

    Call returns:
        dict with "logits": float32 (batch, height, width, num_classes).

    Example:

    >>> import numpy as np
    >>> model = InfNetMultiClass(prior="ground_truth", stackwise_filters=(4, 8, 8, 16))
    >>> tuple(model(np.zeros((2, 32, 48, 6)))["logits"].shape), model.prior
    ((2, 32, 48, 3), 'ground_truth')

    Reference: Fan et al., IEEE TMI 39(8):2626-2637, 2020; spec sections 5.1-5.3.
    """

    def __init__(self, prior: Literal["model", "ground_truth", "zeros"] = "model",
                 num_classes: int = 3, variant: Literal["baseline", "improved"] = "baseline",
                 stackwise_filters=(64, 128, 256, 512), **kwargs):
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}. Received: prior={prior!r}")
        super().__init__(input_channels=IMAGE_CHANNELS + PRIOR_CHANNELS, num_classes=num_classes,
                         variant=variant, stackwise_filters=stackwise_filters, **kwargs)
        self.prior = prior

    def get_config(self):
        config = super().get_config()
        del config["input_channels"]  # fixed: image and prior
        return {**config, "prior": self.prior}


@dataclasses.dataclass(frozen=True)
class InfNetMultiClassConfig:
    """Settings of the multi-class Inf-Net; defaults are the reference's (spec 5.1-5.3, 12).

    Attributes:
        prior: "model", "ground_truth" or "zeros". Source of the prior channels.
        num_classes: int. Logit channels (3: background, GGO, consolidation).
        variant: "baseline" (Inf_Net_UNet) or "improved" (Inf_Net_UNet_Improved).
        stackwise_filters: (int, int, int, int). Channels of inc, down1, down2, down3.
    """

    prior: Literal["model", "ground_truth", "zeros"] = "model"
    num_classes: int = 3
    variant: Literal["baseline", "improved"] = "baseline"
    stackwise_filters: tuple[int, int, int, int] = (64, 128, 256, 512)

    @classmethod
    def tiny(cls, **overrides) -> InfNetMultiClassConfig:
        """A narrow model for tests and smoke runs (filters 4, 8, 8, 16).

        Args:
            **overrides: fields replacing the tiny values.
        """
        return cls(**{"stackwise_filters": (4, 8, 8, 16), **overrides})


@MODELS.register("infnet_multiclass", config=InfNetMultiClassConfig)
def build_infnet_multiclass(cfg: InfNetMultiClassConfig) -> InfNetMultiClass:
    """Multi-class Inf-Net: U-Net on CT image + prior (Fan et al., IEEE TMI 2020); spec 5.1-5.3."""
    return InfNetMultiClass(prior=cfg.prior, num_classes=cfg.num_classes, variant=cfg.variant,
                            stackwise_filters=cfg.stackwise_filters, name="infnet_multiclass")
