"""The one seam for private Lightning/torch internals (``gan_modules/_compat.py``): a test per access that fails loudly,
naming the internal, when a new release moves it; and a scan that no other module touches them."""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from torch import nn

from gan_modules import DCGAN, _compat
from tests.helpers import loader, trainer

ROOT = Path(__file__).resolve().parents[1]


def test_torch_foreach_kernels_are_there_and_compute_what_we_use_them_for():
    a, b = [torch.tensor([3.0, 4.0]), torch.tensor([1.0])], [torch.tensor([1.0, 2.0]), torch.tensor([3.0])]
    assert [n.item() for n in _compat.foreach_norm(a)] == pytest.approx([5.0, 1.0])
    _compat.foreach_lerp_(a, b, 0.25)  # a + 0.25 (b - a)
    assert a[0].tolist() == pytest.approx([2.5, 3.5]) and a[1].tolist() == pytest.approx([1.5])
    _compat.foreach_clamp_(a, -1.0, 3.0)
    assert a[0].tolist() == pytest.approx([2.5, 3.0])


def test_torch_norm_base_classes():
    assert issubclass(nn.BatchNorm2d, _compat.BATCH_NORM) and issubclass(nn.InstanceNorm2d, _compat.NORM_BASE)
    assert not issubclass(nn.InstanceNorm2d, _compat.BATCH_NORM), "torch.nn.modules.batchnorm._BatchNorm moved"


def test_torch_export_size_oblivious_switch():
    config = torch.fx.experimental._config
    assert hasattr(config, "backed_size_oblivious"), "torch.fx.experimental._config.backed_size_oblivious moved"
    with _compat.export_without_size_specialization():
        assert config.backed_size_oblivious is True


def test_trainer_internals(tmp_path):
    model = DCGAN(image_size=28, channels=1, ngf=4, ndf=4, latent_dim=8, max_generator_steps=1)
    tr = trainer(tmp_path)
    assert _compat.attached_trainer(model) is None
    tr.fit(model, loader(8, 4))
    assert _compat.attached_trainer(model) is tr, "LightningModule._trainer moved"
    assert isinstance(_compat.should_update_logs(tr), bool), "Trainer._logger_connector.should_update_logs moved"
    assert tr.received_sigterm is False
    _compat.set_received_sigterm(tr)
    assert tr.received_sigterm is True, "Trainer._signal_connector.received_sigterm moved"
    assert _compat.strategy_launcher(tr) is None or hasattr(_compat.strategy_launcher(tr), "kill")


@pytest.mark.parametrize("name", ["_save_checkpoint", "_find_last_checkpoints", "_monitor_candidates",
                                  "_save_topk_checkpoint", "_save_last_checkpoint"])
def test_model_checkpoint_private_steps(name):
    assert callable(getattr(ModelCheckpoint, name, None)), f"ModelCheckpoint.{name} moved"
    params = list(inspect.signature(getattr(ModelCheckpoint, name)).parameters)
    assert params[:2] == ["self", "trainer"], f"ModelCheckpoint.{name} changed its signature: {params}"


def test_model_checkpoint_private_state():
    cb = _compat.CheckpointHooks()
    assert cb.last_global_step_saved == 0, "ModelCheckpoint._last_global_step_saved moved"
    cb.record_saved("x.ckpt")
    assert cb._last_checkpoint_saved == "x.ckpt"


def test_lightning_cli_checkpoint_pre_parse_hook():
    assert callable(getattr(LightningCLI, "_parse_ckpt_path", None)), "LightningCLI._parse_ckpt_path moved"
    source = inspect.getsource(LightningCLI.__init__)
    assert "self._parse_ckpt_path()" in source, "LightningCLI no longer calls _parse_ckpt_path in __init__"


def test_optimizer_factory_parts_of_a_cli_callable(tmp_path):
    from gan_modules.cli import run

    cli = run(["fit", "--config", str(ROOT / "configs/dcgan_mnist.yaml"), "--model.init_args.optimizer_g",
               "torch.optim.SGD", "--model.init_args.optimizer_g.lr", "0.3", "--model.init_args.ngf", "4",
               "--model.init_args.ndf", "4", "--model.init_args.max_generator_steps", "1", "--trainer.logger", "false",
               "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false"])
    factory = cli.model._optimizer_factories[0]
    parts = _compat.optimizer_factory_parts(factory)
    assert parts is not None, "LightningCLI's OptimizerCallable is no longer a functools.partial of the class"
    cls, kwargs = parts
    assert cls is torch.optim.SGD and kwargs["lr"] == 0.3
    assert _compat.optimizer_factory_parts(functools.partial(print)) is None
    assert _compat.optimizer_factory_parts(lambda p: torch.optim.SGD(p, lr=1)) is None


# Private Lightning/torch access anywhere but _compat: the patterns that have bitten GAN libraries before.
PRIVATE = re.compile(r"torch\._[a-z]|\._logger_connector|\._signal_connector|\._checkpoint_connector|"
                     r"\b_parse_ckpt_path\b|\._save_topk_checkpoint|\._save_last_checkpoint|\._monitor_candidates|"
                     r"\._last_global_step_saved|\._find_last_checkpoints|\bself\._trainer\b|_NormBase|_BatchNorm\b|"
                     r"experimental\._config")


def test_no_private_access_outside_the_seam():
    offenders = []
    for path in sorted((ROOT / "gan_modules").rglob("*.py")) + sorted((ROOT / "datamodules").rglob("*.py")):
        if path.name == "_compat.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if PRIVATE.search(code):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "private internals outside gan_modules/_compat.py:\n" + "\n".join(offenders)


def test_the_seam_does_not_import_the_loop():
    assert "from .base" not in (ROOT / "gan_modules/_compat.py").read_text()
    assert isinstance(L.__version__, str)
