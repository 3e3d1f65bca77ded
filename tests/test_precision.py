"""Mixed precision on CPU: every variant in ``MODELS`` trains a few steps under ``bf16-mixed`` with finite losses.

``16-mixed`` on a CPU trainer silently becomes bf16 in Lightning (checked below), so the fp16 loss-scaler path is
exercised here by handing the trainer Lightning's ``MixedPrecision("16-mixed", "cpu")`` plugin with a CPU
``GradScaler`` explicitly: ``manual_backward`` scales, ``opt.step()`` unscales and skips steps on inf/NaN, and the
gradient penalty differentiates the scaled critic output (the AMP recipe). A GPU run is still needed for the
CUDA kernels' numbers.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gan_modules import MODELS
from gan_modules.penalties import loss_scaler

from .helpers import trainer

SIZE = 32


class AllKeys(Dataset):
    """Batches carrying every key a variant may read: image/label, unpaired a/b, paired source/target."""

    def __init__(self, n: int = 8, channels: int = 1, num_classes: int = 3):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 4, channels, SIZE, SIZE, generator=g) * 2 - 1
        self.labels = torch.randint(0, num_classes, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        image, a, b, target = self.x[i]
        return {"image": image, "label": self.labels[i], "a": a, "b": b, "source": image, "target": target}


def accepted(cls) -> set[str]:
    """Every ``__init__`` argument a variant accepts along its class chain."""
    return {p for c in cls.__mro__ if "__init__" in vars(c) for p in inspect.signature(c.__init__).parameters}


def tiny(cls, **extra) -> nn.Module:
    wanted = dict(image_size=SIZE, channels=1, num_classes=3, latent_dim=8, ngf=4, ndf=4, n_critic=1,
                  g_hidden=(16, 16), d_hidden=(16, 16), n_residual_blocks=1, n_blocks=1, warmup_critic_steps=1,
                  warmup_generator_steps=0, embed_dim=4, ema_decay=0.9)
    names = accepted(cls)
    torch.manual_seed(0)
    return cls(**{k: v for k, v in {**wanted, **extra}.items() if k in names})


def record_matmul_dtypes(model: nn.Module) -> set[torch.dtype]:
    seen: set[torch.dtype] = set()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.register_forward_hook(lambda mod, args, out: seen.add(out.dtype))
    return seen


def fit_and_check(tmp_path, model, **trainer_kwargs) -> None:
    seen = record_matmul_dtypes(model)
    tr = trainer(tmp_path, max_epochs=1, limit_train_batches=3, log_every_n_steps=1, **trainer_kwargs)
    tr.fit(model, DataLoader(AllKeys(), batch_size=2))
    assert model.discriminator_steps == 3 and model.generator_steps >= 1
    losses = {k: v for k, v in tr.callback_metrics.items() if k.startswith("train/loss")}
    assert any("loss_d" in k for k in losses) and any("loss_g" in k for k in losses), sorted(tr.callback_metrics)
    bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
    assert not bad, f"non-finite losses: {bad}"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    return seen


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bf16_mixed_every_variant_trains_with_finite_losses(tmp_path, name):
    seen = fit_and_check(tmp_path, tiny(MODELS[name]), precision="bf16-mixed")
    assert torch.bfloat16 in seen, "autocast was not active: no layer produced bf16"


def test_fp16_mixed_on_cpu_becomes_bf16_in_lightning(tmp_path):
    """Documents why the fp16 scaler path needs the explicit plugin below (or a GPU)."""
    with pytest.warns(UserWarning, match="bf16"):
        tr = trainer(tmp_path, precision="16-mixed")
    assert tr.precision == "bf16-mixed" and loss_scaler(tr) is None


@pytest.mark.parametrize("name", [n for n in ("DCGAN", "WGANGP") if n in MODELS])
def test_fp16_loss_scaler_path_steps_both_optimizers(tmp_path, name):
    """fp16 autocast + GradScaler on CPU: both optimizers step, the scale stays finite, the losses are finite, and
    WGAN-GP's penalty sees the scaler (it must differentiate the scaled output)."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    plugin = MixedPrecision("16-mixed", "cpu", scaler=scaler)
    model = tiny(MODELS[name])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = fit_and_check(tmp_path, model, plugins=[plugin])
    assert torch.float16 in seen
    assert model.trainer.precision_plugin.scaler is scaler and 0 < scaler.get_scale() < float("inf")
    for prefix in ("generator.", "discriminator."):
        assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items()
                   if k.startswith(prefix) and v.is_floating_point()), f"{prefix[:-1]} never stepped"


# ---------------------------------------------------------------------------------------------------------------
# Speed options of the base (they share the precision machinery: optimizer construction, the batch, the step).
def test_fused_optimizer_channels_last_and_interval_logging(tmp_path):
    from gan_modules import DCGAN

    logged_steps = []

    class Spy(DCGAN):
        def log(self, name, value, *args, **kwargs):
            if name == "train/generator_step":
                logged_steps.append(self.generator_steps)
            return super().log(name, value, *args, **kwargs)

    model = Spy(image_size=SIZE, channels=1, ngf=4, ndf=4, latent_dim=8, max_generator_steps=7, fused_optimizer=True,
                channels_last=True)
    tr = trainer(tmp_path, log_every_n_steps=3)
    tr.fit(model, DataLoader(AllKeys(n=16), batch_size=2))
    assert [o.defaults.get("fused") for o in tr.optimizers] == [True, True]  # forced on CPU
    convs = [m.weight for m in model.discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert logged_steps == [3, 6, 7]  # every 3rd batch, and the last one (training stops there)
    assert torch.isfinite(tr.callback_metrics["train/loss_d"])


def test_fused_optimizer_is_not_chosen_on_cpu_by_default_nor_over_an_explicit_config(tmp_path):
    import functools

    from gan_modules import DCGAN

    tr = trainer(tmp_path, max_epochs=1, limit_train_batches=1)
    model = DCGAN(image_size=SIZE, channels=1, ngf=4, ndf=4, latent_dim=8,
                  optimizer_d=functools.partial(torch.optim.Adam, lr=1e-3, foreach=False))
    tr.fit(model, DataLoader(AllKeys(n=4), batch_size=2))
    opt_g, opt_d = tr.optimizers
    assert not opt_g.defaults.get("fused") and opt_d.defaults["foreach"] is False and opt_d.defaults["lr"] == 1e-3
