"""The adversarial base loop: exact step counts in generator steps, optimizer toggling, EMA, schedulers."""

import pytest
import torch

from gan_modules import DCGAN, GAN, MODELS, ConfigError
from tests.helpers import loader, trainer

TINY = dict(image_size=28, channels=1, ngf=4, ndf=4, latent_dim=8)


class Counting(DCGAN):
    """DCGAN that records the order of its updates."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.events: list[str] = []

    def after_discriminator_step(self):
        self.events.append("D")

    def update_ema(self):
        self.events.append("G")
        super().update_ema()


@pytest.mark.parametrize("n_critic", [1, 2, 5])
def test_n_generator_steps_do_exactly_n_g_and_n_times_ncritic_d_steps(tmp_path, n_critic):
    steps = 7
    model = Counting(**TINY, n_critic=n_critic, max_generator_steps=steps)
    tr = trainer(tmp_path)
    tr.fit(model, loader(n=24, batch_size=4))  # 6 batches an epoch: the run spans several epochs
    assert model.generator_steps == steps
    assert model.discriminator_steps == steps * n_critic
    assert model.events == (["D"] * n_critic + ["G"]) * steps
    # Adam's own step counters agree; Lightning's global_step counts both optimizers (Lightning #17958)
    opt_g, opt_d = (o.optimizer for o in model.optimizers())
    assert next(iter(opt_g.state.values()))["step"].item() == steps
    assert next(iter(opt_d.state.values()))["step"].item() == steps * n_critic
    assert tr.global_step == steps * (n_critic + 1)


def test_generator_step_leaves_discriminator_untouched_and_vice_versa(tmp_path):
    model = DCGAN(**TINY, max_generator_steps=1)
    model.train()
    batch = next(iter(loader(n=8, batch_size=8)))
    tr = trainer(tmp_path, max_steps=-1)
    tr.strategy.connect(model)
    tr.fit(model, loader(n=8, batch_size=8))  # builds optimizers, one D + one G step

    d_before = [p.detach().clone() for p in model.discriminator.parameters()]
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    opt_g, opt_d = model.optimizers()
    model._optimize("generator", opt_g, batch, model.make_context(batch, True))
    assert all(torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters()))
    assert all(p.grad is None for p in model.parameters())  # zeroed with set_to_none
    g_after = [p.detach().clone() for p in model.generator.parameters()]
    model._optimize("discriminator", opt_d, batch, model.make_context(batch, False))
    assert all(torch.equal(a, b) for a, b in zip(g_after, model.generator.parameters()))
    assert all(p.requires_grad for p in list(model.generator.parameters()) + list(model.discriminator.parameters()))


def test_ema_averages_parameters_and_copies_buffers():
    model = DCGAN(**TINY, ema_decay=0.9)
    with torch.no_grad():
        for p in model.generator.parameters():
            p.fill_(1.0)
        for p in model.generator_ema.parameters():
            p.fill_(0.0)
        bn = model.generator.net[1]
        bn.running_mean.fill_(3.0)
    model.generator_steps = 100  # warm-up decay (1+t)/(10+t) = 101/110 > 0.9, so decay = 0.9
    model.update_ema()
    for p in model.generator_ema.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.1))
    assert torch.equal(model.generator_ema.net[1].running_mean, bn.running_mean)
    model.generator_steps = 0  # warm-up: decay = 1/10 -> EMA moves 90% of the way
    model.update_ema()
    for p in model.generator_ema.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.1 + 0.9 * 0.9))
    assert all(not p.requires_grad for p in model.generator_ema.parameters())


def test_sampling_uses_ema_in_eval_mode_and_restores_mode():
    model = DCGAN(**TINY)
    model.train()
    inputs = model.sample_inputs(4, seed=3)
    with torch.no_grad():
        for p in model.generator_ema.parameters():
            p.zero_()
    out = model.generate(inputs)
    assert torch.allclose(out, torch.zeros_like(out))  # all-zero EMA weights -> tanh(0) = 0
    assert not torch.allclose(model.generate(inputs, use_ema=False), out)
    assert model.generator_ema.training and model.generator.training
    assert torch.equal(model.sample_inputs(4, seed=3)["z"], inputs["z"])  # fixed noise is reproducible


def test_lr_schedulers_step_once_per_generator_step(tmp_path):
    from functools import partial

    sched = partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=lambda step: 1.0 / (1 + step))
    model = DCGAN(**TINY, n_critic=2, max_generator_steps=4, lr_scheduler_g=sched, lr_scheduler_d=sched)
    trainer(tmp_path).fit(model, loader(n=32, batch_size=4))
    opt_g, opt_d = model.optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 / 5, rel=1e-9)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-4 / 5, rel=1e-9)  # per generator step, not per D step


def test_paper_default_optimizers():
    model = DCGAN(**TINY)
    (opt_g, opt_d), _ = model.configure_optimizers()
    for opt in (opt_g, opt_d):
        assert isinstance(opt, torch.optim.Adam)
        assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)


def test_counters_survive_checkpoint(tmp_path):
    model = DCGAN(**TINY, n_critic=3, max_generator_steps=2)
    tr = trainer(tmp_path)
    tr.fit(model, loader(n=32, batch_size=4))
    path = tmp_path / "m.ckpt"
    tr.save_checkpoint(path)
    restored = DCGAN.load_from_checkpoint(path, weights_only=True)
    assert (restored.generator_steps, restored.discriminator_steps) == (2, 6)
    assert restored.hparams.ngf == 4 and restored.hparams.n_critic == 3
    z = model.sample_inputs(2, seed=0)
    assert torch.equal(restored.generate(z), model.generate(z))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_variant_trains_a_few_steps_with_finite_losses(tmp_path, name):
    cls = MODELS[name]
    kwargs = dict(image_size=28, channels=1, num_classes=10, max_generator_steps=2)
    if name == "DCGAN":
        kwargs.update(ngf=4, ndf=4)
    model = cls(**kwargs)
    tr = trainer(tmp_path)
    tr.fit(model, loader(n=16, batch_size=4))
    assert model.generator_steps == 2
    assert all(torch.isfinite(v) for k, v in tr.callback_metrics.items() if k.startswith("train/"))


def test_bad_input_n_critic_below_one():
    with pytest.raises(ConfigError, match="n_critic must be >= 1"):
        GAN(n_critic=0)


def test_bad_input_channel_mismatch_between_data_and_model(tmp_path):
    model = DCGAN(**{**TINY, "channels": 3}, max_generator_steps=1)
    with pytest.raises(ConfigError, match=r"data has 1 channel\(s\) but the model was built for 3"):
        trainer(tmp_path).fit(model, loader(n=8, batch_size=4, channels=1))


def test_bad_input_image_size_mismatch_between_data_and_model(tmp_path):
    model = DCGAN(**{**TINY, "image_size": 32}, max_generator_steps=1)
    with pytest.raises(ConfigError, match=r"data images are \(28, 28\) but the model was built for 32x32"):
        trainer(tmp_path).fit(model, loader(n=8, batch_size=4))
