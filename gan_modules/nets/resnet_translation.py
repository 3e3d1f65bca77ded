"""ResNet translation networks: CycleGAN's generator (Zhu et al. 2017, https://arxiv.org/abs/1703.10593, after
Johnson et al. 2016) and StarGAN's generator and discriminator (Choi et al. 2018, "StarGAN: Unified Generative
Adversarial Networks for Multi-Domain Image-to-Image Translation", CVPR, https://arxiv.org/abs/1711.09020)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .common import dcgan_init_


class _ReflectResBlock(nn.Module):
    """CycleGAN residual block: (ReflectionPad1, Conv3, IN, ReLU) ×1, (ReflectionPad1, Conv3, IN), plus identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator: c7s1-64, d128, d256, R256 × n_blocks, u128, u64, c7s1-out, tanh.

    Reflection padding, InstanceNorm with ``affine=False`` (the reference's ``norm='instance'``), biases on (IN has no
    shift). ~11.38M parameters at ``ngf=64``, 9 blocks, RGB.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        ngf: width of the first conv (64).
        n_blocks: residual blocks (9 at 256 px, 6 at 128 px and below).
    """

    size_multiple = 4  # two stride-2 convs

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nn.InstanceNorm2d(ngf),
                                   nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
        layers += [_ReflectResBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c // 2),
                       nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        dcgan_init_(self)  # reference init: N(0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)  # (N, in, H, W) -> (N, out, H, W) in [-1, 1]


def _star_norm(c: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(c, affine=True, track_running_stats=True)  # as yunjey/stargan (eval() uses the stats)


class _ZeroPadResBlock(nn.Module):
    """StarGAN residual block: Conv3 (zero padding, no bias), IN, ReLU, Conv3, IN, plus identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), _star_norm(dim), nn.ReLU(True),
            nn.Conv2d(dim, dim, 3, 1, 1, bias=False), _star_norm(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


class StarGANGenerator(nn.Module):
    """StarGAN's G: concat(image, target label tiled as channels) → Conv7 64 → 2× Conv4 s2 → res blocks →
    2× ConvTranspose4 s2 → Conv7 → tanh. Zero padding, bias-free convs, affine InstanceNorm with running stats.

    Args:
        channels: image channels.
        c_dim: label length (domains or attributes).
        ngf: width of the first conv (64).
        n_blocks: residual blocks (6).
    """

    size_multiple = 4

    def __init__(self, channels: int = 3, c_dim: int = 5, ngf: int = 64, n_blocks: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels + c_dim, ngf, 7, 1, 3, bias=False), _star_norm(ngf),
                                   nn.ReLU(True)]
        c = ngf
        for _ in range(2):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), _star_norm(2 * c), nn.ReLU(True)]
            c *= 2
        layers += [_ZeroPadResBlock(c) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), _star_norm(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.Conv2d(c, channels, 7, 1, 3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        c = c.to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])  # (N, c_dim, H, W)
        return self.main(torch.cat([x, c], dim=1))  # (N, C + c_dim, H, W) -> (N, C, H, W)


def stargan_d_repeat(image_size: int) -> int:
    """Strided convs in StarGAN's D: 6 at 128 px and above (the reference), else the most up to ``log2(size) − 2``
    (4×4 patches at powers of two) that divide ``image_size`` (2 at 28 px)."""
    if image_size >= 128 and image_size % 64 == 0:
        return 6
    r = max(1, int(math.log2(max(image_size, 2))) - 2)
    while r > 1 and image_size % 2**r:
        r -= 1
    return r


class StarGANDiscriminator(nn.Module):
    """StarGAN's D: PatchGAN of ``repeat`` Conv4 s2 layers with LeakyReLU 0.01 and no normalization, then two heads:
    ``src`` (Conv3 → 1-channel patch logits) and ``cls`` (Conv with kernel ``size / 2**repeat`` → c_dim logits).

    Args:
        channels: image channels.
        image_size: side of the (square) images.
        c_dim: label length.
        ndf: width of the first conv (64).
        repeat: strided convs (default ``stargan_d_repeat(image_size)``); ``image_size`` must divide by ``2**repeat``.
    """

    def __init__(self, channels: int = 3, image_size: int = 128, c_dim: int = 5, ndf: int = 64,
                 repeat: int | None = None):
        super().__init__()
        repeat = stargan_d_repeat(image_size) if repeat is None else repeat
        if image_size % 2**repeat:
            raise ConfigError(f"StarGANDiscriminator with {repeat} strided convs needs image_size divisible by "
                             f"{2**repeat}, got {image_size}")
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.01)]
        c = ndf
        for _ in range(1, repeat):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.01)]
            c *= 2
        self.main = nn.Sequential(*layers)
        self.src = nn.Conv2d(c, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(c, c_dim, image_size // 2**repeat, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.main(x)  # (N, ndf * 2^(repeat-1), H / 2^repeat, W / 2^repeat)
        return self.src(h), self.cls(h).flatten(1)  # (N, 1, h, w) patch logits, (N, c_dim) domain logits
