"""The image-GAN family: a generator from noise (and, for conditional variants, a class label) to an image, a
discriminator on images (and labels). GAN, DCGAN, WGAN, WGAN-GP, SNGAN and CGAN are this family with different
networks, losses and defaults.

One iteration (``make_context``): z ~ N(0, I) for the D step's fakes (and the fakes' labels), drawn from this rank's
noise generator. With ``n_critic`` 1 and a generator batch equal to the D batch, the generated batch is computed once
and used by both steps — the D step sees it detached, the G step back-propagates through it — as pytorch/examples
``dcgan/main.py`` and every DCGAN tutorial do (``reuse_fakes``). Otherwise the G step draws its own noise, for
``generator_batch_multiple`` times the D batch (the WGAN-GP and SNGAN ResNet reference code gives the G step twice the
D batch: igul222/improved_wgan_training ``gan_cifar_resnet.py`` ``GEN_BS_MULTIPLE = 2``, pfnet-research/sngan_projection
``configs/sn_cifar10_unconditional.yml`` ``n_gen_samples: 128``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch import Tensor

from ._compat import attached_trainer
from .augment import AdaptiveAugmentProbability, parse_policy, sample_params
from .base import AdversarialModule
from .context import Batch, StepContext
from .errors import ConfigError
from .losses import d_real_fake_scores


class ImageGAN(AdversarialModule):
    """Base of the noise → image variants (not registered in ``MODELS``).

    Args:
        latent_dim: size of the generator's noise input z.
        noise: distribution of z: ``normal`` N(0, I), or ``uniform`` U(-√3, √3) per coordinate (unit variance; the
            original GAN's, goodfeli/adversarial ``mnist.yaml`` l.9).
        generator_batch_multiple: the G step generates this many times the D batch (1 in most papers; 2 in the
            WGAN-GP and SNGAN ResNet reference code).
        reuse_fakes: with ``n_critic`` 1 and ``generator_batch_multiple`` 1, one generated batch per iteration serves
            both the D step (detached) and the G step, as the reference DCGAN loop does; False draws fresh noise for
            the G step.
        fake_labels: conditional variants only: the labels of generated images are the real batch's (``data``,
            following the data's class frequencies) or drawn uniformly (``uniform``).
        standing_batches: batches of ``standing_batch_size`` fixed inputs from which the EMA generator's BatchNorm
            statistics are recomputed before it samples (see ``gan_modules.ema``).
        standing_batch_size: size of those batches.
        augment: differentiable augmentation of every image D sees (real and fake, D step, G step and the penalty's
            inputs), a comma-separated DiffAugment policy, e.g. ``"color,translation,cutout"`` (Zhao et al. 2020;
            ``gan_modules.augment``); None: off.
        augment_p: probability with which each operation is applied to each image (1: DiffAugment).
        ada: adapt that probability as ADA does (Karras et al. 2020): it starts at 0 and follows the overfitting
            heuristic r_t = E[sign(D(x_real))] towards ``ada_target``, adjusted every ``ada_interval`` D steps by
            batch·interval / ``ada_speed_images``; logged as ``train/augment_p`` and saved in checkpoints.
        ada_target: the r_t ADA aims at (0.6).
        ada_interval: D steps between adjustments (4).
        ada_speed_images: real images over which p can move from 0 to 1 (500k).
        **kwargs: see :class:`~gan_modules.base.AdversarialModule`.
    """

    #: whether G and D take class labels (``y``)
    conditional: bool = False

    def __init__(self, latent_dim: int = 100, noise: Literal["normal", "uniform"] = "normal",
                 generator_batch_multiple: int = 1, reuse_fakes: bool = True,
                 fake_labels: Literal["data", "uniform"] = "data", standing_batches: int = 16,
                 standing_batch_size: int = 64, augment: str | None = None, augment_p: float = 1.0,
                 ada: bool = False, ada_target: float = 0.6, ada_interval: int = 4, ada_speed_images: int = 500_000,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.augment_policy = parse_policy(augment)
        if not 0.0 <= augment_p <= 1.0:
            raise ConfigError(f"augment_p must be in [0, 1] (the probability of each augmentation), got {augment_p}")
        if ada and not self.augment_policy:
            raise ConfigError('ada needs an augmentation policy: set --model.init_args.augment "color,translation,cutout"')
        self.ada = (AdaptiveAugmentProbability(0.0, ada_target, ada_interval, ada_speed_images) if ada else None)
        if latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {latent_dim}")
        if noise not in ("normal", "uniform"):
            raise ConfigError(f"noise must be 'normal' (N(0, I)) or 'uniform' (U(-√3, √3)^d), got {noise!r}")
        if generator_batch_multiple < 1:
            raise ConfigError(f"generator_batch_multiple must be >= 1, got {generator_batch_multiple}")
        if fake_labels not in ("data", "uniform"):
            raise ConfigError(f"fake_labels must be 'data' or 'uniform', got {fake_labels!r}")
        if standing_batches < 1 or standing_batch_size < 1:
            raise ConfigError(f"standing_batches and standing_batch_size must be >= 1, got {standing_batches} and "
                              f"{standing_batch_size}")

    # ------------------------------------------------------------------------------------------------------------
    # What a variant of the family provides (the defaults are the unconditional GAN)
    def generator_inputs(self, z: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        """G's keyword inputs for noise ``z`` (N, latent_dim) and labels ``y`` (N,) or None."""
        return {"z": z}

    def discriminate(self, images: Tensor, labels: Tensor | None) -> Tensor:
        """D's logits for ``images``; conditional variants also use ``labels``."""
        return self.discriminator(images)

    # ------------------------------------------------------------------------------------------------------------
    # One iteration
    @property
    def reuses_fakes(self) -> bool:
        hp = self.hparams
        return bool(hp.reuse_fakes) and self.critic_steps() == 1 and hp.generator_batch_multiple == 1

    def draw_noise(self, ctx: StepContext, n: int) -> Tensor:
        """z for ``n`` samples from this iteration's stream, in the configured distribution."""
        if self.hparams.noise == "uniform":
            return (2 * ctx.rand(n, self.hparams.latent_dim) - 1) * math.sqrt(3.0)
        return ctx.randn(n, self.hparams.latent_dim)

    def draw_labels(self, ctx: StepContext, n: int) -> Tensor | None:
        """Labels of ``n`` generated images: None (unconditional), the batch's (repeated) or uniform draws."""
        if not self.conditional:
            return None
        if self.hparams.fake_labels == "uniform":
            return ctx.randint(self.hparams.num_classes, n)
        real = ctx.batch["label"]
        return real.repeat((n + len(real) - 1) // len(real))[:n]

    def augmentation(self, like: Tensor, ctx: StepContext) -> Callable[[Tensor], Tensor]:
        """The augmentation of one batch shaped like ``like``, its parameters drawn once from the iteration's stream
        (apply it to the batch and to anything that must be augmented the same way); the identity when off."""
        if not self.augment_policy:
            return lambda x: x
        p = self.ada.p if self.ada is not None else self.hparams.augment_p
        return sample_params(like, self.augment_policy, p, generator=ctx.noise).apply

    def make_context(self, batch: Batch, generator_step: bool) -> StepContext:
        ctx = super().make_context(batch, generator_step)
        n = batch["image"].shape[0]
        ctx["z"], ctx["y"] = self.draw_noise(ctx, n), self.draw_labels(ctx, n)
        if generator_step and self.reuses_fakes:  # one G forward for both steps, its graph kept for the G step
            ctx["fake"] = self.generator(**self.generator_inputs(ctx["z"], ctx["y"]))
        return ctx

    def discriminator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        real, real_labels = batch["image"], batch.get("label") if self.conditional else None
        if "fake" in ctx:
            fake = ctx["fake"].detach()
        else:
            with torch.no_grad():
                fake = self.generator(**self.generator_inputs(ctx["z"], ctx["y"]))
        real_aug, fake_aug = self.augmentation(real, ctx), self.augmentation(fake, ctx)  # independent draws
        d_real, d_fake = self.discriminate(real_aug(real), real_labels), self.discriminate(fake_aug(fake), ctx["y"])
        loss = self.adversarial_loss.discriminator(d_real, d_fake)
        # the penalty (if configured) judges interpolates / reals with the real batch's labels, through the real
        # batch's augmentation (stylegan2-ada loss.py: R1 through the same augmentation as the loss pass)
        ctx.add_critic(lambda x: self.discriminate(real_aug(x), real_labels), real, fake)
        logs = {"loss_d": loss.detach(), **d_real_fake_scores(d_real, d_fake)}
        if self.ada is not None:
            trainer = attached_trainer(self)
            reduce = None if trainer is None or trainer.world_size == 1 else \
                (lambda t: trainer.strategy.reduce(t, reduce_op="sum"))
            self.ada.update(d_real.detach(), reduce)  # one device sync every ada_interval D steps
            logs["augment_p"] = torch.tensor(self.ada.p)
        return loss, logs

    def generator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        if "fake" in ctx:
            fake, labels = ctx["fake"], ctx["y"]
        else:
            n = batch["image"].shape[0] * self.hparams.generator_batch_multiple
            labels = self.draw_labels(ctx, n)
            fake = self.generator(**self.generator_inputs(self.draw_noise(ctx, n), labels))
        loss = self.adversarial_loss.generator(self.discriminate(self.augmentation(fake, ctx)(fake), labels))
        return loss, {"loss_g": loss.detach()}

    def check_batch(self, batch: Batch) -> None:
        image = batch.get("image")
        if image is None:
            raise ConfigError(f"{type(self).__name__} needs image batches with an 'image' entry (got keys "
                              f"{sorted(batch)}); use an image datamodule")
        self.check_images(image)

    # ------------------------------------------------------------------------------------------------------------
    # Sampling
    def sample_inputs(self, n: int, seed: int | None = None) -> dict[str, Tensor]:
        """Generator inputs for ``n`` samples; ``seed`` makes them reproducible (fixed-noise grids). Conditional
        variants cycle the labels through the classes (``i % num_classes``), so any n is balanced."""
        z = self.seeded_noise(n, seed)
        y = torch.arange(n, device=self.device) % self.hparams.num_classes if self.conditional else None
        return self.generator_inputs(z, y)

    def seeded_noise(self, n: int, seed: int | None = None) -> Tensor:
        """z for ``n`` samples on the model's device, from ``seed`` (drawn on the CPU: the same on every device) or,
        when None, from the global RNG."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        shape = (n, self.hparams.latent_dim)
        z = (2 * torch.rand(shape, generator=gen) - 1) * math.sqrt(3.0) if self.hparams.noise == "uniform" else \
            torch.randn(shape, generator=gen)
        return z.to(self.device)

    def standing_inputs(self) -> Iterator[dict[str, Tensor]]:
        """Fixed inputs (seeded apart from the grids' ``sample_seed``) for the EMA's BatchNorm statistics."""
        hp = self.hparams
        for i in range(hp.standing_batches):
            yield self.sample_inputs(hp.standing_batch_size, seed=1_000_003 + hp.sample_seed * 7919 + i)

    def forward(self, z: Tensor, **kwargs: Tensor) -> Tensor:
        return self.generate({"z": z, **kwargs})

    def sample_grid(self, n: int = 64, seed: int | None = None) -> tuple[Tensor, int]:
        """A grid's worth of images from fixed inputs and its number of columns; variants override the layout."""
        seed = self.hparams.sample_seed if seed is None else seed
        return self.generate(self.sample_inputs(n, seed)), int(math.ceil(math.sqrt(n)))

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """Batch ``{"index": (N,)}``: sample ``i`` comes from z seeded by ``sample_seed + i`` (reproducible per image;
        conditional: class ``i % num_classes``)."""
        index = batch["index"]
        z = torch.cat([self.sample_inputs(1, seed=self.hparams.sample_seed + int(i))["z"] for i in index.tolist()])
        y = index.to(self.device) % self.hparams.num_classes if self.conditional else None
        return {"images": self.generate(self.generator_inputs(z, y)), "index": index}

    # ------------------------------------------------------------------------------------------------------------
    # Evaluation: the discriminator's view of held-out real images vs generated ones.
    def evaluation_inputs(self, batch: Batch) -> dict[str, Tensor]:
        """Generator inputs matching a held-out batch (conditional variants reuse its labels)."""
        z = self.seeded_noise(batch["image"].shape[0])
        return self.generator_inputs(z, batch.get("label") if self.conditional else None)

    @torch.no_grad()
    def evaluation_scores(self, batch: Batch) -> dict[str, Tensor]:
        real, labels = batch["image"], batch.get("label") if self.conditional else None
        fake = self.generate(self.evaluation_inputs(batch))
        d_real = self.discriminate(real, labels).float()
        d_fake = self.discriminate(fake, labels).float()
        return {
            "d_real_prob": torch.sigmoid(d_real).mean(),
            "d_fake_prob": torch.sigmoid(d_fake).mean(),
            "d_accuracy": 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean()),
            "loss_d": self.adversarial_loss.discriminator(d_real, d_fake),
            "loss_g": self.adversarial_loss.generator(d_fake),
        }


__all__ = ["ImageGAN"]
