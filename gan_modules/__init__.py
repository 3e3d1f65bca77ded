"""gan_modules: paper-faithful GAN baselines as PyTorch Lightning modules.

Names are imported lazily (PEP 562), so that light modules such as ``gan_modules.errors`` can be used (by the data
package, for instance) without importing Lightning and every variant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "AdversarialModule": ".base",
    "ImageGAN": ".image_gan",
    "TranslationModule": ".translation",
    "GAN": ".gan",
    "DCGAN": ".dcgan",
    "CGAN": ".cgan",
    "WGAN": ".wgan",
    "WGANGP": ".wgan_gp",
    "SNGAN": ".sngan",
    "Pix2Pix": ".pix2pix",
    "CycleGAN": ".cyclegan",
    "StarGAN": ".stargan",
    "MODELS": ".registry",
    "UserError": ".errors",
    "ConfigError": ".errors",
    "CheckpointError": ".errors",
    "load_model": ".registry",
    "load_generator": ".hub",
}

__all__ = [
    "CGAN",
    "DCGAN",
    "GAN",
    "MODELS",
    "SNGAN",
    "WGAN",
    "WGANGP",
    "AdversarialModule",
    "CheckpointError",
    "ConfigError",
    "CycleGAN",
    "ImageGAN",
    "Pix2Pix",
    "StarGAN",
    "TranslationModule",
    "UserError",
    "load_generator",
    "load_model",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gan_modules' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs
    from .base import AdversarialModule
    from .cgan import CGAN
    from .cyclegan import CycleGAN
    from .dcgan import DCGAN
    from .errors import CheckpointError, ConfigError, UserError
    from .gan import GAN
    from .hub import load_generator
    from .image_gan import ImageGAN
    from .pix2pix import Pix2Pix
    from .registry import MODELS, load_model
    from .sngan import SNGAN
    from .stargan import StarGAN
    from .translation import TranslationModule
    from .wgan import WGAN
    from .wgan_gp import WGANGP
