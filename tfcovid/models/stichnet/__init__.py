"""StichNet: the semi-supervised hierarchical ladder VAE (`tfcovid.models.stichnet.stichnet`)."""

from tfcovid.models.stichnet.stichnet import StichNet, StichNetModelConfig

__all__ = ["StichNet", "StichNetModelConfig"]
