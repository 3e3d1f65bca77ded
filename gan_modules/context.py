"""The per-iteration context: what one training iteration (one batch) shares between its discriminator and generator
steps — the noise and labels drawn for it, a generated batch computed once and used by both steps, StarGAN's target
domains, CycleGAN's translations — and what the loop needs after ``discriminator_loss`` (the critics to penalise).

The loop builds it once per iteration with the model's ``make_context`` and passes it to ``discriminator_loss`` and
``generator_loss``; nothing is parked on the model between the two steps. Random draws go through ``randn``/``rand``/
``randint``/``randperm``, which use this rank's noise generator (``gan_modules.rng``), so every draw of an iteration is
reproducible, different on every DDP rank, and restored exactly on resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

Batch = dict[str, Tensor]


class Critic(NamedTuple):
    """A discriminator call to penalise: ``critic(images) -> logits``, with the real and fake images it judged."""

    critic: Callable[[Tensor], Tensor]
    real: Tensor
    fake: Tensor


class StepContext:
    """What one iteration shares (see the module docstring). Values are stored by name: ``ctx["z"]``.

    Args:
        batch: the iteration's batch.
        noise: this rank's noise generator (its device is where draws are made).
        generator_step: whether this iteration ends with (or, for generator-first variants, starts with) a G step.
    """

    def __init__(self, batch: Batch, noise: torch.Generator, generator_step: bool = True) -> None:
        self.batch = batch
        self.noise = noise
        self.generator_step = generator_step
        self.values: dict[str, Any] = {}
        self.critics: list[Critic] = []

    # --- named values -----------------------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.values[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    # --- random draws from this rank's noise generator ----------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.noise.device

    def randn(self, *shape: int) -> Tensor:
        return torch.randn(shape, generator=self.noise, device=self.device)

    def rand(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.noise, device=self.device)

    def randint(self, high: int, *shape: int) -> Tensor:
        return torch.randint(high, shape, generator=self.noise, device=self.device)

    def randperm(self, n: int) -> Tensor:
        return torch.randperm(n, generator=self.noise, device=self.device)

    # --- penalties ------------------------------------------------------------------------------------------------
    def add_critic(self, critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> None:
        """Records a discriminator call for the loop's penalty (``penalty``/``penalty_weight``), which is applied
        after ``discriminator_loss``: conditional and translation variants pass the call with their conditioning."""
        self.critics.append(Critic(critic, real, fake))


__all__ = ["Batch", "Critic", "StepContext"]
