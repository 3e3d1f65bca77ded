"""DDP the way users run it: the installed ``gan-modules`` command with ``--trainer.devices 2 --trainer.accelerator cpu
--trainer.strategy ddp_find_unused_parameters_true`` (Lightning starts the second rank), and once through ``torchrun
--nproc_per_node 2 cli.py fit ...``, with sample grids, metrics and checkpoints on.

Each run must finish within its timeout (a collective inside rank-zero-only code deadlocks at the first grid or at
the end of training), write its grid and ``last.ckpt`` once into one run directory, ``validate`` must report metrics
synced over the ranks, ``predict`` must write every sample once, a 2-rank resume from ``last.ckpt`` must continue to
the new budget, and a SIGTERM that arrives while a rank is stuck in a collective must end the process in bounded time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan_modules.checkpoint import read_checkpoint

pytestmark = [pytest.mark.ddp, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy",
       "ddp_find_unused_parameters_true"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
TIMEOUT = 240  # seconds per command: a deadlocked run is killed and fails the test


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def gan_modules(*args: str, cwd: Path, timeout: float = TIMEOUT) -> tuple[subprocess.CompletedProcess, float]:
    """Runs the installed console script; returns the finished process and its wall time."""
    start = time.monotonic()
    try:
        proc = subprocess.run([str(BIN / "gan-modules"), *args], cwd=cwd, env=env(), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"gan-modules {' '.join(args[:3])} did not finish within {timeout} s (deadlock?):\n"
                    f"{(err.stderr or b'')[-3000:]!r}")
    wall = time.monotonic() - start
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc, wall


def record(tmp_path: Path, name: str, wall: float) -> None:
    """Wall times of the 2-rank runs, for the closing note (``pytest -s`` prints them)."""
    print(f"[ddp-cli] {name}: {wall:.1f} s", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def only_version(root: Path) -> Path:
    versions = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(versions) == 1, f"expected one run directory, got {[p.name for p in versions]}"
    return versions[0]


# ----------------------------------------------------------------------------------------------------------------
DCGAN = ["--config", str(ROOT / "configs/dcgan_mnist.yaml"), "--model.init_args.ngf", "4", "--model.init_args.ndf",
         "4", "--model.init_args.latent_dim", "8", "--data.init_args.batch_size", "16"]


def test_unconditional_fit_validate_predict_and_resume_on_two_ranks(tmp_path):
    fit_args = [*DCGAN, *DDP, *QUIET, "--model.init_args.max_generator_steps", "6",
                "--sample_grid.every_n_generator_steps", "3", "--metrics.every_n_generator_steps", "3",
                "--metrics.num_samples", "64", "--checkpoint.every_n_generator_steps", "3",
                "--trainer.limit_val_batches", "0"]
    proc, wall = gan_modules("fit", *fit_args, cwd=tmp_path)
    record(tmp_path, "DCGAN fit, 6 steps", wall)
    run = only_version(tmp_path / "runs" / "dcgan_mnist")
    samples = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert samples == ["final.png", "step_0000003.png", "step_0000006.png"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    assert sorted(p.name for p in (run / "metrics").glob("val_step_*.json")) == ["val_step_0000003.json",
                                                                                 "val_step_0000006.json"]
    protocol = json.loads((run / "metrics" / "val_step_0000006.json").read_text())["protocol"]
    assert protocol["num_real"] == protocol["num_generated"] == 64  # 32 per rank, synced
    state = read_checkpoint(run / "checkpoints" / "last.ckpt")["gan_modules"]
    assert state["generator_steps"] == 6 and state["rng"]["world_size"] == 2
    streams = state["rng"]["ranks"]
    assert len(streams) == 2 and not torch.equal(streams[0]["noise"], streams[1]["noise"])  # per-rank streams

    ckpt = str(run / "checkpoints" / "last.ckpt")
    proc, wall = gan_modules("validate", *DCGAN, *DDP, *QUIET, "--ckpt_path", ckpt, "--metrics.num_samples", "64",
                             cwd=tmp_path)
    record(tmp_path, "DCGAN validate", wall)
    assert "val FID" in proc.stdout + proc.stderr
    assert "64 real val images vs 64 generated" in proc.stdout + proc.stderr  # both ranks' halves counted once

    out = tmp_path / "predicted"
    proc, wall = gan_modules("predict", *DCGAN, *DDP, *QUIET, "--ckpt_path", ckpt, "--data.init_args.num_predict",
                             "9", "--predict_writer.output_dir", str(out), cwd=tmp_path)
    record(tmp_path, "DCGAN predict", wall)
    assert sorted(p.name for p in out.glob("0*.png")) == [f"{i:06d}.png" for i in range(9)]
    assert "predict wrote 9 image(s)" in proc.stdout  # 9 over 2 ranks: no item written twice

    proc, wall = gan_modules("fit", *fit_args[:-6], "--model.init_args.max_generator_steps", "9", "--ckpt_path", ckpt,
                             "--trainer.limit_val_batches", "0", cwd=tmp_path)
    record(tmp_path, "DCGAN resume 6 -> 9", wall)
    last = sorted((tmp_path / "runs" / "dcgan_mnist").glob("*/checkpoints/last.ckpt"))[-1]
    assert read_checkpoint(last)["gan_modules"]["generator_steps"] == 9


def fit_4_steps_then_validate(tmp_path: Path, args: list[str], name: str, label: str, samples: int):
    """A 2-rank fit of 4 generator steps (grids every 2) that writes its grid and last.ckpt once, then a 2-rank
    validate of that checkpoint; returns the validate process."""
    proc, wall = gan_modules("fit", *args, "--model.init_args.max_generator_steps", "4",
                             "--sample_grid.every_n_generator_steps", "2", "--trainer.limit_val_batches", "0",
                             cwd=tmp_path)
    record(tmp_path, f"{label} fit, 4 steps", wall)
    run = only_version(tmp_path / "runs" / name)
    assert (run / "samples" / "final.png").exists() and (run / "checkpoints" / "last.ckpt").exists()
    proc, wall = gan_modules("validate", *args, "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
                             "--metrics.num_samples", str(samples), cwd=tmp_path)
    record(tmp_path, f"{label} validate", wall)
    return proc


def test_conditional_with_gradient_penalty_fit_and_validate_on_two_ranks(tmp_path):
    args = ["--config", str(ROOT / "configs/cgan_mnist.yaml"), "--model.init_args.ngf", "4", "--model.init_args.ndf",
            "4", "--model.init_args.latent_dim", "8", "--model.init_args.d_norm", "layer", "--model.init_args.penalty",
            "gradient_penalty", "--data.init_args.batch_size", "16", *DDP, *QUIET]
    proc = fit_4_steps_then_validate(tmp_path, args, "cgan_mnist", "CGAN+GP", 64)
    assert "64 real val images vs 64 generated" in proc.stdout + proc.stderr


def test_translation_fit_and_validate_on_two_ranks(tmp_path):
    args = ["--config", str(ROOT / "configs/pix2pix_fashion_edges.yaml"), "--model.init_args.ngf", "4",
            "--model.init_args.ndf", "4", "--data.init_args.batch_size", "4", "--data.init_args.max_train", "64",
            "--data.init_args.max_test", "32", *DDP, *QUIET]
    proc = fit_4_steps_then_validate(tmp_path, args, "pix2pix_fashion_edges", "Pix2Pix", 32)
    assert "val/l1" in proc.stdout


def test_torchrun_launch(tmp_path):
    start = time.monotonic()
    proc = subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
                           str(ROOT / "cli.py"), "fit", *DCGAN, *DDP, *QUIET,
                           "--model.init_args.max_generator_steps", "3", "--trainer.limit_val_batches", "0"],
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-5000:]
    record(tmp_path, "torchrun DCGAN fit, 3 steps", time.monotonic() - start)
    run = only_version(tmp_path / "runs" / "dcgan_mnist")
    assert (run / "samples" / "final.png").exists()
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["gan_modules"]["generator_steps"] == 3


def test_sigterm_while_a_rank_is_stuck_ends_the_process_in_bounded_time(tmp_path):
    """Rank 1 is frozen (SIGSTOP) mid-training, so rank 0 blocks in the next all-reduce; SIGTERM to rank 0 must end it
    within sigterm_timeout (+ a margin), with one line saying so, instead of hanging until SIGKILL."""
    args = [*DCGAN, *DDP, *QUIET, "--model.init_args.max_generator_steps", "100000", "--checkpoint.every_n_generator_steps",
            "2", "--checkpoint.sigterm_timeout", "5", "--trainer.limit_val_batches", "0"]
    out, err_file = open(tmp_path / "stdout.txt", "w"), open(tmp_path / "stderr.txt", "w")  # files: never fill up
    proc = subprocess.Popen([str(BIN / "gan-modules"), "fit", *args], cwd=tmp_path, env=env(), text=True,
                            stdout=out, stderr=err_file, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not list((tmp_path / "runs").glob("dcgan_mnist/*/checkpoints/last.ckpt")):
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.5)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert children, "Lightning started no second rank"
        os.kill(int(children[0]), signal.SIGSTOP)  # rank 1 stops answering collectives
        time.sleep(3)  # rank 0 is now blocked in one
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM did not end the DDP process within 60 s")
        took = time.monotonic() - sent
        err = (tmp_path / "stderr.txt").read_text()
        assert proc.returncode != 0
        assert took < 30, f"took {took:.1f} s"
        assert "training did not stop within 5 s" in err
        record(tmp_path, "SIGTERM with a stuck rank: exit after", took)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out.close(), err_file.close()
