"""gan_modules: paper-faithful GAN baselines as PyTorch Lightning modules."""

from .base import AdversarialModule
from .dcgan import DCGAN
from .errors import CheckpointError, ConfigError
from .gan import GAN

#: every trainable variant, by class name; tests are parametrized over it, so a new GAN needs no test edit.
MODELS: dict[str, type[AdversarialModule]] = {"GAN": GAN, "DCGAN": DCGAN}

__all__ = ["AdversarialModule", "CheckpointError", "ConfigError", "DCGAN", "GAN", "MODELS"]
__version__ = "0.1.0"
