"""Every trainable variant, by class name, and loading a checkpoint into the class that wrote it.

Tests are parametrized over ``MODELS``, so a new GAN needs no test edit: write its file, then add it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import AdversarialModule
from .cgan import CGAN
from .checkpoint import class_path_of, read_checkpoint
from .cyclegan import CycleGAN
from .dcgan import DCGAN
from .errors import CheckpointError, ConfigError
from .gan import GAN
from .pix2pix import Pix2Pix
from .sngan import SNGAN
from .stargan import StarGAN
from .wgan import WGAN
from .wgan_gp import WGANGP

MODELS: dict[str, type[AdversarialModule]] = {
    cls.__name__: cls for cls in (GAN, DCGAN, CGAN, WGAN, WGANGP, SNGAN, Pix2Pix, CycleGAN, StarGAN)
}


def model_class(checkpoint: dict[str, Any]) -> type[AdversarialModule]:
    """The class in ``MODELS`` that wrote ``checkpoint``.

    Raises:
        CheckpointError: no class recorded, or one that is not a registered gan_modules model.
    """
    class_path = (checkpoint.get("gan_modules") or {}).get("class_path")
    if not class_path:
        raise CheckpointError("the checkpoint was not written by gan_modules (no gan_modules.class_path entry)")
    by_path = {class_path_of(cls): cls for cls in MODELS.values()}
    if class_path not in by_path:
        raise CheckpointError(f"the checkpoint's model class {class_path} is not one of the gan_modules models "
                              f"({', '.join(sorted(MODELS))}); load it with its own class")  # fmt: skip
    return by_path[class_path]


def load_model(path: str | Path, map_location: Any = "cpu", expected: type | None = None) -> AdversarialModule:
    """The model saved in a gan_modules checkpoint, rebuilt from its hyperparameters, in eval mode.

    Args:
        path: a ``.ckpt`` written by ``fit``.
        map_location: where to put the tensors.
        expected: when given, the checkpoint must be from this class (or a subclass of it).

    Raises:
        CheckpointError: missing, corrupt or unsafe file; not a gan_modules model; not ``expected``; or weights that
            do not fit the recorded hyperparameters.
    """
    checkpoint = read_checkpoint(path, map_location)
    cls = model_class(checkpoint)
    if expected is not None and not issubclass(cls, expected):
        raise CheckpointError(f"{path} holds a {cls.__name__}, not a {expected.__name__}; pass a "
                              f"{expected.__name__} checkpoint")  # fmt: skip
    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    try:
        model = cls(**hparams)
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, RuntimeError, KeyError, ConfigError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} does not match {cls.__name__}: {reason}") from None
    model.on_load_checkpoint(checkpoint)
    model._pending_rng = None  # loading for inference never touches the random streams
    return model.to(map_location).eval()


__all__ = ["MODELS", "load_model", "model_class"]
