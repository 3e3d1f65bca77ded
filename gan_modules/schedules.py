"""Optimizer schedules from papers that ``torch.optim.lr_scheduler`` does not have. Pure PyTorch, no Lightning.

:class:`ExponentialDecayMomentumSchedule` is the schedule of the original GAN's MNIST run (Goodfellow et al. 2014;
goodfeli/adversarial ``mnist.yaml`` l.56-105, run by pylearn2): SGD with batch 100, learning rate 0.1 and momentum
0.5 (l.57-61), the learning rate divided by 1.000004 after every batch down to 1e-6 (``ExponentialDecay``,
l.91-94), and the momentum raised linearly from 0.5 to 0.7 between epochs 1 and 250 (``MomentumAdjustor``,
l.101-105). One such SGD updated both G and D (``adversarial/__init__.py`` l.382-398): build one optimizer and one
schedule per network with the same settings.

pylearn2's momentum rule is ``v ← μ·v − lr·g; θ ← θ + v`` (``learning_rule.py`` l.155-162) and PyTorch's SGD is
``b ← μ·b + g; θ ← θ − lr·b``: the same update while lr is constant. Under the per-batch decay pylearn2 weighs a
gradient k batches old with the lr of its own batch, PyTorch with today's, a relative difference of
1.000004ᵏ − 1 ≈ 4·10⁻⁶·k on terms damped by μᵏ (μ ≤ 0.7): below float32 noise.
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

#: SGD settings of mnist.yaml (l.57-61): ``torch.optim.SGD(params, **GOODFELLOW_MNIST_SGD)``, batch size 100.
GOODFELLOW_MNIST_SGD: dict[str, Any] = {"lr": 0.1, "momentum": 0.5}
#: batches per epoch in mnist.yaml: 50,000 training images (l.2-6) / batch 100 (l.57).
GOODFELLOW_MNIST_STEPS_PER_EPOCH = 500


class ExponentialDecayMomentumSchedule(LRScheduler):
    """Per-step exponential learning-rate decay with a floor, plus pylearn2's linear momentum ramp over epochs.

    Call :meth:`step` after every optimizer step (one batch). After ``t`` steps, in epoch ``k = t // steps_per_epoch``
    (0-based):

    - ``lr = max(lr₀ / decay_factor^t, min_lr)`` (pylearn2 ``training_algorithms/sgd.py`` ``ExponentialDecay``
      l.798-822, called after each update, l.455-464: batch 0 uses lr₀);
    - ``momentum = μ₀·(1 − α) + α·final_momentum`` with ``α = clip((k + 1 − start) / (saturate − start), 0, 1)``
      (``learning_rule.py`` ``MomentumAdjustor`` l.167-255: its counter is 1 during the first epoch, because
      ``Train.main_loop`` runs the monitor once before training, ``train.py`` l.201, and after each epoch, l.229);
      ``saturate == start`` jumps to the final momentum from epoch ``start − 1`` on. μ₀ is the optimizer's momentum at
      construction.

    The defaults are mnist.yaml's (decay 1.000004, floor 1e-6, momentum 0.5 → 0.7 from epoch 1 to 250, 500 batches
    per epoch), so the lr floor is reached after ⌈ln(lr₀ / 1e-6) / ln(1.000004)⌉ = 2,878,238 steps at lr₀ = 0.1.

    Args:
        optimizer: an optimizer whose param groups have a ``momentum`` (``torch.optim.SGD``).
        decay_factor: lr divisor per step (> 0; 1 keeps lr constant).
        min_lr: floor of the learning rate.
        final_momentum: momentum at and after epoch ``saturate``.
        momentum_start: pylearn2's ``start`` (epochs).
        momentum_saturate: pylearn2's ``saturate`` (epochs, >= ``momentum_start``).
        steps_per_epoch: batches per epoch.
        last_epoch: index of the last step taken (-1 for a fresh schedule), as in every ``LRScheduler``.
    """

    def __init__(self, optimizer: Optimizer, decay_factor: float = 1.000004, min_lr: float = 1e-6,
                 final_momentum: float = 0.7, momentum_start: int = 1, momentum_saturate: int = 250,
                 steps_per_epoch: int = GOODFELLOW_MNIST_STEPS_PER_EPOCH, last_epoch: int = -1):
        if decay_factor <= 0:
            raise ValueError(f"decay_factor must be > 0 (the lr is divided by it every step), got {decay_factor}")
        if min_lr < 0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")
        if momentum_saturate < momentum_start:
            raise ValueError(f"momentum_saturate ({momentum_saturate}) must be >= momentum_start ({momentum_start}): "
                             "the momentum cannot saturate before it starts increasing")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        if any("momentum" not in group for group in optimizer.param_groups):
            raise ValueError(f"{type(optimizer).__name__} has no 'momentum' setting; this schedule needs "
                             "torch.optim.SGD(params, lr=0.1, momentum=0.5)")
        self.decay_factor, self.min_lr, self.final_momentum = float(decay_factor), float(min_lr), float(final_momentum)
        self.momentum_start, self.momentum_saturate = int(momentum_start), int(momentum_saturate)
        self.steps_per_epoch = int(steps_per_epoch)
        for group in optimizer.param_groups:  # like "initial_lr": kept in the group so a resumed schedule finds it
            group.setdefault("initial_momentum", float(group["momentum"]))
        self.base_momentums = [group["initial_momentum"] for group in optimizer.param_groups]
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return self._get_closed_form_lr()

    def _get_closed_form_lr(self) -> list[float]:
        t = max(self.last_epoch, 0)
        factor = math.exp(-t * math.log(self.decay_factor))  # 1 / decay^t, underflows to 0 instead of overflowing
        return [max(float(base) * factor, self.min_lr) for base in self.base_lrs]

    def get_momentum(self) -> list[float]:
        """The momentum of every param group for the current step."""
        count = max(self.last_epoch, 0) // self.steps_per_epoch + 1  # pylearn2's on_monitor counter
        width = self.momentum_saturate - self.momentum_start
        if width == 0:
            alpha = 1.0 if count >= self.momentum_start else 0.0
        else:
            alpha = min(max((count - self.momentum_start) / width, 0.0), 1.0)
        return [m0 * (1 - alpha) + alpha * self.final_momentum for m0 in self.base_momentums]

    def step(self, epoch: int | None = None) -> None:
        """Advances one batch and sets both the learning rate and the momentum of every param group."""
        super().step(epoch)
        for group, momentum in zip(self.optimizer.param_groups, self.get_momentum(), strict=True):
            group["momentum"] = momentum
        self._last_momentum = [group["momentum"] for group in self.optimizer.param_groups]

    def get_last_momentum(self) -> list[float]:
        """The momentum last set by :meth:`step`."""
        return self._last_momentum


__all__ = ["GOODFELLOW_MNIST_SGD", "GOODFELLOW_MNIST_STEPS_PER_EPOCH", "ExponentialDecayMomentumSchedule"]
