"""Pix2Pix: Isola, Zhu, Zhou & Efros 2017, "Image-to-Image Translation with Conditional Adversarial Networks", CVPR.
https://arxiv.org/abs/1611.07004 (reference: junyanz/pytorch-CycleGAN-and-pix2pix)."""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .context import Batch, StepContext
from .errors import ConfigError
from .losses import d_real_fake_scores
from .nets.patchgan import PatchGANDiscriminator
from .nets.unet import UNetGenerator, unet_depth
from .translation import TranslationModule, psnr, reference_scales, side_by_side


class Pix2Pix(TranslationModule):
    """Paired translation: U-Net G (dropout as the noise source), conditional 70×70 PatchGAN D on (input, output)
    concatenated, vanilla GAN loss (BCE with logits) + λ·L1, D loss × ½, D updated before G, Adam 2e-4 β (0.5, 0.999),
    batch 1, LR constant 100 epochs then linear decay over 100 (the reference's ``train.py`` defaults).

    Batches: ``source`` and ``target`` (N, C, H, W) in [-1, 1] (``direction`` BtoA swaps them).

    Args:
        ngf: G's first width (64).
        ndf: D's first width (64).
        depth: U-Net downsamplings (None: to a 1×1 bottleneck, log2(image_size): U-Net-256 at 256 px).
        g_norm: ``batch`` (reference) or ``instance``; also ``d_norm`` for D.
        d_norm: see ``g_norm``.
        n_dropout: decoder blocks with dropout 0.5; None: the reference's ``max(0, depth − 5)`` (3 for U-Net-256, 2 at
            128 px, none at 32 px; junyanz ``models/networks.py`` ``UnetGenerator``: ``for i in range(num_downs - 5)``).
        lambda_l1: weight of the L1 term (100).
        direction: ``AtoB`` (source → target) or ``BtoA``.
        loss: adversarial objective (``non_saturating`` = BCE with logits, the paper's vanilla GAN).
        test_mode: ``train`` (the default): at test time dropout stays on and BatchNorm uses the test batch's
            statistics, as the paper (§3.3: "we apply dropout at test time, and we apply batch normalization using the
            statistics of the test batch") and the reference's ``test.py`` without ``--eval``; ``eval`` is the
            deterministic alternative (running statistics, no dropout).
        **kwargs: see :class:`~gan_modules.translation.TranslationModule`.
    """

    def __init__(self, ngf: int = 64, ndf: int = 64, depth: int | None = None, g_norm: str = "batch",
                 d_norm: str = "batch", n_dropout: int | None = None, lambda_l1: float = 100.0,
                 direction: Literal["AtoB", "BtoA"] = "AtoB", loss: str = "non_saturating",
                 test_mode: Literal["eval", "train"] = "train", **kwargs: Any):
        super().__init__(loss=loss, test_mode=test_mode, **kwargs)
        hp = self.hparams
        if direction not in ("AtoB", "BtoA"):
            raise ConfigError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        if lambda_l1 < 0:
            raise ConfigError(f"lambda_l1 must be >= 0, got {lambda_l1}")
        try:
            depth = unet_depth(hp.image_size) if depth is None else depth
            generator = UNetGenerator(hp.channels, hp.channels, depth, ngf, g_norm, n_dropout)
            discriminator = PatchGANDiscriminator(2 * hp.channels, ndf, 3, d_norm)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.d_scale, self.g_scale = reference_scales(loss)
        self.finish_setup(generator, discriminator)

    translation_keys = frozenset({"source", "target"})

    def adapt_plain_batch(self, image: Tensor) -> Batch:
        return {"source": image, "target": image}

    def pair(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(input, ground truth) in the configured direction."""
        a, b = batch["source"], batch["target"]
        return (a, b) if self.hparams.direction == "AtoB" else (b, a)

    def check_batch(self, batch: Batch) -> None:
        if "source" not in batch or "target" not in batch:
            raise ConfigError(f"Pix2Pix needs paired batches with 'source' and 'target' (got keys {sorted(batch)}); "
                              "use a paired datamodule such as datamodules.AlignedPairDataModule")
        self.check_images(batch["source"])

    def discriminate(self, images: Tensor, x: Tensor) -> Tensor:
        return self.discriminator(torch.cat([x, images], 1))  # conditional: D(x, y) on the channel-stacked pair

    def make_context(self, batch: Batch, generator_step: bool) -> StepContext:
        """One G forward per iteration, used detached by the D step and through by the G step, as the reference's
        ``Pix2PixModel.optimize_parameters`` (``forward()`` once, then ``backward_D`` on ``fake_B.detach()`` and
        ``backward_G`` on ``fake_B``; junyanz/pytorch-CycleGAN-and-pix2pix ``models/pix2pix_model.py``)."""
        ctx = super().make_context(batch, generator_step)
        x, _ = self.pair(batch)
        with contextlib.nullcontext() if generator_step else torch.no_grad():
            ctx["fake"] = self.generator(x)  # dropout (the paper's noise) draws its mask once
        return ctx

    def discriminator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = self.pair(batch)
        fake = ctx["fake"].detach()
        d_real, d_fake = self.discriminate(y, x), self.discriminate(fake, x)
        loss = self.d_scale * self.adversarial_loss.discriminator(d_real, d_fake)  # ½[ℓ(D(x,y),1) + ℓ(D(x,G(x)),0)]
        ctx.add_critic(lambda images: self.discriminate(images, x), y, fake)
        return loss, {"loss_d": loss.detach(), **d_real_fake_scores(d_real, d_fake)}

    def generator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = self.pair(batch)
        fake = ctx["fake"]
        adv = self.g_scale * self.adversarial_loss.generator(self.discriminate(fake, x))
        l1 = F.l1_loss(fake, y)  # E‖y − G(x)‖₁
        loss = adv + self.hparams.lambda_l1 * l1
        return loss, {"loss_g": loss.detach(), "loss_g_adv": adv.detach(), "loss_g_l1": l1.detach()}

    def evaluation_inputs(self, batch: Batch) -> dict[str, Tensor]:
        return {"x": self.pair(batch)[0]}

    @torch.no_grad()
    def evaluation_scores(self, batch: Batch) -> dict[str, Tensor]:
        x, y = self.pair(batch)
        fake = self.run_generator(x)
        return {"l1": F.l1_loss(fake, y), "psnr": psnr(fake, y), "l1_identity": F.l1_loss(x, y)}

    def comparison_strips(self, batch: Batch) -> Tensor:
        x, y = self.pair(batch)
        return side_by_side(x, self.run_generator(x), y)  # input | output | ground truth

    def forward(self, x: Tensor) -> Tensor:
        return self.run_generator(x)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """A paired batch (``source``/``target``, the test split) or ``image`` (a folder of inputs, any size), with
        ``name`` and ``index`` → outputs under the same names and strips input | output [| ground truth]."""
        if "source" in batch:
            x, y = self.pair(batch)
            rows = [x, self.run_generator(x), y]
        else:
            rows = [batch["image"], self.run_generator(batch["image"])]
        return {"images": rows[1], "index": batch["index"], "names": self.predict_names(batch),
                "grid": side_by_side(*rows)}
