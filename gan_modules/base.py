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

import contextlib
import copy
import functools
import inspect
import math
import os
import logging
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from .checkpoint import check_checkpoint_class, rng_state, set_rng_state
from .errors import ConfigError
from .losses import d_real_fake_scores, get_loss
from .penalties import check_penalty_config, clip_weights_, get_penalty, loss_scaler

Batch = dict[str, Tensor]
log = logging.getLogger(__name__)


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
        penalty: discriminator penalty by name (see ``gan_modules.penalties.PENALTIES``: ``gradient_penalty``,
            ``r1``), added to D's loss times ``penalty_weight``; None: no penalty.
        penalty_weight: the penalty's weight (WGAN-GP's λ = 10; R1's γ).
        weight_clip: clip every D parameter to [-c, c] after each D step (WGAN's c = 0.01); None: no clipping.
        fused_optimizer: build the optimizers with ``fused=True`` (one kernel per step instead of one per
            parameter). None (default): on CUDA when the optimizer supports it and there is no fp16 loss scaler
            (under ``16-mixed`` Lightning does not unscale before ``on_before_optimizer_step`` for fused
            optimizers); an optimizer config that sets ``fused`` or ``foreach`` itself always wins.
        channels_last: store the networks' conv weights and the batch's images in ``torch.channels_last`` (NHWC):
            faster convolutions on tensor-core GPUs, especially under ``bf16-mixed``/``16-mixed``.
        compile_nets: ``torch.compile`` G and D (with ``module.compile()``, so checkpoint keys do not change); the
            gradient penalty pass stays eager (double backward through compiled graphs is unsupported).
        max_nonfinite_steps: non-finite guard: an optimizer step whose loss or gradient is inf/NaN is skipped (the
            weights and optimizer state stay as they were) and counted (``train/nonfinite_skips``); this many skips
            in a row stop training with a clear error. Costs one host sync per optimizer step; None turns the guard
            off. Under ``16-mixed`` the GradScaler already skips such steps, so the guard stands aside.
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
        penalty: str | None = None,
        penalty_weight: float = 10.0,
        weight_clip: float | None = None,
        fused_optimizer: bool | None = None,
        channels_last: bool = False,
        compile_nets: bool = False,
        max_nonfinite_steps: int | None = 10,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer_g", "optimizer_d", "lr_scheduler_g", "lr_scheduler_d"])
        if n_critic < 1:
            raise ConfigError(f"n_critic must be >= 1 (discriminator steps per generator step), got {n_critic}")
        if max_generator_steps is not None and max_generator_steps < 1:
            raise ConfigError(f"max_generator_steps must be >= 1, got {max_generator_steps}")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1) or null to disable EMA, got {ema_decay}")
        if max_nonfinite_steps is not None and max_nonfinite_steps < 1:
            raise ConfigError(f"max_nonfinite_steps must be >= 1 (skipped non-finite steps in a row before stopping) "
                              f"or null to turn the guard off, got {max_nonfinite_steps}")
        if self.generator_first and n_critic != 1:
            raise ConfigError(f"{type(self).__name__} updates G before D on every batch; n_critic must be 1")
        self.adversarial_loss = get_loss(loss)
        check_penalty_config(penalty, penalty_weight, weight_clip)
        self.automatic_optimization = False
        self._optimizer_factories = (optimizer_g, optimizer_d)
        self._scheduler_factories = (lr_scheduler_g, lr_scheduler_d)
        # Step counters: plain ints (no device sync), saved in the checkpoint by on_save_checkpoint.
        self.generator_steps = 0
        self.discriminator_steps = 0
        self._critic_count = 0
        self.nonfinite_skips = 0
        self._nonfinite_streak: dict[str, int] = {}  # skipped steps in a row, per network (non-finite guard)
        self._pending_rng: dict[str, Any] | None = None  # RNG states of a checkpoint, applied at on_train_start
        self._rng_outside_validation: dict[str, Any] | None = None
        self._scheduler_epochs: int | None = 0
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
        """Extra D loss term (gradient penalty, R1, ...): ``(penalty or None, logs)``. The default applies
        ``hparams.penalty`` (by name) with ``hparams.penalty_weight``, through ``discriminate`` (so it is conditional
        for conditional variants) and with the fp16 loss scaler when there is one."""
        name = self.hparams.get("penalty")
        if name is None or self.hparams.penalty_weight == 0:
            return None, {}
        with self._eager():  # double backward through a compiled D is unsupported: the penalty pass runs eagerly
            value = get_penalty(name)(lambda x: self.discriminate(x, batch), real, fake,
                                      scaler=loss_scaler(self._trainer))
        return self.hparams.penalty_weight * value, {name: value.detach()}

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
        """Hook run after every discriminator update; clips D's weights when ``hparams.weight_clip`` is set (WGAN)."""
        if self.hparams.get("weight_clip") is not None:
            clip_weights_(self.discriminator.parameters(), self.hparams.weight_clip)

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
            if isinstance(factory, functools.partial):  # LightningCLI's OptimizerCallable: partial(cls, **init_args)
                cls = next((a for a in factory.args if inspect.isclass(a)), factory.func)
                return factory(params, **self._fused_kwargs(cls, factory.keywords))
            return factory(params)
        kwargs = dict(self.default_optimizer)
        cls = getattr(torch.optim, kwargs.pop("name"))
        return cls(params, **kwargs, **self._fused_kwargs(cls, kwargs))

    def _fused_kwargs(self, cls: Any, explicit: dict[str, Any]) -> dict[str, Any]:
        """``{"fused": True}`` when ``hparams.fused_optimizer`` asks for it (None: on CUDA without an fp16 scaler),
        the optimizer class takes ``fused`` and the config did not choose ``fused``/``foreach`` itself."""
        choice = self.hparams.get("fused_optimizer")
        if choice is False or "fused" in explicit or explicit.get("foreach") is not None:
            return {}
        if choice is None and (self.device.type != "cuda" or loss_scaler(self._trainer) is not None):
            return {}
        try:
            takes_fused = "fused" in inspect.signature(cls).parameters
        except (TypeError, ValueError):
            takes_fused = False
        return {"fused": True} if takes_fused else {}

    # ------------------------------------------------------------------------------------------------------------
    # Speed options: channels_last and torch.compile of G and D (not of the whole LightningModule, Lightning #21513).
    def setup(self, stage: str) -> None:
        if self.hparams.get("channels_last"):
            for net in (self.generator, self.discriminator, self.generator_ema):
                if net is not None:
                    net.to(memory_format=torch.channels_last)  # 4-D weights only; keeps parameter identity
        if self.hparams.get("compile_nets") and not getattr(self, "_nets_compiled", False):
            for net in (self.generator, self.discriminator):
                for m in net.values() if isinstance(net, nn.ModuleDict) else [net]:
                    m.compile()  # in place: state-dict keys keep their names (torch.compile(m) adds _orig_mod.)
            self._nets_compiled = True

    def _eager(self):
        """Context in which compiled networks run eagerly (the gradient-penalty pass)."""
        if getattr(self, "_nets_compiled", False):
            return torch.compiler.set_stance("force_eager")
        return contextlib.nullcontext()

    @staticmethod
    def _channels_last_batch(batch: Batch) -> Batch:
        return {k: v.contiguous(memory_format=torch.channels_last) if isinstance(v, Tensor) and v.ndim == 4 else v
                for k, v in batch.items()}

    def _should_log_step(self) -> bool:
        """Log training scalars only on the steps Lightning writes to the loggers (every
        ``trainer.log_every_n_steps`` batches, the last step, every step under ``fast_dev_run``): logging a value
        costs a host-to-device copy and the progress bar reads logged tensors back (a device sync) at every refresh."""
        trainer = self._trainer
        if trainer is None:
            return False
        if trainer.fast_dev_run:
            return True
        connector = getattr(trainer, "_logger_connector", None)
        return bool(getattr(connector, "should_update_logs", True))

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
            network = getattr(loss_fn, "__name__", "optimizer").replace("_loss", "")
            if self._nonfinite(loss, opt):  # skip: weights and optimizer state (moments, step count) untouched
                self._skip_nonfinite(network)
            else:
                self._nonfinite_streak[network] = 0
                opt.step()
            opt.zero_grad(set_to_none=True)
        finally:
            self.untoggle_optimizer(opt)
        return logs

    # ------------------------------------------------------------------------------------------------------------
    # Non-finite guard: one device reduction and one host sync per optimizer step (like GradScaler's own check).
    def _nonfinite(self, loss: Tensor, opt) -> bool:
        """True when ``loss`` or any gradient of ``opt``'s parameters is inf/NaN (guard on, no fp16 scaler)."""
        if self.hparams.get("max_nonfinite_steps") is None or loss_scaler(self._trainer) is not None:
            return False  # off, or 16-mixed: the GradScaler skips inf/NaN steps itself (and calibrates its scale)
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        total = loss.detach().float().sum()
        if grads:  # inf/NaN anywhere makes a norm non-finite; one fused reduction instead of a check per tensor
            total = total + torch.stack(torch._foreach_norm(grads)).float().sum()
        return not bool(torch.isfinite(total))

    def _skip_nonfinite(self, network: str) -> None:
        self.nonfinite_skips += 1
        streak = self._nonfinite_streak[network] = self._nonfinite_streak.get(network, 0) + 1
        limit = self.hparams.max_nonfinite_steps
        where = f"generator step {self.generator_steps}"
        if streak >= limit:
            raise ConfigError(
                f"training diverged: {streak} {network} optimizer steps in a row had a non-finite loss or "
                f"gradient (last: {network} at {where}); the weights are those of the last finite step and the last "
                "checkpoint is kept: lower the learning rate, use --trainer.precision 32-true or bf16-mixed, or "
                "raise --model.init_args.max_nonfinite_steps"
            )
        log.warning(f"non-finite {network} loss or gradient at {where}: update skipped "
                    f"({streak} in a row, {self.nonfinite_skips} in total)")

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
        if self.hparams.get("channels_last") and isinstance(batch, dict):
            batch = self._channels_last_batch(batch)
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
        if self._should_log_step():  # at the logging interval only: no per-step host-to-device copy or sync
            n = next((v.shape[0] for v in batch.values() if isinstance(v, Tensor) and v.ndim > 0), 1)
            self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=False, on_step=True, on_epoch=False,
                          batch_size=n)
            self.log("train/generator_step", float(self.generator_steps), on_step=True, on_epoch=False,
                     prog_bar=True, batch_size=n)
            self.log("train/nonfinite_skips", float(self.nonfinite_skips), on_step=True, on_epoch=False,
                     batch_size=n)

    def on_train_epoch_end(self) -> None:
        if self.hparams.lr_scheduler_interval == "epoch":
            self._step_schedulers()
            self._scheduler_epochs = self.trainer.current_epoch + 1

    def _catch_up_epoch_schedulers(self) -> None:
        """A checkpoint written after an epoch's last batch precedes that epoch's scheduler step, and Lightning does
        not re-run on_train_epoch_end when it resumes there: take the missing steps before the next batch."""
        done = self._scheduler_epochs
        if self.hparams.get("lr_scheduler_interval") == "epoch" and done is not None:
            for _ in range(max(0, self.trainer.current_epoch - done)):
                self._step_schedulers()
            self._scheduler_epochs = max(done, self.trainer.current_epoch)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self._pending_rng is not None:
            # A resumed fit continues the saved random streams right before its first batch: the checkpoint was
            # written after a batch, and whatever Lightning does before the next one on a restart (re-creating
            # loaders, which draws seeds from the global RNG; fast-forwarding a validation) is thereby undone.
            set_rng_state(self._pending_rng)
            self._pending_rng = None
            self._catch_up_epoch_schedulers()
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
            "nonfinite_streak": dict(self._nonfinite_streak),
            "scheduler_epochs": self._scheduler_epochs,  # epochs whose per-epoch scheduler step was taken
            "class_path": f"{type(self).__module__}.{type(self).__qualname__}",
            # torch CPU/CUDA, numpy and python RNGs (dropout, noise z, penalty interpolation), which Lightning does
            # not save: restored right before the first batch of the resumed fit, so that it draws exactly the
            # numbers of the uninterrupted run.
            "rng": rng_state(),
        }

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None, **kwargs):
        """Lightning's loader, after a weights-only read that refuses corrupt files and checkpoints of another model
        class with one line (Lightning would first build ``cls(**their hyperparameters)`` and fail inside it)."""
        from .checkpoint import read_checkpoint

        if isinstance(checkpoint_path, (str, os.PathLike)):
            state = read_checkpoint(checkpoint_path).get("gan_modules") or {}
            check_checkpoint_class(state.get("class_path"), cls)
        kwargs.setdefault("weights_only", True)
        return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, **kwargs)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("gan_modules", {})
        check_checkpoint_class(state.get("class_path"), type(self))
        self.generator_steps = state.get("generator_steps", 0)
        self.discriminator_steps = state.get("discriminator_steps", 0)
        self._critic_count = state.get("critic_count", 0)
        self.nonfinite_skips = state.get("nonfinite_skips", 0)
        self._nonfinite_streak = dict(state.get("nonfinite_streak") or {})
        self._pending_rng = state.get("rng")  # applied at the first on_train_batch_start of the resumed fit
        self._scheduler_epochs = state.get("scheduler_epochs")

    # Validation inside fit draws noise (and its loader a seed) from the global RNG; it runs on a copy of the RNG
    # streams so that it never changes the training trajectory (and a resumed run need not repeat it to stay
    # exact). Lightning calls on_validation_model_zero_grad before the val loader's iterator exists and
    # on_validation_model_train after the last validation hook.
    def on_validation_model_zero_grad(self) -> None:
        super().on_validation_model_zero_grad()
        self._rng_outside_validation = rng_state()

    def on_validation_model_train(self) -> None:
        super().on_validation_model_train()
        if self._rng_outside_validation is not None:
            set_rng_state(self._rng_outside_validation)
            self._rng_outside_validation = None
