"""The adversarial training loop shared by every GAN (manual optimization). It knows nothing of noise, labels or
translation: those belong to the two families built on it, ``gan_modules.image_gan.ImageGAN`` (noise/labels →
image) and ``gan_modules.translation.TranslationModule`` (image → image).

Per batch the loop builds one ``StepContext`` (``make_context``), runs the discriminator step, and every
``critic_steps()`` D steps a generator step (CycleGAN-style variants: G first, then D). A variant supplies
``discriminator_loss(batch, ctx)`` and ``generator_loss(batch, ctx)`` (each ``(loss, logs)``); the loop adds the
configured penalty (``penalty``/``penalty_weight``) to the D loss over the critics the variant recorded in the context,
freezes the other network's parameters during each step, skips non-finite steps (``NonFiniteGuard``), updates the EMA
of G (``EMA``), steps schedulers, counts steps, and keeps the per-rank random streams (``RandomStreams``) in checkpoints.

Training length is counted in **generator steps**, as papers report it. Lightning's ``trainer.global_step``
counts every ``optimizer.step()`` of every optimizer (Lightning issue #17958), so with two optimizers and n_critic
it means something else; use ``model.max_generator_steps`` (the CLI and configs do) and leave
``trainer.max_steps`` unset.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from . import _compat
from .checkpoint import check_checkpoint_class
from .context import Batch, StepContext
from .ema import EMA, recompute_batchnorm_statistics
from .errors import ConfigError
from .guard import NonFiniteGuard
from .losses import get_loss
from .penalties import check_penalty_config, clip_weights_, get_penalty, loss_scaler
from .rng import RandomStreams, gather, global_rng_state, set_global_rng_state

log = logging.getLogger(__name__)

#: format of the ``checkpoint["gan_modules"]`` entry (2: per-rank RNG streams, guard state, EMA schedule)
STATE_VERSION = 2


class AdversarialModule(L.LightningModule):
    """Base LightningModule for GANs: D step(s), then a G step every ``n_critic`` D steps.

    Args:
        image_size: side of the square images (linked from the datamodule by the CLI).
        channels: image channels (linked from the datamodule).
        num_classes: number of classes/domains of the data (linked from the datamodule; conditional variants).
        loss: adversarial objective by name (see ``gan_modules.losses.LOSSES``).
        n_critic: discriminator steps per generator step.
        max_generator_steps: stop after this many generator steps (None: let the trainer's epochs decide).
        ema_decay: decay of the exponential moving average of G's weights used for sampling (None: off); see
            ``gan_modules.ema``: the EMA copy gets its own BatchNorm statistics before it samples.
        ema_start: generator steps during which the EMA is a copy of G; averaging (with a warm-up of the decay,
            ``min(decay, (1 + t) / (10 + t))`` over the steps ``t`` since the start) begins after them.
        optimizer_g: optimizer factory for G (None: the variant's paper default, see ``default_optimizer``).
        optimizer_d: optimizer factory for D (None: the variant's paper default).
        lr_scheduler_g: LR scheduler factory for G's optimizer (None: constant LR).
        lr_scheduler_d: LR scheduler factory for D's optimizer (None: constant LR).
        lr_scheduler_interval: step schedulers once per ``"generator_step"`` or once per ``"epoch"``.
        sample_seed: seed of the fixed inputs of sample grids and ``predict``.
        penalty: discriminator penalty by name (``gan_modules.penalties.PENALTIES``: ``gradient_penalty``, ``r1``),
            added by the loop to D's loss times ``penalty_weight`` over the discriminator calls the variant records
            (conditional: with the labels; Pix2Pix: on (input, output) pairs; CycleGAN: both discriminators);
            None: no penalty.
        penalty_weight: the penalty's weight (WGAN-GP's λ = 10; R1's γ).
        weight_clip: clip every D parameter to [-c, c] after each D step (WGAN's c = 0.01); None: no clipping.
        fused_optimizer: build the optimizers with ``fused=True`` (one kernel per step instead of one per
            parameter). None (default): on CUDA when the optimizer supports it and there is no fp16 loss scaler
            (under ``16-mixed`` Lightning does not unscale before ``on_before_optimizer_step`` for fused
            optimizers); an optimizer config that sets ``fused`` or ``foreach`` itself always wins.
        channels_last: store the networks' conv weights and the batch's images in ``torch.channels_last`` (NHWC):
            faster convolutions on tensor-core GPUs, especially under ``bf16-mixed``/``16-mixed``.
        compile_nets: ``torch.compile`` G and D (with ``module.compile()``, so checkpoint keys do not change); the
            penalty pass stays eager (double backward through compiled graphs is unsupported).
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
        loss: str = "non_saturating",
        n_critic: int = 1,
        max_generator_steps: int | None = None,
        ema_decay: float | None = 0.999,
        ema_start: int = 0,
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
        if self.generator_first and n_critic != 1:
            raise ConfigError(f"{type(self).__name__} updates G before D on every batch; n_critic must be 1")
        if lr_scheduler_interval not in ("generator_step", "epoch"):
            raise ConfigError(f"lr_scheduler_interval must be 'generator_step' or 'epoch', got {lr_scheduler_interval!r}")
        self.adversarial_loss = get_loss(loss)
        check_penalty_config(penalty, penalty_weight, weight_clip)
        self.ema = EMA(ema_decay, ema_start) if ema_decay is not None else None
        self.guard = NonFiniteGuard(max_nonfinite_steps) if max_nonfinite_steps is not None else None
        self.streams = RandomStreams()
        self.automatic_optimization = False
        self._optimizer_factories = (optimizer_g, optimizer_d)
        self._scheduler_factories = (lr_scheduler_g, lr_scheduler_d)
        # Step counters: plain ints (no device sync), saved in the checkpoint by on_save_checkpoint.
        self.generator_steps = 0
        self.discriminator_steps = 0
        self._critic_count = 0
        self._pending_rng: dict[str, Any] | None = None  # every rank's streams from a checkpoint (first batch)
        self._rng_outside_validation: dict[str, Any] | None = None
        self._scheduler_epochs: int | None = 0
        self._checked_batch = False
        self._ema_statistics_step: int | None = None  # generator step of the EMA's last standing statistics
        self.generator: nn.Module
        self.discriminator: nn.Module
        self.generator_ema: nn.Module | None = None

    # ------------------------------------------------------------------------------------------------------------
    # What a family or variant provides
    def make_context(self, batch: Batch, generator_step: bool) -> StepContext:
        """The iteration's context (see ``gan_modules.context``); families draw their inputs here."""
        return self.new_context(batch, generator_step)

    def new_context(self, batch: Batch, generator_step: bool) -> StepContext:
        """An empty context whose random draws come from this rank's noise stream."""
        return StepContext(batch, self.streams.ensure(self.device), generator_step)

    def discriminator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        """D's loss and logs; record the discriminator calls to penalise with ``ctx.add_critic``."""
        raise NotImplementedError

    def generator_loss(self, batch: Batch, ctx: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        """G's loss and logs."""
        raise NotImplementedError

    def after_discriminator_step(self) -> None:
        """Hook run after every discriminator update; clips D's weights when ``hparams.weight_clip`` is set (WGAN)."""
        if self.hparams.get("weight_clip") is not None:
            clip_weights_(self.discriminator.parameters(), self.hparams.weight_clip)

    def critic_steps(self) -> int:
        """Discriminator steps before the next generator step; may depend on ``self.generator_steps``."""
        return self.hparams.n_critic

    def check_batch(self, batch: Batch) -> None:
        """Fails with one clear line when the data does not match the model (called on the first batch)."""

    def rank_state(self) -> dict[str, Any]:
        """State that differs between DDP ranks besides the random streams (CycleGAN's history pools): saved for every
        rank in checkpoints and given back to the same rank by ``load_rank_state`` before the first resumed batch."""
        return {}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        """Restores what ``rank_state`` returned on this rank."""

    def standing_inputs(self) -> Iterable[dict[str, Tensor]] | None:
        """Generator inputs for the EMA copy's BatchNorm statistics (None: keep the copied statistics)."""
        return None

    def finish_setup(self, generator: nn.Module, discriminator: nn.Module) -> None:
        """Registers the networks (call at the end of a variant's ``__init__``) and builds the EMA copy of G."""
        self.generator = generator
        self.discriminator = discriminator
        if self.ema is not None:
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False)

    def check_images(self, images: Tensor) -> None:
        """One-line errors when images do not have the model's channels and size."""
        c, s = self.hparams.channels, self.hparams.image_size
        if images.shape[1] != c:
            raise ConfigError(
                f"data has {images.shape[1]} channel(s) but the model was built for {c}; set --data.channels {c} "
                f"or --model.init_args.channels {images.shape[1]}"
            )
        if tuple(images.shape[-2:]) != (s, s):
            raise ConfigError(
                f"data images are {tuple(images.shape[-2:])} but the model was built for {s}x{s}; set "
                f"--data.image_size {s}"
            )

    # ------------------------------------------------------------------------------------------------------------
    # Sampling
    @property
    def nonfinite_skips(self) -> int:
        return self.guard.skips if self.guard is not None else 0

    @contextlib.contextmanager
    def sampling_from(self, use_ema: bool) -> Iterator[None]:
        """Inside, every sampling call that does not choose (``use_ema=None``) uses the EMA copy or, with
        ``use_ema=False``, the raw G (sample grids of the raw generator, for instance)."""
        previous, self._use_ema_default = getattr(self, "_use_ema_default", True), use_ema
        try:
            yield
        finally:
            self._use_ema_default = previous

    def sampling_generator(self, use_ema: bool | None = None) -> nn.Module:
        """The network to sample from: the EMA copy (with BatchNorm statistics of its own weights, recomputed when
        they are stale) when there is one and ``use_ema`` (None: see ``sampling_from``, True by default), else G."""
        if use_ema is None:
            use_ema = getattr(self, "_use_ema_default", True)
        if not use_ema or self.generator_ema is None:
            return self.generator
        if self._ema_statistics_step != self.generator_steps:
            inputs = self.standing_inputs()
            if inputs is not None:
                recompute_batchnorm_statistics(self.generator_ema, inputs)
            self._ema_statistics_step = self.generator_steps
        return self.generator_ema

    @torch.no_grad()
    def generate(self, inputs: dict[str, Tensor], use_ema: bool | None = None) -> Tensor:
        """Images in [-1, 1] from the (EMA) generator in eval mode; the network's mode is restored afterwards."""
        net = self.sampling_generator(use_ema)
        was_training = net.training
        net.eval()
        try:
            return net(**inputs).float().clamp(-1, 1)
        finally:
            net.train(was_training)

    # ------------------------------------------------------------------------------------------------------------
    # Optimizers
    def _make_optimizer(self, factory: OptimizerCallable | None, params: Any) -> torch.optim.Optimizer:
        if factory is not None:
            parts = _compat.optimizer_factory_parts(factory)
            if parts is not None:
                cls, keywords = parts
                return factory(params, **self._fused_kwargs(cls, keywords))
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
        if choice is None and (self.device.type != "cuda" or loss_scaler(_compat.attached_trainer(self)) is not None):
            return {}
        try:
            takes_fused = "fused" in inspect.signature(cls).parameters
        except (TypeError, ValueError):
            takes_fused = False
        return {"fused": True} if takes_fused else {}

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
        """Context in which compiled networks run eagerly (the penalty pass: double backward)."""
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
        trainer = _compat.attached_trainer(self)
        if trainer is None:
            return False
        return bool(trainer.fast_dev_run) or _compat.should_update_logs(trainer)

    # ------------------------------------------------------------------------------------------------------------
    # The loop
    @contextlib.contextmanager
    def _frozen(self, net: nn.Module) -> Iterator[None]:
        """``net``'s parameters take no gradient inside (the network that is not being stepped)."""
        params = [p for p in net.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def _add_penalty(self, loss: Tensor, logs: dict[str, Tensor], ctx: StepContext) -> Tensor:
        name, weight = self.hparams.get("penalty"), self.hparams.get("penalty_weight", 0.0)
        if name is None or weight == 0:
            return loss
        if not ctx.critics:
            raise ConfigError(f"{type(self).__name__} recorded no discriminator call to penalise; set "
                              "--model.init_args.penalty null")
        fn, scaler = get_penalty(name), loss_scaler(_compat.attached_trainer(self))
        with self._eager():  # double backward through a compiled D is unsupported: the penalty pass runs eagerly
            value = sum(fn(c.critic, c.real, c.fake, scaler=scaler, rand=ctx.rand) for c in ctx.critics)
        logs[name] = value.detach()
        return loss + weight * value

    def _optimize(self, network: Literal["generator", "discriminator"], opt, batch: Batch,
                  ctx: StepContext) -> dict[str, Tensor]:
        other = self.discriminator if network == "generator" else self.generator
        with self._frozen(other):
            if network == "generator":
                loss, logs = self.generator_loss(batch, ctx)
            else:
                loss, logs = self.discriminator_loss(batch, ctx)
                loss = self._add_penalty(loss, logs, ctx)
            self.manual_backward(loss)
            finite = True
            if self.guard is not None and loss_scaler(_compat.attached_trainer(self)) is None:
                grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
                finite = self.guard.is_finite(loss, grads)
            if finite:  # else skip: weights and optimizer state (moments, step count) untouched
                opt.step()
            opt.zero_grad(set_to_none=True)
        if self.guard is not None:
            self.guard.record(network, finite, f"generator step {self.generator_steps}")
        return logs

    def _discriminator_update(self, batch: Batch, ctx: StepContext, opt_d) -> dict[str, Tensor]:
        logs = self._optimize("discriminator", opt_d, batch, ctx)
        self.after_discriminator_step()
        self.discriminator_steps += 1
        return logs

    def _generator_update(self, batch: Batch, ctx: StepContext, opt_g) -> dict[str, Tensor]:
        logs = self._optimize("generator", opt_g, batch, ctx)
        self.update_ema()
        self.generator_steps += 1
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
        g_step = self.generator_first or self._critic_count + 1 >= self.critic_steps()
        ctx = self.make_context(batch, g_step)
        logs: dict[str, Tensor] = {}
        if self.generator_first:
            logs.update(self._generator_update(batch, ctx, opt_g))
            logs.update(self._discriminator_update(batch, ctx, opt_d))
        else:
            logs.update(self._discriminator_update(batch, ctx, opt_d))
            self._critic_count += 1
            if g_step:
                self._critic_count = 0
                logs.update(self._generator_update(batch, ctx, opt_g))
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

    # ------------------------------------------------------------------------------------------------------------
    # Random streams: this rank's own (see gan_modules.rng), restored exactly on resume.
    @staticmethod
    def run_seed() -> int:
        """The run's seed: what ``seed_everything`` set (``PL_GLOBAL_SEED``), else torch's initial seed."""
        seed = os.environ.get("PL_GLOBAL_SEED")
        return int(seed) if seed is not None and seed.lstrip("-").isdigit() else torch.initial_seed()

    def on_fit_start(self) -> None:
        self.streams.start(self.run_seed(), self.global_rank, self.trainer.world_size, self.device)
        settings = self.optimizer_settings()
        for logger in self.loggers:  # the effective optimizers (paper defaults included), for comparing and sweeping
            logger.log_hyperparams(settings)

    def optimizer_settings(self) -> dict[str, Any]:
        """``{"optimizer/g/class": "Adam", "optimizer/g/lr": 2e-4, "optimizer/g/betas": "(0.5, 0.999)", ...}`` of the
        optimizers and schedulers in use (also when they come from the variant's paper defaults)."""
        out: dict[str, Any] = {}
        opts = self.optimizers()
        for net, opt in zip(("g", "d"), opts if isinstance(opts, list) else [opts]):
            inner = getattr(opt, "optimizer", opt)
            out[f"optimizer/{net}/class"] = type(inner).__name__
            for key, value in inner.defaults.items():
                if key in ("lr", "betas", "momentum", "weight_decay", "eps", "alpha", "nesterov"):
                    out[f"optimizer/{net}/{key}"] = value if isinstance(value, (int, float, bool)) else str(value)
        scheds = self.lr_schedulers() or []
        for i, sched in enumerate(scheds if isinstance(scheds, list) else [scheds]):
            out[f"lr_scheduler/{i}/class"] = type(sched).__name__
        return out

    def _restore_streams(self) -> None:
        saved, self._pending_rng = self._pending_rng, None
        ranks = saved.get("ranks") if isinstance(saved, dict) and "ranks" in saved else [saved]
        world, rank = self.trainer.world_size, self.global_rank
        if len(ranks) == world:
            self.streams.load(ranks[rank], self.device)
            self.load_rank_state(ranks[rank].get("variant") or {})
        else:  # another number of ranks: reproducible fresh streams (the old ones cannot be split or merged)
            rank_zero_warn(f"the checkpoint holds the random streams of {len(ranks)} rank(s) but this run has {world}: "
                           "each rank starts fresh streams (the run continues, but not bit-identically)")
            if rank < len(ranks):
                self.load_rank_state(ranks[rank].get("variant") or {})
            self.streams.start(self.run_seed() + self.generator_steps, rank, world, self.device)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self._pending_rng is not None:
            # A resumed fit continues the saved random streams right before its first batch: the checkpoint was
            # written after a batch, and whatever Lightning does before the next one on a restart (re-creating
            # loaders, which draws seeds from the global RNG; fast-forwarding a validation) is thereby undone.
            self._restore_streams()
            self._catch_up_epoch_schedulers()
        max_g = self.hparams.max_generator_steps
        if max_g is not None and self.generator_steps >= max_g:  # resumed a finished run: do nothing more
            self.trainer.should_stop = True
            return -1
        return None

    # ------------------------------------------------------------------------------------------------------------
    # EMA of the generator
    def update_ema(self) -> None:
        """One EMA step after generator step ``generator_steps`` (see ``gan_modules.ema.EMA``)."""
        if self.ema is not None and self.generator_ema is not None:
            self.ema.update(self.generator_ema, self.generator, self.generator_steps)

    # ------------------------------------------------------------------------------------------------------------
    # Evaluation
    def evaluation_scores(self, batch: Batch) -> dict[str, Tensor]:
        """Scalars that describe the model on a held-out batch (the families define them)."""
        return {}

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        scores = self.evaluation_scores(batch)
        if scores:
            self.log_dict({f"val/{k}": v for k, v in scores.items()}, on_epoch=True, sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        scores = self.evaluation_scores(batch)
        if scores:
            self.log_dict({f"test/{k}": v for k, v in scores.items()}, on_epoch=True, sync_dist=True)

    # ------------------------------------------------------------------------------------------------------------
    # Checkpoint: the state Lightning does not know about.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = _compat.attached_trainer(self)
        world = trainer.world_size if trainer is not None else 1
        checkpoint["gan_modules"] = {
            "version": STATE_VERSION,
            "generator_steps": self.generator_steps,
            "discriminator_steps": self.discriminator_steps,
            "critic_count": self._critic_count,
            "guard": self.guard.state_dict() if self.guard is not None else None,
            "scheduler_epochs": self._scheduler_epochs,  # epochs whose per-epoch scheduler step was taken
            "class_path": f"{type(self).__module__}.{type(self).__qualname__}",
            # Every rank's random streams (noise generator, torch/CUDA, numpy and python RNGs: z, labels, penalty
            # weights, dropout), which Lightning does not save: restored right before the first batch of the
            # resumed fit, so that each rank draws exactly the numbers of the uninterrupted run. Gathering is a
            # collective: Lightning calls this hook on every rank (Trainer.save_checkpoint runs on all of them).
            "rng": {"world_size": world, "ranks": gather({**self.streams.state(), "variant": self.rank_state()}, world)},
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
        if self.guard is not None and state.get("guard"):
            self.guard.load_state_dict(state["guard"])
        self._pending_rng = state.get("rng")  # applied at the first on_train_batch_start of a resumed fit
        self._scheduler_epochs = state.get("scheduler_epochs")
        self._ema_statistics_step = None  # loaded EMA weights: recompute their BatchNorm statistics before sampling

    # Validation inside fit draws noise (and its loader a seed) from the global RNG; it runs on a copy of the RNG
    # streams so that it never changes the training trajectory (and a resumed run need not repeat it to stay
    # exact). Lightning calls on_validation_model_zero_grad before the val loader's iterator exists and
    # on_validation_model_train after the last validation hook.
    def on_validation_model_zero_grad(self) -> None:
        super().on_validation_model_zero_grad()
        self._rng_outside_validation = global_rng_state()

    def on_validation_model_train(self) -> None:
        super().on_validation_model_train()
        if self._rng_outside_validation is not None:
            set_global_rng_state(self._rng_outside_validation)
            self._rng_outside_validation = None


__all__ = ["AdversarialModule", "Batch", "StepContext"]
