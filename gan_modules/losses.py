"""Adversarial objectives as pure functions on discriminator logits, chosen by name.

Every discriminator loss takes ``(real_logits, fake_logits)`` and every generator loss takes ``fake_logits``;
both return a scalar (mean over every element, so PatchGAN maps work unchanged). The math is in the trailing
comments, with ``σ`` the logistic sigmoid and ``D`` the logit. Softplus forms are used instead of
``log(sigmoid(.))`` because they are exact, stable and autocast-safe (never Sigmoid + BCELoss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError


# --- discriminator / critic objectives (minimized) -------------------------------------------------------------
def d_logistic(real: Tensor, fake: Tensor) -> Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()  # -log σ(D(x)) - log(1 - σ(D(G(z))))


def d_wasserstein(real: Tensor, fake: Tensor) -> Tensor:
    return fake.mean() - real.mean()  # E[D(G(z))] - E[D(x)]


def d_hinge(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()  # E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]


def d_least_squares(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (real - 1.0).square().mean() + 0.5 * fake.square().mean()  # ½E[(D(x) - 1)²] + ½E[D(G(z))²]


# --- generator objectives (minimized) ---------------------------------------------------------------------------
def g_minimax(fake: Tensor) -> Tensor:
    return -F.softplus(fake).mean()  # log(1 - σ(D(G(z))))   (saturating, Goodfellow et al. 2014 Eq. 1)


def g_non_saturating(fake: Tensor) -> Tensor:
    return F.softplus(-fake).mean()  # -log σ(D(G(z)))   (the "-log D trick", Goodfellow et al. 2014 §3)


def g_wasserstein(fake: Tensor) -> Tensor:
    return -fake.mean()  # -E[D(G(z))]   (also the generator side of hinge, Lim & Ye 2017 / Miyato et al. 2018)


def g_least_squares(fake: Tensor) -> Tensor:
    return 0.5 * (fake - 1.0).square().mean()  # ½E[(D(G(z)) - 1)²]   (Mao et al. 2017, a=0, b=c=1)


class AdversarialLoss(NamedTuple):
    """A pair of objectives: ``discriminator(real_logits, fake_logits)`` and ``generator(fake_logits)``."""

    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]


LOSSES: dict[str, AdversarialLoss] = {
    "minimax": AdversarialLoss(d_logistic, g_minimax),
    "non_saturating": AdversarialLoss(d_logistic, g_non_saturating),
    "wasserstein": AdversarialLoss(d_wasserstein, g_wasserstein),
    "hinge": AdversarialLoss(d_hinge, g_wasserstein),
    "least_squares": AdversarialLoss(d_least_squares, g_least_squares),
}


def get_loss(name: str) -> AdversarialLoss:
    """Looks up an adversarial loss by name.

    Raises:
        ConfigError: one line naming the unknown loss and the valid choices.
    """
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}: choose one of {', '.join(sorted(LOSSES))}") from None


def d_real_fake_scores(real: Tensor, fake: Tensor) -> dict[str, Tensor]:
    """Mean logits of real and fake samples, detached: what a GAN log should show every step."""
    return {"d_real": real.detach().float().mean(), "d_fake": fake.detach().float().mean()}


__all__ = ["LOSSES", "AdversarialLoss", "get_loss", "d_real_fake_scores"] + [
    n for n in dir() if n.startswith(("d_", "g_")) and callable(globals()[n])
]
