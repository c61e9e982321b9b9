"""Tasks: `keras.Model` wrappers holding a network and its training objective."""

from tfcovid.training.tasks.segmentation import SegmentationTask

__all__ = ["SegmentationTask"]
