"""A new user's first hour, through the *installed* console scripts as subprocesses: exit codes (0 success, 2 user
error, 1 crash), one-line config errors with the stderr line count checked, outputs in one run directory, a finished
run's resume that writes nothing, no config overwritten silently, the whole config (and the effective optimizers)
logged as hyperparameters, readable grids, and no third-party noise on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUICK = ["--config", str(ROOT / "configs/dcgan_mnist.yaml"), "--model.init_args.ngf", "4", "--model.init_args.ndf",
         "4", "--model.init_args.latent_dim", "8", "--data.init_args.batch_size", "32", "--trainer.accelerator", "cpu"]


def cli(*args: str, cwd: Path, script: str = "gan-modules", timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    env.pop(("GAN_MODULES_VERBOSE"), None)
    return subprocess.run([str(BIN / script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """Exit 2 and a stderr of exactly one line, ``gan-modules: error: ...``; returns that line."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("gan-modules: error: ") and "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize("args, expected", [
    (["--model.init_args.latnt_dim", "3"], "unknown option --model.init_args.latnt_dim of gan_modules.DCGAN; did you "
                                           "mean 'latent_dim'?"),
    (["--model", "DCGan"], "unknown model class 'DCGan'; did you mean 'DCGAN'?; choose one of CGAN, CycleGAN, DCGAN"),
    (["--data", "EmbedMNIST"], "unknown data class 'EmbedMNIST'"),
    (["--data.init_args.image_size", "48"], "DCGANGenerator does not support image_size=48; supported sizes: 28, 32, "
                                            "64, 128"),
    (["--trainer.max_stepz", "3"], "unknown argument --trainer.max_stepz"),
    (["--model.init_args.loss", "wgan"], "unknown loss 'wgan': choose one of hinge, least_squares, minimax"),
])
def test_config_mistakes_are_one_line_with_exit_code_2(tmp_path, args, expected):
    line = one_error_line(cli("fit", *QUICK, *args, cwd=tmp_path))
    assert expected in line, line
    assert not (tmp_path / "runs").exists()  # nothing written


def test_verbose_shows_the_full_parser_text(tmp_path):
    proc = cli("fit", *QUICK, "--model.init_args.latnt_dim", "3", "--verbose", cwd=tmp_path)
    assert proc.returncode == 2 and "Does not validate against any of the Union subtypes" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("gan-modules: error: unknown option")


def test_a_crash_exits_1_with_the_traceback(tmp_path):
    proc = cli("fit", *QUICK, "--model.init_args.max_generator_steps", "2", "--trainer.callbacks+=tests.helpers.Crash",
               cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "RuntimeError: deliberate crash" in proc.stderr


def test_fit_validate_and_a_finished_resume_keep_to_one_run_directory(tmp_path):
    proc = cli("fit", *QUICK, "--model.init_args.max_generator_steps", "4", "--sample_grid.every_n_generator_steps",
               "2", "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "runs",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Tip:" not in proc.stderr and "LeafSpec" not in proc.stderr and "Seed set to" not in proc.stderr
    runs = tmp_path / "runs" / "dcgan_mnist"
    assert [p.name for p in runs.iterdir()] == ["version_0"]
    run = runs / "version_0"
    ckpt = run / "checkpoints" / "last.ckpt"
    for name in ("config.yaml", "samples/final.png", "samples/step_0000002.png", "losses.png", "scalars.csv",
                 "real_vs_fake.png", "progress.gif", "hparams.yaml"):
        assert (run / name).is_file(), name
    summary = proc.stdout + proc.stderr
    assert "trained for 4 of 4 generator steps" in summary and str(ckpt.relative_to(tmp_path)) in summary
    # readable grids: 64 digits of 28 px (242 px with padding) enlarged to >= 512 px
    assert Image.open(run / "samples" / "final.png").width >= 512
    # the whole resolved config and the effective optimizers (paper defaults) as hyperparameters
    hparams = yaml.safe_load((run / "hparams.yaml").read_text())
    assert hparams["config/model/init_args/ngf"] == 4 and hparams["config/data/init_args/batch_size"] == 32
    assert hparams["optimizer/g/class"] == "Adam" and hparams["optimizer/g/lr"] == pytest.approx(2e-4)
    assert hparams["optimizer/d/betas"] == "(0.5, 0.999)"

    proc = cli("validate", *QUICK, "--ckpt_path", str(ckpt), "--metrics.num_samples", "64",
               "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "runs",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == ["version_0"]  # no new, empty version folder
    assert (run / "metrics" / "val_step_0000004.json").is_file() and (run / "config.validate.yaml").is_file()
    assert "confident" in proc.stderr and "raw generator (no EMA)" in proc.stderr

    before = sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*"))
    proc = cli("fit", *QUICK, "--model.init_args.max_generator_steps", "4", "--ckpt_path", "last",
               "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", "runs",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "already has 4 generator steps (max_generator_steps=4): nothing to train and nothing " \
        "written" in lines[0], proc.stderr
    assert sorted((p.relative_to(run), p.stat().st_mtime_ns) for p in run.rglob("*")) == before  # nothing written
    assert [p.name for p in runs.iterdir()] == ["version_0"]


def test_logger_false_runs_go_under_runs_and_configs_are_never_overwritten_silently(tmp_path):
    args = [*QUICK, "--model.init_args.max_generator_steps", "2", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false"]
    assert cli("fit", *args, cwd=tmp_path).returncode == 0
    run = tmp_path / "runs" / "dcgan_mnist" / "version_0"
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "config.yaml").exists() and not (tmp_path / "samples").exists()  # never the cwd
    first = (run / "config.yaml").read_text()
    proc = cli("fit", *args, "--trainer.default_root_dir", str(run), "--model.init_args.max_generator_steps", "3",
               cwd=tmp_path)
    assert proc.returncode == 0
    assert (run / "config.yaml").read_text() == first  # kept
    assert (run / "config.2.yaml").is_file() and "exists with another config" in proc.stderr
