"""ResNet generator and discriminator for 32×32 images: the CIFAR-10 architecture of WGAN-GP (Gulrajani et al. 2017,
"Improved Training of Wasserstein GANs", NeurIPS, Appendix F) that SNGAN reuses (Miyato et al. 2018, "Spectral
Normalization for Generative Adversarial Networks", ICLR, Table 4).

G: z → linear 4×4×ngf → 3 up-sampling residual blocks (BN, ReLU, nearest ×2, conv3×3, BN, ReLU, conv3×3) →
BN, ReLU, conv3×3 → tanh. D: an "optimized" first down block → a down block → 2 plain blocks (ReLU, conv3×3, ReLU,
conv3×3) → ReLU → global pooling → linear → 1 logit. Paper widths: ngf = 128 (WGAN-GP) or 256 (SNGAN),
ndf = 128. The critic has no normalization layers (WGAN-GP's penalty is per sample; SNGAN adds spectral norm).
28×28 inputs start G from 7×7 with two up blocks; D is size-agnostic (global pooling).

Checked against both references (igul222/improved_wgan_training ``gan_cifar_resnet.py``; pfnet-research/
sngan_projection ``gen_models/resblocks.py``, ``gen_models/resnet_32.py``, ``dis_models/resblocks.py``,
``dis_models/snresnet_32.py``); they agree on everything below except the two head options:

- G block (igul222 l.105-137 with ``resample='up'``; sngan gen ``resblocks.py`` l.40-58): BN → ReLU → nearest ×2 →
  conv3×3 → BN → ReLU → conv3×3, plus a shortcut of nearest ×2 then a 1×1 conv.
- G output (igul222 l.159-162; sngan ``resnet_32.py`` l.44-46): BN → ReLU → conv3×3 → tanh.
- D's first block (igul222 ``OptimizedResBlockDisc1`` l.139-149; sngan ``OptimizedBlock`` l.52-75): conv3×3 → ReLU →
  conv3×3 → avg-pool, no leading ReLU; shortcut avg-pool *then* 1×1 conv.
- Other D blocks (igul222 l.109-137 ``resample='down'``/None; sngan dis ``Block`` l.12-49): ReLU → conv3×3 (in → in)
  → ReLU → conv3×3 (in → out) [→ avg-pool]; shortcut 1×1 conv *then* avg-pool when down or widths differ, else
  identity.
- Init (sngan: ``GlorotUniform(√2)`` for block convs, ``GlorotUniform()`` for shortcuts, the linear layers and G's
  output conv, gen ``resblocks.py`` l.21-22, ``resnet_32.py`` l.17/22, dis ``snresnet_32.py`` l.17; igul222: the same
  through ``he_init`` = uniform with std √(4/(fan_in+fan_out)), ``he_init=False`` on shortcuts and G's output conv,
  Glorot linears, ``tflib/ops/conv2d.py`` l.69-72): Xavier-uniform, gain √2 on residual-path 3×3 convs, 1 elsewhere.
  Biases 0, BatchNorm γ = 1, β = 0.
- Head: ReLU → global pooling → linear. igul222 takes the MEAN over the 8×8 map (l.172) and its linear has a bias
  (``tflib/ops/linear.py`` default); sngan_projection SUMS (``snresnet_32.py`` l.29) and its linear has none
  (``SNLinear(ch, 1, nobias=True)``, l.17). ``pooling``/``head_bias`` choose; the defaults (sum, bias) are the
  library's historical behaviour: pass ``pooling="mean", head_bias=True`` for WGAN-GP and
  ``pooling="sum", head_bias=False`` for SNGAN.
"""

from __future__ import annotations

import math
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .common import check_channels, check_image_size

SUPPORTED_SIZES = (28, 32, 48, 64)
POOLINGS = ("sum", "mean")

Pooling = Literal["sum", "mean"]


def _init(module: nn.Module, unit_gain: tuple[nn.Module, ...] = ()) -> nn.Module:
    """Xavier-uniform init of both references: gain √2 for 3×3 convs in residual paths, 1 for 1×1 shortcuts, linear
    layers and the layers in ``unit_gain`` (G's output conv); zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            residual = isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and not any(m is u for u in unit_gain)
            nn.init.xavier_uniform_(m.weight, math.sqrt(2) if residual else 1.0)
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
    (no leading ReLU; shortcut pools before its 1×1 conv). The first conv keeps the input width and the second
    changes it (both references: igul222 ``conv_1`` input_dim → input_dim; sngan ``hidden_channels = in_channels``);
    the first block goes straight to ``out_ch`` (``OptimizedBlock``)."""

    def __init__(self, in_ch: int, out_ch: int, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        hidden = out_ch if first else in_ch
        self.conv1, self.conv2 = nn.Conv2d(in_ch, hidden, 3, 1, 1), nn.Conv2d(hidden, out_ch, 3, 1, 1)
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
        _init(self, unit_gain=(self.out[2],))  # output conv: Glorot gain 1 (sngan resnet_32.py l.22; igul222 l.161)

    def forward(self, z: Tensor) -> Tensor:  # (N, latent_dim) -> (N, C, S, S)
        h = self.linear(z.flatten(1)).view(z.shape[0], self.ngf, self.base, self.base)
        return self.out(self.blocks(h))


class ResNetDiscriminator(nn.Module):
    """image (N, C, S, S) → logits (N,); ``ndf`` is the width of every residual block. No normalization layers.

    Args:
        channels: image channels.
        image_size: image side.
        ndf: block width.
        pooling: global pooling before the linear head: ``"sum"`` (sngan_projection ``snresnet_32.py`` l.29, the
            default) or ``"mean"`` (igul222 ``gan_cifar_resnet.py`` l.172). For a given input the two logits differ
            by the factor ``H·W`` of the final map on the non-bias part (64 at 32 px).
        head_bias: bias on the final linear layer (igul222: yes; sngan_projection: ``nobias=True``).
    """

    def __init__(self, channels: int = 3, image_size: int = 32, ndf: int = 128, pooling: Pooling = "sum",
                 head_bias: bool = True):
        super().__init__()
        check_image_size("ResNetDiscriminator", image_size, SUPPORTED_SIZES)
        check_channels("ResNetDiscriminator", channels)
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}: choose sum (sngan_projection) or mean (WGAN-GP)")
        self.pooling = pooling
        self.blocks = nn.Sequential(
            DiscriminatorBlock(channels, ndf, down=True, first=True),
            DiscriminatorBlock(ndf, ndf, down=True),
            DiscriminatorBlock(ndf, ndf, down=False),
            DiscriminatorBlock(ndf, ndf, down=False),
        )
        self.linear = nn.Linear(ndf, 1, bias=head_bias)
        self.feature_width = ndf
        _init(self)

    def features(self, x: Tensor) -> Tensor:  # (N, C, S, S) -> (N, ndf): ReLU then global sum or mean pooling
        h = F.relu(self.blocks(x))  # (N, ndf, S/4, S/4)
        return h.sum(dim=(2, 3)) if self.pooling == "sum" else h.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:  # (N, C, S, S) -> (N,)
        return self.linear(self.features(x)).flatten()
