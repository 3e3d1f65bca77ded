"""GAN: Goodfellow et al. 2014, "Generative Adversarial Nets", NeurIPS. https://arxiv.org/abs/1406.2661"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from .context import Batch, StepContext
from .errors import ConfigError
from .image_gan import ImageGAN
from .nets import MLPDiscriminator, MLPGenerator
from .nets.goodfellow import GoodfellowGenerator, MaxoutDiscriminator, sigmoid_bias_from_marginals
from .schedules import GOODFELLOW_MNIST_SGD, GOODFELLOW_MNIST_STEPS_PER_EPOCH, ExponentialDecayMomentumSchedule


class GAN(ImageGAN):
    """The original GAN: an MLP generator and discriminator, one D step per G step (k = 1, as in the paper's
    experiments), and the non-saturating generator objective that §3 of the paper recommends in practice
    (``loss="minimax"`` gives Eq. 1's saturating one).

    ``arch="mlp"`` (the default) is the 784-1024-512-256 LeakyReLU MLP pair of the tutorials our users learned from,
    with Adam 2e-4, β = (0.5, 0.999). ``arch="goodfellow"`` is the paper's own MNIST setup, as the authors'
    goodfeli/adversarial ``mnist.yaml`` builds it: z ~ U(-√3, √3)¹⁰⁰, a ReLU 1200-1200 generator with a sigmoid output
    whose bias starts at the logit of the training pixels' means, a maxout discriminator (240 units × 5 pieces, dropout
    0.2 on the input and 0.5 on the hidden layers; ``nets/goodfellow.py``), the discriminator cost halved
    (``adversarial/__init__.py`` l.353), SGD lr 0.1 with momentum 0.5 → 0.7 over epochs 1-250 and the lr divided by
    1.000004 per batch down to 1e-6 (``gan_modules.schedules``), batch 100 (set by the config).

    Args:
        arch: ``"mlp"`` or ``"goodfellow"``.
        g_hidden: hidden widths of the MLP generator (``mlp``).
        d_hidden: hidden widths of the MLP discriminator (``mlp``).
        d_dropout: dropout after each hidden layer of the MLP D (``mlp``; the paper used dropout in D).
        steps_per_epoch: ``goodfellow``: batches per epoch for the momentum schedule (None: the paper's 500 =
            50,000 images / 100).
        noise: distribution of z (None: ``uniform`` U(-√3, √3) for ``goodfellow``, as the paper; ``normal`` else).
        **kwargs: see :class:`~gan_modules.image_gan.ImageGAN`.
    """

    def __init__(self, arch: Literal["mlp", "goodfellow"] = "mlp", g_hidden: tuple[int, ...] = (256, 512, 1024),
                 d_hidden: tuple[int, ...] = (1024, 512, 256), d_dropout: float = 0.3,
                 steps_per_epoch: int | None = None, noise: Literal["normal", "uniform"] | None = None,
                 **kwargs: Any):
        noise = noise or ("uniform" if arch == "goodfellow" else "normal")
        super().__init__(noise=noise, **kwargs)
        hp = self.hparams
        hp.update(noise=noise)  # the resolved value (the CLI saves the given one)
        shape = (hp.channels, hp.image_size, hp.image_size)
        if arch == "mlp":
            generator, discriminator = MLPGenerator(hp.latent_dim, shape, tuple(g_hidden)), \
                MLPDiscriminator(shape, tuple(d_hidden), d_dropout)
        elif arch == "goodfellow":
            if steps_per_epoch is not None and steps_per_epoch < 1:
                raise ConfigError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
            self.default_optimizer = {"name": "SGD", **GOODFELLOW_MNIST_SGD}
            generator, discriminator = GoodfellowGenerator(hp.latent_dim, image_shape=shape), \
                MaxoutDiscriminator(shape)
        else:
            raise ConfigError(f"unknown GAN arch {arch!r}: choose mlp or goodfellow")
        self.finish_setup(generator, discriminator)

    def discriminator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        loss, logs = super().discriminator_loss(batch, ctx)
        if self.hparams.arch == "goodfellow":  # pylearn2's AdversaryCost2: 0.5 * (cost on real + cost on fake)
            loss = 0.5 * loss
        return loss, logs

    def configure_optimizers(self):
        opts, scheds = super().configure_optimizers()
        if self.hparams.arch == "goodfellow" and not scheds:  # the paper's schedule, once per generator step
            per_epoch = self.hparams.steps_per_epoch or GOODFELLOW_MNIST_STEPS_PER_EPOCH
            scheds = [ExponentialDecayMomentumSchedule(o, steps_per_epoch=per_epoch) for o in opts]
        return opts, scheds

    @torch.no_grad()
    def on_train_start(self) -> None:
        """``goodfellow``: a fresh run starts G's sigmoid bias at the logit of the training pixels' means (the yaml's
        ``init_sigmoid_bias_from_marginals``), over up to 100 training batches."""
        super().on_train_start()
        if self.hparams.arch != "goodfellow" or self.generator_steps > 0:
            return
        images = [b["image"] for b, _ in zip(self.trainer.train_dataloader, range(100))]
        bias = sigmoid_bias_from_marginals(torch.cat(images)).to(self.device)
        for net in (self.generator, self.generator_ema):
            if net is not None:
                net.out.bias.copy_(bias)
