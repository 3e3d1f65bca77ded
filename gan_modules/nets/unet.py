"""U-Net generator of pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR, https://arxiv.org/abs/1611.07004), as in junyanz/pytorch-CycleGAN-and-pix2pix ``UnetGenerator``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .common import dcgan_init_

NORMS = ("batch", "instance", "none")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The reference's choices: BatchNorm (affine, running stats) or InstanceNorm (affine False, no stats)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {norm!r}: choose one of {', '.join(NORMS)}")


def unet_depth(image_size: int) -> int:
    """Downsamplings for ``image_size``: to a 1×1 bottleneck at powers of two (8 = U-Net-256, 7 = U-Net-128, 5 at
    32 px), else as many halvings as divide the size (2 at 28 px)."""
    if image_size < 4:
        raise ConfigError(f"UNetGenerator needs image_size >= 4, got {image_size}")
    depth = 0
    while depth < 8 and image_size % 2 ** (depth + 1) == 0 and image_size // 2 ** (depth + 1) >= 1:
        depth += 1
    if depth < 2:
        raise ConfigError(f"UNetGenerator needs image_size divisible by 4 (powers of two are best), got {image_size}")
    return depth


def reference_dropout_blocks(depth: int) -> int:
    """Decoder blocks with dropout in the reference U-Net of ``depth`` downsamplings: ``max(0, depth − 5)``
    (junyanz ``models/networks.py``, ``UnetGenerator``: the ``num_downs − 5`` intermediate ngf×8 blocks)."""
    return max(0, depth - 5)


class UNetGenerator(nn.Module):
    """U-Net with skip connections by concatenation (encoder C64-C128-C256-C512-C512..., decoder mirrored, tanh out).

    Encoder block ``i``: LeakyReLU(0.2) → Conv4 s2 → norm (none on the first and on the innermost block). Decoder
    block ``i``: ReLU → ConvTranspose4 s2 → norm (tanh on the outermost), dropout 0.5 in the ``n_dropout`` innermost
    decoder blocks after the bottleneck's own. The reference (junyanz/pytorch-CycleGAN-and-pix2pix
    ``models/networks.py``, ``UnetGenerator.__init__``: ``for i in range(num_downs - 5)`` adds the ngf×8 blocks built
    with ``use_dropout``) has ``depth − 5`` of them: 3 at 256 px (U-Net-256), 2 at 128 px, 1 at 64 px, none at 32 px.

    Checked against the same file (``UnetSkipConnectionBlock``): the outermost block's down conv has no norm and
    ``bias = use_bias`` (False under BatchNorm), its up conv has a bias and ends in Tanh; the innermost block has
    LeakyReLU(0.2) → conv (no norm) down and ReLU → ConvTranspose → norm up; middle blocks are LeakyReLU(0.2) → conv
    → norm / ReLU → ConvTranspose → norm [→ Dropout(0.5)]; the skip is ``cat([x, block(x)])`` (input first); convs
    have a bias only under InstanceNorm (``use_bias = norm_layer.func == nn.InstanceNorm2d``). One deliberate
    difference: with ``norm="none"`` our convs keep their bias (the reference's ``use_bias`` is False there too,
    leaving conv layers with neither a norm nor a bias).

    Args:
        in_channels: input image channels.
        out_channels: output image channels.
        depth: number of downsamplings (``unet_depth(image_size)``: 8 = U-Net-256); inputs must be divisible by
            ``2 ** depth``.
        ngf: width of the first encoder block (64).
        norm: ``batch`` (reference default), ``instance`` or ``none``.
        n_dropout: decoder blocks with dropout 0.5; None (default) follows the reference, ``max(0, depth − 5)``;
            an explicit count is clamped to ``depth - 2`` (never the bottleneck's block nor the outermost).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, depth: int = 8, ngf: int = 64,
                 norm: str = "batch", n_dropout: int | None = None):
        super().__init__()
        if depth < 2:
            raise ConfigError(f"UNetGenerator needs depth >= 2, got {depth}")
        self.depth = depth
        bias = norm != "batch"  # BatchNorm has its own shift (reference: use_bias = norm is InstanceNorm)
        widths = [ngf * min(2**i, 8) for i in range(depth)]
        downs, ups = [], []
        for i in range(depth):
            cin = in_channels if i == 0 else widths[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, True)]
            layers.append(nn.Conv2d(cin, widths[i], 4, 2, 1, bias=bias))
            if 0 < i < depth - 1:
                layers.append(norm_layer(norm, widths[i]))
            downs.append(nn.Sequential(*layers))
        if n_dropout is None:
            n_dropout = reference_dropout_blocks(depth)
        elif n_dropout < 0:
            raise ConfigError(f"UNetGenerator needs n_dropout >= 0 (or None for the reference's depth − 5), got {n_dropout}")
        n_dropout = min(n_dropout, depth - 2)
        self.n_dropout = n_dropout
        for i in range(depth):
            cin = widths[i] if i == depth - 1 else 2 * widths[i]  # innermost sees only the bottleneck
            if i == 0:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(cin, out_channels, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(cin, widths[i - 1], 4, 2, 1, bias=bias),
                          norm_layer(norm, widths[i - 1])]
                if depth - 1 - n_dropout <= i < depth - 1:
                    layers.append(nn.Dropout(0.5))
            ups.append(nn.Sequential(*layers))
        self.downs = nn.ModuleList(downs)
        self.ups = nn.ModuleList(ups)
        dcgan_init_(self)  # reference init_type "normal", gain 0.02

    @property
    def size_multiple(self) -> int:
        return 2**self.depth

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for down in self.downs:  # (N, C_i, H / 2^(i+1), W / 2^(i+1))
            x = down(x)
            skips.append(x)
        x = self.ups[-1](skips[-1])  # (N, C_{d-2}, H / 2^(d-1), ...)
        for i in range(self.depth - 2, -1, -1):
            x = self.ups[i](torch.cat([skips[i], x], 1))  # skip first, as in the reference
        return x  # (N, out_channels, H, W) in [-1, 1]
