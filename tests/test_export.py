"""Export of every model's generator (``gan-modules-export``): torch.export ``.pt2``, ONNX and the hf folder
(``model.safetensors`` + ``config.json`` + model card) match the eager model for unconditional, conditional and
translation families, at batch sizes and image sides other than the traced ones, with no deprecation warning; the
installed console script's exit codes; and the one-line errors (unknown format, missing extra, wrong direction)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

import gan_modules
from gan_modules import MODELS, load_generator
from gan_modules.errors import ConfigError
from gan_modules.export import example_inputs, export, main, size_multiple
from gan_modules.translation import TranslationModule

from .helpers import loader, trainer

ROOT = Path(__file__).resolve().parents[1]
#: tiny constructor arguments for every registered model (a new model must add itself here: see the first test)
TINY = {
    "GAN": {"g_hidden": (8,), "d_hidden": (8,)},
    "DCGAN": {"ngf": 4, "ndf": 4},
    "CGAN": {"ngf": 4, "ndf": 4, "num_classes": 3, "conditioning": "projection"},
    "WGAN": {"ngf": 4, "ndf": 4},
    "WGANGP": {"ngf": 4, "ndf": 4, "arch": "resnet", "image_size": 32},
    "SNGAN": {"ngf": 4, "ndf": 4},
    "Pix2Pix": {"ngf": 4, "ndf": 4, "image_size": 32},  # U-Net depth 5: a 1×1 bottleneck at 32 px
    "CycleGAN": {"ngf": 4, "ndf": 4, "n_residual_blocks": 1, "image_size": 32},
    "StarGAN": {"ngf": 4, "ndf": 4, "n_residual_blocks": 1, "repeat_num": 1, "num_classes": 3, "image_size": 32},
}
#: ONNX per family; the conditional one uses the other CGAN generator than TINY (concat + embedding, no cond. BN)
FAMILIES = {"unconditional": ("DCGAN", {}), "conditional": ("CGAN", {"conditioning": "concat", "label_encoding":
            "embedding"}), "translation": ("StarGAN", {})}  # fmt: skip
DIRECTION = {"CycleGAN": "b2a"}  # export the non-default generator to check that the choice is honoured


def tiny_model(name: str, seed: int = 0, **overrides):
    """A model whose EMA generator (when there is one) differs from the raw one and whose norm layers hold running
    statistics far from their initial values, so exporting the wrong weights or mode cannot pass."""
    torch.manual_seed(seed)
    model = MODELS[name](**{**TINY[name], **overrides}).eval()
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for name_, b in model.sampling_generator().named_buffers():
            if name_.endswith("running_mean"):
                b.copy_(0.3 * torch.randn_like(b))
            elif name_.endswith("running_var"):
                b.copy_(0.5 + torch.rand_like(b))
    return model


@torch.no_grad()
def reference(model, args, direction=None, use_ema=True) -> torch.Tensor:
    """The model's own output for the export's inputs, through its public sampling API."""
    if isinstance(model, TranslationModule):
        if hasattr(model, "c_dim"):
            return model.run_generator(args[0], args[1], use_ema=use_ema)
        if direction is not None:
            return model.translate(args[0], direction)
        return model.run_generator(args[0], use_ema=use_ema)
    names = list(model.sample_inputs(1, seed=0))
    return model.generate(dict(zip(names, args)), use_ema=use_ema)


def check_cases(model, direction=None) -> list[tuple[torch.Tensor, ...]]:
    """Inputs other than the traced ones (batch 2, side 2k): batch 1 and 5; sides k (U-Net's 1×1 bottleneck) and 3k."""
    if not isinstance(model, TranslationModule):
        return [example_inputs(model, batch=n, seed=10 + n) for n in (1, 5)]
    k = size_multiple(model, direction)
    sides = (k, 3 * k) if k >= 8 else (2 * k, 3 * k)  # a 4-px input has a 1×1 InstanceNorm map: eager refuses it
    return [example_inputs(model, batch=n, size=s, seed=s) for n, s in zip((1, 3), sides)]


def onnx_run(path: Path, names: list[str], args) -> torch.Tensor:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["output"], {n: a.numpy() for n, a in zip(names, args)})[0])


