"""gan_modules: paper-faithful GAN baselines as PyTorch Lightning modules."""

from .base import AdversarialModule
from .cgan import CGAN
from .dcgan import DCGAN
from .errors import CheckpointError, ConfigError
from .gan import GAN
from .hub import load_generator  # noqa: F401  (public API: gan_modules.load_generator)
from .sngan import SNGAN
from .wgan import WGAN
from .wgan_gp import WGANGP
from .cyclegan import CycleGAN
from .pix2pix import Pix2Pix
from .stargan import StarGAN

#: every trainable variant, by class name; tests are parametrized over it, so a new GAN needs no test edit.
MODELS: dict[str, type[AdversarialModule]] = {"GAN": GAN, "DCGAN": DCGAN}
MODELS.update({"CGAN": CGAN, "WGAN": WGAN, "WGANGP": WGANGP, "SNGAN": SNGAN})
MODELS.update({"Pix2Pix": Pix2Pix, "CycleGAN": CycleGAN, "StarGAN": StarGAN})

__all__ = ["AdversarialModule", "CheckpointError", "ConfigError", "DCGAN", "GAN", "MODELS"]
__all__ += ["CGAN", "SNGAN", "WGAN", "WGANGP"]
__all__ += ["CycleGAN", "Pix2Pix", "StarGAN"]
__version__ = "0.1.0"
