"""Exact resume: a run stopped at an arbitrary point (a real SIGKILL, or a mid-run checkpoint) and resumed from its
checkpoint ends in exactly the state of the uninterrupted run: G, D, EMA, both optimizers, schedulers, spectral-norm
vectors, CycleGAN's image pools, RNG streams, data order and step counters, compared with ``torch.equal``.
Also the checkpoint callback: generator-step / time triggers, atomic writes, SIGTERM, ``--ckpt_path last``."""

from __future__ import annotations

import functools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from datamodules import EmbeddedMNISTDataModule
from gan_modules import GAN, MODELS
from gan_modules.callbacks import GANCheckpoint
from gan_modules.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# Compared exactly: everything, but for the callbacks' entries (this run's file names) and Lightning's hook
# bookkeeping that a restart at an epoch end does not replay (how often on_train_epoch_start / the fast-forwarded
# validation were *entered*); the counters that decide what happens next (epoch processed/completed, batches,
# global step, the loader position) are compared.
IGNORED = ("['callbacks']", "['epoch_progress']['total']['ready']", "['epoch_progress']['total']['started']",
           "['epoch_progress']['current']['ready']", "['epoch_progress']['current']['started']",
           "['epoch_loop.val_loop.batch_progress']['total']")


def assert_same_state(a, b, path: str = "") -> None:
    """Recursive exact equality: tensors with ``torch.equal`` (and dtype), everything else with ``==``."""
    if any(path.endswith(i) or f"{i}[" in path for i in IGNORED):
        return
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            assert_same_state(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def build(name: str):
    """Tiny model + data for each resumable variant; every run of a name builds the same thing."""
    if name == "GAN":  # dropout in D (global RNG), a StepLR schedule, 9 batches per epoch
        sched = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=4, gamma=0.5)
        model = GAN(g_hidden=(16,), d_hidden=(16,), latent_dim=8, max_generator_steps=12, ema_decay=0.9,
                    lr_scheduler_g=sched, lr_scheduler_d=sched)
        return model, EmbeddedMNISTDataModule(batch_size=1000)
    if name == "WGANGP":  # n_critic 5, gradient penalty (random interpolation weights), LayerNorm critic
        model = MODELS["WGANGP"](ngf=4, ndf=4, latent_dim=8, max_generator_steps=3, image_size=28, channels=1)
        return model, EmbeddedMNISTDataModule(batch_size=300)
    if name == "SNGAN":  # spectral-norm power-iteration vectors are buffers that change every D forward
        model = MODELS["SNGAN"](ngf=4, ndf=4, latent_dim=8, n_critic=2, max_generator_steps=5, image_size=28,
                                channels=1)
        return model, EmbeddedMNISTDataModule(batch_size=250)
    if name == "DCGAN-ADA":  # DiffAugment draws from the noise stream, ADA's p and accumulator (extra state)
        model = MODELS["DCGAN"](ngf=4, ndf=4, latent_dim=8, image_size=28, channels=1, max_generator_steps=9,
                                augment="color,translation,cutout", ada=True, ada_interval=2, ada_speed_images=500)
        return model, EmbeddedMNISTDataModule(batch_size=500)
    if name == "CycleGAN":  # two Gs and Ds, history pools with their own generators, per-epoch LR decay
        from datamodules import FashionUnpairedDataModule

        model = MODELS["CycleGAN"](image_size=32, channels=1, ngf=4, ndf=4, n_residual_blocks=1, pool_size=3,
                                   max_generator_steps=6)
        return model, FashionUnpairedDataModule(max_train=8, max_test=4, batch_size=2)  # 4 batches per epoch
    raise KeyError(name)


def fit(tmp_path: Path, name: str, run: str, ckpt_path=None, **ckpt_kwargs) -> tuple[L.LightningModule, Path]:
    L.seed_everything(0)
    model, data = build(name)
    callback = GANCheckpoint(dirpath=tmp_path / run, filename="{step}", save_top_k=-1, **ckpt_kwargs)
    trainer = L.Trainer(default_root_dir=tmp_path, accelerator="cpu", devices=1, logger=False, deterministic=True,
                        max_epochs=-1, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                        num_sanity_val_steps=1, callbacks=[callback])
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model, tmp_path / run / "last.ckpt"


# (variant, checkpoint trigger of the first run, which of its checkpoints to resume from)
CASES = [
    ("GAN", {"every_n_generator_steps": 1}, ["step=10", "step=18"]),  # mid epoch 1 / the end of epoch 1 (9 batches)
    ("WGANGP", {"every_n_train_steps": 7}, ["step=7"]),  # 7 optimizer steps: in the middle of a critic cycle
    ("SNGAN", {"every_n_train_steps": 5}, ["step=10"]),  # 10 optimizer steps: G step 3 done, 1 of 2 D steps of the 4th
    ("CycleGAN", {"every_n_generator_steps": 1}, ["step=6", "step=8"]),  # pools full; the end of epoch 0
    ("DCGAN-ADA", {"every_n_generator_steps": 1}, ["step=10"]),  # step 5 of 9: mid ADA interval (odd D step count)
]


