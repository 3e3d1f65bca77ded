"""Class-conditional DCGAN-style generator and discriminator.

Two ways to condition, per network:

- ``"concat"`` (Mirza & Osindero 2014, "Conditional Generative Adversarial Nets"): G sees ``[z, e(y)]``; D sees the
  image with ``e(y)`` broadcast as extra input channels. ``e`` is a one-hot code or a learned embedding.
- ``"projection"`` (Miyato & Koyama 2018, "cGANs with Projection Discriminator", ICLR): D's logit is
  ``ψ(φ(x)) + ⟨V e_y, φ(x)⟩`` with ``φ`` the sum-pooled features; G then uses conditional BatchNorm (de Vries et al.
  2017; Dumoulin et al. 2017), a per-class gain and bias after a parameter-free BatchNorm.

The layout follows ``nets.dcgan`` (sizes 28/32/64/128, N(0, 0.02) init).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .common import check_channels, check_image_size, dcgan_init_
from .dcgan import SUPPORTED_SIZES, _base_and_blocks, discriminator_trunk

Conditioning = Literal["concat", "projection"]
LabelEncoding = Literal["onehot", "embedding"]


class LabelEncoder(nn.Module):
    """Class index (N,) → code (N, dim): one-hot (``dim = num_classes``) or a learned embedding."""

    def __init__(self, num_classes: int, encoding: LabelEncoding = "onehot", embed_dim: int = 50):
        super().__init__()
        if encoding not in ("onehot", "embedding"):
            raise ConfigError(f"unknown label encoding {encoding!r}: choose onehot or embedding")
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes, embed_dim) if encoding == "embedding" else None
        self.dim = embed_dim if self.embedding is not None else num_classes

    def forward(self, y: Tensor) -> Tensor:  # (N,) int64 -> (N, dim)
        if self.embedding is not None:
            return self.embedding(y)
        return F.one_hot(y, self.num_classes).float()


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without affine parameters followed by a per-class gain (init 1) and bias (init 0)."""

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # (N, C, H, W), (N,) -> (N, C, H, W)
        return self.bn(x) * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class ConditionalGenerator(nn.Module):
    """(z (N, latent_dim), y (N,)) → image (N, C, S, S) in [-1, 1].

    Args:
        conditioning: ``"concat"`` ([z, e(y)] as input, plain BatchNorm) or ``"projection"`` (z as input,
            conditional BatchNorm everywhere: the generator that goes with a projection discriminator).
        label_encoding: ``"onehot"`` or ``"embedding"`` for the concat input.
    """

    def __init__(self, latent_dim: int = 100, num_classes: int = 10, channels: int = 1, image_size: int = 28,
                 ngf: int = 64, conditioning: Conditioning = "concat", label_encoding: LabelEncoding = "onehot",
                 embed_dim: int = 50):
        super().__init__()
        check_image_size("ConditionalGenerator", image_size, SUPPORTED_SIZES)
        check_channels("ConditionalGenerator", channels)
        self.latent_dim, self.num_classes, self.conditioning = latent_dim, num_classes, conditioning
        self.encoder = LabelEncoder(num_classes, label_encoding, embed_dim) if conditioning == "concat" else None
        in_dim = latent_dim + (self.encoder.dim if self.encoder is not None else 0)
        base, blocks = _base_and_blocks(image_size)
        width = ngf * 2 ** (blocks - 1)
        self.convs = nn.ModuleList([nn.ConvTranspose2d(in_dim, width, base, 1, 0, bias=False)])
        self.norms = nn.ModuleList([self._norm(width)])
        for _ in range(blocks - 1):
            self.convs.append(nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False))
            width //= 2
            self.norms.append(self._norm(width))
        self.out = nn.ConvTranspose2d(width, channels, 4, 2, 1)
        dcgan_init_(self)
        for m in self.modules():  # keep conditional BN at identity gain after the N(1, 0.02) DCGAN init
            if isinstance(m, ConditionalBatchNorm2d):
                nn.init.ones_(m.gain.weight)

    def _norm(self, width: int) -> nn.Module:
        if self.conditioning == "projection":
            return ConditionalBatchNorm2d(width, self.num_classes)
        return nn.BatchNorm2d(width)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:  # (N, latent_dim), (N,) -> (N, C, S, S)
        h = z.flatten(1)
        if self.encoder is not None:
            h = torch.cat([h, self.encoder(y).to(h.dtype)], dim=1)
        h = h[:, :, None, None]
        for conv, norm in zip(self.convs, self.norms):
            h = conv(h)
            h = F.relu(norm(h, y) if isinstance(norm, ConditionalBatchNorm2d) else norm(h))
        return torch.tanh(self.out(h))


class ConditionalDiscriminator(nn.Module):
    """(image (N, C, S, S), y (N,)) → logits (N,).

    Args:
        conditioning: ``"concat"`` (label code broadcast as extra input channels) or ``"projection"``.
        norm: DCGAN-style normalisation of the hidden layers (batch, layer, instance, none).
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, image_size: int = 28, ndf: int = 64,
                 norm: str = "batch", conditioning: Conditioning = "concat", label_encoding: LabelEncoding = "onehot",
                 embed_dim: int = 50):
        super().__init__()
        check_image_size("ConditionalDiscriminator", image_size, SUPPORTED_SIZES)
        check_channels("ConditionalDiscriminator", channels)
        self.conditioning = conditioning
        self.encoder = LabelEncoder(num_classes, label_encoding, embed_dim) if conditioning == "concat" else None
        in_ch = channels + (self.encoder.dim if self.encoder is not None else 0)
        base, blocks = _base_and_blocks(image_size)
        self.features, width = discriminator_trunk(in_ch, ndf, blocks, norm)
        if conditioning == "projection":
            self.head: nn.Module = nn.Linear(width, 1)  # ψ on sum-pooled features
            self.projection = nn.Embedding(num_classes, width)  # V: one row per class
        else:
            self.head = nn.Conv2d(width, 1, base, 1, 0)
            self.projection = None
        dcgan_init_(self)
        if self.projection is not None:
            nn.init.normal_(self.projection.weight, 0.0, 0.02)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # (N, C, S, S), (N,) -> (N,)
        if self.encoder is not None:
            code = self.encoder(y).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
            return self.head(self.features(torch.cat([x, code], dim=1))).flatten()
        phi = self.features(x).sum(dim=(2, 3))  # (N, width): φ(x), global sum pooling
        return self.head(phi).flatten() + (self.projection(y) * phi).sum(1)  # ψ(φ) + ⟨V e_y, φ⟩
