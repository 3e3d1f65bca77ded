"""Fully connected generator and discriminator of the original GAN (Goodfellow et al. 2014, "Generative
Adversarial Nets", NeurIPS), at the widths most re-implementations use for MNIST.

G: z(100) → 256 → 512 → 1024 → C·H·W, LeakyReLU(0.2), tanh output.
D: C·H·W → 1024 → 512 → 256 → 1 logit, LeakyReLU(0.2), dropout (the paper trained D with dropout).
"""

from __future__ import annotations

import math

from torch import Tensor, nn


def _mlp(widths: list[int], dropout: float = 0.0) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, o in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(i, o), nn.LeakyReLU(0.2, inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100, image_shape: tuple[int, int, int] = (1, 28, 28),
                 hidden: tuple[int, ...] = (256, 512, 1024)):
        super().__init__()
        self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
        out = math.prod(self.image_shape)
        self.net = nn.Sequential(*_mlp([latent_dim, *hidden]), nn.Linear(hidden[-1], out), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:  # (N, latent_dim) -> (N, C, H, W) in [-1, 1]
        return self.net(z.flatten(1)).view(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), hidden: tuple[int, ...] = (1024, 512, 256),
                 dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(*_mlp([math.prod(image_shape), *hidden], dropout), nn.Linear(hidden[-1], 1))

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N,) logits
        return self.net(x.flatten(1)).squeeze(1)
