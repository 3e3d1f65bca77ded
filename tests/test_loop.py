"""The generic loop and its pieces: the per-iteration context (StarGAN's targets, one generated batch per iteration),
penalties for every variant applied by the loop, the EMA with its own BatchNorm statistics and ``ema_start``, the
non-finite guard as a piece, and the import rules (nets, losses, penalties and data never import the loop)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch
from torch import nn

from gan_modules import MODELS, ConfigError, StarGAN
from gan_modules.ema import EMA, recompute_batchnorm_statistics
from gan_modules.translation import TranslationModule
from tests.helpers import loader, trainer

TINY_ARGS = {"ngf": 4, "ndf": 4, "g_hidden": (8,), "d_hidden": (8,), "n_residual_blocks": 1, "repeat_num": 1,
             "latent_dim": 8, "warmup_critic_steps": 2}


def tiny(name: str, **kwargs):
    cls = MODELS[name]
    params = {p for klass in cls.__mro__ if "__init__" in vars(klass)
              for p in inspect.signature(klass.__init__).parameters}
    size = 32 if issubclass(cls, TranslationModule) else 28
    args = {k: v for k, v in TINY_ARGS.items() if k in params}
    return cls(image_size=size, channels=1, num_classes=10, **args, **kwargs), size


# ----------------------------------------------------------------------------------------------------------------
class RecordingStarGAN(StarGAN):
    """Records each iteration's targets (made once per batch) and the targets its G steps used."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.made, self.g_used = [], []

    def make_context(self, batch, generator_step):
        ctx = super().make_context(batch, generator_step)
        self.made.append((ctx["target"].clone(), generator_step))
        return ctx

    def generator_loss(self, batch, ctx):
        self.g_used.append(ctx["target"].clone())
        return super().generator_loss(batch, ctx)


def test_stargan_targets_are_redrawn_every_iteration_and_shared_with_its_g_step(tmp_path):
    model = RecordingStarGAN(image_size=32, channels=1, num_classes=10, ngf=4, ndf=4, n_residual_blocks=1,
                             repeat_num=1, label_type="single_label", n_critic=2, max_generator_steps=3)
    data = loader(n=48, batch_size=8, size=32)
    trainer(tmp_path).fit(model, data)
    assert len(model.made) == 6 and len(model.g_used) == 3  # 6 D steps (3 x n_critic 2), 3 G steps
    assert [step for _, step in model.made] == [False, True] * 3
    for i, used in enumerate(model.g_used):  # each G step used its own iteration's targets
        assert torch.equal(used, model.made[2 * i + 1][0])
    assert len({tuple(t.tolist()) for t, _ in model.made}) == 6  # redrawn every iteration (permutations of 8 labels)


@pytest.mark.parametrize("reuse", [True, False])
def test_one_generated_batch_per_iteration_when_n_critic_is_one(tmp_path, reuse):
    model, _ = tiny("DCGAN", max_generator_steps=3, reuse_fakes=reuse)
    calls = []
    forward = model.generator.forward
    model.generator.forward = lambda z: calls.append(len(z)) or forward(z)
    trainer(tmp_path).fit(model, loader(n=24, batch_size=8))
    assert len(calls) == (3 if reuse else 6)  # the reference DCGAN loop: one G forward per iteration


def test_generator_batch_multiple_feeds_the_g_step_twice_the_d_batch(tmp_path):
    model, _ = tiny("WGANGP", max_generator_steps=2, n_critic=1, generator_batch_multiple=2)
    sizes = []
    forward = model.generator.forward
    model.generator.forward = lambda z: sizes.append(len(z)) or forward(z)
    trainer(tmp_path).fit(model, loader(n=16, batch_size=4))
    assert sizes == [4, 8, 4, 8]  # D's fakes: the batch; G step: 2x (GEN_BS_MULTIPLE = 2)


# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_variant_takes_a_penalty_from_the_loop(tmp_path, name):
    model, size = tiny(name, penalty="r1", penalty_weight=1.0, max_generator_steps=1)
    tr = trainer(tmp_path, log_every_n_steps=1)
    tr.fit(model, loader(n=8, batch_size=4, size=size))
    value = tr.callback_metrics.get("train/r1")
    assert value is not None and torch.isfinite(value) and value > 0, dict(tr.callback_metrics)


