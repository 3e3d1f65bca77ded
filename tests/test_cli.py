"""End to end through the real CLI, parametrized over every config: a new model or config needs no test edit.

Configs whose data is on this machine (embedded MNIST, Debian's Fashion-MNIST, the offline translation tasks) run
a tiny-width ``fit`` then ``validate`` and ``predict`` from the checkpoint; configs whose data needs a download
(CIFAR-10, CelebA, facades, ...) must parse, build their model, and fail offline with one clear line.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gan_modules.cli import run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(ROOT.glob("configs/*.yaml"))

# Width arguments shrunk for tests when a model's __init__ has them (use these names in new variants).
TINY = {
    "ngf": 4, "ndf": 4, "g_channels": 8, "d_channels": 8, "conv_dim": 4, "g_hidden": [16, 16], "d_hidden": [16, 16],
    "n_residual_blocks": 1, "num_residual_blocks": 1, "repeat_num": 1, "latent_dim": 8,
    "warmup_critic_steps": 2,  # WGAN's 100-critic-step warm-up, shortened for speed
}


def _resolve(class_path: str):
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def _model_overrides(cfg: dict) -> list[str]:
    cls = _resolve(cfg["model"]["class_path"])
    params = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params |= set(inspect.signature(klass.__init__).parameters)
    out = []
    for name, value in TINY.items():
        if name in params:
            out += [f"--model.init_args.{name}", json.dumps(value)]
    return out


def _data_available(cfg: dict) -> str | None:
    """None when the config's data can be loaded here, else the one-line error the datamodule gives."""
    from datamodules import DataError

    cls = _resolve(cfg["data"]["class_path"])
    init = dict(cfg["data"].get("init_args") or {})
    if "download" in inspect.signature(cls.__init__).parameters:
        init["download"] = False
    try:
        dm = cls(**init)
        dm.prepare_data()
        dm.setup("fit")
    except DataError as err:
        return str(err)
    return None


def _common(tmp_path: Path) -> list[str]:
    return [
        "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "cpu",
        "--trainer.devices", "1", "--trainer.enable_progress_bar", "false", "--trainer.precision", "32-true",
        "--trainer.num_sanity_val_steps", "0", "--checkpoint.dirpath", str(tmp_path / "ckpt"),
    ]


def _data_overrides(cfg: dict, batch_size: int = 4) -> list[str]:
    out = ["--data.init_args.batch_size", str(batch_size)]
    if "num_workers" in inspect.signature(_resolve(cfg["data"]["class_path"]).__init__).parameters:
        out += ["--data.init_args.num_workers", "0"]
    return out


def test_every_config_names_a_registered_model():
    from gan_modules import MODELS

    assert len(CONFIGS) >= 4
    for path in CONFIGS:
        cfg = yaml.safe_load(path.read_text())
        assert _resolve(cfg["model"]["class_path"]) in MODELS.values(), path.name
        assert path.stem.split("_")[0] in {"gan", "dcgan", "cgan", "wgan", "sngan", "cyclegan", "pix2pix", "stargan"}


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_end_to_end(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    missing = _data_available(cfg)
    if missing is not None:
        assert "\n" not in missing and len(missing) < 400
        assert any(w in missing.lower() for w in ("download", "put", "install", "place")), missing
        return
    fit = ["fit", "--config", str(config), *_common(tmp_path), *_model_overrides(cfg), *_data_overrides(cfg),
           "--model.init_args.max_generator_steps", "2", "--trainer.limit_val_batches", "1",
           "--sample_grid.num_samples", "4"]
    cli = run(fit)
    model = cli.model
    assert model.generator_steps == 2
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    assert ckpt.exists()
    assert (tmp_path / "samples" / "final.png").exists()

    shared = ["--config", str(config), *_common(tmp_path), *_model_overrides(cfg), *_data_overrides(cfg),
              "--ckpt_path", str(ckpt)]
    val = run(["validate", *shared, "--trainer.limit_val_batches", "1"])
    assert val.trainer.callback_metrics, "validate logged nothing"
    assert all(torch.isfinite(v).all() for v in val.trainer.callback_metrics.values())

    out = tmp_path / "pred"
    run(["predict", *shared, "--trainer.limit_predict_batches", "1", "--predict_writer.output_dir", str(out)])
    pngs = list(out.glob("*.png"))
    assert len(pngs) >= 2, pngs


def test_console_script_and_cli_py_are_the_same_entry_point():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["gan-modules"] == "gan_modules.cli:main"
    out = subprocess.run([sys.executable, str(ROOT / "cli.py"), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "fit" in out.stdout and "predict" in out.stdout


def test_fit_counts_generator_steps_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = run(["fit", "--config", str(ROOT / "configs/dcgan_mnist.yaml"), *_common(tmp_path),
                "--model.init_args.ngf", "4", "--model.init_args.ndf", "4", "--model.init_args.n_critic", "3",
                "--model.init_args.max_generator_steps", "3", "--data.init_args.batch_size", "8",
                "--trainer.limit_val_batches", "0"])
    assert (cli.model.generator_steps, cli.model.discriminator_steps) == (3, 9)
    assert cli.trainer.global_step == 12  # Lightning counts both optimizers' steps


def test_bad_input_max_steps_next_to_generator_steps(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run(["fit", "--config", str(ROOT / "configs/dcgan_mnist.yaml"), *_common(tmp_path),
              "--trainer.max_steps", "10"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gan-modules: error: set either model.init_args.max_generator_steps")


def test_bad_input_unknown_loss_name_through_the_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run(["fit", "--config", str(ROOT / "configs/dcgan_mnist.yaml"), *_common(tmp_path),
              "--model.init_args.loss", "wgan"])
    assert exc.value.code == 2
    assert "unknown loss 'wgan': choose one of" in capsys.readouterr().err


def test_data_attributes_are_linked_into_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = run(["fit", "--config", str(ROOT / "configs/dcgan_mnist.yaml"), *_common(tmp_path),
                "--model.init_args.ngf", "4", "--model.init_args.ndf", "4", "--data.init_args.channels", "3",
                "--data.init_args.image_size", "32", "--model.init_args.max_generator_steps", "1",
                "--data.init_args.batch_size", "4", "--trainer.limit_val_batches", "0"])
    hp = cli.model.hparams
    assert (hp.channels, hp.image_size, hp.num_classes) == (3, 32, 10)
    assert cli.model.generate(cli.model.sample_inputs(2)).shape == (2, 3, 32, 32)
