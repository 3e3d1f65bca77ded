"""CycleGAN: Zhu, Park, Isola & Efros 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial
Networks", ICCV. https://arxiv.org/abs/1703.10593 (reference: junyanz/pytorch-CycleGAN-and-pix2pix)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .context import Batch, StepContext
from .errors import ConfigError
from .losses import d_real_fake_scores
from .nets.patchgan import PatchGANDiscriminator
from .nets.resnet_translation import ResnetGenerator
from .rng import stream_seed
from .translation import ImagePool, TranslationModule, reference_scales, side_by_side


class CycleGAN(TranslationModule):
    """Unpaired translation A ↔ B with two ResNet generators (``a2b``, ``b2a``) and two 70×70 PatchGAN
    discriminators (``a`` judges domain-A images, ``b`` domain-B images).

    Paper/reference defaults: LSGAN loss (MSE to 1/0; D loss × ½ and G loss unhalved, see ``reference_scales``),
    cycle λ_A = λ_B = 10, identity 0.5 × λ, a history pool of 50 fakes per D, both G's stepped together then both D's
    (``generator_first``), Adam 2e-4 β (0.5, 0.999), batch 1, LR constant 100 epochs then linear decay over 100
    (per epoch). InstanceNorm without affine parameters in every network.

    Batches: ``a`` and ``b`` (N, C, H, W) in [-1, 1], unpaired.

    Args:
        ngf: G's first width (64).
        ndf: D's first width (64).
        n_residual_blocks: residual blocks in G (None: 9 at 256 px and above, 6 below, as the reference's two presets).
        lambda_a: weight of the A → B → A cycle L1 (10).
        lambda_b: weight of the B → A → B cycle L1 (10).
        lambda_identity: identity-loss weight relative to λ (0.5; 0 disables it).
        pool_size: history-pool capacity per discriminator (50; 0 disables).
        d_norm: normalisation in D (``instance``).
        loss: adversarial objective (``least_squares``).
        **kwargs: see :class:`~gan_modules.translation.TranslationModule`.
    """

    generator_first = True

    def __init__(self, ngf: int = 64, ndf: int = 64, n_residual_blocks: int | None = None, lambda_a: float = 10.0,
                 lambda_b: float = 10.0, lambda_identity: float = 0.5, pool_size: int = 50, d_norm: str = "instance",
                 loss: str = "least_squares", **kwargs: Any):
        super().__init__(loss=loss, **kwargs)
        hp = self.hparams
        if min(lambda_a, lambda_b, lambda_identity) < 0:
            raise ConfigError(f"lambda_a, lambda_b and lambda_identity must be >= 0, got {lambda_a}, {lambda_b}, "
                              f"{lambda_identity}")
        n_blocks = (9 if hp.image_size >= 256 else 6) if n_residual_blocks is None else n_residual_blocks
        c = hp.channels
        try:
            generator = nn.ModuleDict({"a2b": ResnetGenerator(c, c, ngf, n_blocks),
                                       "b2a": ResnetGenerator(c, c, ngf, n_blocks)})
            discriminator = nn.ModuleDict({"a": PatchGANDiscriminator(c, ndf, 3, d_norm),
                                           "b": PatchGANDiscriminator(c, ndf, 3, d_norm)})
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.d_scale, self.g_scale = reference_scales(loss)
        self.pools = {"a": ImagePool(pool_size, hp.sample_seed), "b": ImagePool(pool_size, hp.sample_seed + 1)}
        self.finish_setup(generator, discriminator)

    translation_keys = frozenset({"a", "b"})

    def adapt_plain_batch(self, image: Tensor) -> Batch:
        return {"a": image, "b": image.roll(1, 0)}

    @property
    def size_multiple(self) -> int:
        return ResnetGenerator.size_multiple

    def check_batch(self, batch: Batch) -> None:
        if "a" not in batch or "b" not in batch:
            raise ConfigError(f"CycleGAN needs unpaired batches with 'a' and 'b' (got keys {sorted(batch)}); use "
                              "datamodules.UnpairedDataModule or an offline unpaired task")
        self.check_images(batch["a"])
        self.check_images(batch["b"])

    def make_context(self, batch: Batch, generator_step: bool) -> StepContext:
        """Both translations once per iteration, as the reference's ``CycleGANModel.forward``: the G step (first)
        back-propagates through them, the D step judges them detached, through the history pools
        (junyanz/pytorch-CycleGAN-and-pix2pix ``models/cycle_gan_model.py``, ``optimize_parameters``)."""
        ctx = super().make_context(batch, generator_step)
        ctx["fake_b"], ctx["fake_a"] = self.generator["a2b"](batch["a"]), self.generator["b2a"](batch["b"])
        return ctx

    def generator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        hp, g, d = self.hparams, self.generator, self.discriminator
        a, b = batch["a"], batch["b"]
        fake_b, fake_a = ctx["fake_b"], ctx["fake_a"]
        rec_a, rec_b = g["b2a"](fake_b), g["a2b"](fake_a)
        adv_a2b = self.g_scale * self.adversarial_loss.generator(d["b"](fake_b))  # LSGAN: E[(D_B(G(a)) − 1)²]
        adv_b2a = self.g_scale * self.adversarial_loss.generator(d["a"](fake_a))
        cycle = hp.lambda_a * F.l1_loss(rec_a, a) + hp.lambda_b * F.l1_loss(rec_b, b)  # λ‖F(G(a)) − a‖₁ + ...
        loss = adv_a2b + adv_b2a + cycle
        logs = {"loss_g_adv_a2b": adv_a2b.detach(), "loss_g_adv_b2a": adv_b2a.detach(), "loss_cycle": cycle.detach()}
        if hp.lambda_identity > 0:  # G_AB(b) ≈ b and G_BA(a) ≈ a, weighted 0.5·λ of the target side
            idt = hp.lambda_identity * (hp.lambda_b * F.l1_loss(g["a2b"](b), b) + hp.lambda_a * F.l1_loss(g["b2a"](a), a))
            loss = loss + idt
            logs["loss_identity"] = idt.detach()
        return loss, {"loss_g": loss.detach(), **logs}

    def discriminator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        loss, logs = 0.0, {}
        for side in ("a", "b"):
            net = self.discriminator[side]
            fake = self.pools[side].query(ctx[f"fake_{side}"].detach())
            d_real, d_fake = net(batch[side]), net(fake)
            side_loss = self.d_scale * self.adversarial_loss.discriminator(d_real, d_fake)  # ½[(D(x)−1)² + D(x̃)²]
            loss = loss + side_loss
            ctx.add_critic(net, batch[side], fake)
            scores = d_real_fake_scores(d_real, d_fake)
            logs.update({f"loss_d_{side}": side_loss.detach(), **{f"{k}_{side}": v for k, v in scores.items()}})
        return loss, {"loss_d": loss.detach(), **logs}

    # ----------------------------------------------------------------------------------------------------------
    def translate(self, x: Tensor, direction: str = "a2b") -> Tensor:
        """Images of either domain (any size) → the other domain, with ``direction`` ``a2b`` or ``b2a``."""
        return self.run_generator(x, key=direction)

    def forward(self, x: Tensor, direction: str = "a2b") -> Tensor:
        return self.translate(x, direction)

    @torch.no_grad()
    def evaluation_scores(self, batch: Batch) -> dict[str, Tensor]:
        a, b = batch["a"], batch["b"]
        fake_b, fake_a = self.translate(a, "a2b"), self.translate(b, "b2a")
        scores = {"cycle_l1_a": F.l1_loss(self.translate(fake_b, "b2a"), a),
                  "cycle_l1_b": F.l1_loss(self.translate(fake_a, "a2b"), b)}
        if "a_target" in batch:  # offline tasks with a hidden true mapping
            scores["l1_a2b"] = F.l1_loss(fake_b, batch["a_target"])
            scores["l1_a2b_identity"] = F.l1_loss(a, batch["a_target"])
        if "b_target" in batch:
            scores["l1_b2a"] = F.l1_loss(fake_a, batch["b_target"])
        return scores

    def comparison_strips(self, batch: Batch) -> Tensor:
        rows = []
        for x, there, back in ((batch["a"], "a2b", "b2a"), (batch["b"], "b2a", "a2b")):
            y = self.translate(x, there)
            rows.append(side_by_side(x, y, self.translate(y, back)))  # input | translated | reconstructed
        return torch.cat(rows)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Any]:
        """``image`` (any size), ``domain`` (0: A → B, 1: B → A; default 0), ``name``, ``index`` → translations
        under the same names and strips input | translated | reconstructed."""
        x = batch["image"]
        domain = batch.get("domain", torch.zeros(len(x), dtype=torch.long))
        out, rec = torch.empty_like(x), torch.empty_like(x)
        for code, there, back in ((0, "a2b", "b2a"), (1, "b2a", "a2b")):
            sel = (domain == code).to(x.device)
            if sel.any():
                out[sel] = self.translate(x[sel], there)
                rec[sel] = self.translate(out[sel], back)
        return {"images": out, "index": batch["index"], "names": self.predict_names(batch),
                "grid": side_by_side(x, out, rec)}

    # ----------------------------------------------------------------------------------------------------------
    # The history pools are per rank: under DDP each rank pools its own fakes and draws from its own stream.
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.trainer.world_size > 1:
            for k, pool in enumerate(self.pools.values()):
                pool.generator.manual_seed(stream_seed(self.run_seed() + k, self.global_rank))

    def rank_state(self) -> dict[str, Any]:
        return {"image_pools": {k: p.state_dict() for k, p in self.pools.items()}}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        for k, pool_state in (state.get("image_pools") or {}).items():
            self.pools[k].load_state_dict(pool_state)
