"""Sample grids and metrics reach W&B (offline run directory), TensorBoard and PNG files; training logs need no
host-device sync on steps that are not logged."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from gan_modules import DCGAN
from gan_modules.callbacks import SampleGrid
from tests.helpers import loader, trainer

TINY = dict(image_size=28, channels=1, ngf=4, ndf=4, latent_dim=8)


def test_wandb_offline_run_directory_holds_metrics_and_images(tmp_path, monkeypatch):
    """``trainer.logger`` = WandbLogger from the command line exactly as from YAML; WANDB_MODE=offline."""
    wandb = pytest.importorskip("wandb")
    from gan_modules.cli import run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    run([
        "fit", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "dcgan_mnist.yaml"),
        "--trainer.logger", "lightning.pytorch.loggers.WandbLogger",
        "--trainer.logger.init_args.project", "gan-modules-tests", "--trainer.logger.init_args.name", "tiny",
        "--trainer.logger.init_args.tags", "[test, tiny]", "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false", "--trainer.num_sanity_val_steps", "0",
        "--trainer.limit_val_batches", "0", "--trainer.log_every_n_steps", "1",
        "--model.init_args.ngf", "4", "--model.init_args.ndf", "4", "--model.init_args.max_generator_steps", "4",
        "--data.init_args.batch_size", "16", "--sample_grid.every_n_generator_steps", "2",
        "--sample_grid.num_samples", "4", "--metrics.every_n_generator_steps", "4", "--metrics.num_samples", "32",
        "--checkpoint.dirpath", str(tmp_path / "ckpt"),
    ])  # fmt: skip
    wandb.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((tmp_path / "wandb").iterdir())
    files = runs[0] / "files"
    images = sorted(p.name for p in (files / "media" / "images").glob("samples_*.png"))
    assert len(images) >= 2, images  # generator steps 2 and 4 (and the final grid)
    # offline, the history, config and run settings live in the run's log (run-*.wandb, what `wandb sync` uploads);
    # wandb>=0.19 writes it from its Go core, which has no Python reader: check the keys it records
    keys = ("train/loss_d", "train/loss_g", "train/d_real", "train/d_fake", "val/fid", "val/kid_mean",
            "val/fid_num_samples", "max_generator_steps", "gan-modules-tests", "tiny")
    deadline = time.monotonic() + 60  # the core process may still be flushing the log after finish() returns
    while True:
        log = next(runs[0].glob("run-*.wandb")).read_bytes()
        if all(key.encode() in log for key in keys) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for key in keys:
        assert key.encode() in log, key


def test_tensorboard_gets_the_sample_grid_and_png_files_are_written(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb", version=0)
    tr = trainer(tmp_path, logger=logger, callbacks=[SampleGrid(every_n_generator_steps=2, num_samples=4)])
    tr.fit(DCGAN(**TINY, max_generator_steps=4), loader(n=32, batch_size=8))
    events = EventAccumulator(str(tmp_path / "tb" / "version_0"), size_guidance={"images": 0})
    events.Reload()
    assert "samples" in events.Tags()["images"]
    assert [e.step for e in events.Images("samples")] == [2, 4, 4]  # periodic grids and the final one
    pngs = sorted(p.name for p in (tmp_path / "tb" / "version_0" / "samples").glob("*.png"))
    assert pngs == ["final.png", "step_0000002.png", "step_0000004.png"]


def test_without_an_image_logger_the_grids_are_png_files(tmp_path):
    logger = CSVLogger(tmp_path, name="csv", version=0)
    tr = trainer(tmp_path, logger=logger, callbacks=[SampleGrid(every_n_generator_steps=3, num_samples=9)])
    tr.fit(DCGAN(**TINY, max_generator_steps=3), loader(n=32, batch_size=8))
    from PIL import Image

    final = Image.open(tmp_path / "csv" / "version_0" / "samples" / "final.png")
    # a 3x3 grid of 28 px with 2 px padding (92 px), enlarged by the smallest integer factor to >= 512 px (6x)
    assert final.size == (6 * (3 * 28 + 4 * 2), 6 * (3 * 28 + 4 * 2))


class SyncCounter(L.Callback):
    """Counts the host-device synchronisation points (``item``, ``__bool__``, ``__float__``, ``tolist``) that run
    during each training batch, except torch.optim's reads of its step counters (CPU tensors even when training on
    a GPU, so no device sync: Adam's ``_get_value``)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        self.per_batch: list[int] = []
        for name in ("item", "__bool__", "__float__", "tolist"):
            original = getattr(torch.Tensor, name)

            def counted(t, *a, _original=original, **k):
                if not any("torch/optim/" in frame.filename for frame in traceback.extract_stack(limit=8)):
                    self.calls += 1
                return _original(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counted)

    def on_train_batch_start(self, *args):
        self.calls = 0

    def on_train_batch_end(self, *args):
        self.per_batch.append(self.calls)


def test_losses_and_d_scores_are_logged_without_a_device_sync_on_unlogged_steps(tmp_path, monkeypatch):
    counter = SyncCounter(monkeypatch)
    logger = CSVLogger(tmp_path, name="csv", version=0)
    tr = trainer(tmp_path, logger=logger, callbacks=[counter], log_every_n_steps=4)
    # the non-finite guard (on by default) costs one sync per optimizer step by design; off here, counted below
    tr.fit(DCGAN(**TINY, max_generator_steps=8, max_nonfinite_steps=None), loader(n=64, batch_size=8))
    logged = [i for i in range(8) if (i + 1) % 4 == 0]
    assert all(counter.per_batch[i] == 0 for i in range(8) if i not in logged), counter.per_batch
    rows = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    for key in ("train/loss_d", "train/loss_g", "train/d_real", "train/d_fake", "train/generator_step"):
        assert key in header
    assert len(rows) == 1 + len(logged)


def test_the_nonfinite_guard_costs_exactly_one_sync_per_optimizer_step(tmp_path, monkeypatch):
    counter = SyncCounter(monkeypatch)
    tr = trainer(tmp_path, callbacks=[counter], log_every_n_steps=100)
    tr.fit(DCGAN(**TINY, max_generator_steps=4, n_critic=2), loader(n=64, batch_size=8))
    # batches alternate: D only, then D + G
    assert counter.per_batch == [1, 2, 1, 2, 1, 2, 1, 2], counter.per_batch
