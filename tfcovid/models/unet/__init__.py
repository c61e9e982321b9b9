"""U-Nets for multi-class infection segmentation: the reference U-Net of the multi-class Inf-Net
(spec 5.1, 5.2) and the segmentation-models ResNeXt50 U-Net baseline (StichNet spec 7.3)."""

from tfcovid.models.unet.sm_unet import UNetResNeXt50, UNetResNeXt50Config, build_unet_resnext50
from tfcovid.models.unet.unet import UNet, UNetConfig, build_unet

__all__ = ["UNet", "UNetConfig", "UNetResNeXt50", "UNetResNeXt50Config", "build_unet",
           "build_unet_resnext50"]
