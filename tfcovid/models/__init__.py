"""Segmentation networks; importing this package registers them in ``tfcovid.registry.MODELS``.

Example:

>>> import tfcovid.models
>>> model = tfcovid.models.build("infnet", tfcovid.models.infnet.InfNetConfig.tiny())
>>> sorted(model.output)
['edge', 'lateral_2', 'lateral_3', 'lateral_4', 'lateral_5']
"""

from __future__ import annotations

from typing import Any

from tfcovid.models import backbones, fcn, infnet, unet  # noqa: F401  (register their builders)
from tfcovid.models.infnet import infnet_multiclass  # noqa: F401  (registers its builder)
from tfcovid.models.ssinfnet import coach, inpainting  # noqa: F401  (register their builders)
from tfcovid.models.stichnet import stichnet  # noqa: F401  (registers its builder)
from tfcovid.registry import MODELS


def build(name: str, cfg: Any = None, /, **kwargs) -> Any:
    """Builds the model registered as ``name`` (``tfcovid.registry.MODELS.build``).

    Args:
        name: str. A registered model name, e.g. "infnet".
        cfg: the model's config dataclass instance, a mapping of its fields, or None (defaults).
        **kwargs: fields overriding those of ``cfg``.

    Raises:
        ConfigError: unknown ``name`` or option.
    """
    return MODELS.build(name, cfg, **kwargs)
