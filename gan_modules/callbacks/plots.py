"""The three pictures the DCGAN tutorials show, kept up to date during training, plus the numbers behind them.

``TrainingPlots`` writes into the run directory:

- ``scalars.csv``: one row per generator step at which Lightning logged training scalars (and per validation), with
  ``generator_step`` and every ``train/*`` and ``val/*`` scalar seen (plus ``val/fid`` etc. from ``metrics/*.json``);
- ``losses.png``: D and G losses, D(x) and D(G(z)) over generator steps (probabilities σ(mean logit) for logistic
  losses, raw critic values otherwise) and FID/KID when they were computed;
- at the end of training, ``real_vs_fake.png`` (real training images beside the final fixed-noise grid) and
  ``progress.gif`` (the fixed-noise grids ``samples/step_*.png`` as an animation).

The first two are refreshed whenever a checkpoint is saved and at the end of training. Values are read only on the
batches at which Lightning writes logs (``log_every_n_steps``), from the tensors the module already logged, so
unlogged steps cost no device sync. Files are written by global rank zero only; the run directory is resolved on
every rank once at the start of training (``trainer.log_dir`` is a collective).

Reference: the figures of the PyTorch DCGAN tutorial (pytorch/tutorials ``beginner_source/dcgan_faces_tutorial.py``:
"Loss versus training iteration", "Visualization of G's progression", "Real Images vs. Fake Images").
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from typing import Any

import lightning as L
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .._compat import should_update_logs
from ..errors import ConfigError
from ..losses import d_logistic
from .samples import RunDirectoryCallback, run_dir, upscale_grid

METRIC_KEYS = ("fid", "kid_mean", "is_mean")


def _step_of(path: Path) -> int | None:
    match = re.fullmatch(r"step_(\d+)\.png", path.name)
    return int(match.group(1)) if match else None


def sample_grid_files(samples_dir: Path) -> list[tuple[int, Path]]:
    """``(generator step, path)`` of every ``samples/step_*.png``, in step order."""
    found = [(_step_of(p), p) for p in samples_dir.glob("step_*.png")] if samples_dir.is_dir() else []
    return sorted((s, p) for s, p in found if s is not None)


def _caption(image: Any, text: str) -> Any:
    """``image`` (PIL, RGB) with a white strip on top holding ``text``."""
    from PIL import Image, ImageDraw

    strip = max(14, image.height // 20)
    out = Image.new("RGB", (image.width, image.height + strip), "white")
    out.paste(image, (0, strip))
    ImageDraw.Draw(out).text((4, max(0, (strip - 11) // 2)), text, fill="black")
    return out


def write_progress_gif(frames: list[tuple[str, Path]], out: Path, min_width: int = 512, duration_ms: int = 500) -> int:
    """An animated GIF with one frame per image in ``frames`` (``(caption, path)``), each enlarged with
    ``upscale_grid`` and captioned; the last frame lingers. Returns the number of frames written (0: nothing)."""
    from PIL import Image

    images = []
    for _, path in frames:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if images and im.size != images[0].size:
                im = im.resize(images[0].size, Image.Resampling.NEAREST)
            images.append(im)
    if not images:
        return 0
    k = max(1, math.ceil(min_width / images[0].width))
    images = [_caption(upscale_grid(im, images[0].width * k), c) for im, (c, _) in zip(images, frames)]
    durations = [duration_ms] * (len(images) - 1) + [duration_ms * 4]
    tmp = out.with_name(f".{out.name}.tmp")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                   disposal=1)  # fmt: skip
    os.replace(tmp, out)
    return len(images)


def write_scalars_csv(rows: dict[int, dict[str, float]], out: Path) -> list[str]:
    """``rows`` (generator step → {key: value}) as CSV, columns ``generator_step`` and the sorted keys; returns them."""
    keys = sorted({k for row in rows.values() for k in row})
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["generator_step", *keys])
        for step in sorted(rows):
            writer.writerow([step, *[_fmt(rows[step].get(k)) for k in keys]])
    os.replace(tmp, out)
    return ["generator_step", *keys]


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _series(rows: dict[int, dict[str, float]], key: str) -> tuple[list[int], list[float]]:
    steps = [s for s in sorted(rows) if key in rows[s] and math.isfinite(rows[s][key])]
    return steps, [rows[s][key] for s in steps]


Curve = tuple[str, list[int], list[float]]  # (label, generator steps, values)


def loss_curves(rows: dict[int, dict[str, float]], logistic: bool) -> list[tuple[str, list[Curve]]]:
    """The panels of ``losses.png`` as ``(y label, curves)``: D and G losses; D(x) and D(G(z)) from the logged mean
    logits ``train/d_real*``/``train/d_fake*`` (σ(·) when ``logistic``, the raw critic values otherwise; CycleGAN's
    per-domain ``_a``/``_b`` keys get their suffix); then one panel per sample-quality metric that was computed."""
    keys = {k for r in rows.values() for k in r}
    losses = [(label, *_series(rows, k)) for k, label in (("train/loss_d", "D loss"), ("train/loss_g", "G loss"))
              if k in keys]  # fmt: skip
    scores = []
    for key in sorted((k for k in keys if re.fullmatch(r"train/d_(real|fake)\w*", k)),
                      key=lambda k: (k.replace("real", "").replace("fake", ""), "fake" in k)):  # D(x) first
        side = key.split("_", 2)[2] if key.count("_") > 1 else ""
        steps, values = _series(rows, key)
        if logistic:
            values = [1.0 / (1.0 + math.exp(-v)) for v in values]  # σ(mean logit)
        scores.append((("D(x)" if "real" in key else "D(G(z))") + (f" {side}" if side else ""), steps, values))
    panels = [("loss", losses), ("σ(mean D logit)" if logistic else "mean critic value", scores)]
    for metric, label in (("fid", "FID (lower is better)"), ("kid_mean", "KID (lower is better)"),
                          ("is_mean", "Inception Score")):  # fmt: skip
        if f"val/{metric}" in keys:
            panels.append((label, [(metric.split("_")[0].upper(), *_series(rows, f"val/{metric}"))]))
    return [(ylabel, curves) for ylabel, curves in panels if any(c[1] for c in curves)]


def write_loss_plot(rows: dict[int, dict[str, float]], out: Path, logistic: bool, title: str = "") -> bool:
    """``losses.png`` from :func:`loss_curves`, one panel under the other over generator steps. Returns False when
    there is nothing to plot."""
    panels = loss_curves(rows, logistic)
    if not panels:
        return False
    fig = Figure(figsize=(8, 2.8 * len(panels)))  # no pyplot: no global backend state (Agg canvas, safe in notebooks)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (ylabel, curves) in zip(axes, panels):
        for label, steps, values in curves:
            ax.plot(steps, values, label=label, marker="o" if len(steps) < 20 else None, markersize=3)
        if ylabel.startswith("σ"):
            ax.axhline(0.5, color="gray", lw=0.5, ls="--")  # D cannot tell real from fake
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("generator step")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out)
    return True


def write_real_vs_fake(real: Tensor, fake_grid: Tensor, out: Path, nrow: int | None = None) -> None:
    """Real images (N, C, H, W) in [-1, 1] as a grid beside the fake grid ((C, H, W) in [0, 1]), titled "Real images"
    / "Fake images", like the DCGAN tutorial's last figure."""
    from torchvision.utils import make_grid

    nrow = nrow or max(1, math.ceil(math.sqrt(len(real))))
    real_grid = make_grid((real.float().cpu().clamp(-1, 1) + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
    fig = Figure(figsize=(12, 6.3))
    axes = fig.subplots(1, 2)
    for ax, grid, title in ((axes[0], real_grid, "Real images"), (axes[1], fake_grid, "Fake images")):
        ax.imshow(grid.float().cpu().clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, out)


def logs_written_this_step(trainer: L.Trainer) -> bool:
    """True on the batches at which Lightning writes logs (every ``log_every_n_steps`` batches, the last batch, every
    batch under ``fast_dev_run``): the batches at which ``AdversarialModule`` logs its training scalars."""
    return bool(trainer.fast_dev_run) or should_update_logs(trainer)


def scalar_values(metrics: dict[str, Any], prefixes: tuple[str, ...] = ("train/", "val/")) -> dict[str, float]:
    """The scalar entries of a Lightning metrics dict whose key starts with one of ``prefixes``, as floats."""
    out: dict[str, float] = {}
    tensors: dict[str, Tensor] = {}
    for key, value in metrics.items():
        if not key.startswith(prefixes) or key == "train/generator_step":
            continue
        if isinstance(value, Tensor):
            if value.numel() == 1:
                tensors[key] = value.detach().float().reshape(())
        elif isinstance(value, (int, float)):
            out[key] = float(value)
    if tensors:  # one device-to-host copy for all of them
        devices = {t.device for t in tensors.values()}
        stacked = torch.stack([t.to(next(iter(devices))) for t in tensors.values()])
        out.update(zip(tensors, stacked.tolist()))
    return out


def real_images(batch: Any) -> Tensor | None:
    """The batch's real images: ``image``, else the translation targets (``target``/``b``)."""
    if not isinstance(batch, dict):
        return None
    for key in ("image", "target", "b"):
        value = batch.get(key)
        if isinstance(value, Tensor) and value.ndim == 4:
            return value
    return None


class TrainingPlots(RunDirectoryCallback):
    """Keeps the training scalars Lightning logs and writes ``scalars.csv``, ``losses.png``, ``real_vs_fake.png`` and
    ``progress.gif`` into the run directory (see the module docstring).

    Args:
        num_real: real training images shown in ``real_vs_fake.png`` (kept from the first batches; 0: no picture).
        gif: write ``progress.gif`` from ``samples/step_*.png`` at the end of training.
        min_width: the GIF's frames are enlarged (nearest-neighbour, integer factor) to at least this width.
        gif_frame_ms: display time of each GIF frame in milliseconds (the last one lingers 4×).
    """

    def __init__(self, num_real: int = 64, gif: bool = True, min_width: int = 512, gif_frame_ms: int = 500):
        if num_real < 0:
            raise ConfigError(f"plots.num_real must be >= 0, got {num_real}")
        if min_width < 1 or gif_frame_ms < 1:
            raise ConfigError(f"plots.min_width and plots.gif_frame_ms must be >= 1, got {min_width}, {gif_frame_ms}")
        self.num_real = num_real
        self.gif = gif
        self.min_width = min_width
        self.gif_frame_ms = gif_frame_ms
        self.rows: dict[int, dict[str, float]] = {}
        self._real: list[Tensor] = []
        self._dir: Path | None = None

    # ------------------------------------------------------------------------------------------------------------
    # What is kept: resumed runs continue their curves.
    def state_dict(self) -> dict[str, Any]:
        return {"rows": {int(s): dict(r) for s, r in self.rows.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = {int(s): {k: float(v) for k, v in r.items()} for s, r in state_dict.get("rows", {}).items()}

    def record(self, step: int, values: dict[str, float]) -> None:
        if values:
            self.rows.setdefault(int(step), {}).update(values)

    # ------------------------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._dir = run_dir(trainer)  # on every rank: trainer.log_dir broadcasts
        self._real = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        kept = sum(len(r) for r in self._real)
        if trainer.is_global_zero and kept < self.num_real and (real := real_images(batch)) is not None:
            self._real.append(real[: self.num_real - kept].detach().clone())  # stays on the device: no sync
        if logs_written_this_step(trainer):
            self.record(getattr(pl_module, "generator_steps", trainer.global_step),
                        scalar_values(trainer.callback_metrics, ("train/",)))  # fmt: skip

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.record(getattr(pl_module, "generator_steps", trainer.global_step),
                    scalar_values(trainer.callback_metrics, ("val/",)))  # fmt: skip

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self.write_curves(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if logs_written_this_step(trainer):  # the last batch always logs; it may not have reached on_train_batch_end
            self.record(getattr(pl_module, "generator_steps", trainer.global_step),
                        scalar_values(trainer.callback_metrics, ("train/",)))  # fmt: skip
        self.write_curves(trainer, pl_module)
        self.write_final(trainer, pl_module)

    # ------------------------------------------------------------------------------------------------------------
    def _out(self, trainer: L.Trainer) -> Path | None:
        if not trainer.is_global_zero or self._dir is None:
            return None
        self._dir.mkdir(parents=True, exist_ok=True)
        return self._dir

    def metric_rows(self) -> None:
        """FID/KID/IS computed during fit: read from ``metrics/val_step_*.json`` (the metrics callback logs them
        straight to the loggers, not through Lightning's logged metrics)."""
        import json

        if self._dir is None or not (self._dir / "metrics").is_dir():
            return
        for path in sorted((self._dir / "metrics").glob("val_step_*.json")):
            try:
                data = json.loads(path.read_text())
                step = int(data["protocol"]["generator_steps"])
                results = data["results"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            self.record(step, {f"val/{k}": float(results[k]) for k in (*METRIC_KEYS, "kid_std", "is_std")
                               if isinstance(results.get(k), (int, float))})  # fmt: skip

    def write_curves(self, trainer: L.Trainer, pl_module: Any) -> dict[str, Path]:
        """``scalars.csv`` and ``losses.png`` (rank zero; nothing before the first logged values)."""
        out = self._out(trainer)
        if out is None:
            return {}
        self.metric_rows()
        if not self.rows:
            return {}
        written = {"csv": out / "scalars.csv"}
        write_scalars_csv(self.rows, written["csv"])
        loss = getattr(getattr(pl_module, "adversarial_loss", None), "discriminator", None)
        name = type(pl_module).__name__
        if write_loss_plot(self.rows, out / "losses.png", logistic=loss is d_logistic, title=name):
            written["plot"] = out / "losses.png"
        return written

    def write_final(self, trainer: L.Trainer, pl_module: Any) -> dict[str, Path]:
        """``real_vs_fake.png`` and ``progress.gif`` (rank zero)."""
        out = self._out(trainer)
        if out is None:
            return {}
        written: dict[str, Path] = {}
        if self._real and hasattr(pl_module, "sample_grid"):
            try:
                fake, nrow = pl_module.sample_grid(self.num_real)
            except (RuntimeError, NotImplementedError):
                fake = None
            if fake is not None:
                from torchvision.utils import make_grid

                fake_grid = make_grid((fake.detach().float().cpu() + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
                real = torch.cat([r.cpu() for r in self._real])
                written["real_vs_fake"] = out / "real_vs_fake.png"
                write_real_vs_fake(real, fake_grid, written["real_vs_fake"])
        if self.gif:
            frames = [(f"generator step {s}", p) for s, p in sample_grid_files(out / "samples")]
            if frames and write_progress_gif(frames, out / "progress.gif", self.min_width, self.gif_frame_ms):
                written["gif"] = out / "progress.gif"
        self._real = []
        return written


__all__ = ["TrainingPlots", "loss_curves", "upscale_grid", "write_loss_plot", "write_progress_gif", "write_scalars_csv"]
