"""WGAN-GP: Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville 2017, "Improved Training of Wasserstein GANs",
NeurIPS. https://arxiv.org/abs/1704.00028"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from .errors import ConfigError
from .image_gan import ImageGAN
from .nets.dcgan import DCGANDiscriminator, DCGANGenerator
from .nets.resnet32 import ResNetDiscriminator, ResNetGenerator


class WGANGP(ImageGAN):
    """Wasserstein GAN with gradient penalty (Algorithm 1): λ·E[(‖∇D(x̂)‖₂ - 1)²] with λ = 10 on random interpolates
    x̂ = εx + (1 - ε)G(z), one ε per sample; n_critic = 5; Adam lr 1e-4, β = (0, 0.9); no BatchNorm in the critic
    (§4: the penalty is per sample, batch statistics would couple the samples; LayerNorm is the paper's drop-in).

    ``arch="dcgan"`` uses DCGAN's nets with a LayerNorm critic (the paper's LSUN/MNIST-style experiments);
    ``arch="resnet"`` the paper's CIFAR-10 ResNet (Appendix F: ngf = ndf = 128, z 128-d, no norm in the critic).

    Args:
        arch: ``"dcgan"`` or ``"resnet"``.
        ngf: generator width (DCGAN: last hidden block; ResNet: every block).
        ndf: critic width (DCGAN: first block; ResNet: every block).
        g_norm: normalisation in the DCGAN generator.
        d_norm: normalisation in the DCGAN critic: ``layer`` (paper) or ``none``; ``batch`` is refused.
        **kwargs: see :class:`~gan_modules.image_gan.ImageGAN` (``penalty`` gradient_penalty, λ 10, n_critic 5).
    """

    default_optimizer: ClassVar[dict[str, Any]] = {"name": "Adam", "lr": 1e-4, "betas": (0.0, 0.9)}

    def __init__(self, arch: Literal["dcgan", "resnet"] = "dcgan", ngf: int = 64, ndf: int = 64,
                 g_norm: str = "batch", d_norm: str = "layer", loss: str = "wasserstein", n_critic: int = 5,
                 penalty: str | None = "gradient_penalty", penalty_weight: float = 10.0, **kwargs):
        super().__init__(loss=loss, n_critic=n_critic, penalty=penalty, penalty_weight=penalty_weight, **kwargs)
        if d_norm == "batch":
            raise ConfigError(
                "WGAN-GP's critic must not use BatchNorm (the gradient penalty is per sample, Gulrajani et al. §4); "
                "set --model.init_args.d_norm layer (the paper's choice) or none"
            )
        hp = self.hparams
        if arch == "dcgan":
            # igul222/improved_wgan_training gan_mnist.py: convolutions with biases (lib.ops defaults)
            g = DCGANGenerator(hp.latent_dim, hp.channels, hp.image_size, ngf, g_norm, bias=True)
            d = DCGANDiscriminator(hp.channels, hp.image_size, ndf, d_norm, bias=True)
        elif arch == "resnet":
            g = ResNetGenerator(hp.latent_dim, hp.channels, hp.image_size, ngf)
            # the paper's critic: global mean pooling and a biased linear head (igul222/improved_wgan_training
            # gan_cifar_resnet.py l.172), unlike SNGAN's sum
            d = ResNetDiscriminator(hp.channels, hp.image_size, ndf, pooling="mean", head_bias=True)
        else:
            raise ConfigError(f"unknown WGAN-GP arch {arch!r}: choose dcgan or resnet")
        self.finish_setup(g, d)
