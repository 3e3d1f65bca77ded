"""Safe checkpoint reading and the model-class check.

Every read goes through ``torch.load(..., weights_only=True)``: a checkpoint is data (tensors, numbers, strings,
tuples, dicts), never code, so a file from an untrusted source cannot run anything when it is loaded. The model
class is recorded in ``checkpoint["gan_modules"]["class_path"]`` (written by ``AdversarialModule.on_save_checkpoint``);
``gan_modules.registry.load_model`` builds only a class registered in ``gan_modules.MODELS``.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .errors import CheckpointError


# ----------------------------------------------------------------------------------------------------------------
# Reading and checking checkpoints
def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path``, read with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, truncated/corrupt, not a torch checkpoint, or holds objects that a
            weights-only load refuses (pickled code).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; pass the .ckpt that fit wrote (e.g. "
                              ".../checkpoints/last.ckpt) or --ckpt_path last")  # fmt: skip
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (not a torch.save archive); resume from an "
                              "earlier checkpoint (the atomic writer never leaves last.ckpt half-written)")  # fmt: skip
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        what = unsafe.group(1) if unsafe else "pickled objects"
        raise CheckpointError(f"checkpoint {path} holds {what}, which a safe (weights-only) load refuses; "
                              "only load checkpoints written by gan-modules") from None  # fmt: skip
    except Exception as err:  # noqa: BLE001 - truncated zip, random bytes, an empty file: all "corrupt"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({reason}); resume from an earlier "
                              "checkpoint (the atomic writer never leaves last.ckpt half-written)") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (it holds a {type(checkpoint).__name__})")
    return checkpoint


def class_path_of(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def check_checkpoint_class(class_path: str | None, cls: type) -> None:
    """Refuses a checkpoint written by another model class (a subclass may load its parent's checkpoints).

    Raises:
        CheckpointError: ``class_path`` is missing (not a gan_modules checkpoint) or names a class that ``cls`` is not.
    """
    if class_path is None:
        raise CheckpointError(f"the checkpoint was not written by gan_modules (no gan_modules.class_path entry); "
                              f"it cannot be loaded into {cls.__name__}")  # fmt: skip
    if class_path not in {class_path_of(c) for c in cls.__mro__}:
        raise CheckpointError(f"the checkpoint is from {class_path}, not {class_path_of(cls)}; use the config of the "
                              f"run that wrote it (--model {class_path}) or another checkpoint")  # fmt: skip


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with every read weights-only and every failure a one-line ``CheckpointError``.

    ``trainer.fit(ckpt_path=...)`` passes ``weights_only=None`` to ``torch.load``, which torch >= 2.6 treats as
    True unless ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set in the environment; this plugin makes it True always.
    """

    def load_checkpoint(self, path: Any, map_location: Any = "cpu", weights_only: bool | None = None) -> dict:
        if str(path).startswith(("http://", "https://")) or "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return read_checkpoint(path, map_location if map_location is not None else "cpu")
