"""``GANProgressBar``: the bar counts generator steps up to ``max_generator_steps`` (also after a resume), shows the
logged D and G losses read only on logging steps, img/s and the epoch, and never reads Lightning's progress-bar
tensors; the end-of-fit summary names the files and the commands to go on (and a real fit prints it)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import torch

from gan_modules import DCGAN
from gan_modules.callbacks import GANCheckpoint
from gan_modules.callbacks.progress import GANProgressBar, batch_size, fit_summary, loss_postfix
from gan_modules.callbacks.samples import resolve_run_dir

from .helpers import loader, trainer
from .test_plots import NoReads


class StubTrainer(SimpleNamespace):
    """A trainer stand-in that can be weakly referenced and hashed by identity, like a real trainer."""

    __hash__ = object.__hash__
    __eq__ = object.__eq__


def stub_trainer(tmp_path: Path, logs_now: bool, metrics: dict | None = None, epoch: int = 0):
    return StubTrainer(fast_dev_run=False, is_global_zero=True, sanity_checking=False, world_size=2,
                           current_epoch=epoch, _logger_connector=SimpleNamespace(should_update_logs=logs_now),
                           callback_metrics=metrics if logs_now else NoReads(), log_dir=str(tmp_path),
                           default_root_dir=str(tmp_path), state=SimpleNamespace(fn="fit"))  # fmt: skip


class StubModule(SimpleNamespace):
    pass


def test_bar_counts_generator_steps_and_shows_logged_losses(tmp_path):
    bar = GANProgressBar(log_interval=0.0)  # pytest's stdout is no terminal: redraw at every step all the same
    module = StubModule(generator_steps=10, hparams={"max_generator_steps": 20})
    start = stub_trainer(tmp_path, logs_now=False)
    resolve_run_dir(start)  # what the bar's setup hook does on every rank
    bar.on_train_start(start, module)
    bar.on_train_epoch_start(stub_trainer(tmp_path, logs_now=False, epoch=3))
    tqdm = bar.train_progress_bar
    assert (tqdm.desc, tqdm.total, tqdm.n, tqdm.initial) == ("StubModule", 20, 10, 10)  # resumed at step 10
    batch = {"image": torch.zeros(4, 1, 8, 8), "label": torch.zeros(4)}
    module.generator_steps = 11  # an unlogged step: callback_metrics must not be read
    bar.on_train_batch_end(stub_trainer(tmp_path, logs_now=False), module, None, batch, 0)
    assert tqdm.n == 11 and "D=" not in tqdm.postfix
    metrics = {"train/loss_d": torch.tensor(1.23456), "train/loss_g": torch.tensor(0.5), "train/d_real": torch.tensor(3.0)}
    module.generator_steps = 12
    bar.on_train_batch_end(stub_trainer(tmp_path, logs_now=True, metrics=metrics), module, None, batch, 1)
    assert tqdm.n == 12
    assert re.fullmatch(r"D=1\.235, G=0\.500, img/s=\d+, epoch=3", tqdm.postfix), tqdm.postfix
    assert bar.get_metrics(None, None) == {"D": "1.235", "G": "0.500", "img/s": bar._postfix["img/s"], "epoch": "3"}
    assert "12/20 G steps" in str(tqdm)
    before = tqdm.postfix
    bar.on_train_batch_end(stub_trainer(tmp_path, logs_now=False), module, None, batch, 2)  # D-only batch (n_critic)
    assert tqdm.n == 12 and tqdm.postfix == before
    tqdm.close()


def test_bar_in_a_log_file_redraws_once_per_interval_and_at_the_end(tmp_path, capsys):
    """stdout redirected to a file (SLURM, CI, nohup): one line per ``log_interval`` seconds, not one per step, and
    no redraw with a stale count at an epoch end."""
    bar = GANProgressBar(log_interval=3600.0)
    module = StubModule(generator_steps=0, hparams={"max_generator_steps": 6})
    start = stub_trainer(tmp_path, logs_now=False)
    resolve_run_dir(start)
    bar.on_train_start(start, module)
    tqdm = bar.train_progress_bar
    batch = {"image": torch.zeros(2, 1, 8, 8)}
    drawn = []
    for step in range(1, 7):
        module.generator_steps = step
        bar.on_train_batch_end(stub_trainer(tmp_path, logs_now=False), module, None, batch, step - 1)
        drawn.append(tqdm.n)
        if step == 5:  # an epoch ends between draws: the bar takes the true count without drawing it
            bar.on_train_epoch_end(stub_trainer(tmp_path, logs_now=False), module)
            drawn[-1] = tqdm.n
    assert drawn == [1, 1, 1, 1, 5, 6]  # the first step, nothing for an hour, the count at the epoch end, the last
    bar.on_train_end(stub_trainer(tmp_path, logs_now=False), module)  # closes the bar (Lightning's hook)
    out = capsys.readouterr().out
    assert "1/6 G steps" in out and out.count("6/6 G steps") == 1, out  # the final line once, not redrawn at close
    assert not any(f"{n}/6 G steps" in out for n in (2, 3, 4, 5)), out
    assert out.endswith("\n")  # the line is ended: the summary starts on its own line


def test_batch_size_and_loss_postfix():
    assert batch_size({"a": torch.zeros(3, 1, 4, 4), "b": torch.zeros(3, 1, 4, 4)}) == 3
    assert batch_size([torch.zeros(5, 2)]) == 5 and batch_size({"name": ["x"]}) == 0
    assert loss_postfix({"train/loss_d": 0.12345, "train/other": 1.0}) == {"D": "0.123"}


def make_run(tmp_path: Path) -> Path:
    run = tmp_path / "my run"
    for sub in ("samples", "metrics", "checkpoints"):
        (run / sub).mkdir(parents=True)
    for name in ("samples/step_0000100.png", "samples/final.png", "metrics/val_step_0000100.json",
                 "metrics/val_step_0000200.json", "config.yaml", "losses.png", "progress.gif"):  # fmt: skip
        (run / name).write_text("x")
    return run


def test_summary_names_the_files_and_the_commands(tmp_path):
    run = make_run(tmp_path)
    ckpt = str(run / "checkpoints" / "last.ckpt")
    text = fit_summary("DCGAN", 200, 200, run, ckpt)
    q = shlex.quote
    assert text.splitlines() == [
        "── gan-modules: DCGAN trained for 200 of 200 generator steps ──",
        f"  checkpoint    {ckpt}",
        f"  final grid    {run / 'samples' / 'final.png'}",
        f"  metrics       {run / 'metrics' / 'val_step_0000200.json'}",
        f"  config        {run / 'config.yaml'}",
        f"  losses.png    {run / 'losses.png'}",
        f"  progress.gif  {run / 'progress.gif'}",
        "  next:",
        f"    sample    gan-modules-sample {q(ckpt)} -n 64 -o samples_out --interpolate",
        f"    validate  gan-modules validate --config {q(str(run / 'config.yaml'))} --ckpt_path {q(ckpt)}",
        (f"    extend    gan-modules fit --config {q(str(run / 'config.yaml'))} --ckpt_path last "
         "--model.init_args.max_generator_steps 400"),
        f"    export    gan-modules-export {q(ckpt)} --out exported",
    ]


def test_summary_for_translation_and_without_a_checkpoint(tmp_path):
    run = make_run(tmp_path)
    translation = fit_summary("Pix2Pix", 50, None, run, str(run / "checkpoints" / "last.ckpt"), translation=True)
    assert "gan-modules-sample" not in translation
    assert "    translate  gan-modules predict --config" in translation
    assert "--model.init_args.max_generator_steps 100" in translation  # no budget: twice the steps done
    bare = fit_summary("GAN", 3, 3, None, "")
    assert bare.splitlines() == [
        "── gan-modules: GAN trained for 3 of 3 generator steps ──",
        "  checkpoint  none saved (checkpointing off)",
        "  next:",
        "    extend  gan-modules fit --config <your config.yaml> --ckpt_path last --model.init_args.max_generator_steps 6",
    ]


def test_fit_shows_the_bar_in_generator_steps_and_prints_the_summary(tmp_path, capsys):
    bar = GANProgressBar()
    fit = trainer(tmp_path, enable_progress_bar=True, enable_checkpointing=True, log_every_n_steps=1,
                  callbacks=[bar, GANCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=0)])  # fmt: skip
    fit.fit(DCGAN(ngf=4, ndf=4, max_generator_steps=4), loader(n=32, batch_size=4))
    out = capsys.readouterr().out
    assert re.search(r"DCGAN: 100%\|[^|]*\| 4/4 G steps \[[^]]*, D=\d\.\d{3}, G=\d\.\d{3}, img/s=\d+, epoch=0\]", out)
    assert "Epoch 0" not in out  # Lightning's per-epoch bar is replaced
    assert f"── gan-modules: DCGAN trained for 4 of 4 generator steps ──\n  checkpoint  {tmp_path / 'ckpt' / 'last.ckpt'}" in out
    assert bar.last_summary is not None and bar.last_summary in out


def test_only_the_training_bar_counts_generator_steps(tmp_path):
    """Validation/test/predict bars count batches: they must not say "G steps" (Lightning reads ``BAR_FORMAT``)."""
    bar = GANProgressBar()
    assert "G steps" in bar.TRAIN_BAR_FORMAT and "G steps" not in bar.BAR_FORMAT
