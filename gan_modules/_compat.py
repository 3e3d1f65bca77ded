"""The one seam through which gan_modules touches private Lightning and torch internals.

Every access below has a test in ``tests/test_compat.py`` that fails loudly (naming the internal) when a new
Lightning or torch release moves it; ``pyproject.toml`` pins ``lightning`` to the minor range these were verified on.
Nothing else in the package may use a private attribute of Lightning or torch.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from torch import Tensor, nn

# ----------------------------------------------------------------------------------------------------------------
# torch
#: the base class of BatchNorm/InstanceNorm layers that may track running statistics
NORM_BASE: type[nn.Module] = nn.modules.batchnorm._NormBase
#: BatchNorm layers only (1d/2d/3d and SyncBatchNorm)
BATCH_NORM: type[nn.Module] = nn.modules.batchnorm._BatchNorm


def foreach_norm(tensors: list[Tensor]) -> list[Tensor]:
    """One fused kernel launch for the 2-norms of many tensors (``torch._foreach_norm``)."""
    return torch._foreach_norm(tensors)


def foreach_lerp_(targets: list[Tensor], sources: list[Tensor], weight: float) -> None:
    """``t += weight * (s - t)`` for every pair, in one fused launch (``torch._foreach_lerp_``)."""
    torch._foreach_lerp_(targets, sources, weight)


def foreach_clamp_(tensors: list[Tensor], low: float, high: float) -> None:
    """Clamps every tensor to [low, high] in place, in two fused launches (``torch._foreach_clamp_min_/max_``)."""
    torch._foreach_clamp_min_(tensors, low)
    torch._foreach_clamp_max_(tensors, high)


def export_without_size_specialization() -> contextlib.AbstractContextManager:
    """``torch.export`` without specialising sizes of 1 (batch 1, a U-Net's 1×1 bottleneck) to constants:
    ``torch.fx.experimental._config.patch(backed_size_oblivious=True)``, the experimental switch the torch.export
    tutorial documents; a no-op on a torch that lacks it (exports then need batch and sides >= 2)."""
    config = getattr(getattr(torch.fx, "experimental", None), "_config", None)
    if config is None or not hasattr(config, "backed_size_oblivious"):
        return contextlib.nullcontext()
    return config.patch(backed_size_oblivious=True)


# ----------------------------------------------------------------------------------------------------------------
# LightningModule / Trainer
def attached_trainer(module: Any) -> Any | None:
    """The trainer a LightningModule is attached to, or None (``module.trainer`` raises when there is none)."""
    return getattr(module, "_trainer", None)


def should_update_logs(trainer: Any) -> bool:
    """Whether Lightning writes logged values to the loggers at this batch (``log_every_n_steps``, last batch)."""
    return bool(trainer._logger_connector.should_update_logs)


def set_received_sigterm(trainer: Any) -> None:
    """Raises Lightning's SIGTERM flag: the fit loop broadcasts it from rank 0 before the next batch and then every
    rank raises ``SIGTERMException`` at the same batch."""
    trainer._signal_connector.received_sigterm = True


def strategy_launcher(trainer: Any) -> Any | None:
    """The launcher that started the other ranks (it forwards signals to them), if Lightning started them."""
    return getattr(trainer.strategy, "launcher", None)


# ----------------------------------------------------------------------------------------------------------------
# LightningCLI
def optimizer_factory_parts(factory: Callable[..., Any]) -> tuple[type, dict[str, Any]] | None:
    """``(optimizer class, keyword arguments)`` of an ``OptimizerCallable`` built by LightningCLI (a
    ``functools.partial`` whose function, or first class argument, is the optimizer class); None for any other
    callable."""
    if not isinstance(factory, functools.partial):
        return None
    cls = next((a for a in factory.args if inspect.isclass(a)), factory.func)
    return (cls, dict(factory.keywords)) if inspect.isclass(cls) else None


class CheckpointPathHook(LightningCLI):
    """LightningCLI with its private ``--ckpt_path`` pre-parse hook renamed to ``parse_checkpoint_path``.

    LightningCLI reads the checkpoint given with ``--ckpt_path`` (a raw ``torch.load``) and lets every hyperparameter
    in it override the command line, before the classes are instantiated; subclasses override
    ``parse_checkpoint_path`` to do this safely.
    """

    def _parse_ckpt_path(self) -> None:
        self.parse_checkpoint_path()

    def parse_checkpoint_path(self) -> None:
        super()._parse_ckpt_path()


# ----------------------------------------------------------------------------------------------------------------
# ModelCheckpoint
class CheckpointHooks(ModelCheckpoint):
    """``ModelCheckpoint`` with the private steps a subclass needs behind public names: ``write_checkpoint`` (the
    file write of every save), ``find_last_checkpoints`` (what ``--ckpt_path last`` resumes from), ``save_now`` (a
    top-k + last save with the current metrics) and ``last_global_step_saved``."""

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        self.write_checkpoint(trainer, filepath)

    def write_checkpoint(self, trainer: Any, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)

    def record_saved(self, filepath: str) -> None:
        self._last_checkpoint_saved = filepath

    def _find_last_checkpoints(self, trainer: Any) -> set[str]:
        return self.find_last_checkpoints(trainer)

    def find_last_checkpoints(self, trainer: Any) -> set[str]:
        return super()._find_last_checkpoints(trainer)

    def save_now(self, trainer: Any) -> None:
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    @property
    def last_global_step_saved(self) -> int:
        return self._last_global_step_saved


__all__ = ["BATCH_NORM", "NORM_BASE", "CheckpointHooks", "CheckpointPathHook", "attached_trainer",
           "export_without_size_specialization", "foreach_clamp_",
           "foreach_lerp_", "foreach_norm", "optimizer_factory_parts", "set_received_sigterm", "should_update_logs",
           "strategy_launcher"]
