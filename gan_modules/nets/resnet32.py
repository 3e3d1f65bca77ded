"""ResNet generator and discriminator for 32×32 images: the CIFAR-10 architecture of WGAN-GP (Gulrajani et al. 2017,
"Improved Training of Wasserstein GANs", NeurIPS, Appendix F) that SNGAN reuses (Miyato et al. 2018, "Spectral
Normalization for Generative Adversarial Networks", ICLR, Table 4).

G: z → linear 4×4×ngf → 3 up-sampling residual blocks (BN, ReLU, nearest ×2, conv3×3, BN, ReLU, conv3×3) →
BN, ReLU, conv3×3 → tanh. D: an "optimized" first down block → a down block → 2 plain blocks (ReLU, conv3×3, ReLU,
conv3×3) → ReLU → global sum pooling → linear → 1 logit. Paper widths: ngf = 128 (WGAN-GP) or 256 (SNGAN),
ndf = 128. The critic has no normalization layers (WGAN-GP's penalty is per sample; SNGAN adds spectral norm).
28×28 inputs start G from 7×7 with two up blocks; D is size-agnostic (global pooling).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .common import check_channels, check_image_size

SUPPORTED_SIZES = (28, 32, 48, 64)


def _init(module: nn.Module) -> nn.Module:
    """Xavier-uniform init as in the SNGAN code: gain √2 for 3×3 convs in residual paths, 1 for the rest."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            gain = math.sqrt(2) if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) else 1.0
            nn.init.xavier_uniform_(m.weight, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class GeneratorBlock(nn.Module):
    """Pre-activation residual block that doubles the resolution; shortcut: nearest ×2 then 1×1 conv."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(in_ch), nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(out_ch), nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:  # (N, in, H, W) -> (N, out, 2H, 2W)
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DiscriminatorBlock(nn.Module):
    """Residual block (ReLU, conv3×3, ReLU, conv3×3[, avg-pool ×½]); ``first`` is the "optimized" input block
    (no leading ReLU; shortcut pools before its 1×1 conv)."""

    def __init__(self, in_ch: int, out_ch: int, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.conv1, self.conv2 = nn.Conv2d(in_ch, out_ch, 3, 1, 1), nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if (in_ch != out_ch or down) else None

    def forward(self, x: Tensor) -> Tensor:  # (N, in, H, W) -> (N, out, H/2, W/2) if down
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:
            s = self.shortcut(F.avg_pool2d(s, 2) if self.down else s)
        elif self.shortcut is not None:
            s = self.shortcut(s)
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ResNetGenerator(nn.Module):
    """z (N, latent_dim) → image (N, C, S, S) in [-1, 1]; ``ngf`` is the width of every residual block."""

    def __init__(self, latent_dim: int = 128, channels: int = 3, image_size: int = 32, ngf: int = 128):
        super().__init__()
        check_image_size("ResNetGenerator", image_size, SUPPORTED_SIZES)
        check_channels("ResNetGenerator", channels)
        self.latent_dim, self.ngf = latent_dim, ngf
        self.base = 7 if image_size == 28 else image_size // 8 if image_size == 48 else 4
        blocks = int(math.log2(image_size // self.base))
        self.linear = nn.Linear(latent_dim, self.base * self.base * ngf)
        self.blocks = nn.Sequential(*[GeneratorBlock(ngf, ngf) for _ in range(blocks)])
        self.out = nn.Sequential(nn.BatchNorm2d(ngf), nn.ReLU(), nn.Conv2d(ngf, channels, 3, 1, 1), nn.Tanh())
        _init(self)

    def forward(self, z: Tensor) -> Tensor:  # (N, latent_dim) -> (N, C, S, S)
        h = self.linear(z.flatten(1)).view(z.shape[0], self.ngf, self.base, self.base)
        return self.out(self.blocks(h))


class ResNetDiscriminator(nn.Module):
    """image (N, C, S, S) → logits (N,); ``ndf`` is the width of every residual block. No normalization layers."""

    def __init__(self, channels: int = 3, image_size: int = 32, ndf: int = 128):
        super().__init__()
        check_image_size("ResNetDiscriminator", image_size, SUPPORTED_SIZES)
        check_channels("ResNetDiscriminator", channels)
        self.blocks = nn.Sequential(
            DiscriminatorBlock(channels, ndf, down=True, first=True),
            DiscriminatorBlock(ndf, ndf, down=True),
            DiscriminatorBlock(ndf, ndf, down=False),
            DiscriminatorBlock(ndf, ndf, down=False),
        )
        self.linear = nn.Linear(ndf, 1)
        self.feature_width = ndf
        _init(self)

    def features(self, x: Tensor) -> Tensor:  # (N, C, S, S) -> (N, ndf): ReLU then global sum pooling
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:  # (N, C, S, S) -> (N,)
        return self.linear(self.features(x)).flatten()
