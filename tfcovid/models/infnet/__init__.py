"""Inf-Net (Fan et al., IEEE TMI 2020): receptive-field blocks, parallel partial decoder, edge and
reverse attention (spec section 2)."""

from tfcovid.models.infnet.infnet import InfNet, InfNetConfig, build_infnet

__all__ = ["InfNet", "InfNetConfig", "build_infnet"]
