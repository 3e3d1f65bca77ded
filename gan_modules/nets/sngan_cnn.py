"""The "standard CNN" generator and discriminator of SNGAN (Miyato et al. 2018, "Spectral Normalization for
Generative Adversarial Networks", ICLR, Table 3), for 32×32 (CIFAR-10) and 48×48 (STL-10); 28×28 starts G from
7×7 with one fewer up-sampling layer.

G: z(128) → linear M×M×(8·ngf) → [deconv 4×4 s2, BN, ReLU] × 3 (halving the width) → conv 3×3 → tanh.
D: [conv 3×3 s1, conv 4×4 s2] × 3 at widths ndf, 2·ndf, 4·ndf → conv 3×3 s1 8·ndf → linear → 1, LeakyReLU(0.1).
Paper widths ngf = ndf = 64. Spectral normalization is put on D by the model (``nets.spectral.add_spectral_norm``).
"""

from __future__ import annotations

from torch import Tensor, nn

from .common import check_channels, check_image_size

SUPPORTED_SIZES = (28, 32, 48, 64)


def _base_and_blocks(image_size: int) -> tuple[int, int]:
    if image_size == 28:
        return 7, 2
    return image_size // 8, 3


class StandardCNNGenerator(nn.Module):
    """z (N, latent_dim) → image (N, C, S, S) in [-1, 1]; ``ngf`` is the width of the last hidden layer."""

    def __init__(self, latent_dim: int = 128, channels: int = 3, image_size: int = 32, ngf: int = 64):
        super().__init__()
        check_image_size("StandardCNNGenerator", image_size, SUPPORTED_SIZES)
        check_channels("StandardCNNGenerator", channels)
        self.latent_dim = latent_dim
        self.base, blocks = _base_and_blocks(image_size)
        self.width = ngf * 2**blocks
        self.linear = nn.Linear(latent_dim, self.base * self.base * self.width)
        layers: list[nn.Module] = [nn.BatchNorm2d(self.width), nn.ReLU(True)]
        width = self.width
        for _ in range(blocks):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:  # (N, latent_dim) -> (N, C, S, S)
        return self.net(self.linear(z.flatten(1)).view(z.shape[0], self.width, self.base, self.base))


class StandardCNNDiscriminator(nn.Module):
    """image (N, C, S, S) → logits (N,); ``ndf`` is the width of the first layer."""

    def __init__(self, channels: int = 3, image_size: int = 32, ndf: int = 64):
        super().__init__()
        check_image_size("StandardCNNDiscriminator", image_size, SUPPORTED_SIZES)
        check_channels("StandardCNNDiscriminator", channels)
        layers: list[nn.Module] = []
        width_in, size = channels, image_size
        for width in (ndf, ndf * 2, ndf * 4):
            layers += [nn.Conv2d(width_in, width, 3, 1, 1), nn.LeakyReLU(0.1, True),
                       nn.Conv2d(width, width, 4, 2, 1), nn.LeakyReLU(0.1, True)]
            width_in, size = width, size // 2
        layers += [nn.Conv2d(width_in, ndf * 8, 3, 1, 1), nn.LeakyReLU(0.1, True)]
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(ndf * 8 * size * size, 1)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, S, S) -> (N,)
        return self.linear(self.features(x).flatten(1)).flatten()