def input_names(model) -> list[str]:
    if isinstance(model, TranslationModule):
        return ["image", "label"][: 1 + hasattr(model, "c_dim")]
    return list(model.sample_inputs(1, seed=0))


def deprecations(caught: list[warnings.WarningMessage]) -> list[str]:
    return [f"{w.category.__name__}: {w.message}" for w in caught
            if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))
            or "deprecat" in str(w.message).lower()]  # fmt: skip


def test_every_registered_model_has_tiny_export_settings():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pt2_and_hf_folder_match_the_eager_generator(name, tmp_path):
    model = tiny_model(name)
    direction = DIRECTION.get(name)
    with warnings.catch_warnings(record=True) as caught:  # torch.jit's path warned "deprecated" on every call
        warnings.simplefilter("always")
        written = export(model, tmp_path, ("pt2", "hf"), direction=direction)
        program = torch.export.load(str(written["pt2"])).module()
        net = load_generator(tmp_path)
    assert deprecations(caught) == []
    assert type(net).__module__.startswith("gan_modules.nets.") and not isinstance(net, L.LightningModule)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    for args in check_cases(model, direction):
        eager = reference(model, args, direction)
        assert (program(*args) - eager).abs().max().item() == pytest.approx(0.0, abs=1e-6)
        assert (net(*args) - eager).abs().max().item() == pytest.approx(0.0, abs=1e-6)
    if model.generator_ema is not None:  # the EMA generator was exported, not the raw one
        args = check_cases(model)[1]
        assert (reference(model, args, use_ema=False) - reference(model, args)).abs().max() > 1e-3


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_onnx_matches_the_eager_generator(family, tmp_path):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    name, overrides = FAMILIES[family]
    model = tiny_model(name, **overrides)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = export(model, tmp_path, ("onnx",))
    assert deprecations(caught) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator.onnx"]  # weights inside, no .data side file
    for args in check_cases(model):
        diff = (onnx_run(written["onnx"], input_names(model), args) - reference(model, args)).abs().max().item()
        assert diff == pytest.approx(0.0, abs=1e-5)


def test_no_ema_exports_the_raw_generator(tmp_path):
    model = tiny_model("DCGAN")
    written = export(model, tmp_path, ("pt2", "hf"), use_ema=False)
    args = example_inputs(model, batch=3, seed=5)
    raw = reference(model, args, use_ema=False)
    assert (torch.export.load(str(written["pt2"])).module()(*args) - raw).abs().max().item() == pytest.approx(0, abs=1e-6)
    assert (load_generator(tmp_path)(*args) - raw).abs().max().item() == pytest.approx(0, abs=1e-6)
    assert json.loads((tmp_path / "config.json").read_text())["weights"] == "generator"


# ----------------------------------------------------------------------------------------------------------------
# The console script
def fitted_checkpoint(tmp_path: Path, name: str = "DCGAN", **kwargs) -> Path:
    model = MODELS[name](**TINY[name], max_generator_steps=2, **kwargs)
    fit = trainer(tmp_path / "run", log_every_n_steps=1)
    fit.fit(model, loader(n=8, batch_size=4, size=model.hparams.image_size, channels=model.hparams.channels))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fit.save_checkpoint(path)
    return path


def console_script(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "gan-modules-export"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(exe), *args], check=False, capture_output=True, text=True, env=env, timeout=600)


