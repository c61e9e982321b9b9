"""StichNet's decoders: style images, the lung/background map fb, the lesion map l, Psi, Phi.

Spec 3.7-3.8 (reference two-hierarchy design):

- image path: ``Infer(decoder_width)`` on the concatenated expanded level-1 latents
  [z_1, k_1] (height / 2 to full size), then five ``Visual`` heads: the four style images
  b, h, g, c (background, healthy lung, ground-glass opacity, consolidation; Bernoulli
  logits) and the lung/background map fb (sigmoid logit; 1 = lung);
- label path: ``Infer(decoder_width)`` on the expanded k_1 alone, then a ``Visual`` head
  giving the 3-way lesion map l over (healthy, GGO, consolidation) inside the lung;
- Psi (`class_log_probabilities`): p(y | z, k) = [1 - fb, fb l_h, fb l_g, fb l_c] over the
  four classes 0 background, 1 healthy lung, 2 GGO, 3 consolidation, computed in log space;
- Phi (`stitch`): the image mean picks, per pixel, the style of its class:
  ``sum_c y_c sigmoid(style_c)``.

Decoders are named by class channel (b 0, h 1, g 2, c 3), not by the reference's crossed
``con``/``ggo`` names (spec 3.7).
"""

from __future__ import annotations

import keras
from keras import ops

from tfcovid.models.stichnet import blocks

NUM_CLASSES = 4  # 0 background, 1 healthy lung, 2 ground-glass opacity, 3 consolidation
STYLE_NAMES = ("background", "healthy", "ground_glass", "consolidation")


@keras.saving.register_keras_serializable(package="tfcovid")
class StichDecoder(keras.layers.Layer):
    """Style, fb and lesion heads over the expanded level-1 latents (module docstring).

    Args:
        decoder_width: int. Channels of the two full-resolution ``Infer`` trunks (16 in the
            reference).
        visual_width: int. Trunk width of each ``Visual`` head (8 in the reference).
        compact: bool. Compact blocks (`tfcovid.models.stichnet.blocks`). Defaults to False.

    Call args:
        z_features, k_features: (batch, height / 2, width / 2, channels) expanded z_1, k_1.

    Returns:
        dict of float32 logits at full size: "style" (batch, height, width, 4) in class
        order; "fb" (batch, height, width, 1); "lesion" (batch, height, width, 3) over
        healthy, GGO, consolidation.
    """

    def __init__(self, decoder_width: int = 16, visual_width: int = 8, compact: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.decoder_width, self.visual_width, self.compact = decoder_width, visual_width, compact
        self.image_trunk = blocks.Infer(decoder_width, compact, name="image_trunk")
        self.label_trunk = blocks.Infer(decoder_width, compact, name="label_trunk")
        self.style_heads = [blocks.Visual(1, visual_width, compact, name=f"style_{name}")
                            for name in STYLE_NAMES]
        self.fb_head = blocks.Visual(1, visual_width, compact, name="fb")
        self.lesion_head = blocks.Visual(3, visual_width, compact, name="lesion")

    def call(self, z_features, k_features, training=None):
        image = self.image_trunk(ops.concatenate([z_features, k_features], axis=-1),
                                 training=training)
        label = self.label_trunk(k_features, training=training)
        return {"style": ops.concatenate([head(image, training=training)
                                          for head in self.style_heads], axis=-1),
                "fb": self.fb_head(image, training=training),
                "lesion": self.lesion_head(label, training=training)}

    def get_config(self):
        return {**super().get_config(), "decoder_width": self.decoder_width,
                "visual_width": self.visual_width, "compact": self.compact}


def class_log_probabilities(fb_logits, lesion_logits):
    """Psi: log p(y | z, k) over the four classes from the fb and lesion logits.

    Args:
        fb_logits: float (batch, height, width, 1), logit of "inside the lung".
        lesion_logits: float (batch, height, width, 3), logits over healthy, GGO,
            consolidation.

    Returns:
        float (batch, height, width, 4): log [1 - fb, fb l_h, fb l_g, fb l_c].

    Example:

    >>> import numpy as np
    >>> log_y = class_log_probabilities(np.zeros((1, 1, 1, 1), "float32"),
    ...                                 np.zeros((1, 1, 1, 3), "float32"))
    >>> [round(float(p), 4) for p in np.exp(np.asarray(log_y))[0, 0, 0]]  # fb 1/2, l 1/3
    [0.5, 0.1667, 0.1667, 0.1667]
    """
    inside = ops.log_sigmoid(fb_logits)
    outside = ops.log_sigmoid(-fb_logits)
    return ops.concatenate([outside, inside + ops.log_softmax(lesion_logits, axis=-1)],
                           axis=-1)


def stitch(class_probabilities, style_logits):
    """Phi: the image mean ``sum_c y_c sigmoid(style_c)``, (batch, height, width, 1)."""
    return ops.sum(class_probabilities * ops.sigmoid(style_logits), axis=-1, keepdims=True)


def store_class_log_probabilities(log_probabilities):
    """The four StichNet classes folded into the store's three: 0 background (background or
    healthy lung), 1 GGO, 2 consolidation; log-probabilities, (batch, height, width, 3)."""
    background = ops.logsumexp(log_probabilities[..., :2], axis=-1, keepdims=True)
    return ops.concatenate([background, log_probabilities[..., 2:]], axis=-1)
