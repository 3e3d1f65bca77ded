"""Fixed-input sample grids during training and image files from ``predict``."""

from __future__ import annotations

import math
import os
import weakref
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor
from torchvision.utils import make_grid, save_image

from ..errors import ConfigError

_RUN_DIRS: weakref.WeakKeyDictionary[L.Trainer, Path] = weakref.WeakKeyDictionary()


def resolve_run_dir(trainer: L.Trainer) -> Path:
    """Finds the run's directory (the logger's version folder, else ``default_root_dir``) and remembers it. Under DDP
    this is a collective (``trainer.log_dir`` broadcasts rank 0's folder): call it on every rank, from a ``setup``
    hook, never from rank-zero-only code."""
    path = Path(trainer.log_dir or trainer.default_root_dir)
    try:
        _RUN_DIRS[trainer] = path
    except TypeError:  # a stand-in without weak references (a test double): nothing to remember
        pass
    return path


def run_dir(trainer: L.Trainer) -> Path:
    """The run's directory, as ``resolve_run_dir`` found it (no collective: safe in rank-zero-only code)."""
    try:
        path = _RUN_DIRS.get(trainer)
    except TypeError:
        path = None
    if path is not None:
        return path
    if getattr(trainer, "world_size", 1) > 1:
        raise RuntimeError("run_dir() before resolve_run_dir() ran on every rank: a callback that writes into the run "
                           "directory must call resolve_run_dir(trainer) in its setup hook")
    return resolve_run_dir(trainer)


