"""Discriminator regularizers as pure, shape-agnostic functions: gradient penalty, R1, weight clipping.

Each penalty takes a ``critic`` (any callable ``images -> logits``, e.g. ``lambda x: D(x, labels)``), returns a scalar
to *add* to the discriminator loss (times its weight), and is picked from :data:`PENALTIES` by name, so any variant
can switch it on from config (``penalty: gradient_penalty``, ``penalty_weight: 10``).

Mixed precision: under ``16-mixed`` the gradient w.r.t. the inputs is taken of the *scaled* critic output and then
divided by the scale (the PyTorch AMP "gradient penalty" recipe), so small gradients do not flush to zero in fp16;
pass the loss scaler as ``scaler`` (anything with ``scale(tensor)`` and ``get_scale()``, e.g. ``torch.amp.GradScaler``).
Under ``bf16-mixed`` there is no scaler (bf16 has fp32's range). The norms are always computed in fp32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from torch import Tensor

from ._compat import foreach_clamp_
from .errors import ConfigError

Critic = Callable[[Tensor], Tensor]


class Scaler(Protocol):
    """What the penalties need from a loss scaler (``torch.amp.GradScaler`` has both)."""

    def scale(self, outputs: Tensor) -> Tensor: ...

    def get_scale(self) -> float: ...


Rand = Callable[..., Tensor]


def interpolation_weights(n: int, ndim: int, like: Tensor, rand: Rand | None = None) -> Tensor:
    """One uniform weight per sample, shaped ``(N, 1, ..., 1)`` to broadcast over every other dimension, drawn by
    ``rand(*shape)`` (the loop passes its iteration context's ``rand``: this rank's noise stream) or from the global
    RNG."""
    shape = (n,) + (1,) * (ndim - 1)
    if rand is None:
        return torch.rand(shape, device=like.device)
    return rand(*shape).to(like.device)


def input_gradients(critic: Critic, inputs: Tensor, scaler: Scaler | None = None) -> Tensor:
    """``∇_x critic(x)`` per sample, flattened to ``(N, D)`` in fp32, with the graph kept (``create_graph=True``) so
    that the penalty's own gradient reaches the critic's parameters.

    The sum over the batch is differentiated: samples are independent, so row ``i`` is ``∇ critic(x_i)``.
    """
    inputs = inputs.detach().requires_grad_(True)
    out = critic(inputs).float().sum()  # fp32 before scaling: an fp16 product could overflow
    if scaler is not None:  # AMP recipe: differentiate the scaled output, then unscale the gradient
        (grad,) = torch.autograd.grad(scaler.scale(out), inputs, create_graph=True)
        grad = grad.float() / scaler.get_scale()
    else:
        (grad,) = torch.autograd.grad(out, inputs, create_graph=True)
    return grad.float().flatten(1)


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, scaler: Scaler | None = None,
                     target: float = 1.0, alpha: Tensor | None = None, rand: Rand | None = None) -> Tensor:
    """WGAN-GP's two-sided penalty (Gulrajani et al. 2017, Eq. 3) on random interpolates of real and fake samples.

    Args:
        critic: images -> logits.
        real: real samples (N, ...).
        fake: generated samples, same shape (detached by the caller or not: only the interpolate is differentiated).
        scaler: the fp16 loss scaler, if any (see the module docstring).
        target: the norm the gradient is pulled towards (1 in the paper).
        alpha: interpolation weights (N, 1, ..., 1); drawn uniformly in [0, 1) when None.
        rand: draws ``alpha`` when it is None: ``rand(*shape)`` (the loop passes its context's); None: global RNG.

    Returns:
        ``E[(‖∇_x̂ D(x̂)‖₂ - target)²]`` with ``x̂ = α·real + (1 - α)·fake``, a scalar in fp32.
    """
    if alpha is None:
        alpha = interpolation_weights(real.shape[0], real.ndim, real, rand)
    x_hat = alpha * real.detach().float() + (1 - alpha) * fake.detach().float()
    grad = input_gradients(critic, x_hat, scaler)
    norm = grad.square().sum(1).add(1e-12).sqrt()  # ‖∇‖₂ per sample; the epsilon keeps d‖g‖/dg finite at g = 0
    return (norm - target).square().mean()  # (‖∇_x̂ D(x̂)‖ - 1)²


def r1_penalty(critic: Critic, real: Tensor, fake: Tensor | None = None, scaler: Scaler | None = None,
               rand: Rand | None = None) -> Tensor:
    """R1 (Mescheder, Geiger & Nowozin 2018, Eq. 9) without its weight: ``½ E[‖∇_x D(x)‖²]`` on real data only, so
    the paper's ``γ`` is the penalty weight (``fake`` and ``rand`` are accepted and ignored, for a uniform
    signature)."""
    grad = input_gradients(critic, real, scaler)
    return 0.5 * grad.square().sum(1).mean()  # γ/2 · ‖∇_x D(x)‖²  (γ applied by the caller)


@torch.no_grad()
def clip_weights_(parameters: Iterable[Tensor], clip: float) -> None:
    """WGAN's weight clipping (Arjovsky et al. 2017, Algorithm 1 line 7): clamps every parameter to [-c, c] in place."""
    if clip <= 0:
        raise ConfigError(f"weight clipping bound must be > 0, got {clip}")
    params = list(parameters)
    if params:
        foreach_clamp_(params, -clip, clip)


#: penalties added to the discriminator loss, by name: ``fn(critic, real, fake, scaler=, rand=) -> scalar``.
PENALTIES: dict[str, Callable[..., Tensor]] = {"gradient_penalty": gradient_penalty, "r1": r1_penalty}


def get_penalty(name: str) -> Callable[..., Tensor]:
    """Looks up a discriminator penalty by name.

    Raises:
        ConfigError: one line naming the unknown penalty and the valid choices.
    """
    try:
        return PENALTIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown penalty {name!r}: choose one of {', '.join(sorted(PENALTIES))} (or null for none)"
        ) from None


def check_penalty_config(penalty: str | None, weight: float, weight_clip: float | None) -> None:
    """Validates the penalty options a model takes from config (one-line ``ConfigError`` each)."""
    if penalty is not None:
        get_penalty(penalty)
    if weight < 0:
        raise ConfigError(f"penalty_weight must be >= 0 (it multiplies the penalty), got {weight}")
    if weight_clip is not None and weight_clip <= 0:
        raise ConfigError(f"weight_clip must be > 0 (clips D's weights to [-c, c]) or null for none, got {weight_clip}")


def loss_scaler(trainer: Any) -> Scaler | None:
    """The fp16 loss scaler of a Lightning trainer (``16-mixed`` on GPU), else None (fp32, bf16, no trainer)."""
    plugin = getattr(trainer, "precision_plugin", None) if trainer is not None else None
    return getattr(plugin, "scaler", None)


__all__ = ["PENALTIES", "check_penalty_config", "clip_weights_", "get_penalty", "gradient_penalty",
           "input_gradients", "interpolation_weights", "loss_scaler", "r1_penalty"]
