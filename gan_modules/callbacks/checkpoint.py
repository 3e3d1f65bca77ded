"""``GANCheckpoint``: Lightning's ``ModelCheckpoint`` counted in generator steps and seconds, written atomically, and
saved when the job is pre-empted (SIGTERM).

Why not plain ``ModelCheckpoint``: its ``every_n_train_steps`` counts every optimizer step of both networks
(Lightning #17958), so "every 1000 steps" means something different for every n_critic; its write truncates the
target first (``fs.open(path, "wb")``), so a kill during the write can leave a broken ``last.ckpt``; and on SIGTERM
(how SLURM and Kubernetes pre-empt) Lightning stops after the current batch without saving anything.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .._compat import CheckpointHooks
from ..errors import ConfigError
from ..preemption import SigtermWatchdog


class GANCheckpoint(CheckpointHooks):
    """``ModelCheckpoint`` (every argument of it works) plus:

    Args:
        every_n_generator_steps: save every N generator steps (what papers and ``max_generator_steps`` count);
            None: no step trigger.
        every_n_seconds: also save when this many seconds of training have passed since the last save (bounds the
            work a kill can lose on slow models); None: no time trigger. Under DDP rank 0's clock decides, checked
            every 16 batches (one broadcast then, none in between).
        save_on_sigterm: on SIGTERM, save (``last.ckpt``) at the end of the running batch before Lightning exits.
        sigterm_timeout: seconds after a SIGTERM by which the process ends in any case, also when a rank is stuck in
            a collective and cannot save (see ``gan_modules.preemption``); None: wait for training to stop.
        save_last: as in ``ModelCheckpoint``, but True by default.
        *args: see ``lightning.pytorch.callbacks.ModelCheckpoint``.
        **kwargs: see ``lightning.pytorch.callbacks.ModelCheckpoint`` (``save_last``, ``save_top_k``, ``dirpath``...).

    Every file is written to a temporary name in the same folder, flushed to disk and moved into place with
    ``os.replace`` (atomic on POSIX and Windows), so ``last.ckpt`` is always either the previous complete checkpoint or
    the new complete one. ``fit --ckpt_path last`` also finds ``last.ckpt`` of an earlier logger version
    (``runs/<name>/version_*/checkpoints/``), since each run of a versioned logger writes into a new folder. Every
    save runs on every rank (Lightning's checkpointing needs all of them); only global rank 0 writes.
    """

    #: under DDP the time trigger is checked (one broadcast) every this many batches
    TIME_CHECK_EVERY = 16

    def __init__(self, *args: Any, every_n_generator_steps: int | None = None, every_n_seconds: float | None = None,
                 save_on_sigterm: bool = True, sigterm_timeout: float | None = 60.0, **kwargs: Any):
        if every_n_generator_steps is not None and every_n_generator_steps < 1:
            raise ConfigError(f"checkpoint.every_n_generator_steps must be >= 1 or null, got {every_n_generator_steps}")
        if every_n_seconds is not None and every_n_seconds <= 0:
            raise ConfigError(f"checkpoint.every_n_seconds must be > 0 or null, got {every_n_seconds}")
        if sigterm_timeout is not None and sigterm_timeout <= 0:
            raise ConfigError(f"checkpoint.sigterm_timeout must be > 0 seconds or null, got {sigterm_timeout}")
        kwargs.setdefault("save_last", True)  # last.ckpt is what `--ckpt_path last` resumes from
        super().__init__(*args, **kwargs)
        self.every_n_generator_steps = every_n_generator_steps
        self.every_n_seconds = every_n_seconds
        self.save_on_sigterm = save_on_sigterm
        self.sigterm_timeout = sigterm_timeout
        self._last_save_time = time.monotonic()
        self._saved_state: tuple[int, ...] | None = None  # (global_step, generator_steps, discriminator_steps)
        self._last_trigger_g = -1
        self._watchdog: SigtermWatchdog | None = None

    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def _state_key(trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[int, ...]:
        return (trainer.global_step, getattr(pl_module, "generator_steps", -1),
                getattr(pl_module, "discriminator_steps", -1))

    def _due(self, trainer: L.Trainer, pl_module: L.LightningModule, batch_idx: int) -> bool:
        n, g = self.every_n_generator_steps, getattr(pl_module, "generator_steps", trainer.global_step)
        if n is not None and g > 0 and g % n == 0 and g != self._last_trigger_g:  # the same on every rank
            self._last_trigger_g = g  # once per generator step, not again after the next D-only batches
            return True
        due = False
        if self.every_n_seconds is not None:
            if trainer.world_size > 1:  # clocks differ per process: rank 0 decides for all, now and then
                if batch_idx % self.TIME_CHECK_EVERY == 0:
                    due = bool(trainer.strategy.broadcast(time.monotonic() - self._last_save_time >= self.every_n_seconds))
            else:
                due = time.monotonic() - self._last_save_time >= self.every_n_seconds
        # single process: save at the end of the batch the signal arrived in. Under DDP the fit loop broadcasts the
        # flag before the next batch and raises SIGTERMException on every rank: on_exception saves then.
        if self.save_on_sigterm and trainer.world_size == 1 and getattr(trainer, "received_sigterm", False):
            due = True
        return due

    def _save_now(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        key = self._state_key(trainer, pl_module)
        if key == self._saved_state:
            return  # this exact state is already on disk
        self.save_now(trainer)
        self._saved_state = key
        self._last_save_time = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_save_time = time.monotonic()
        if self.save_on_sigterm and self.sigterm_timeout is not None:
            self._watchdog = SigtermWatchdog(trainer, self.sigterm_timeout, self._describe_last)
            self._watchdog.install()

    def _describe_last(self) -> str:
        return f"; resume from {self.last_model_path}" if self.last_model_path else ""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)  # every_n_train_steps etc.
        if self.last_global_step_saved == trainer.global_step and trainer.global_step > 0:
            self._saved_state = self._state_key(trainer, pl_module)
        if trainer.sanity_checking or trainer.fast_dev_run or not self._due(trainer, pl_module, batch_idx):
            return
        self._save_now(trainer, pl_module)
        if getattr(trainer, "received_sigterm", False):
            self._announce_sigterm(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The final state is always saved as ``last`` (ModelCheckpoint skips it when nothing else saved)."""
        if self.save_last and not trainer.fast_dev_run and trainer.state.status != "interrupted":
            self._save_now(trainer, pl_module)
        super().on_train_end(trainer, pl_module)
        self._stop_watchdog()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """On SIGTERM (Lightning raises ``SIGTERMException`` after the running batch, on every rank) save ``last`` if
        the state at the end of that batch is not on disk yet. Other errors save nothing: the last good checkpoint
        stays as is."""
        super().on_exception(trainer, pl_module, exception)
        if (isinstance(exception, SIGTERMException) and self.save_on_sigterm and trainer.training
                and not trainer.fast_dev_run):  # fmt: skip
            key = self._state_key(trainer, pl_module)
            if key != self._saved_state:
                self._save_now(trainer, pl_module)
                self._announce_sigterm(trainer)
        self._stop_watchdog()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        self._stop_watchdog()

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.uninstall()
            self._watchdog = None

    def _announce_sigterm(self, trainer: L.Trainer) -> None:
        if self.last_model_path and trainer.is_global_zero:
            print(f"gan-modules: SIGTERM: saved {self.last_model_path}; resume with `fit ... --ckpt_path last` "
                  "(same config)", file=sys.stderr, flush=True)  # fmt: skip

    # ------------------------------------------------------------------------------------------------------------
    def write_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        """``trainer.save_checkpoint`` into a temporary file next to ``filepath``, then ``os.replace`` (atomic)."""
        if "://" in str(filepath):  # remote filesystems: fsspec's own transaction
            return super().write_checkpoint(trainer, filepath)
        directory, name = os.path.split(os.path.abspath(filepath))
        tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
        try:
            super().write_checkpoint(trainer, tmp)  # every rank calls it; only global rank 0 writes
            if trainer.is_global_zero:
                with open(tmp, "rb+") as f:  # the bytes must be on disk before the name points at them
                    os.fsync(f.fileno())
                os.replace(tmp, filepath)
        finally:
            if trainer.is_global_zero and os.path.exists(tmp):
                os.remove(tmp)
        trainer.strategy.barrier("GANCheckpoint.write_checkpoint")
        self.record_saved(filepath)

    def find_last_checkpoints(self, trainer: L.Trainer) -> set[str]:
        found = super().find_last_checkpoints(trainer)
        if found or self.dirpath is not None or not trainer.loggers:
            return found
        logger = trainer.loggers[0]  # a versioned logger puts each run in a new version folder: look at the others
        save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
        pattern = os.path.join(glob.escape(str(save_dir)), glob.escape(str(logger.name or "")), "*", "checkpoints",
                               f"{self.CHECKPOINT_NAME_LAST}*{self.FILE_EXTENSION}")  # fmt: skip
        return {os.path.normpath(p) for p in glob.glob(pattern)}
