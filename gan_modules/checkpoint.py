"""Safe checkpoint reading, model loading by the class recorded in the checkpoint, and the RNG state that makes a
resumed run exact.

Every read goes through ``torch.load(..., weights_only=True)``: a checkpoint is data (tensors, numbers, strings,
tuples, dicts), never code, so a file from an untrusted source cannot run anything when it is loaded. The model
class is taken from ``checkpoint["gan_modules"]["class_path"]`` (written by ``AdversarialModule.on_save_checkpoint``)
and only a class registered in ``gan_modules.MODELS`` is built.
"""

from __future__ import annotations

import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .errors import CheckpointError

if TYPE_CHECKING:
    from .base import AdversarialModule


# ----------------------------------------------------------------------------------------------------------------
# RNG streams (Lightning saves none of them)
def rng_state() -> dict[str, Any]:
    """The torch CPU/CUDA, numpy and python RNG states, in types that ``weights_only=True`` loads."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}  # fmt: skip
    except ImportError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what ``rng_state`` returned (streams missing from ``state`` are left alone)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        try:
            import numpy as np

            s = state["numpy"]
            np.random.set_state((s["kind"], s["keys"].numpy().astype("uint32"), s["pos"], s["has_gauss"],
                                 s["cached_gaussian"]))  # fmt: skip
        except ImportError:
            pass
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


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


def model_class(checkpoint: dict[str, Any]) -> type[AdversarialModule]:
    """The class in ``gan_modules.MODELS`` that wrote ``checkpoint``.

    Raises:
        CheckpointError: no class recorded, or one that is not a registered gan_modules model.
    """
    from . import MODELS  # here: gan_modules/__init__ imports the base, which imports this module

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
    from .errors import ConfigError

    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    try:
        model = cls(**hparams)
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, RuntimeError, KeyError, ConfigError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} does not match {cls.__name__}: {reason}") from None
    model.on_load_checkpoint(checkpoint)
    model._pending_rng = None  # loading for inference never touches the global RNG streams
    return model.to(map_location).eval()


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with every read weights-only and every failure a one-line ``CheckpointError``.

    ``trainer.fit(ckpt_path=...)`` passes ``weights_only=None`` to ``torch.load``, which torch >= 2.6 treats as
    True unless ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is set in the environment; this plugin makes it True always.
    """

    def load_checkpoint(self, path: Any, map_location: Any = "cpu", weights_only: bool | None = None) -> dict:
        if str(path).startswith(("http://", "https://")) or "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return read_checkpoint(path, map_location if map_location is not None else "cpu")
