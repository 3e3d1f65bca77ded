"""``TrainingPlots`` and ``upscale_grid``: a tiny DCGAN fit leaves scalars.csv (the values Lightning logged, at the
generator steps it logged them), losses.png, real_vs_fake.png and progress.gif (one frame per fixed-noise grid);
values are read only on logging steps, files written by rank zero only, FID read from the metrics files, curves
continued after a resume; the pure helpers against closed forms."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from PIL import Image

from gan_modules import DCGAN
from gan_modules.callbacks import GANCheckpoint, SampleGrid
from gan_modules.callbacks.plots import TrainingPlots, loss_curves, upscale_grid, write_scalars_csv
from gan_modules.errors import ConfigError

from .helpers import loader, trainer


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def assert_sane_png(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == size
        lo, hi = im.convert("L").getextrema()
        assert hi - lo > 100  # drawn, not blank


# ----------------------------------------------------------------------------------------------------------------
# upscale_grid
def test_upscale_grid_is_nearest_neighbour_by_the_smallest_integer_factor():
    grid = torch.arange(3 * 10 * 20, dtype=torch.float32).view(3, 10, 20)
    big = upscale_grid(grid, min_width=512)
    k = math.ceil(512 / 20)  # 26
    assert big.shape == (3, 10 * k, 20 * k)
    rows, cols = torch.arange(10 * k) // k, torch.arange(20 * k) // k
    assert torch.equal(big, grid[:, rows][:, :, cols])
    assert upscale_grid(grid, min_width=20) is grid  # already wide enough: unchanged
    assert upscale_grid(torch.ones(5, 300, dtype=torch.uint8)).shape == (10, 600)  # (H, W), k = 2


def test_upscale_grid_takes_pil_images():
    image = Image.fromarray((torch.arange(6 * 7).view(6, 7) * 5).to(torch.uint8).numpy())
    big = upscale_grid(image, min_width=30)  # k = 5
    assert big.size == (35, 30)
    assert big.getpixel((34, 29)) == image.getpixel((6, 5)) and big.getpixel((5, 0)) == image.getpixel((1, 0))


def test_upscale_grid_bad_inputs_are_one_line():
    with pytest.raises(ConfigError, match=r"^min_width must be >= 1, got 0$"):
        upscale_grid(torch.zeros(3, 4, 4), min_width=0)
    with pytest.raises(ValueError, match=r"^upscale_grid expects a \(C, H, W\) or \(H, W\) image, got shape \(1, 3, 4, 4\)$"):
        upscale_grid(torch.zeros(1, 3, 4, 4))
    with pytest.raises(TypeError, match=r"^upscale_grid expects a tensor or a PIL image, got list$"):
        upscale_grid([[0]])


# ----------------------------------------------------------------------------------------------------------------
# Pure helpers
def test_loss_curves_show_probabilities_for_logistic_losses_and_raw_values_otherwise():
    rows = {2: {"train/loss_d": 1.3, "train/loss_g": 0.7, "train/d_real": 0.4, "train/d_fake": -1.2},
            4: {"train/loss_d": 1.1, "train/loss_g": 0.9, "train/d_real": 1.5, "train/d_fake": -0.3},
            6: {"val/fid": 80.0, "val/kid_mean": 0.05}}  # fmt: skip
    logistic = dict(loss_curves(rows, logistic=True))
    assert list(logistic) == ["loss", "σ(mean D logit)", "FID (lower is better)", "KID (lower is better)"]
    (lx, sx, vx), (lg, sg, vg) = logistic["σ(mean D logit)"]
    assert (lx, lg, sx, sg) == ("D(x)", "D(G(z))", [2, 4], [2, 4])
    assert vx == pytest.approx([1 / (1 + math.exp(-0.4)), 1 / (1 + math.exp(-1.5))])
    assert vg == pytest.approx([1 / (1 + math.exp(1.2)), 1 / (1 + math.exp(0.3))])
    assert logistic["loss"] == [("D loss", [2, 4], [1.3, 1.1]), ("G loss", [2, 4], [0.7, 0.9])]
    assert logistic["FID (lower is better)"] == [("FID", [6], [80.0])]
    raw = dict(loss_curves(rows, logistic=False))
    assert raw["mean critic value"][0] == ("D(x)", [2, 4], [0.4, 1.5])


def test_loss_curves_label_cyclegan_domains():
    rows = {1: {"train/d_real_a": 0.1, "train/d_fake_a": 0.2, "train/d_real_b": 0.3, "train/d_fake_b": 0.4}}
    (_, curves), = loss_curves(rows, logistic=False)
    assert [c[0] for c in curves] == ["D(x) a", "D(G(z)) a", "D(x) b", "D(G(z)) b"]


def test_scalars_csv_has_one_row_per_step_and_every_key(tmp_path):
    columns = write_scalars_csv({4: {"train/loss_g": 0.5}, 2: {"train/loss_d": 1.25, "train/loss_g": 0.75}},
                                tmp_path / "s.csv")  # fmt: skip
    assert columns == ["generator_step", "train/loss_d", "train/loss_g"]
    header, rows = read_csv(tmp_path / "s.csv")
    assert header == columns
    assert rows == [{"generator_step": "2", "train/loss_d": "1.25", "train/loss_g": "0.75"},
                    {"generator_step": "4", "train/loss_d": "", "train/loss_g": "0.5"}]  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# A real fit
def test_fit_writes_csv_plot_real_vs_fake_and_gif(tmp_path):
    torch.manual_seed(0)
    plots = TrainingPlots(num_real=16)
    logger = CSVLogger(tmp_path, name="run")
    fit = trainer(tmp_path, logger=logger, log_every_n_steps=2, enable_checkpointing=True, callbacks=[
        SampleGrid(every_n_generator_steps=2, num_samples=16), plots,
        GANCheckpoint(dirpath=tmp_path / "ckpt", every_n_generator_steps=3, save_top_k=0)])  # fmt: skip
    fit.fit(DCGAN(ngf=4, ndf=4, max_generator_steps=6), loader(n=32, batch_size=4))
    run = Path(logger.log_dir)
    header, rows = read_csv(run / "scalars.csv")
    assert header == ["generator_step", "train/d_fake", "train/d_real", "train/loss_d", "train/loss_g",
                      "train/nonfinite_skips"]  # fmt: skip
    assert [int(r["generator_step"]) for r in rows] == [2, 4, 6]  # the logging steps (every 2 batches)
    logged = [r for r in read_csv(run / "metrics.csv")[1] if r.get("train/loss_d")]  # what Lightning wrote
    for key in ("train/loss_d", "train/loss_g", "train/d_real", "train/d_fake"):
        assert [float(r[key]) for r in rows] == pytest.approx([float(r[key]) for r in logged], rel=1e-6)
    assert_sane_png(run / "losses.png", (800, 560))  # two panels: losses, D(x)/D(G(z))
    assert_sane_png(run / "real_vs_fake.png", (1200, 630))
    grids = sorted((run / "samples").glob("step_*.png"))
    assert [p.name for p in grids] == ["step_0000002.png", "step_0000004.png", "step_0000006.png"]
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == len(grids)
        assert gif.width >= 512


# ----------------------------------------------------------------------------------------------------------------
# Hooks on a stub trainer
class NoReads(dict):
    def items(self):
        raise AssertionError("callback_metrics read on a step Lightning does not log")


def stub_trainer(tmp_path: Path, logs_now: bool = True, rank_zero: bool = True, metrics: dict | None = None):
    return SimpleNamespace(fast_dev_run=False, is_global_zero=rank_zero, sanity_checking=False, global_step=0,
                           _logger_connector=SimpleNamespace(should_update_logs=logs_now),
                           callback_metrics=metrics if logs_now else NoReads(), state=SimpleNamespace(fn="fit"),
                           log_dir=str(tmp_path), default_root_dir=str(tmp_path))  # fmt: skip


def stub_module(step: int):
    return SimpleNamespace(generator_steps=step, adversarial_loss=DCGAN(ngf=4, ndf=4).adversarial_loss)


def test_values_are_read_only_on_logging_steps(tmp_path):
    cb = TrainingPlots(num_real=0)
    batch = {"image": torch.zeros(2, 1, 28, 28)}
    cb.on_train_batch_end(stub_trainer(tmp_path, logs_now=False), stub_module(1), None, batch, 0)
    assert cb.rows == {}
    metrics = {"train/loss_d": torch.tensor(1.5), "train/loss_g": torch.tensor(0.25),
               "train/generator_step": torch.tensor(2.0), "other": torch.tensor(3.0)}  # fmt: skip
    cb.on_train_batch_end(stub_trainer(tmp_path, metrics=metrics), stub_module(2), None, batch, 1)
    assert cb.rows == {2: {"train/loss_d": 1.5, "train/loss_g": 0.25}}


def test_checkpoint_save_refreshes_the_files_on_rank_zero_only(tmp_path):
    cb = TrainingPlots()
    cb.rows = {1: {"train/loss_d": 1.0, "train/loss_g": 2.0}}
    for rank_zero, folder in ((False, tmp_path / "rank1"), (True, tmp_path / "rank0")):
        t = stub_trainer(folder, rank_zero=rank_zero)
        cb.on_train_start(t, stub_module(1))
        cb.on_save_checkpoint(t, stub_module(1), {})
    assert not (tmp_path / "rank1").exists()
    assert read_csv(tmp_path / "rank0" / "scalars.csv")[0] == ["generator_step", "train/loss_d", "train/loss_g"]
    assert_sane_png(tmp_path / "rank0" / "losses.png", (800, 280))


def test_fid_from_the_metrics_files_joins_the_csv_and_plot(tmp_path):
    (tmp_path / "metrics").mkdir()
    for step, fid in ((2, 90.5), (4, 70.25)):
        record = {"results": {"fid": fid, "kid_mean": 0.02, "kid_std": 0.001}, "protocol": {"generator_steps": step}}
        (tmp_path / "metrics" / f"val_step_{step:07d}.json").write_text(json.dumps(record))
    cb = TrainingPlots()
    cb.rows = {2: {"train/loss_d": 1.0}, 4: {"train/loss_d": 0.9}}
    t = stub_trainer(tmp_path)
    cb.on_train_start(t, stub_module(4))
    cb.write_curves(t, stub_module(4))
    header, rows = read_csv(tmp_path / "scalars.csv")
    assert header == ["generator_step", "train/loss_d", "val/fid", "val/kid_mean", "val/kid_std"]
    assert [(r["generator_step"], r["val/fid"]) for r in rows] == [("2", "90.5"), ("4", "70.25")]
    assert_sane_png(tmp_path / "losses.png", (800, 840))  # loss, FID, KID panels


def test_resumed_run_continues_the_curves(tmp_path):
    first = TrainingPlots()
    first.rows = {2: {"train/loss_d": 1.0}}
    resumed = TrainingPlots()
    resumed.load_state_dict(first.state_dict())
    resumed.record(4, {"train/loss_d": 0.5})
    assert resumed.rows == {2: {"train/loss_d": 1.0}, 4: {"train/loss_d": 0.5}}


def test_bad_settings_are_one_line():
    with pytest.raises(ConfigError, match=r"^plots.num_real must be >= 0, got -1$"):
        TrainingPlots(num_real=-1)
    with pytest.raises(ConfigError, match=r"^plots.min_width and plots.gif_frame_ms must be >= 1, got 0, 500$"):
        TrainingPlots(min_width=0)
