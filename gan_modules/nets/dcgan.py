"""DCGAN generator and discriminator (Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks", ICLR).

The paper's rules: strided (transposed) convolutions instead of pooling, BatchNorm everywhere except the generator
output and the discriminator input, ReLU in G with tanh at the output, LeakyReLU(0.2) in D, no fully connected
hidden layers, weights ~ N(0, 0.02). The 64×64 layout is the paper's; other sizes add or remove one stride-2 block
per factor of two (28×28 starts from 7×7).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ..errors import ConfigError
from .common import check_channels, check_image_size, dcgan_init_

SUPPORTED_SIZES = (28, 32, 64, 128)


def _base_and_blocks(image_size: int) -> tuple[int, int]:
    base = 7 if image_size == 28 else 4
    return base, int(math.log2(image_size // base))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # per-sample LayerNorm over (C, H, W) expressed as GroupNorm(1): no batch statistics
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}: choose one of batch, layer, instance, none")


def discriminator_trunk(in_channels: int, ndf: int, blocks: int, norm: str,
                        bias: bool = True) -> tuple[nn.Sequential, int]:
    """The DCGAN discriminator's convolutions: a stride-2 conv without norm on the input (with a bias when ``bias``),
    then ``blocks - 1`` stride-2 conv + norm + LeakyReLU(0.2) blocks doubling the width. Returns the stack and its
    output width."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1, bias=bias), nn.LeakyReLU(0.2, True)]
    width = ndf
    for _ in range(blocks - 1):
        layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=norm == "none"), _norm(norm, width * 2),
                   nn.LeakyReLU(0.2, True)]
        width *= 2
    return nn.Sequential(*layers), width


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) → image (N, C, S, S) in [-1, 1]; ``ngf`` is the width of the last hidden block.

    ``bias`` puts a bias on the output deconvolution (the only one not followed by a norm): pytorch/examples
    ``dcgan/main.py`` and martinarjovsky/WassersteinGAN ``models/dcgan.py`` have none (``bias=False`` on every conv);
    igul222/improved_wgan_training's ``gan_mnist.py`` convolutions have biases.
    """

    def __init__(self, latent_dim: int = 100, channels: int = 3, image_size: int = 64, ngf: int = 64,
                 norm: str = "batch", bias: bool = False):
        super().__init__()
        check_image_size("DCGANGenerator", image_size, SUPPORTED_SIZES)
        check_channels("DCGANGenerator", channels)
        self.latent_dim = latent_dim
        base, blocks = _base_and_blocks(image_size)
        width = ngf * 2 ** (blocks - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, width, base, 1, 0, bias=False), _norm(norm, width), nn.ReLU(True)
        ]
        for _ in range(blocks - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), _norm(norm, width // 2),
                       nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=bias), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: Tensor) -> Tensor:  # (N, latent_dim) -> (N, C, S, S)
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """image (N, C, S, S) → logits (N,). ``norm="layer"``/``"none"`` gives the BatchNorm-free critic that WGAN-GP
    needs (Gulrajani et al. 2017 §4). ``bias``: biases on the input conv and the head (the convolutions without a
    norm after them); the DCGAN and WGAN references have none, see ``DCGANGenerator``."""

    def __init__(self, channels: int = 3, image_size: int = 64, ndf: int = 64, norm: str = "batch",
                 bias: bool = False):
        super().__init__()
        check_image_size("DCGANDiscriminator", image_size, SUPPORTED_SIZES)
        check_channels("DCGANDiscriminator", channels)
        base, blocks = _base_and_blocks(image_size)
        self.features, width = discriminator_trunk(channels, ndf, blocks, norm, bias)
        self.head = nn.Conv2d(width, 1, base, 1, 0, bias=bias)
        self.feature_width = width
        dcgan_init_(self)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, S, S) -> (N,)
        return self.head(self.features(x)).flatten()