class RunDirectoryCallback(L.Callback):
    """Base of the callbacks that write into the run directory: resolves it on every rank at ``setup``."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        resolve_run_dir(trainer)


def upscale_grid(grid: Any, min_width: int = 512) -> Any:
    """A grid image enlarged by the smallest integer factor that makes it at least ``min_width`` pixels wide,
    nearest-neighbour (each pixel becomes a k×k block, so pixel art stays sharp); unchanged when already wide enough.

    Args:
        grid: a (C, H, W) or (H, W) tensor (any dtype), or a PIL image.
        min_width: target minimum width in pixels.

    Returns:
        The same kind of object, ``k`` times larger in both dimensions.
    """
    if min_width < 1:
        raise ConfigError(f"min_width must be >= 1, got {min_width}")
    if isinstance(grid, Tensor):
        if grid.ndim not in (2, 3) or grid.shape[-1] < 1:
            raise ValueError(f"upscale_grid expects a (C, H, W) or (H, W) image, got shape {tuple(grid.shape)}")
        k = max(1, math.ceil(min_width / grid.shape[-1]))
        return grid if k == 1 else grid.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)
    from PIL import Image

    if isinstance(grid, Image.Image):
        k = max(1, math.ceil(min_width / grid.width))
        return grid if k == 1 else grid.resize((grid.width * k, grid.height * k), Image.Resampling.NEAREST)
    raise TypeError(f"upscale_grid expects a tensor or a PIL image, got {type(grid).__name__}")


def to_unit(images: Tensor) -> Tensor:
    return (images.detach().float().cpu() + 1) / 2  # [-1, 1] -> [0, 1]


def log_image_to_loggers(trainer: L.Trainer, key: str, grid: Tensor, step: int) -> list[str]:
    """Sends a (C, H, W) grid in [0, 1] to every logger that takes images and returns their names.

    W&B gets a ``wandb.Image`` (``WandbLogger.log_image``, captioned with the generator step; the image's own
    ``trainer/global_step`` field is the generator step too), TensorBoard an ``add_image`` at the generator step.
    Loggers that take no images (CSV, none) get nothing: the PNG files written by the callbacks are the record.
    """
    took = []
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            hwc = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C) uint8
            logger.log_image(key=key, images=[hwc], step=step, caption=[f"generator step {step}"])
            took.append("wandb")
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid, global_step=step)
            took.append("tensorboard")
    return took


class SampleGrid(RunDirectoryCallback):
    """Writes a grid of samples from fixed inputs as PNG under ``<run dir>/samples/`` every
    ``every_n_generator_steps`` generator steps and at the end of training, and logs it to image-capable loggers
    (W&B, TensorBoard) under the key ``samples``.

    The layout is the model's own ``sample_grid``: fixed noise for unconditional models, one row per class for
    conditional ones, input | output | target rows for translation models. The PNG files are written whatever the
    logger (they are what a CSV logger or ``logger: false`` leaves), ``step_<generator step>.png`` and ``final.png``.

    Small images are enlarged (nearest neighbour, an integer factor) until the grid is at least ``min_width`` pixels
    wide, in the files and in the loggers: 64 digits of 28 px make a 242 px grid, too small to read.

    Args:
        every_n_generator_steps: interval in generator steps (0 disables the periodic grids).
        num_samples: images in the grid.
        use_ema: sample from the EMA generator when the model has one.
        min_width: smallest grid width in pixels (1: never enlarge).
    """

    def __init__(self, every_n_generator_steps: int = 500, num_samples: int = 64, use_ema: bool = True,
                 min_width: int = 512):
        if min_width < 1:
            raise ConfigError(f"sample_grid.min_width must be >= 1 pixel, got {min_width}")
        self.every = every_n_generator_steps
        self.num_samples = num_samples
        self.use_ema = use_ema
        self.min_width = min_width
        self._last_written = -1

    @rank_zero_only
    def write(self, trainer: L.Trainer, pl_module: Any, tag: str) -> Path | None:
        if not hasattr(pl_module, "sample_grid"):
            return None
        with pl_module.sampling_from(self.use_ema):
            images, nrow = pl_module.sample_grid(self.num_samples)
        grid = upscale_grid(make_grid(to_unit(images), nrow=nrow, padding=2, pad_value=1.0), self.min_width)
        out = run_dir(trainer) / "samples" / f"{tag}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.png")
        save_image(grid, tmp)
        os.replace(tmp, out)
        log_image_to_loggers(trainer, "samples", grid, step=pl_module.generator_steps)
        self._last_written = pl_module.generator_steps
        return out

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = getattr(pl_module, "generator_steps", 0)
        if self.every and step > 0 and step % self.every == 0 and step != self._last_written:
            self.write(trainer, pl_module, f"step_{step:07d}")

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer, pl_module, "final")


def safe_png_name(name: object, index: int) -> str:
    """A ``.png`` file name that stays inside the output folder: directories are dropped (``../x`` -> ``x``) and
    names with nothing left (``""``, ``.``, ``..``) fall back to the sample index."""
    stem = Path(str(name).replace("\\", "/")).name
    if stem in ("", ".", ".."):
        stem = f"{int(index):06d}"
    return str(Path(stem).with_suffix(".png"))


class GeneratedImageWriter(BasePredictionWriter):
    """Writes what ``predict_step`` returns: one PNG per image (for external FID tools) and a ``grid.png``.

    ``predict_step`` returns ``{"images": (N, C, H, W) in [-1, 1], "index": (N,)}`` and optionally ``"names"``
    (file names to keep, for translation) and ``"grid"`` (a comparison image per item; ``"grid_names"`` names them
    when ``"images"`` holds several outputs per item, e.g. StarGAN's one per target domain).

    Args:
        output_dir: where to write (default: ``<run dir>/predictions``). Names cannot escape it.
        grid_size: images in ``grid.png`` (0: no grid).
    """

    def __init__(self, output_dir: str | None = None, grid_size: int = 64):
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.grid_size = grid_size
        self._grid: list[Tensor] = []
        self._written = 0

    def _dir(self, trainer: L.Trainer) -> Path:
        return Path(self.output_dir) if self.output_dir else run_dir(trainer) / "predictions"

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        out = self._dir(trainer).resolve()
        out.mkdir(parents=True, exist_ok=True)
        images = to_unit(prediction["images"])
        names = prediction.get("names") or [f"{int(i):06d}.png" for i in prediction["index"]]
        first = int(prediction["index"][0]) if len(prediction.get("index", [])) else 0
        for k, (img, name) in enumerate(zip(images, names)):  # StarGAN: several images per index
            save_image(img, out / safe_png_name(name, first + k))
        self._written += len(images)
        if "grid" in prediction:
            (out / "comparisons").mkdir(exist_ok=True)
            grid_names = prediction.get("grid_names") or names
            for k, (row, name) in enumerate(zip(to_unit(prediction["grid"]), grid_names)):
                save_image(row, out / "comparisons" / safe_png_name(name, first + k))
        need = self.grid_size - sum(len(g) for g in self._grid)
        same_size = not self._grid or images.shape[1:] == self._grid[0].shape[1:]  # translated inputs of any size
        if need > 0 and same_size:
            self._grid.append(images[:need])

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        resolve_run_dir(trainer)

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        self._grid = []
        self._written = 0

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        # every rank: the number of images written by all ranks (Lightning's predict sampler never repeats an item)
        total = int(trainer.strategy.reduce(torch.tensor(float(self._written), device=pl_module.device), reduce_op="sum"))
        if trainer.is_global_zero:
            print(f"gan-modules: predict wrote {total} image(s) to {self._dir(trainer)}", flush=True)
        if self._grid and trainer.is_global_zero:
            grid = torch.cat(self._grid)
            nrow = max(1, int(len(grid) ** 0.5))
            save_image(make_grid(grid, nrow=nrow, padding=2, pad_value=1.0), self._dir(trainer) / "grid.png")
