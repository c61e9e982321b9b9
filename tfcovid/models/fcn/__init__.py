"""FCN-8s on VGG16, SSInfNet's multi-class baseline (spec section 5.8)."""

from tfcovid.models.fcn.fcn8 import FCN8, FCN8Config, build_fcn8

__all__ = ["FCN8", "FCN8Config", "build_fcn8"]
