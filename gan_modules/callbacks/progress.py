"""A progress bar counted in generator steps, and a summary of what a fit left behind with the commands to go on.

Lightning's bar counts batches per epoch, which says little about a GAN whose length is ``max_generator_steps``
(batches per generator step vary with ``n_critic`` and WGAN's critic schedule). ``GANProgressBar`` shows::

    DCGAN:  42%|████▏     | 1260/3000 G steps [00:31<00:43, 40.1 steps/s, D=1.183, G=0.927, img/s=2566, epoch=1]

The losses are those Lightning already logged (read on the batches at which it writes logs, every
``log_every_n_steps``), so no other step pays a device sync; img/s counts the real images of every batch (all ranks).
At the end of fit, global rank zero prints where the checkpoint, final grid, plots and metrics are, and the commands
to sample, validate, extend and export the run.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from torch import Tensor

from .plots import logs_written_this_step, scalar_values
from .samples import resolve_run_dir, run_dir

#: logged key → label in the bar
SHOWN = {"train/loss_d": "D", "train/loss_g": "G"}


def batch_size(batch: Any) -> int:
    """Items in a batch dict/sequence (host-side shape metadata: no device sync); 0 when unknown."""
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else [batch]
    return next((int(v.shape[0]) for v in values if isinstance(v, Tensor) and v.ndim > 0), 0)


def loss_postfix(values: dict[str, float]) -> dict[str, str]:
    """``{"D": "1.183", "G": "0.927"}`` from logged values (missing keys left out)."""
    return {label: f"{values[key]:.3f}" for key, label in SHOWN.items() if key in values}


def latest(folder: Path, pattern: str) -> Path | None:
    files = sorted(folder.glob(pattern)) if folder.is_dir() else []
    return files[-1] if files else None


def fit_summary(model_name: str, generator_steps: int, max_generator_steps: int | None, run: Path | None,
                checkpoint: str | None, translation: bool = False) -> str:  # fmt: skip
    """The block printed at the end of fit: where things are and the commands to sample, validate, extend and export.

    Args:
        model_name: the variant's class name.
        generator_steps: generator steps done.
        max_generator_steps: the run's budget (None: epochs decided).
        run: the run directory (``samples/``, ``metrics/``, ``config.yaml``, plots).
        checkpoint: ``trainer.checkpoint_callback.last_model_path`` (None or "" when nothing was saved).
        translation: image-to-image model (its samples come from ``predict`` on input images).
    """
    q = shlex.quote
    ckpt = checkpoint or None
    config = run / "config.yaml" if run is not None and (run / "config.yaml").is_file() else None
    cfg = q(str(config)) if config else "<your config.yaml>"
    budget = f" of {max_generator_steps}" if max_generator_steps else ""
    lines = [f"── gan-modules: {model_name} trained for {generator_steps}{budget} generator steps ──"]
    found: list[tuple[str, Path | str | None]] = [("checkpoint", ckpt or "none saved (checkpointing off)")]
    if run is not None:
        grid = run / "samples" / "final.png"
        found += [("final grid", grid if grid.is_file() else latest(run / "samples", "step_*.png")),
                  ("metrics", latest(run / "metrics", "*.json")), ("config", config)]
        found += [(name, run / name) for name in ("losses.png", "scalars.csv", "real_vs_fake.png", "progress.gif")
                  if (run / name).is_file()]  # fmt: skip
    found = [(name, value) for name, value in found if value]
    width = max(len(name) for name, _ in found)
    lines += [f"  {name:<{width}}  {value}" for name, value in found]
    extend = 2 * (max_generator_steps or generator_steps or 1)
    commands: list[tuple[str, str]] = []
    if ckpt:
        if translation:
            commands.append(("translate", (f"gan-modules predict --config {cfg} --ckpt_path {q(ckpt)} "
                                          "--data.init_args.predict_dir <folder of images>")))
        else:
            commands.append(("sample", f"gan-modules-sample {q(ckpt)} -n 64 -o samples_out --interpolate"))
        commands.append(("validate", f"gan-modules validate --config {cfg} --ckpt_path {q(ckpt)}"))
    commands.append(("extend", (f"gan-modules fit --config {cfg} --ckpt_path last "
                               f"--model.init_args.max_generator_steps {extend}")))
    if ckpt:
        commands.append(("export", f"gan-modules-export {q(ckpt)} --out exported"))
    lines.append("  next:")
    width = max(len(name) for name, _ in commands)
    lines += [f"    {name:<{width}}  {command}" for name, command in commands]
    return "\n".join(lines)


def _interactive() -> bool:
    """Whether stdout is a terminal (a log file or pipe gets a redraw every ``log_interval`` seconds only)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class GANProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar counted in generator steps up to ``max_generator_steps`` (ETA, steps/s, img/s, the
    logged D and G losses), one bar for the whole fit instead of one per epoch, and a summary at the end.

    Args:
        refresh_rate: redraw every this many generator steps.
        log_interval: when stdout is not a terminal (a log file, SLURM, CI), redraw at most once per this many
            seconds (and at the last step), so a log gets a line every ``log_interval`` s, not one per step.
        process_position: as in ``TQDMProgressBar`` (several bars in one terminal).
        summary: print the end-of-fit summary (global rank zero).
    """

    #: the training bar only (Lightning's validation/test/predict bars read ``BAR_FORMAT`` and count batches)
    TRAIN_BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} G steps [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, summary: bool = True,
                 log_interval: float = 30.0):
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=False)
        self.summary = summary
        self.log_interval = log_interval
        self._interactive = True  # set at on_train_start: whether stdout is a terminal
        self._last_draw = float("-inf")
        self._drawn_n: int | None = None  # the count of the last line written
        self._postfix: dict[str, str] = {}
        self._images = 0
        self._t0 = 0.0
        self._run: Path | None = None
        self.last_summary: str | None = None

    def init_train_tqdm(self, desc: str | None = None, total: int | None = None, initial: int = 0) -> Tqdm:
        return Tqdm(desc=desc or self.train_description, total=total, initial=initial,
                    position=2 * self.process_position, disable=self.is_disabled, leave=True, dynamic_ncols=True,
                    file=sys.stdout, smoothing=0.1, unit=" steps", bar_format=self.TRAIN_BAR_FORMAT)  # fmt: skip

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The cached postfix: Lightning's default reads every progress-bar tensor back (a device sync per refresh)."""
        return dict(self._postfix)

    # ------------------------------------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        resolve_run_dir(trainer)  # on every rank (a collective under DDP), never from rank-zero-only code

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._run = run_dir(trainer)
        self._images, self._t0, self._postfix = 0, time.monotonic(), {}
        self._interactive, self._last_draw = _interactive(), float("-inf")  # once per fit, not per step
        self._drawn_n = None
        # one bar for the whole fit, in generator steps; a resumed fit starts at its step (rate: this run's steps)
        self.train_progress_bar = self.init_train_tqdm(type(pl_module).__name__,
                                                       (getattr(pl_module, "hparams", {}) or {}).get("max_generator_steps"),
                                                       int(getattr(pl_module, "generator_steps", 0)))  # fmt: skip

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        self._postfix["epoch"] = str(trainer.current_epoch)  # no new bar per epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.is_disabled:  # other ranks (Lightning disables their bars): nothing to read or draw
            return
        self._images += batch_size(batch) * trainer.world_size
        if logs_written_this_step(trainer):  # the values Lightning logs now anyway
            values = scalar_values({k: v for k, v in trainer.callback_metrics.items() if k in SHOWN}, ("train/",))
            self._postfix.update(loss_postfix(values))
        bar = self.train_progress_bar
        n = int(getattr(pl_module, "generator_steps", batch_idx + 1))
        if n != bar.n and self._should_update(n, bar.total):
            now = time.monotonic()
            if not self._interactive and n != bar.total and now - self._last_draw < self.log_interval:
                return
            self._last_draw = now
            elapsed = max(now - self._t0, 1e-9)
            self._postfix["img/s"] = f"{self._images / elapsed:.0f}"
            bar.n = n
            bar.set_postfix(self.postfix_in_order(), refresh=True)
            self._drawn_n = n

    def postfix_in_order(self) -> dict[str, str]:
        order = [*SHOWN.values(), "img/s", "epoch"]
        return {k: self._postfix[k] for k in order if k in self._postfix}

    def _redraw_between_steps(self, pl_module: Any) -> None:
        """After an epoch or a validation run: the bar at the true step count, redrawn only on a terminal (in a log,
        a redraw between steps would repeat the last line with a stale rate)."""
        bar = self.train_progress_bar
        bar.n = int(getattr(pl_module, "generator_steps", bar.n))
        bar.set_postfix(self.postfix_in_order(), refresh=self._interactive)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self.train_progress_bar.disable:
            self._redraw_between_steps(pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._train_progress_bar is not None and trainer.state.fn == "fit" and not self.train_progress_bar.disable:
            self._redraw_between_steps(pl_module)

    def on_train_end(self, *args: Any) -> None:
        """Closes the bar; in a log file, without writing the last line a second time (tqdm's close redraws it
        with a new elapsed time) when that line already shows the final count."""
        bar = self._train_progress_bar
        if bar is not None and not self._interactive and not bar.disable and bar.n == self._drawn_n:
            bar.display = lambda *_, **__: None  # instance attribute: close() still ends the line and unregisters
        super().on_train_end(*args)

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Prints the summary on global rank zero (after every checkpoint callback's final save)."""
        if not self.summary or not trainer.is_global_zero or trainer.sanity_checking:
            return
        ckpt = getattr(trainer.checkpoint_callback, "last_model_path", None) if trainer.checkpoint_callback else None
        hp = getattr(pl_module, "hparams", {}) or {}
        self.last_summary = fit_summary(type(pl_module).__name__, int(getattr(pl_module, "generator_steps", 0)),
                                        hp.get("max_generator_steps"), self._run, ckpt,
                                        translation=hasattr(pl_module, "translation_keys"))  # fmt: skip
        print(self.last_summary, flush=True)


__all__ = ["GANProgressBar", "batch_size", "fit_summary", "loss_postfix"]
