"""WGAN: Arjovsky, Chintala & Bottou 2017, "Wasserstein Generative Adversarial Networks", ICML.
https://arxiv.org/abs/1701.07875"""

from __future__ import annotations

from typing import Any, ClassVar

from .errors import ConfigError
from .image_gan import ImageGAN
from .nets.dcgan import DCGANDiscriminator, DCGANGenerator


class WGAN(ImageGAN):
    """Wasserstein GAN with weight clipping (Algorithm 1): a critic without sigmoid trained on ``E[D(G(z))] - E[D(x)]``,
    every critic parameter clipped to [-c, c] (c = 0.01) after every critic step, RMSprop lr 5e-5 (momentum-based
    optimizers were unstable, §4), n_critic = 5, and the reference code's schedule of 100 critic steps for each of the
    first 25 generator steps and for every 500th generator step (to get a near-optimal critic early and now and then).
    The nets are DCGAN's (the paper's main experiments), with BatchNorm in the critic as in the paper's code.

    Args:
        ngf: generator width (DCGAN's last hidden block).
        ndf: critic width (DCGAN's first block).
        g_norm: normalisation in G.
        d_norm: normalisation in the critic (``batch`` as in the paper's code; clipping also clamps its affine).
        warmup_critic_steps: critic steps per generator step during the warm-up and on boost steps (100).
        warmup_generator_steps: generator steps that get ``warmup_critic_steps`` critic steps at the start (25).
        critic_boost_every: every this many generator steps, ``warmup_critic_steps`` again (500; 0 disables).
        **kwargs: see :class:`~gan_modules.image_gan.ImageGAN` (``n_critic`` 5, ``weight_clip`` 0.01).
    """

    default_optimizer: ClassVar[dict[str, Any]] = {"name": "RMSprop", "lr": 5e-5}

    def __init__(self, ngf: int = 64, ndf: int = 64, g_norm: str = "batch", d_norm: str = "batch",
                 warmup_critic_steps: int = 100, warmup_generator_steps: int = 25, critic_boost_every: int = 500,
                 loss: str = "wasserstein", n_critic: int = 5, weight_clip: float | None = 0.01, **kwargs):
        super().__init__(loss=loss, n_critic=n_critic, weight_clip=weight_clip, **kwargs)
        if warmup_critic_steps < 1 or warmup_generator_steps < 0 or critic_boost_every < 0:
            raise ConfigError(
                "WGAN schedule needs warmup_critic_steps >= 1, warmup_generator_steps >= 0 and critic_boost_every "
                f">= 0 (0 disables), got {warmup_critic_steps}, {warmup_generator_steps}, {critic_boost_every}"
            )
        hp = self.hparams
        self.finish_setup(DCGANGenerator(hp.latent_dim, hp.channels, hp.image_size, ngf, g_norm),
                          DCGANDiscriminator(hp.channels, hp.image_size, ndf, d_norm))

    def critic_steps(self) -> int:
        """100 critic steps for the first 25 generator steps and every 500th, else ``n_critic`` (reference code)."""
        hp, t = self.hparams, self.generator_steps
        if t < hp.warmup_generator_steps or (hp.critic_boost_every and t % hp.critic_boost_every == 0):
            return hp.warmup_critic_steps
        return hp.n_critic
