"""GAN: Goodfellow et al. 2014, "Generative Adversarial Nets", NeurIPS. https://arxiv.org/abs/1406.2661"""

from __future__ import annotations

from .image_gan import ImageGAN
from .nets import MLPDiscriminator, MLPGenerator


class GAN(ImageGAN):
    """The original GAN: MLP generator and discriminator, one D step per G step (k = 1, as in the paper's
    experiments), and the non-saturating generator objective that §3 of the paper recommends in practice
    (``loss="minimax"`` gives Eq. 1's saturating one).

    The paper trained with SGD + momentum (pylearn2); we default to Adam 2e-4, β = (0.5, 0.999) because the
    momentum schedule of the original code does not carry over to these LeakyReLU MLPs (set
    ``optimizer_g``/``optimizer_d`` to ``torch.optim.SGD`` with ``lr: 0.1, momentum: 0.5`` for the paper's).

    Args:
        g_hidden: hidden widths of the generator MLP.
        d_hidden: hidden widths of the discriminator MLP.
        d_dropout: dropout after each hidden layer of D (the paper used dropout in D).
        **kwargs: see :class:`~gan_modules.image_gan.ImageGAN`.
    """

    def __init__(self, g_hidden: tuple[int, ...] = (256, 512, 1024), d_hidden: tuple[int, ...] = (1024, 512, 256),
                 d_dropout: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        shape = (self.hparams.channels, self.hparams.image_size, self.hparams.image_size)
        self.finish_setup(MLPGenerator(self.hparams.latent_dim, shape, tuple(g_hidden)),
                          MLPDiscriminator(shape, tuple(d_hidden), d_dropout))
