"""Callbacks: sample grids during training, generated-image writer for ``predict``, FID/KID/IS metrics."""

from .checkpoint import GANCheckpoint
from .metrics import GenerativeMetrics
from .samples import GeneratedImageWriter, SampleGrid, log_image_to_loggers

__all__ = ["GANCheckpoint", "GeneratedImageWriter", "GenerativeMetrics", "SampleGrid", "log_image_to_loggers"]