@pytest.mark.parametrize(("name", "trigger", "resume_from"), CASES, ids=[c[0] for c in CASES])
def test_resume_from_a_mid_run_checkpoint_is_exact(tmp_path, name, trigger, resume_from):
    straight, final = fit(tmp_path, name, "straight", **trigger)
    reference = read_checkpoint(final)
    assert reference["gan_modules"]["generator_steps"] == straight.hparams.max_generator_steps
    for stem in resume_from:
        mid = read_checkpoint(tmp_path / "straight" / f"{stem}.ckpt")
        assert 0 < mid["gan_modules"]["generator_steps"] < straight.hparams.max_generator_steps
        resumed, resumed_final = fit(tmp_path, name, f"from-{stem}", ckpt_path=tmp_path / "straight" / f"{stem}.ckpt",
                                     **trigger)
        assert_same_state(reference, read_checkpoint(resumed_final))
        # the live modules too (EMA, spectral-norm u/v, BatchNorm stats, ADA's extra state)
        assert_same_state(dict(straight.state_dict()), dict(resumed.state_dict()))


# ---------------------------------------------------------------------------------------------------------------
# A real kill: the fit runs in a subprocess (tests/resume_run.py), is SIGKILLed at a random moment after its first
# checkpoint, and is resumed with ckpt_path="last"; its end state equals that of an uninterrupted subprocess run.
def run_script(out: Path, *args: str, wait: bool = True) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "resume_run.py"), str(out), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-3000:]
    return proc


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("straight")
    run_script(out, "--every", "3")
    return read_checkpoint(out / "last.ckpt")


def test_resume_after_sigkill_at_a_random_moment_is_exact(tmp_path, uninterrupted):
    reference = uninterrupted
    victim = run_script(tmp_path / "killed", "--slow", "0.1", "--every", "3", wait=False)
    deadline = time.monotonic() + 240
    while not (tmp_path / "killed" / "last.ckpt").exists():
        assert victim.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 0.6))  # anywhere: inside a step, between steps, or while a checkpoint is written
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    at_kill = read_checkpoint(tmp_path / "killed" / "last.ckpt")  # never half-written (atomic replace)
    assert at_kill["gan_modules"]["generator_steps"] < reference["gan_modules"]["generator_steps"]
    run_script(tmp_path / "killed", "--ckpt_path", "last", "--every", "3")
    assert_same_state(reference, read_checkpoint(tmp_path / "killed" / "last.ckpt"))


def test_sigterm_saves_a_checkpoint_before_exit_and_resume_is_exact(tmp_path, uninterrupted):
    reference = uninterrupted
    victim = run_script(tmp_path / "term", "--slow", "0.1", "--every", "3", wait=False)
    deadline = time.monotonic() + 240
    while not (tmp_path / "term" / "started").exists():
        assert victim.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(random.uniform(0.1, 0.5))
    victim.send_signal(signal.SIGTERM)
    output, _ = victim.communicate(timeout=120)
    assert "SIGTERM: saved" in output and "--ckpt_path last" in output, output[-2000:]
    saved = read_checkpoint(tmp_path / "term" / "last.ckpt")
    assert 0 < saved["gan_modules"]["generator_steps"] < reference["gan_modules"]["generator_steps"]
    run_script(tmp_path / "term", "--ckpt_path", "last", "--every", "3")
    assert_same_state(reference, read_checkpoint(tmp_path / "term" / "last.ckpt"))


# ---------------------------------------------------------------------------------------------------------------
def test_resume_atomic_write_keeps_the_previous_last_checkpoint_when_saving_fails(tmp_path, monkeypatch):
    """A failure (or kill) in the middle of writing leaves the previous last.ckpt intact and no temp file."""
    _, last = fit(tmp_path, "GAN", "run", every_n_generator_steps=4)
    before = last.read_bytes()

    def broken_save(self, filepath, weights_only=False, storage_options=None):
        Path(filepath).write_bytes(b"PK\x03\x04 half a zip")  # a partial write, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(L.Trainer, "save_checkpoint", broken_save)
    with pytest.raises(OSError, match="disk full"):
        fit(tmp_path, "GAN", "run", ckpt_path=last, every_n_generator_steps=1)
    assert last.read_bytes() == before
    assert not [p for p in last.parent.iterdir() if ".tmp" in p.name]


def test_resume_counts_checkpoint_intervals_in_generator_steps(tmp_path):
    """every_n_generator_steps=2 with n_critic 2: files after generator steps 2 and 4 (global steps 6 and 12)."""
    model = MODELS["SNGAN"](ngf=4, ndf=4, latent_dim=8, n_critic=2, max_generator_steps=4, image_size=28, channels=1)
    callback = GANCheckpoint(dirpath=tmp_path, filename="{step}", save_top_k=-1, every_n_generator_steps=2)
    trainer = L.Trainer(default_root_dir=tmp_path, accelerator="cpu", logger=False, max_epochs=-1,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[callback])
    trainer.fit(model, datamodule=EmbeddedMNISTDataModule(batch_size=250))
    assert sorted(p.name for p in tmp_path.glob("step=*.ckpt")) == ["step=12.ckpt", "step=6.ckpt"]
    assert read_checkpoint(tmp_path / "step=6.ckpt")["gan_modules"]["generator_steps"] == 2
    assert read_checkpoint(tmp_path / "last.ckpt")["gan_modules"]["generator_steps"] == 4
