"""The "standard CNN" generator and discriminator of SNGAN (Miyato et al. 2018, "Spectral Normalization for
Generative Adversarial Networks", ICLR, Table 3), for 32×32 (CIFAR-10) and 48×48 (STL-10); 28×28 starts G from
7×7 with one fewer up-sampling layer.

G: z(128) → linear M×M×(8·ngf) → BN, ReLU → [deconv 4×4 s2, BN, ReLU] × 3 (halving the width) → conv 3×3 → tanh.
D: [conv 3×3 s1, conv 4×4 s2] × 3 at widths ndf, ndf, 2·ndf, 2·ndf, 4·ndf, 4·ndf → conv 3×3 s1 8·ndf → linear → 1,
LeakyReLU(0.1) after every conv (Table 3's caption: "the slopes of all lReLU functions ... are set to 0.1").
Paper widths ngf = ndf = 64. Spectral normalization is put on D by the model (``nets.spectral.add_spectral_norm``).

Reference code: the SNGAN authors point to pfnet-research/chainer-gan-lib for the standard CNN (sngan_projection
issues #40 and #51: ``common/net.py`` ``DCGANGenerator`` l.55 and ``SNDCGANDiscriminator`` l.199). Its
initialisation is followed here (:func:`init_standard_cnn_`): every conv, deconv and linear weight ~ N(0, 0.02)
(``wscale=0.02`` → ``chainer.initializers.Normal(wscale)``, net.py l.56/68 and l.200-201), biases 0, BatchNorm
γ = 1, β = 0 (chainer's defaults). Where that code departs from the paper's Table 3, the paper is followed and the
difference noted: its D doubles the width at the first stride-2 conv (64-128-128-256-256-512-512, net.py l.204-210,
vs Table 3's 64-64-128-128-256-256-512); its LeakyReLU slope is chainer's default 0.2 (net.py l.214-220; Table 3:
0.1); its G normalizes the dense output with a 1-D BatchNorm over all M·M·512 units (net.py l.76/100; here a
per-channel BatchNorm2d after the reshape); its last G layer is a 3×3 stride-1 deconvolution (net.py l.74; the same
function class as Table 3's 3×3 conv); its z is U(-1, 1) by default (net.py l.57/85-87; Table 3: N(0, I)).
"""

from __future__ import annotations

from torch import Tensor, nn

from .common import check_channels, check_image_size, dcgan_init_

SUPPORTED_SIZES = (28, 32, 48, 64)

#: std of the reference's N(0, σ) weight init (chainer-gan-lib ``common/net.py`` ``wscale=0.02``).
INIT_STD = 0.02


def init_standard_cnn_(module: nn.Module, std: float = INIT_STD) -> nn.Module:
    """The reference init of the standard CNN, in place: conv, deconv and linear weights ~ N(0, std), zero biases,
    BatchNorm γ = 1 and β = 0 (chainer-gan-lib ``common/net.py`` l.68-79 and l.201-211: ``Normal(0.02)`` weights,
    default biases and BatchNormalization). Call it before adding spectral norm (it initialises ``weight`` itself).
    Returns ``module``."""
    return dcgan_init_(module, std, batchnorm_std=0.0)


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
        init_standard_cnn_(self)

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
        init_standard_cnn_(self)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, S, S) -> (N,)
        return self.linear(self.features(x).flatten(1)).flatten()
