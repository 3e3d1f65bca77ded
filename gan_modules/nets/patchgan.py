"""The 70×70 PatchGAN discriminator of pix2pix and CycleGAN (Isola et al. 2017 §3.2.2; Zhu et al. 2017 §4), as in
junyanz/pytorch-CycleGAN-and-pix2pix ``NLayerDiscriminator`` (n_layers = 3)."""

from __future__ import annotations

from torch import Tensor, nn

from .common import dcgan_init_
from .unet import norm_layer


class PatchGANDiscriminator(nn.Module):
    """C64 (no norm) → C128 → C256 (stride 2) → C512 (stride 1) → 1-channel logits map (30×30 at 256 px; each logit
    sees a 70×70 patch). LeakyReLU 0.2. Returns logits (never a sigmoid).

    Args:
        in_channels: input channels (pix2pix's conditional D sees input and output concatenated).
        ndf: width of the first block (64).
        n_layers: strided blocks after the first (3 gives the 70×70 receptive field).
        norm: ``batch`` (pix2pix), ``instance`` (CycleGAN) or ``none``.

    Checked against junyanz ``models/networks.py`` ``NLayerDiscriminator``: kernel 4, padding 1; the first conv has a
    bias and no norm; ``n_layers − 1`` stride-2 blocks then one stride-1 block, widths ``ndf·min(2ⁿ, 8)``, their
    convs biased only under InstanceNorm (``use_bias``); LeakyReLU 0.2; a final stride-1 conv to one channel with a
    bias; N(0, 0.02) init (``init_weights``, BatchNorm γ ~ N(1, 0.02)). As in :class:`~.unet.UNetGenerator`,
    ``norm="none"`` keeps the conv biases (the reference drops them there too).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias), norm_layer(norm, ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)  # (N, in, H, W) -> (N, 1, H/8 - 2, W/8 - 2) logits
