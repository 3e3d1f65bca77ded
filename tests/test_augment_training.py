"""Differentiable augmentation inside training (``augment``, ``ada``): every image variant trains with it, gradients
reach the generator through it, the penalty's input is augmented like the real batch, ADA's p rises when D
overfits, and the option's bad values are one line. Exact resume with augmentation: tests/test_resume.py
(``DCGAN-ADA``)."""

from __future__ import annotations

import pytest
import torch

from gan_modules import MODELS, ConfigError
from gan_modules.image_gan import ImageGAN
from tests.helpers import loader, trainer

IMAGE_MODELS = sorted(name for name, cls in MODELS.items() if issubclass(cls, ImageGAN))
TINY = {"ngf": 4, "ndf": 4, "g_hidden": (8,), "d_hidden": (8,), "latent_dim": 8, "warmup_critic_steps": 2}
POLICY = "color,translation,cutout"


def tiny(name: str, **kwargs):
    import inspect

    cls = MODELS[name]
    params = {p for k in cls.__mro__ if "__init__" in vars(k) for p in inspect.signature(k.__init__).parameters}
    return cls(image_size=28, channels=1, num_classes=10, **{k: v for k, v in TINY.items() if k in params}, **kwargs)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_image_variant_trains_with_diffaugment(tmp_path, name):
    model = tiny(name, augment=POLICY, max_generator_steps=2)
    tr = trainer(tmp_path, log_every_n_steps=1)
    tr.fit(model, loader(n=16, batch_size=4))
    assert model.generator_steps == 2
    assert all(torch.isfinite(v) for k, v in tr.callback_metrics.items() if k.startswith("train/"))


def test_generator_gradient_flows_through_the_augmentation():
    model = tiny("DCGAN", augment=POLICY, d_norm="layer")
    batch = next(iter(loader(n=4, batch_size=4)))
    ctx = model.make_context(batch, generator_step=True)
    loss, _ = model.generator_loss(batch, ctx)
    grads = torch.autograd.grad(loss, list(model.generator.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
    # and the augmentation did something: the D input differs from the raw generated batch
    aug = model.augmentation(ctx["fake"], ctx)
    assert not torch.allclose(aug(ctx["fake"]), ctx["fake"])


def test_penalty_input_gets_the_real_batchs_augmentation():
    """The critic recorded for the penalty applies the real batch's own draw: on the real images it reproduces the
    D step's real logits exactly."""
    model = tiny("DCGAN", augment=POLICY, d_norm="layer", penalty="gradient_penalty")
    batch = next(iter(loader(n=4, batch_size=4)))
    ctx = model.make_context(batch, generator_step=False)
    _, logs = model.discriminator_loss(batch, ctx)
    critic = ctx.critics[0]
    d_real = critic.critic(batch["image"])
    assert d_real.float().mean().item() == pytest.approx(logs["d_real"].item(), rel=1e-6, abs=1e-7)
    assert torch.equal(critic.critic(batch["image"]), d_real)  # the same draw every call (fixed parameters)


def test_ada_probability_rises_when_the_discriminator_overfits(tmp_path):
    model = tiny("DCGAN", augment=POLICY, ada=True, ada_interval=1, ada_speed_images=64, max_generator_steps=6)
    forward = model.discriminator.forward
    model.discriminator.forward = lambda x: forward(x) * 0 + 5.0  # every logit positive: sign(D(real)) = 1 > 0.6
    tr = trainer(tmp_path, log_every_n_steps=1)
    tr.fit(model, loader(n=48, batch_size=8))
    # 6 adjustments of batch·interval / speed = 8 / 64 each, from 0
    assert model.ada.p == pytest.approx(6 * 8 / 64)
    assert tr.callback_metrics["train/augment_p"].item() == pytest.approx(6 * 8 / 64)


def test_bad_input_augmentation_options():
    with pytest.raises(ConfigError, match="unknown augmentation"):
        tiny("DCGAN", augment="color,rotate")
    with pytest.raises(ConfigError, match="augment_p must be in"):
        tiny("DCGAN", augment=POLICY, augment_p=1.5)
    with pytest.raises(ConfigError, match="ada needs an augmentation policy"):
        tiny("DCGAN", ada=True)
