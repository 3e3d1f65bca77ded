"""Exponential moving average of the generator's weights, and "standing statistics" for its BatchNorm layers.

The averaged generator is a copy of G whose parameters follow ``θ_ema ← d·θ_ema + (1 − d)·θ``. Its BatchNorm running
statistics must belong to the *averaged* weights: statistics copied from the live G were collected with other
weights, so before the EMA copy samples in eval mode they are recomputed from its own forward passes
(``recompute_batchnorm_statistics``; StudioGAN's "standing statistics", POSTECH-CVLab/PyTorch-StudioGAN
``src/utils/sample.py``/``misc.py`` ``apply_standing_statistics``). Other buffers (spectral-norm vectors) are copied.

StudioGAN's schedule is used: the EMA copies G until generator step ``start`` (``ema_start``), then averages; the
decay optionally warms up as ``min(decay, (1 + t) / (10 + t))`` over the steps ``t`` since the start (the warm-up of
TensorFlow's ``ExponentialMovingAverage(num_updates)``), so an early average is not dominated by the initial weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ._compat import BATCH_NORM, foreach_lerp_
from .errors import ConfigError


class EMA:
    """The averaging rule (stateless: the averaged network is the model's ``generator_ema`` submodule).

    Args:
        decay: the decay ``d`` once averaging has started, in [0, 1).
        start: generator steps during which the EMA is a plain copy of G (0: average from the first step).
        warmup: warm the decay up from 0.1 after ``start`` (see the module docstring).
    """

    def __init__(self, decay: float, start: int = 0, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1) or null to disable the EMA, got {decay}")
        if start < 0:
            raise ConfigError(f"ema_start must be >= 0 (generator steps before averaging starts), got {start}")
        self.decay, self.start, self.warmup = decay, start, warmup

    def decay_at(self, step: int) -> float:
        """The decay applied by the update after generator step ``step`` (0-based): 0 (copy) before ``start``."""
        if step < self.start:
            return 0.0
        t = step - self.start
        return min(self.decay, (1 + t) / (10 + t)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, averaged: nn.Module, live: nn.Module, step: int) -> None:
        """One EMA step of ``averaged`` towards ``live`` (one fused lerp over all parameters); buffers are copied."""
        weight = 1.0 - self.decay_at(step)
        ema_params = list(averaged.parameters())
        foreach_lerp_(ema_params, [p.detach() for p in live.parameters()], weight)
        for b_ema, b in zip(averaged.buffers(), live.buffers()):
            b_ema.copy_(b)


def batchnorm_layers(net: nn.Module) -> list[nn.Module]:
    """The BatchNorm layers of ``net`` that keep running statistics."""
    return [m for m in net.modules() if isinstance(m, BATCH_NORM) and m.track_running_stats]


@torch.no_grad()
def recompute_batchnorm_statistics(net: nn.Module, batches: Iterable[dict[str, Any]]) -> bool:
    """Replaces the running statistics of every BatchNorm layer of ``net`` by the exact average over ``batches``
    (keyword inputs of ``net``), computed by forward passes in train mode with a cumulative average (momentum None).

    The global RNG streams are left as they were (a network with dropout draws masks in train mode). Returns False,
    doing nothing, when ``net`` has no such layer.
    """
    layers = batchnorm_layers(net)
    if not layers:
        return False
    momenta = [m.momentum for m in layers]
    was_training = net.training
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: equal weight for every batch
        net.train()
        with torch.random.fork_rng(devices=devices):
            for inputs in batches:
                net(**inputs)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        net.train(was_training)
    return True


__all__ = ["EMA", "batchnorm_layers", "recompute_batchnorm_statistics"]