def test_console_script_exports_a_dcgan_checkpoint_in_every_format(tmp_path):
    """The quickstart's case, refused before ("holds a DCGAN, not a TranslationModule")."""
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    ckpt = fitted_checkpoint(tmp_path)
    out = tmp_path / "exported"
    proc = console_script(str(ckpt), "--out", str(out), "--formats", "pt2", "onnx", "hf")
    assert proc.returncode == 0, proc.stderr
    assert "torch.jit" not in proc.stderr and "deprecated" not in proc.stderr.lower(), proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["pt2", "onnx", "hf"]
    assert all("checked against eager" in line for line in lines)
    from gan_modules.registry import load_model

    model = load_model(ckpt)
    args = example_inputs(model, batch=4, seed=7)
    eager = reference(model, args)
    diffs = {"pt2": (torch.export.load(str(out / "generator.pt2")).module()(*args) - eager).abs().max().item(),
             "onnx": (onnx_run(out / "generator.onnx", ["z"], args) - eager).abs().max().item(),
             "hf": (load_generator(out)(*args) - eager).abs().max().item()}
    assert diffs == pytest.approx({"pt2": 0.0, "onnx": 0.0, "hf": 0.0}, abs=1e-5)


def test_a_missing_checkpoint_is_exit_code_2_with_one_line(tmp_path, capsys):
    code, err = run_main(capsys, str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "out"))
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"gan-modules-export: error: checkpoint {tmp_path / 'nope.ckpt'} not found")
    assert not (tmp_path / "out").exists()


def test_cyclegan_checkpoint_exports_the_chosen_direction(tmp_path, capsys):
    ckpt = fitted_checkpoint(tmp_path, "CycleGAN")
    assert main([str(ckpt), "--out", str(tmp_path / "b2a"), "--direction", "b2a"]) == 0
    printed = capsys.readouterr().out
    assert "pt2:" in printed and "hf:" in printed
    config = json.loads((tmp_path / "b2a" / "config.json").read_text())
    assert config["direction"] == "b2a" and config["model"]["name"] == "CycleGAN"
    from gan_modules.registry import load_model

    model = load_model(ckpt)
    x = example_inputs(model, batch=2, size=16, seed=2)[0]
    assert (load_generator(tmp_path / "b2a")(x) - model.translate(x, "b2a")).abs().max().item() == pytest.approx(
        0.0, abs=1e-6)
    assert (load_generator(tmp_path / "b2a")(x) - model.translate(x, "a2b")).abs().max() > 1e-4


# ----------------------------------------------------------------------------------------------------------------
# One-line errors (exit code 2)
def run_main(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def test_torchscript_is_refused_with_the_replacement(tmp_path, capsys):
    ckpt = fitted_checkpoint(tmp_path)
    code, err = run_main(capsys, str(ckpt), "--out", str(tmp_path / "o"), "--formats", "torchscript")
    assert code == 2 and len(err.splitlines()) == 1
    assert err == ("gan-modules-export: error: unknown export format(s) torchscript: choose from pt2, onnx, hf; "
                   "TorchScript (torch.jit) is deprecated by torch: use pt2")


def test_missing_onnx_packages_name_the_extra_before_anything_is_written(tmp_path, capsys, monkeypatch):
    ckpt = fitted_checkpoint(tmp_path)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    code, err = run_main(capsys, str(ckpt), "--out", str(tmp_path / "o"), "--formats", "pt2", "onnx")
    assert code == 2
    assert err == ('gan-modules-export: error: ONNX export needs the onnxscript package: '
                   'pip install "gan-modules[export]"')
    assert not (tmp_path / "o" / "generator.pt2").exists()


def test_direction_errors_are_one_line(tmp_path, capsys):
    ckpt = fitted_checkpoint(tmp_path)
    code, err = run_main(capsys, str(ckpt), "--out", str(tmp_path / "o"), "--direction", "b2a")
    assert code == 2
    assert err == "gan-modules-export: error: DCGAN has one generator; --direction applies to CycleGAN only"
    with pytest.raises(ConfigError, match=r"^direction must be one of a2b, b2a, got 'x2y'$"):
        export(tiny_model("CycleGAN"), tmp_path / "c", ("pt2",), direction="x2y")


def test_a_crash_is_not_reported_as_a_user_error(tmp_path, monkeypatch):
    """Unexpected failures propagate (the console script then exits 1 with the traceback), not exit code 2."""
    ckpt = fitted_checkpoint(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(gan_modules.export, "export", broken)
    with pytest.raises(RuntimeError, match="boom"):
        main([str(ckpt), "--out", str(tmp_path / "o")])
