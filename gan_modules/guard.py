"""Non-finite guard: an optimizer step whose loss or gradient is inf/NaN is skipped (weights and optimizer state
untouched) and counted; too many in a row stop training with one clear line.

The check costs one fused reduction over the gradients and one host sync per optimizer step, like GradScaler's own
inf check. Under ``16-mixed`` the GradScaler already skips such steps (and calibrates its scale), so the loop does not
consult the guard there.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ._compat import foreach_norm
from .errors import ConfigError

log = logging.getLogger(__name__)


class NonFiniteGuard:
    """Counts skipped steps per network and stops after ``max_in_a_row`` skips in a row.

    Args:
        max_in_a_row: skipped steps of one network in a row that stop training (>= 1).
    """

    def __init__(self, max_in_a_row: int) -> None:
        if max_in_a_row < 1:
            raise ConfigError(f"max_nonfinite_steps must be >= 1 (skipped non-finite steps in a row before stopping) "
                              f"or null to turn the guard off, got {max_in_a_row}")
        self.max_in_a_row = max_in_a_row
        self.skips = 0
        self.streak: dict[str, int] = {}

    @staticmethod
    @torch.no_grad()
    def is_finite(loss: Tensor, grads: list[Tensor]) -> bool:
        """False when ``loss`` or any of ``grads`` holds inf/NaN (one fused reduction, one host sync)."""
        total = loss.detach().float().sum()
        if grads:  # inf/NaN anywhere makes a norm non-finite
            total = total + torch.stack(foreach_norm(grads)).float().sum()
        return bool(torch.isfinite(total))

    def record(self, network: str, finite: bool, where: str) -> None:
        """Records the outcome of ``network``'s step; a skip is logged, and the limit raises ``ConfigError``."""
        if finite:
            self.streak[network] = 0
            return
        self.skips += 1
        streak = self.streak[network] = self.streak.get(network, 0) + 1
        if streak >= self.max_in_a_row:
            raise ConfigError(
                f"training diverged: {streak} {network} optimizer steps in a row had a non-finite loss or "
                f"gradient (last: {network} at {where}); the weights are those of the last finite step and the last "
                "checkpoint is kept: lower the learning rate, use --trainer.precision 32-true or bf16-mixed, or "
                "raise --model.init_args.max_nonfinite_steps"
            )
        log.warning(f"non-finite {network} loss or gradient at {where}: update skipped "
                    f"({streak} in a row, {self.skips} in total)")

    def state_dict(self) -> dict[str, Any]:
        return {"skips": self.skips, "streak": dict(self.streak)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skips = int(state.get("skips", 0))
        self.streak = dict(state.get("streak") or {})


__all__ = ["NonFiniteGuard"]
