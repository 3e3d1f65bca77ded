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
    forward pass, ``torch.nn.utils.parametrizations.spectral_norm``). ``loss="wasserstein"`` gives the paper's WGAN-SN
    (spectral norm in place of weight clipping or a gradient penalty). Defaults follow each architecture's reference:

    - ``arch="cnn"``: the paper's standard CNN (Table 3, ngf = ndf = 64) with the setting of its standard-CNN results,
      the non-saturating loss, n_dis = 1 and Adam lr 2e-4, β = (0.5, 0.999) (Table 1 setting C; the authors'
      command, pfnet-research/chainer-gan-lib ``example.sh`` l.8 ``--algorithm stdgan --architecture sndcgan --n_dis 1
      --adam_beta1 0.5 --adam_beta2 0.999`` with ``train.py``'s lr 2e-4), N(0, 0.02) init (``common/net.py``).
    - ``arch="resnet"``: the paper's ResNet (Table 4, ngf = 256, ndf = 128; shared with WGAN-GP, with sum pooling and
      a bias-free head as sngan_projection's ``snresnet_32.py``), hinge loss, n_dis = 5, Adam lr 2e-4, β = (0, 0.9)
      (sngan_projection ``configs/sn_cifar10_unconditional.yml`` l.35-47).

    Args:
        arch: ``"cnn"`` or ``"resnet"``.
        ngf: generator width (CNN: last hidden layer; ResNet: every block).
        ndf: discriminator width (CNN: first layer; ResNet: every block).
        n_power_iterations: power iterations per forward pass for σ(W) (1 in the paper).
        loss: None: the architecture's (cnn: ``non_saturating``, resnet: ``hinge``).
        n_critic: None: the architecture's (cnn: 1, resnet: 5).
        **kwargs: see :class:`~gan_modules.image_gan.ImageGAN` (z 128-d).
    """

    default_optimizer: ClassVar[dict[str, Any]] = {"name": "Adam", "lr": 2e-4, "betas": (0.5, 0.999)}
    #: per architecture: (loss, n_critic, Adam betas)
    ARCH_DEFAULTS: ClassVar[dict[str, tuple[str, int, tuple[float, float]]]] = {
        "cnn": ("non_saturating", 1, (0.5, 0.999)),
        "resnet": ("hinge", 5, (0.0, 0.9)),
    }

    def __init__(self, arch: Literal["cnn", "resnet"] = "cnn", ngf: int = 64, ndf: int = 64,
                 n_power_iterations: int = 1, loss: str | None = None, n_critic: int | None = None,
                 latent_dim: int = 128, **kwargs):
        if arch not in self.ARCH_DEFAULTS:
            raise ConfigError(f"unknown SNGAN arch {arch!r}: choose cnn or resnet")
        arch_loss, arch_critic, betas = self.ARCH_DEFAULTS[arch]
        loss = arch_loss if loss is None else loss
        n_critic = arch_critic if n_critic is None else n_critic
        super().__init__(loss=loss, n_critic=n_critic, latent_dim=latent_dim, **kwargs)
        self.hparams.update(loss=loss, n_critic=n_critic)  # the resolved values (the CLI saves the given ones)
        self.default_optimizer = {**type(self).default_optimizer, "betas": betas}
        if n_power_iterations < 1:
            raise ConfigError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        hp = self.hparams
        if arch == "cnn":
            g = StandardCNNGenerator(hp.latent_dim, hp.channels, hp.image_size, ngf)
            d = StandardCNNDiscriminator(hp.channels, hp.image_size, ndf)
        else:
            g = ResNetGenerator(hp.latent_dim, hp.channels, hp.image_size, ngf)
            d = ResNetDiscriminator(hp.channels, hp.image_size, ndf, pooling="sum", head_bias=False)
        self.finish_setup(g, add_spectral_norm(d, n_power_iterations))
