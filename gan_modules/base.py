"""The adversarial training loop shared by every GAN variant (manual optimization).

A variant supplies only what differs: its networks, ``discriminator_loss(batch)`` and ``generator_loss(batch)``
(each returning ``(loss, logs)``), how to draw sampling inputs, and optional hooks such as
``after_discriminator_step`` (WGAN's weight clipping) or ``critic_steps`` (WGAN's 100-critic-step schedule).

Training length is counted in **generator steps**, as papers report it. Lightning's ``trainer.global_step``
counts every ``optimizer.step()`` of every optimizer (Lightning issue #17958), so with two optimizers and n_critic
it means something else; use ``model.max_generator_steps`` (the CLI and configs do) and leave
``trainer.max_steps`` unset.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from .errors import ConfigError
from .losses import d_real_fake_scores, get_loss

Batch = dict[str, Tensor]


class AdversarialModule(L.LightningModule):
    """Base LightningModule for GANs: D step(s), then a G step every ``n_critic`` D steps.

    Args:
        image_size: side of the square images (linked from the datamodule by the CLI).
        channels: image channels (linked from the datamodule).
        num_classes: number of classes of the data (linked from the datamodule; used by conditional variants).
        latent_dim: size of the generator's noise input z.
        loss: adversarial objective by name (see ``gan_modules.losses.LOSSES``).
        n_critic: discriminator steps per generator step.
        max_generator_steps: stop after this many generator steps (None: let the trainer's epochs decide).
        ema_decay: decay of the exponential moving average of G's weights used for sampling (None: off). The
            effective decay warms up as ``min(decay, (1 + t) / (10 + t))`` over generator steps ``t``.
        optimizer_g: optimizer factory for G (None: the variant's paper default, see ``default_optimizer``).
        optimizer_d: optimizer factory for D (None: the variant's paper default).
        lr_scheduler_g: LR scheduler factory for G's optimizer (None: constant LR).
        lr_scheduler_d: LR scheduler factory for D's optimizer (None: constant LR).
        lr_scheduler_interval: step schedulers once per ``"generator_step"`` or once per ``"epoch"``.
        sample_seed: seed of the fixed noise used for sample grids and ``predict``.
    """

    #: paper defaults of the variant: optimizer class name in ``torch.optim`` and its keyword arguments.
    default_optimizer: ClassVar[dict[str, Any]] = {"name": "Adam", "lr": 2e-4, "betas": (0.5, 0.999)}
    #: CycleGAN-style variants update G before D on every batch (then ``n_critic`` must be 1).
    generator_first: ClassVar[bool] = False

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        num_classes: int | None = None,
        latent_dim: int = 100,
        loss: str = "non_saturating",
        n_critic: int = 1,
        max_generator_steps: int | None = None,
        ema_decay: float | None = 0.999,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        lr_scheduler_g: LRSchedulerCallable | None = None,
        lr_scheduler_d: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["generator_step", "epoch"] = "generator_step",
        sample_seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer_g", "optimizer_d", "lr_scheduler_g", "lr_scheduler_d"])
        if n_critic < 1:
            raise ConfigError(f"n_critic must be >= 1 (discriminator steps per generator step), got {n_critic}")
        if max_generator_steps is not None and max_generator_steps < 1:
            raise ConfigError(f"max_generator_steps must be >= 1, got {max_generator_steps}")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1) or null to disable EMA, got {ema_decay}")
        if self.generator_first and n_critic != 1:
            raise ConfigError(f"{type(self).__name__} updates G before D on every batch; n_critic must be 1")
        self.adversarial_loss = get_loss(loss)
        self.automatic_optimization = False
        self._optimizer_factories = (optimizer_g, optimizer_d)
        self._scheduler_factories = (lr_scheduler_g, lr_scheduler_d)
        # Step counters: plain ints (no device sync), saved in the checkpoint by on_save_checkpoint.
        self.generator_steps = 0
        self.discriminator_steps = 0
        self._critic_count = 0
        self.nonfinite_skips = 0
        self._checked_batch = False
        self.generator: nn.Module
        self.discriminator: nn.Module
        self.generator_ema: nn.Module | None = None

    # ------------------------------------------------------------------------------------------------------------
    # What a variant provides. The defaults are the unconditional image GAN: D on real images vs G(z) detached,
    # then G through D; conditional and translation variants override these methods.
    def fake_images(self, batch: Batch) -> Tensor:
        return self.generator(**self.sample_inputs(batch["image"].shape[0]))

    def discriminate(self, images: Tensor, batch: Batch) -> Tensor:
        """D's logits for ``images``; conditional variants also pass ``batch['label']``."""
        return self.discriminator(images)

    def discriminator_penalty(self, real: Tensor, fake: Tensor, batch: Batch) -> tuple[Tensor | None, dict]:
        """Extra D loss term (gradient penalty, R1, ...): ``(penalty or None, logs)``."""
        return None, {}

    def discriminator_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        real = batch["image"]
        fake = self.fake_images(batch).detach()
        d_real, d_fake = self.discriminate(real, batch), self.discriminate(fake, batch)
        loss = self.adversarial_loss.discriminator(d_real, d_fake)
        penalty, logs = self.discriminator_penalty(real, fake, batch)
        logs = {"loss_d": loss.detach(), **d_real_fake_scores(d_real, d_fake), **logs}
        if penalty is not None:
            loss = loss + penalty
        return loss, logs

    def generator_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        loss = self.adversarial_loss.generator(self.discriminate(self.fake_images(batch), batch))
        return loss, {"loss_g": loss.detach()}

    def after_discriminator_step(self) -> None:
        """Hook run after every discriminator update (WGAN clips weights here)."""

    def critic_steps(self) -> int:
        """Discriminator steps before the next generator step; may depend on ``self.generator_steps``."""
        return self.hparams.n_critic

    def sample_inputs(self, n: int, seed: int | None = None) -> dict[str, Tensor]:
        """Generator inputs for ``n`` samples; ``seed`` makes them reproducible (fixed-noise grids)."""
        if seed is None:
            return {"z": torch.randn(n, self.hparams.latent_dim, device=self.device)}
        gen = torch.Generator().manual_seed(seed)
        return {"z": torch.randn(n, self.hparams.latent_dim, generator=gen).to(self.device)}

    def finish_setup(self, generator: nn.Module, discriminator: nn.Module) -> None:
        """Registers the networks (call at the end of a variant's ``__init__``) and builds the EMA copy of G."""
        self.generator = generator
        self.discriminator = discriminator
        if self.hparams.ema_decay is not None:
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False)

    # ------------------------------------------------------------------------------------------------------------
    # Sampling
    def sampling_generator(self, use_ema: bool = True) -> nn.Module:
        return self.generator_ema if use_ema and self.generator_ema is not None else self.generator

    @torch.no_grad()
    def generate(self, inputs: dict[str, Tensor], use_ema: bool = True) -> Tensor:
        """Images in [-1, 1] from the (EMA) generator in eval mode; the network's mode is restored afterwards."""
        net = self.sampling_generator(use_ema)
        was_training = net.training
        net.eval()
        try:
            return net(**inputs).float().clamp(-1, 1)
        finally:
            net.train(was_training)

    def forward(self, z: Tensor, **kwargs: Tensor) -> Tensor:
        return self.generate({"z": z, **kwargs})

    def sample_grid(self, n: int = 64, seed: int | None = None) -> tuple[Tensor, int]:
        """A grid's worth of images from fixed inputs and its number of columns; variants override the layout."""
        seed = self.hparams.sample_seed if seed is None else seed
        return self.generate(self.sample_inputs(n, seed)), int(math.ceil(math.sqrt(n)))

    # ------------------------------------------------------------------------------------------------------------
    # Optimizers
    def _make_optimizer(self, factory: OptimizerCallable | None, params: Any) -> torch.optim.Optimizer:
        if factory is not None:
            return factory(params)
        kwargs = dict(self.default_optimizer)
        cls = getattr(torch.optim, kwargs.pop("name"))
        return cls(params, **kwargs)

    def configure_optimizers(self):
        opt_g = self._make_optimizer(self._optimizer_factories[0], self.generator.parameters())
        opt_d = self._make_optimizer(self._optimizer_factories[1], self.discriminator.parameters())
        schedulers = [f(o) for f, o in zip(self._scheduler_factories, (opt_g, opt_d)) if f is not None]
        return [opt_g, opt_d], schedulers

    def _step_schedulers(self) -> None:
        scheds = self.lr_schedulers()
        if scheds is None:
            return
        for s in scheds if isinstance(scheds, list) else [scheds]:
            s.step()

    # ------------------------------------------------------------------------------------------------------------
    # The loop
    def check_batch(self, batch: Batch) -> None:
        """Fails with one clear line when the data does not match the model (checked on the first batch)."""
        image = batch.get("image")
        if image is None:
            return
        c, s = self.hparams.channels, self.hparams.image_size
        if image.shape[1] != c:
            raise ConfigError(
                f"data has {image.shape[1]} channel(s) but the model was built for {c}; set --data.channels {c} "
                f"or --model.init_args.channels {image.shape[1]}"
            )
        if tuple(image.shape[-2:]) != (s, s):
            raise ConfigError(
                f"data images are {tuple(image.shape[-2:])} but the model was built for {s}x{s}; set "
                f"--data.image_size {s}"
            )

    def _optimize(self, opt, loss_fn, batch: Batch) -> dict[str, Tensor]:
        self.toggle_optimizer(opt)
        try:
            loss, logs = loss_fn(batch)
            self.manual_backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
        finally:
            self.untoggle_optimizer(opt)
        return logs

    def _discriminator_update(self, batch: Batch, opt_d) -> dict[str, Tensor]:
        logs = self._optimize(opt_d, self.discriminator_loss, batch)
        self.after_discriminator_step()
        self.discriminator_steps += 1
        return logs

    def _generator_update(self, batch: Batch, opt_g) -> dict[str, Tensor]:
        logs = self._optimize(opt_g, self.generator_loss, batch)
        self.generator_steps += 1
        self.update_ema()
        if self.hparams.lr_scheduler_interval == "generator_step":
            self._step_schedulers()
        max_g = self.hparams.max_generator_steps
        if max_g is not None and self.generator_steps >= max_g:
            self.trainer.should_stop = True
        return logs

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        if not self._checked_batch:
            self.check_batch(batch)
            self._checked_batch = True
        opt_g, opt_d = self.optimizers()
        logs: dict[str, Tensor] = {}
        if self.generator_first:
            logs.update(self._generator_update(batch, opt_g))
            logs.update(self._discriminator_update(batch, opt_d))
        else:
            logs.update(self._discriminator_update(batch, opt_d))
            self._critic_count += 1
            if self._critic_count >= self.critic_steps():
                self._critic_count = 0
                logs.update(self._generator_update(batch, opt_g))
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=False, on_step=True, on_epoch=False)
        self.log("train/generator_step", float(self.generator_steps), on_step=True, on_epoch=False, prog_bar=True)

    def on_train_epoch_end(self) -> None:
        if self.hparams.lr_scheduler_interval == "epoch":
            self._step_schedulers()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        max_g = self.hparams.max_generator_steps
        if max_g is not None and self.generator_steps >= max_g:  # resumed a finished run: do nothing more
            self.trainer.should_stop = True
            return -1
        return None

    # ------------------------------------------------------------------------------------------------------------
    # EMA of the generator: parameters averaged, buffers (BatchNorm statistics, spectral-norm vectors) copied.
    @torch.no_grad()
    def update_ema(self) -> None:
        if self.generator_ema is None:
            return
        t = self.generator_steps
        decay = min(self.hparams.ema_decay, (1 + t) / (10 + t))
        ema_params = list(self.generator_ema.parameters())
        params = [p.detach() for p in self.generator.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------------------------------------------------------
    # Evaluation: the discriminator's view of held-out real images vs generated ones.
    @torch.no_grad()
    def evaluation_scores(self, batch: Batch) -> dict[str, Tensor]:
        real = batch["image"]
        fake = self.generate(self.evaluation_inputs(batch))
        d_real = self._eval_discriminator(real, batch).float()
        d_fake = self._eval_discriminator(fake, batch).float()
        return {
            "d_real_prob": torch.sigmoid(d_real).mean(),
            "d_fake_prob": torch.sigmoid(d_fake).mean(),
            "d_accuracy": 0.5 * ((d_real > 0).float().mean() + (d_fake < 0).float().mean()),
            "loss_d": self.adversarial_loss.discriminator(d_real, d_fake),
            "loss_g": self.adversarial_loss.generator(d_fake),
        }

    def evaluation_inputs(self, batch: Batch) -> dict[str, Tensor]:
        """Generator inputs matching a held-out batch (conditional variants reuse its labels)."""
        return self.sample_inputs(batch["image"].shape[0])

    def _eval_discriminator(self, images: Tensor, batch: Batch) -> Tensor:
        return self.discriminate(images, batch)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        scores = self.evaluation_scores(batch)
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, on_epoch=True, sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        scores = self.evaluation_scores(batch)
        self.log_dict({f"test/{k}": v for k, v in scores.items()}, on_epoch=True, sync_dist=True)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """Batch ``{"index": (N,)}``: sample ``i`` comes from seed ``sample_seed + i`` (reproducible per image)."""
        index = batch["index"]
        inputs = [self.sample_inputs(1, seed=self.hparams.sample_seed + int(i)) for i in index.tolist()]
        stacked = {k: torch.cat([d[k] for d in inputs]) for k in inputs[0]}
        return {"images": self.generate(stacked), "index": index}

    # ------------------------------------------------------------------------------------------------------------
    # Checkpoint: the counters that Lightning does not know about.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_modules"] = {
            "generator_steps": self.generator_steps,
            "discriminator_steps": self.discriminator_steps,
            "critic_count": self._critic_count,
            "nonfinite_skips": self.nonfinite_skips,
            "class_path": f"{type(self).__module__}.{type(self).__qualname__}",
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("gan_modules", {})
        self.generator_steps = state.get("generator_steps", 0)
        self.discriminator_steps = state.get("discriminator_steps", 0)
        self._critic_count = state.get("critic_count", 0)
        self.nonfinite_skips = state.get("nonfinite_skips", 0)
