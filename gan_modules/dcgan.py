"""DCGAN: Radford, Metz & Chintala 2016, "Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks", ICLR. https://arxiv.org/abs/1511.06434"""

from __future__ import annotations

from .image_gan import ImageGAN
from .nets import DCGANDiscriminator, DCGANGenerator


class DCGAN(ImageGAN):
    """GAN with the DCGAN convolutional nets and N(0, 0.02) init. Paper defaults: Adam lr 2e-4, β1 = 0.5
    (§4: 1e-3 was too high, β1 = 0.9 oscillated), batch 128, z ~ 100-d, LeakyReLU slope 0.2, non-saturating loss.

    Args:
        ngf: width of the generator's last hidden block (64 in the paper).
        ndf: width of the discriminator's first block (64 in the paper).
        g_norm: normalisation in G (``batch`` as in the paper).
        d_norm: normalisation in D (``batch`` as in the paper; ``layer``/``none`` for critics with penalties).
        **kwargs: see :class:`~gan_modules.image_gan.ImageGAN`.
    """

    def __init__(self, ngf: int = 64, ndf: int = 64, g_norm: str = "batch", d_norm: str = "batch", **kwargs):
        super().__init__(**kwargs)
        hp = self.hparams
        self.finish_setup(DCGANGenerator(hp.latent_dim, hp.channels, hp.image_size, ngf, g_norm),
                          DCGANDiscriminator(hp.channels, hp.image_size, ndf, d_norm))
