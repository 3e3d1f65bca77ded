"""Callbacks: sample grids during training, generated-image writer for ``predict``."""

from .samples import GeneratedImageWriter, SampleGrid, log_image_to_loggers

__all__ = ["GeneratedImageWriter", "SampleGrid", "log_image_to_loggers"]