def test_penalty_gradient_reaches_the_discriminator():
    model, _ = tiny("DCGAN", d_norm="layer", penalty="gradient_penalty", penalty_weight=10.0)
    batch = next(iter(loader(n=4, batch_size=4)))
    grads = []
    for weight in (10.0, 0.0):
        model.hparams.penalty_weight = weight
        ctx = model.make_context(batch, generator_step=False)
        loss, logs = model.discriminator_loss(batch, ctx)
        loss = model._add_penalty(loss, logs, ctx)
        grads.append(torch.autograd.grad(loss, list(model.discriminator.parameters()))[0])
    assert not torch.allclose(grads[0], grads[1])


@pytest.mark.parametrize("name", ["Pix2Pix", "CycleGAN", "StarGAN"])
def test_translation_models_have_no_latent_dim(name):
    cls = MODELS[name]
    params = {p for klass in cls.__mro__ if "__init__" in vars(klass) for p in inspect.signature(klass.__init__).parameters}
    assert "latent_dim" not in params
    with pytest.raises(TypeError):
        cls(latent_dim=8)


# ----------------------------------------------------------------------------------------------------------------
def test_ema_decay_schedule_closed_form():
    ema = EMA(0.999, start=10)
    assert [ema.decay_at(s) for s in (0, 9)] == [0.0, 0.0]  # a copy of G before ema_start
    assert ema.decay_at(10) == pytest.approx(1 / 10)  # warm-up (1 + t) / (10 + t) from the start
    assert ema.decay_at(20) == pytest.approx(11 / 20)
    assert ema.decay_at(10_000) == pytest.approx(0.999)
    assert EMA(0.9, warmup=False).decay_at(0) == 0.9
    with pytest.raises(ConfigError, match="ema_decay must be in"):
        EMA(1.0)
    with pytest.raises(ConfigError, match="ema_start must be >= 0"):
        EMA(0.9, start=-1)


def test_ema_update_is_the_lerp_and_copies_buffers():
    live, avg = nn.Linear(2, 2), nn.Linear(2, 2)
    live.register_buffer("u", torch.tensor([5.0]))
    avg.register_buffer("u", torch.tensor([0.0]))
    with torch.no_grad():
        live.weight.fill_(1.0), avg.weight.fill_(0.0)
    EMA(0.9, warmup=False).update(avg, live, step=100)
    assert torch.allclose(avg.weight, torch.full((2, 2), 0.1)) and avg.u.item() == 5.0


def test_standing_statistics_are_the_average_over_the_batches():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    with torch.no_grad():
        net[1].running_mean.fill_(7.0)
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(16, 3, generator=g) for _ in range(3)]
    rng = torch.get_rng_state()
    assert recompute_batchnorm_statistics(net, ({"input": x} for x in xs))
    with torch.no_grad():
        h = [net[0](x) for x in xs]
    expected_mean = torch.stack([x.mean(0) for x in h]).mean(0)
    expected_var = torch.stack([x.var(0, unbiased=True) for x in h]).mean(0)
    torch.testing.assert_close(net[1].running_mean, expected_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(net[1].running_var, expected_var, rtol=1e-5, atol=1e-6)
    assert net[1].momentum == 0.1 and net.training  # restored
    assert torch.equal(torch.get_rng_state(), rng)  # the training streams are untouched
    assert recompute_batchnorm_statistics(nn.Linear(2, 2), []) is False


def test_ema_generator_samples_with_statistics_of_its_own_weights(tmp_path):
    """The EMA copy's BatchNorm statistics are recomputed from its own forward passes (not copied from the live G)
    before it samples, and only when its weights changed."""
    model, _ = tiny("DCGAN", max_generator_steps=3)
    trainer(tmp_path).fit(model, loader(n=24, batch_size=8))
    net = model.sampling_generator()
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    live = next(m for m in model.generator.modules() if isinstance(m, nn.BatchNorm2d))
    assert not torch.allclose(bn.running_mean, live.running_mean)
    expected = [m.running_mean.clone() for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    recompute_batchnorm_statistics(net, model.standing_inputs())
    again = [m.running_mean for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(expected, again))  # deterministic inputs: same statistics
    before = bn.running_mean.clone()
    model.sampling_generator()  # weights unchanged: no recompute
    assert torch.equal(before, bn.running_mean)


# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["gan_modules.nets", "gan_modules.losses", "gan_modules.penalties",
                                    "gan_modules.errors", "gan_modules.hub", "datamodules"])
def test_pieces_never_import_the_loop(module):
    code = (f"import sys, {module}; loaded = [m for m in ('gan_modules.base', 'gan_modules.image_gan', "
            f"'gan_modules.registry') if m in sys.modules]; print(loaded); assert not loaded")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_checkpoint_module_does_not_import_the_loop():
    out = subprocess.run([sys.executable, "-c", "import sys, gan_modules.checkpoint; "
                          "assert 'gan_modules.base' not in sys.modules"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
