"""WGAN / WGAN-GP / SNGAN: critic schedules and exact step counts, paper defaults, spectral norm (σ ≈ 1, u/v buffers
saved and restored), ResNet nets, bad inputs."""

import functools

import pytest
import torch

from gan_modules import SNGAN, WGAN, WGANGP, ConfigError
from gan_modules.losses import LOSSES
from gan_modules.nets.resnet32 import ResNetDiscriminator, ResNetGenerator
from gan_modules.nets.spectral import spectrally_normalized_layers, top_singular_value
from tests.helpers import loader, trainer

TINY = dict(image_size=28, channels=1, ngf=4, ndf=4, latent_dim=8)


class Recording:
    """Mixin recording the order of D and G updates."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.events: list[str] = []

    def after_discriminator_step(self):
        super().after_discriminator_step()
        self.events.append("D")

    def update_ema(self):
        self.events.append("G")
        super().update_ema()


class RecWGAN(Recording, WGAN):
    pass


class RecWGANGP(Recording, WGANGP):
    pass


class RecSNGAN(Recording, SNGAN):
    pass


def d_steps_per_g_step(events: list[str]) -> list[int]:
    counts, run = [], 0
    for e in events:
        if e == "D":
            run += 1
        else:
            counts.append(run)
            run = 0
    return counts


def test_wgan_critic_steps_follow_the_paper_schedule():
    model = WGAN(**TINY)
    expected = {0: 100, 24: 100, 25: 5, 26: 5, 499: 5, 500: 100, 501: 5, 1000: 100, 1001: 5}
    for g_steps, critic in expected.items():
        model.generator_steps = g_steps
        assert model.critic_steps() == critic, g_steps


def test_wgan_schedule_can_be_disabled():
    model = WGAN(**TINY, warmup_generator_steps=0, critic_boost_every=0, n_critic=3)
    for g_steps in (0, 24, 500):
        model.generator_steps = g_steps
        assert model.critic_steps() == 3


def test_wgan_exact_d_and_g_counts_with_a_small_schedule(tmp_path):
    model = RecWGAN(**TINY, n_critic=2, warmup_critic_steps=3, warmup_generator_steps=2, critic_boost_every=4,
                    max_generator_steps=6)
    tr = trainer(tmp_path)
    tr.fit(model, loader(n=12, batch_size=4))  # 3 batches an epoch: the schedule spans epochs
    assert d_steps_per_g_step(model.events) == [3, 3, 2, 2, 3, 2]  # g-steps 0, 1 warm-up; 4 is a boost step
    assert (model.generator_steps, model.discriminator_steps) == (6, 15)
    assert tr.global_step == 6 + 15


@pytest.mark.slow
def test_wgan_paper_schedule_runs_100_critic_steps_per_early_generator_step(tmp_path):
    """The real defaults through a real fit (2 generator steps = 200 critic steps; the switch to 5 at g-step 25 is
    covered by the unit test of ``critic_steps`` and the small-schedule fit above, 2,505 batches would take minutes)."""
    model = RecWGAN(image_size=28, channels=1, ngf=2, ndf=2, latent_dim=4, max_generator_steps=2)
    trainer(tmp_path, log_every_n_steps=1000).fit(model, loader(n=8, batch_size=8, size=28))
    assert d_steps_per_g_step(model.events) == [100, 100]
    assert (model.generator_steps, model.discriminator_steps) == (2, 200)


@pytest.mark.parametrize("cls, kwargs", [(RecWGANGP, {}), (RecSNGAN, {"arch": "resnet", "image_size": 32})])
def test_five_critic_steps_per_generator_step(tmp_path, cls, kwargs):
    model = cls(**{**TINY, **kwargs}, max_generator_steps=3)
    tr = trainer(tmp_path)
    tr.fit(model, loader(n=8, batch_size=4, size=kwargs.get("image_size", 28)))
    assert d_steps_per_g_step(model.events) == [5, 5, 5]
    assert (model.generator_steps, model.discriminator_steps) == (3, 15)
    assert all(torch.isfinite(v) for k, v in tr.callback_metrics.items() if k.startswith("train/"))


@pytest.mark.parametrize(
    "cls, opt, kwargs",
    [
        (WGAN, torch.optim.RMSprop, {"lr": 5e-5}),
        (WGANGP, torch.optim.Adam, {"lr": 1e-4, "betas": (0.0, 0.9)}),
        (functools.partial(SNGAN, arch="cnn"), torch.optim.Adam, {"lr": 2e-4, "betas": (0.5, 0.999)}),  # setting C
        (functools.partial(SNGAN, arch="resnet"), torch.optim.Adam, {"lr": 2e-4, "betas": (0.0, 0.9)}),
    ],
)
def test_paper_default_optimizers(cls, opt, kwargs):
    (opt_g, opt_d), _ = cls(**{**TINY, "image_size": 32}).configure_optimizers()
    for o in (opt_g, opt_d):
        assert type(o) is opt
        assert all(o.defaults[k] == v for k, v in kwargs.items())


def test_paper_default_losses_and_settings():
    wgan, gp, sn = WGAN(**TINY), WGANGP(**TINY), SNGAN(**TINY)
    assert wgan.adversarial_loss is LOSSES["wasserstein"] and wgan.hparams.weight_clip == 0.01
    assert wgan.hparams.n_critic == 5 and wgan.hparams.penalty is None
    assert gp.adversarial_loss is LOSSES["wasserstein"] and gp.hparams.n_critic == 5
    assert gp.hparams.penalty == "gradient_penalty" and gp.hparams.penalty_weight == 10.0
    assert gp.hparams.weight_clip is None
    # SNGAN per architecture: the standard CNN's results used the non-saturating loss with n_dis 1
    # (chainer-gan-lib example.sh), the ResNet's hinge with n_dis 5 (sngan_projection sn_cifar10_unconditional.yml)
    assert sn.adversarial_loss is LOSSES["non_saturating"] and sn.hparams.n_critic == 1
    res = SNGAN(**{**TINY, "image_size": 32}, arch="resnet")
    assert res.adversarial_loss is LOSSES["hinge"] and res.hparams.n_critic == 5
    assert SNGAN(**TINY, loss="wasserstein").adversarial_loss is LOSSES["wasserstein"]  # WGAN-SN


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_wgan_gp_critic_has_no_batchnorm(arch):
    model = WGANGP(**TINY, arch=arch)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.discriminator.modules())


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_sngan_every_discriminator_layer_is_spectrally_normalized(arch):
    model = SNGAN(**TINY, arch=arch)
    weighted = [m for m in model.discriminator.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weighted) > 3
    assert set(map(id, spectrally_normalized_layers(model.discriminator))) == set(map(id, weighted))
    assert spectrally_normalized_layers(model.generator) == []


@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_spectral_norm_top_singular_value_is_one_after_power_iterations(arch):
    torch.manual_seed(0)
    model = SNGAN(image_size=32, channels=3, ngf=4, ndf=8, latent_dim=8, arch=arch)
    d = model.discriminator.train()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for _ in range(100):  # each training-mode forward runs one power iteration per layer
            d(x)
    d.eval()
    layers = spectrally_normalized_layers(d)
    for layer in layers:
        raw = layer.parametrizations.weight.original
        assert top_singular_value(raw) != pytest.approx(1.0, rel=0.02)  # the raw weight is not normalized ...
        assert top_singular_value(layer.weight) == pytest.approx(1.0, rel=0.02)  # ... W / σ(W) is


def test_spectral_norm_vectors_survive_save_and_load(tmp_path):
    model = SNGAN(**TINY, max_generator_steps=2)
    tr = trainer(tmp_path)
    tr.fit(model, loader(n=8, batch_size=4))
    path = tmp_path / "sn.ckpt"
    tr.save_checkpoint(path)
    restored = SNGAN.load_from_checkpoint(path, weights_only=True)
    fresh = SNGAN(**TINY)
    before, after, init = (m.discriminator.state_dict() for m in (model, restored, fresh))
    uv = [k for k in before if k.endswith(("._u", "._v"))]
    assert len(uv) == 2 * len(spectrally_normalized_layers(model.discriminator))
    for k in uv:
        assert torch.equal(before[k], after[k]), k
        if before[k].numel() > 1:  # a 1-row weight's u is ±1 whatever the iteration does
            assert not torch.equal(before[k], init[k]), k  # really restored, not re-drawn the same way
    x = torch.randn(3, 1, 28, 28)
    model.eval(), restored.eval()
    assert torch.equal(model.discriminator(x), restored.discriminator(x))


@pytest.mark.parametrize("size, base_blocks", [(28, 2), (32, 3), (64, 4)])
def test_resnet_shapes(size, base_blocks):
    g, d = ResNetGenerator(8, 3, size, ngf=4), ResNetDiscriminator(3, size, ndf=4)
    assert len(g.blocks) == base_blocks
    img = g(torch.randn(2, 8))
    assert img.shape == (2, 3, size, size) and img.abs().max() <= 1
    assert d(img).shape == (2,)


def test_bad_input_wgan_gp_critic_with_batchnorm():
    with pytest.raises(ConfigError, match="WGAN-GP's critic must not use BatchNorm"):
        WGANGP(**TINY, d_norm="batch")


def test_bad_input_unknown_architecture():
    with pytest.raises(ConfigError, match="unknown WGAN-GP arch 'vgg': choose dcgan or resnet"):
        WGANGP(**TINY, arch="vgg")
    with pytest.raises(ConfigError, match="unknown SNGAN arch 'vgg': choose cnn or resnet"):
        SNGAN(**TINY, arch="vgg")


def test_bad_input_wgan_schedule():
    with pytest.raises(ConfigError, match="WGAN schedule needs warmup_critic_steps >= 1"):
        WGAN(**TINY, warmup_critic_steps=0)
