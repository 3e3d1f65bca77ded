"""SNGAN: Miyato, Kataoka, Koyama & Yoshida 2018, "Spectral Normalization for Generative Adversarial Networks",
ICLR. https://arxiv.org/abs/1802.05957"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from .errors import ConfigError
from .image_gan import ImageGAN
from .nets.resnet32 import ResNetDiscriminator, ResNetGenerator
from .nets.sngan_cnn import StandardCNNDiscriminator, StandardCNNGenerator
from .nets.spectral import add_spectral_norm


class SNGAN(ImageGAN):
    """GAN whose discriminator has spectral normalization on every layer (W / σ(W), σ by one power iteration per
    forward pass, ``torch.nn.utils.parametrizations.spectral_norm``), trained with the hinge loss, n_dis = 5 and
    Adam lr 2e-4, β = (0, 0.9): the paper's ResNet setting (§4, Table 4). ``loss="wasserstein"`` gives the paper's
    WGAN-SN (spectral norm in place of weight clipping or a gradient penalty).

    ``arch="cnn"`` is the paper's standard CNN (Table 3, ngf = ndf = 64); ``arch="resnet"`` its ResNet (Table 4,
    ngf = 256, ndf = 128), shared with WGAN-GP.

    Args:
        arch: ``"cnn"`` or ``"resnet"``.
        ngf: generator width (CNN: last hidden layer; ResNet: every block).
        ndf: discriminator width (CNN: first layer; ResNet: every block).
        n_power_iterations: power iterations per forward pass for σ(W) (1 in the paper).
        **kwargs: see :class:`~gan_modules.image_gan.ImageGAN` (``loss`` hinge, ``n_critic`` 5, z 128-d).
    """

    default_optimizer: ClassVar[dict[str, Any]] = {"name": "Adam", "lr": 2e-4, "betas": (0.0, 0.9)}

    def __init__(self, arch: Literal["cnn", "resnet"] = "cnn", ngf: int = 64, ndf: int = 64,
                 n_power_iterations: int = 1, loss: str = "hinge", n_critic: int = 5, latent_dim: int = 128,
                 **kwargs):
        super().__init__(loss=loss, n_critic=n_critic, latent_dim=latent_dim, **kwargs)
        if n_power_iterations < 1:
            raise ConfigError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        hp = self.hparams
        if arch == "cnn":
            g = StandardCNNGenerator(hp.latent_dim, hp.channels, hp.image_size, ngf)
            d = StandardCNNDiscriminator(hp.channels, hp.image_size, ndf)
        elif arch == "resnet":
            g = ResNetGenerator(hp.latent_dim, hp.channels, hp.image_size, ngf)
            d = ResNetDiscriminator(hp.channels, hp.image_size, ndf)
        else:
            raise ConfigError(f"unknown SNGAN arch {arch!r}: choose cnn or resnet")
        self.finish_setup(g, add_spectral_norm(d, n_power_iterations))
