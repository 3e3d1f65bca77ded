"""Paper/reference fidelity pins: every test here pins a row of ``docs/FIDELITY.md`` marked "same" that no other test
pins, against an independent re-statement of the reference (written from the file and line named in the comment, never
by calling the code under test for the expected value). Rows already pinned elsewhere are listed in the document with
the test that pins them."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import gan_modules
from gan_modules import CGAN, DCGAN, GAN, SNGAN, WGANGP, ConfigError, CycleGAN, Pix2Pix, StarGAN
from gan_modules.losses import LOSSES
from gan_modules.schedules import ExponentialDecayMomentumSchedule
from tests.helpers import loader

TINY = {"image_size": 28, "channels": 1, "ngf": 4, "ndf": 4, "latent_dim": 8}
bce = F.binary_cross_entropy_with_logits


def seeded(model, seed: int) -> torch.Generator:
    """Gives ``model`` a noise stream seeded with ``seed`` and returns an identical one to replay its draws."""
    model.streams.noise = torch.Generator().manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def ones(t):
    return torch.ones_like(t)


def zeros(t):
    return torch.zeros_like(t)


# --- sampling mode at test time -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "kwargs", "mode"),
    [
        (Pix2Pix, {}, "train"),  # pix2pix §3.3; junyanz test.py runs model.eval() only under --eval
        (StarGAN, {"num_classes": 3, "n_residual_blocks": 1, "repeat_num": 1}, "train"),  # solver.py test(): no eval()
        (CycleGAN, {"n_residual_blocks": 1}, "eval"),  # same outputs as train mode: see the next test
    ],
)
def test_translation_test_mode_and_no_ema_by_default(cls, kwargs, mode):
    model = cls(image_size=32, channels=1, ngf=4, ndf=4, **kwargs)
    assert model.hparams.test_mode == mode
    assert model.generator_ema is None and model.hparams.ema_decay is None  # the papers sample the trained G


def test_cyclegan_eval_mode_outputs_equal_the_references_train_mode_outputs():
    """junyanz test.py tests in train mode unless --eval; CycleGAN's InstanceNorm keeps no running statistics
    (networks.py get_norm_layer: track_running_stats=False) and it has no dropout (no_dropout=True), so both agree."""
    torch.manual_seed(0)
    g = CycleGAN(image_size=32, channels=1, ngf=4, ndf=4, n_residual_blocks=1).generator["a2b"]
    assert not any(isinstance(m, nn.Dropout) for m in g.modules())
    assert all(not m.track_running_stats for m in g.modules() if isinstance(m, nn.InstanceNorm2d))
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        train_out = g.train()(x)
        eval_out = g.eval()(x)
    torch.testing.assert_close(eval_out, train_out, rtol=0, atol=1e-6)


def test_pix2pix_tests_with_dropout_on_and_test_batch_statistics():
    """pix2pix §3.3: "we apply dropout at test time, and we apply batch normalization using the statistics of the test
    batch"; test_mode eval is the deterministic alternative. At 64 px the reference U-Net has 64 → 1 in 6 halvings and
    6 − 5 = 1 dropout block."""
    x = torch.rand(4, 1, 64, 64) * 2 - 1
    torch.manual_seed(0)
    model = Pix2Pix(image_size=64, channels=1, ngf=4, ndf=4)
    assert model.generator.n_dropout == 1
    first, second = model.run_generator(x), model.run_generator(x)
    assert not torch.allclose(first, second)  # a fresh dropout mask per call
    model.hparams.test_mode = "eval"
    assert torch.equal(model.run_generator(x), model.run_generator(x))

    torch.manual_seed(0)
    no_dropout = Pix2Pix(image_size=64, channels=1, ngf=4, ndf=4, n_dropout=0)
    alone, in_batch = no_dropout.run_generator(x[:2]), no_dropout.run_generator(x)[:2]
    assert (alone - in_batch).abs().max() > 1e-4  # BatchNorm normalises with the test batch's statistics
    no_dropout.hparams.test_mode = "eval"
    torch.testing.assert_close(no_dropout.run_generator(x[:2]), no_dropout.run_generator(x)[:2], rtol=0, atol=1e-6)


# --- labels of generated images (CGAN) ------------------------------------------------------------------------------
def test_cgan_projection_draws_uniform_fake_labels_from_the_iteration_stream():
    """sngan_projection updater.py l.50-59 / source/miscs/random_samples.py l.16-18: y ~ U{0..K-1} for the fakes of
    every D step and for the G step's 2x batch (n_gen_samples), independent of the real batch's labels."""
    model = CGAN(**TINY, num_classes=10, conditioning="projection", n_critic=1, generator_batch_multiple=2)
    assert model.hparams.fake_labels == "uniform"
    replay = seeded(model, 7)
    batch = next(iter(loader(n=16, batch_size=16)))
    ctx = model.make_context(batch, generator_step=True)
    z = torch.randn((16, 8), generator=replay)
    y = torch.randint(10, (16,), generator=replay)
    assert torch.equal(ctx["z"], z) and torch.equal(ctx["y"], y)
    assert not torch.equal(ctx["y"], batch["label"])
    seen = []
    forward = model.generator.forward
    model.generator.forward = lambda z, y: seen.append(y.clone()) or forward(z, y)
    model.generator_loss(batch, ctx)
    y_g = torch.randint(10, (32,), generator=replay)  # the G step draws its labels, then its noise
    assert len(seen) == 1 and torch.equal(seen[0], y_g)


def test_cgan_concat_gives_fakes_the_real_batchs_labels():
    model = CGAN(**TINY, num_classes=10, conditioning="concat", n_critic=1, generator_batch_multiple=2)
    assert model.hparams.fake_labels == "data"
    seeded(model, 7)
    batch = next(iter(loader(n=16, batch_size=16)))
    ctx = model.make_context(batch, generator_step=True)
    assert torch.equal(ctx["y"], batch["label"])
    seen = []
    forward = model.generator.forward
    model.generator.forward = lambda z, y: seen.append(y.clone()) or forward(z, y)
    model.generator_loss(batch, ctx)
    assert torch.equal(seen[0], batch["label"].repeat(2))  # 2x batch: the labels repeated


# --- SNGAN: per-architecture defaults, critic heads through the variants ------------------------------------------
@pytest.mark.parametrize(
    ("arch", "loss", "n_critic", "betas"),
    [
        ("cnn", "non_saturating", 1, (0.5, 0.999)),  # chainer-gan-lib example.sh l.8 + train.py l.36 (lr 2e-4)
        ("resnet", "hinge", 5, (0.0, 0.9)),  # sngan_projection configs/sn_cifar10_unconditional.yml l.35-47
    ],
)
def test_sngan_defaults_follow_each_architectures_reference(arch, loss, n_critic, betas):
    model = SNGAN(image_size=28, channels=1, ngf=4, ndf=4, arch=arch)
    assert model.adversarial_loss is LOSSES[loss] and model.hparams.loss == loss
    assert model.hparams.n_critic == n_critic
    assert model.hparams.latent_dim == 128  # dim_z 128 (both references)
    assert model.hparams.n_power_iterations == 1  # Ip=1 (sngan_projection source/links/sn_convolution_2d.py l.59)
    (opt_g, opt_d), scheds = model.configure_optimizers()
    for opt in (opt_g, opt_d):
        assert type(opt) is torch.optim.Adam
        assert opt.defaults["lr"] == pytest.approx(2e-4, rel=1e-12) and opt.defaults["betas"] == betas
    assert scheds == []  # constant LR (chainer-gan-lib); the ResNet's linear decay is set by configs/sngan_cifar10.yaml
    explicit = SNGAN(**TINY, arch=arch, loss="wasserstein", n_critic=2)  # WGAN-SN: explicit values win
    assert explicit.adversarial_loss is LOSSES["wasserstein"] and explicit.hparams.n_critic == 2


def test_critic_heads_through_the_variants():
    """WGAN-GP: mean pooling and a biased linear head (gan_cifar_resnet.py l.172-173, tflib linear biases=True);
    SNGAN: sum pooling, bias-free head (snresnet_32.py l.17, l.29)."""
    torch.manual_seed(0)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    gp = WGANGP(**TINY, arch="resnet").discriminator
    sn = SNGAN(**TINY, arch="resnet").discriminator.eval()  # eval: σ(W) is not re-estimated between the two calls
    assert gp.pooling == "mean" and gp.linear.bias is not None
    assert sn.pooling == "sum" and sn.linear.bias is None
    with torch.no_grad():
        h = F.relu(gp.blocks(x))  # (3, 4, 7, 7)
        expected = h.mean(dim=(2, 3)) @ gp.linear.weight.T + gp.linear.bias
        torch.testing.assert_close(gp(x), expected.flatten(), rtol=1e-5, atol=1e-6)
        h = F.relu(sn.blocks(x))
        expected = h.sum(dim=(2, 3)) @ sn.linear.weight.T
        torch.testing.assert_close(sn(x), expected.flatten(), rtol=1e-5, atol=1e-6)


def test_wgan_gp_critic_layer_norm_is_tflibs():
    """igul222 tflib/ops/layernorm.py l.6-21 (used for the critic in gan_64x64.py l.84-88): moments over (C, H, W) per
    sample, per-channel offset/scale, ε = 1e-5, population variance."""
    torch.manual_seed(0)
    critic = WGANGP(**TINY).discriminator
    norms = [m for m in critic.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    norm = norms[0]
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-0.5, 0.5)
        x = torch.randn(3, norm.num_channels, 5, 5) * 3 + 1
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        var = x.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight[:, None, None] + norm.bias[:, None, None]
        torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
        per_channel = (x - x.mean(dim=(2, 3), keepdim=True)) / torch.sqrt(x.var(dim=(2, 3), keepdim=True,
                                                                               unbiased=False) + 1e-5)
        assert (norm(x) - (per_channel * norm.weight[:, None, None] + norm.bias[:, None, None])).abs().max() > 1e-3


# --- penalties through the variants -----------------------------------------------------------------------------------
def reference_gradient_penalty(critic, real, fake, eps):
    """Gulrajani et al. Algorithm 1 l.6-7, as igul222 gan_64x64.py l.490-499: one ε per sample, gradients flattened per
    sample, ``mean((‖∇‖₂ − 1)²)``."""
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out))
    slopes = grad.reshape(len(grad), -1).square().sum(1).sqrt()
    return ((slopes - 1) ** 2).mean()


def test_wgan_gp_critic_loss_is_algorithm_1_with_lambda_10():
    model = WGANGP(**TINY)  # DCGAN nets, LayerNorm critic
    replay = seeded(model, 3)
    batch = next(iter(loader(n=6, batch_size=6)))
    ctx = model.make_context(batch, generator_step=False)
    loss, logs = model.discriminator_loss(batch, ctx)
    total = model._add_penalty(loss, logs, ctx)
    z = torch.randn((6, 8), generator=replay)
    eps = torch.rand((6, 1, 1, 1), generator=replay)  # drawn after z, by the loop's penalty
    real, d = batch["image"], model.discriminator
    with torch.no_grad():
        fake = model.generator(z)
    gp = reference_gradient_penalty(d, real, fake, eps)
    expected = d(fake).mean() - d(real).mean() + 10 * gp  # E[D(x̃)] − E[D(x)] + λ·GP
    assert model.hparams.penalty_weight == 10.0
    assert logs["gradient_penalty"].item() == pytest.approx(gp.item(), rel=1e-5)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)


def test_stargan_losses_are_the_references_with_the_penalty_on_the_source_head():
    """yunjey/stargan solver.py l.223-224 (targets: the batch's labels permuted), l.244-260 (D loss), l.128-140 (GP of
    the source output), l.276-288 (G loss), l.175-178 (attribute BCE summed, over the batch), main.py l.67-69 (λ_cls 1,
    λ_rec 10, λ_gp 10)."""
    torch.manual_seed(0)
    model = StarGAN(image_size=32, channels=1, num_classes=3, ngf=4, ndf=4, n_residual_blocks=1, repeat_num=2,
                    label_type="multi_label")
    hp = model.hparams
    assert (hp.penalty, hp.penalty_weight, hp.n_critic, hp.lambda_cls, hp.lambda_rec) == (
        "gradient_penalty", 10.0, 5, 1.0, 10.0)
    replay = seeded(model, 5)
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    label = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    batch = {"image": x, "label": label}
    ctx = model.make_context(batch, generator_step=False)
    loss, logs = model.discriminator_loss(batch, ctx)
    total = model._add_penalty(loss, logs, ctx)

    label_trg = label[torch.randperm(4, generator=replay)]
    alpha = torch.rand((4, 1, 1, 1), generator=replay)
    assert torch.equal(ctx["target"], label_trg)
    G, D = model.generator, model.discriminator
    out_src, out_cls = D(x)
    d_loss_real = -out_src.mean()
    d_loss_cls = F.binary_cross_entropy_with_logits(out_cls, label, reduction="sum") / out_cls.shape[0]
    with torch.no_grad():
        x_fake = G(x, label_trg)
    d_loss_fake = D(x_fake)[0].mean()
    d_loss_gp = reference_gradient_penalty(lambda t: D(t)[0], x, x_fake, alpha)
    expected = d_loss_real + d_loss_fake + 1.0 * d_loss_cls + 10.0 * d_loss_gp
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)

    g_loss, _ = model.generator_loss(batch, ctx)  # l.276-288, with this iteration's targets
    x_fake = G(x, label_trg)
    out_src, out_cls = D(x_fake)
    g_loss_cls = F.binary_cross_entropy_with_logits(out_cls, label_trg, reduction="sum") / out_cls.shape[0]
    g_loss_rec = torch.mean(torch.abs(x - G(x_fake, label)))
    expected_g = -out_src.mean() + 10.0 * g_loss_rec + 1.0 * g_loss_cls
    assert g_loss.item() == pytest.approx(expected_g.item(), rel=1e-5)
    (opt_g, opt_d), scheds = model.configure_optimizers()
    for opt in (opt_g, opt_d):  # solver.py l.81-82 with main.py l.76-80
        assert type(opt) is torch.optim.Adam
        assert opt.defaults["lr"] == pytest.approx(1e-4, rel=1e-12) and opt.defaults["betas"] == (0.5, 0.999)
    assert scheds == []  # constant by default; configs/stargan_celeba.yaml sets the paper's decay (see below)


# --- translation losses through the variants ---------------------------------------------------------------------
def test_pix2pix_losses_are_the_references():
    """junyanz models/pix2pix_model.py backward_D / backward_G: D on torch.cat((real_A, fake_B), 1), D loss
    ½(BCE(fake, 0) + BCE(real, 1)), G loss BCE(D(A, G(A)), 1) + 100·L1 (lambda_L1 default 100)."""
    torch.manual_seed(0)
    model = Pix2Pix(image_size=32, channels=1, ngf=4, ndf=4)
    assert model.hparams.lambda_l1 == 100.0 and model.adversarial_loss is LOSSES["non_saturating"]
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    batch = {"source": x, "target": y}
    ctx = model.make_context(batch, generator_step=True)
    fake, D = ctx["fake"], model.discriminator
    d_loss, _ = model.discriminator_loss(batch, ctx)
    g_loss, _ = model.generator_loss(batch, ctx)
    pred_fake, pred_real = D(torch.cat((x, fake.detach()), 1)), D(torch.cat((x, y), 1))
    expected_d = 0.5 * (bce(pred_fake, zeros(pred_fake)) + bce(pred_real, ones(pred_real)))
    pred = D(torch.cat((x, fake), 1))
    expected_g = bce(pred, ones(pred)) + 100.0 * F.l1_loss(fake, y)
    assert d_loss.item() == pytest.approx(expected_d.item(), rel=1e-5)
    assert g_loss.item() == pytest.approx(expected_g.item(), rel=1e-5)
    swapped_fake, swapped_real = D(torch.cat((fake.detach(), x), 1)), D(torch.cat((y, x), 1))  # the other order
    swapped = 0.5 * (bce(swapped_fake, zeros(swapped_fake)) + bce(swapped_real, ones(swapped_real)))
    assert abs(swapped.item() - d_loss.item()) > 1e-6  # so the order of the pair is pinned, not just its channels


def test_cyclegan_losses_are_the_references():
    """junyanz models/cycle_gan_model.py backward_G / backward_D_basic with gan_mode lsgan (MSELoss): G = MSE(D_A(G_A(A)),
    1) + MSE(D_B(G_B(B)), 1) + λ_A‖G_B(G_A(A)) − A‖₁ + λ_B‖G_A(G_B(B)) − B‖₁ + λ_idt(λ_B‖G_A(B) − B‖₁ + λ_A‖G_B(A) − A‖₁),
    D = ½(MSE(D(real), 1) + MSE(D(fake), 0)) per discriminator; G_A/G_B stepped before D_A/D_B."""
    torch.manual_seed(0)
    model = CycleGAN(image_size=32, channels=1, ngf=4, ndf=4, n_residual_blocks=1)
    hp = model.hparams
    assert model.generator_first and (hp.lambda_a, hp.lambda_b, hp.lambda_identity, hp.pool_size) == (10, 10, 0.5, 50)
    a, b = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    batch = {"a": a, "b": b}
    ctx = model.make_context(batch, generator_step=True)
    g_loss, _ = model.generator_loss(batch, ctx)
    d_loss, _ = model.discriminator_loss(batch, ctx)  # the pools are filling: they return the new fakes

    G_A, G_B = model.generator["a2b"], model.generator["b2a"]
    D_A, D_B = model.discriminator["b"], model.discriminator["a"]  # reference D_A judges domain B
    mse, l1 = F.mse_loss, F.l1_loss
    fake_B, fake_A = G_A(a), G_B(b)
    rec_A, rec_B = G_B(fake_B), G_A(fake_A)
    pa, pb = D_A(fake_B), D_B(fake_A)
    expected_g = (mse(pa, ones(pa)) + mse(pb, ones(pb)) + 10 * l1(rec_A, a) + 10 * l1(rec_B, b)
                  + 0.5 * (10 * l1(G_A(b), b) + 10 * l1(G_B(a), a)))
    ra, fa, rb, fb = D_A(b), D_A(fake_B.detach()), D_B(a), D_B(fake_A.detach())
    expected_d = (0.5 * (mse(ra, ones(ra)) + mse(fa, zeros(fa)))
                  + 0.5 * (mse(rb, ones(rb)) + mse(fb, zeros(fb))))
    assert g_loss.item() == pytest.approx(expected_g.item(), rel=1e-5)
    assert d_loss.item() == pytest.approx(expected_d.item(), rel=1e-5)


# --- the original GAN (arch goodfellow) and DCGAN -----------------------------------------------------------------
def test_goodfellow_optimizers_are_the_yaml_sgd_with_its_schedule():
    """mnist.yaml l.56-61 (SGD lr .1, Momentum init .5), l.91-94 (ExponentialDecay 1.000004, min 1e-6), l.101-105
    (MomentumAdjustor 1 → 250, final .7); pylearn2's rule v ← μv − lr·g is torch's SGD without dampening/Nesterov."""
    model = GAN(arch="goodfellow")
    (opt_g, opt_d), scheds = model.configure_optimizers()
    assert len(scheds) == 2
    for opt, sched in zip((opt_g, opt_d), scheds):
        assert type(opt) is torch.optim.SGD
        assert opt.defaults["lr"] == pytest.approx(0.1, rel=1e-12)
        assert opt.defaults["momentum"] == pytest.approx(0.5, rel=1e-12)
        assert opt.defaults["dampening"] == 0 and not opt.defaults["nesterov"] and opt.defaults["weight_decay"] == 0
        assert isinstance(sched, ExponentialDecayMomentumSchedule) and sched.optimizer is opt
        assert (sched.decay_factor, sched.min_lr, sched.final_momentum) == (1.000004, 1e-6, 0.7)
        assert (sched.momentum_start, sched.momentum_saturate, sched.steps_per_epoch) == (1, 250, 500)
    _, scheds = GAN(arch="goodfellow", steps_per_epoch=90).configure_optimizers()
    assert [s.steps_per_epoch for s in scheds] == [90, 90]
    (opt, _), scheds = GAN().configure_optimizers()  # the tutorials' MLP: Adam 2e-4 (0.5, 0.999), no schedule
    assert type(opt) is torch.optim.Adam and opt.defaults["betas"] == (0.5, 0.999) and scheds == []


@pytest.mark.parametrize("arch", ["goodfellow", "mlp"])
def test_goodfellow_halves_the_discriminator_cost_only(arch):
    """adversarial/__init__.py l.353 d_obj = 0.5·(cost(y1, D(X)) + cost(y0, D(S))), l.359 g_obj = cost(y1, D(S)) (the
    non-saturating −log D(G(z)), not halved); Sigmoid.cost is a batch mean (pylearn2 models/mlp.py)."""
    torch.manual_seed(0)
    model = GAN(arch=arch, **({} if arch == "goodfellow" else {"g_hidden": (8,), "d_hidden": (8,)})).eval()
    replay = seeded(model, 1)
    batch = next(iter(loader(n=8, batch_size=8)))
    ctx = model.make_context(batch, generator_step=True)
    d_loss, _ = model.discriminator_loss(batch, ctx)
    g_loss, _ = model.generator_loss(batch, ctx)
    if arch == "goodfellow":  # mnist.yaml l.9 noise 'uniform', __init__.py l.207-208: U(−√3, √3)
        assert model.hparams.noise == "uniform"
        z = (2 * torch.rand((8, 100), generator=replay) - 1) * math.sqrt(3.0)
    else:
        assert model.hparams.noise == "normal"
        z = torch.randn((8, 100), generator=replay)
    torch.testing.assert_close(ctx["z"], z, rtol=0, atol=0)
    with torch.no_grad():
        d_real, d_fake = model.discriminator(batch["image"]), model.discriminator(model.generator(z))
    full = bce(d_real, ones(d_real)) + bce(d_fake, zeros(d_fake))
    expected_d = 0.5 * full if arch == "goodfellow" else full
    assert d_loss.item() == pytest.approx(expected_d.item(), rel=1e-5)
    assert g_loss.item() == pytest.approx(bce(d_fake, ones(d_fake)).item(), rel=1e-5)


def test_dcgan_discriminator_sees_real_and_fake_as_separate_batches():
    """pytorch/examples dcgan/main.py l.234 netD(real) and l.243 netD(fake.detach()): two forward passes, so D's
    BatchNorm normalises the real and the fake batch each with its own statistics."""
    torch.manual_seed(0)
    model = DCGAN(**TINY)
    assert model.hparams.latent_dim == 8 and DCGAN(image_size=28, channels=1, ngf=4, ndf=4).hparams.latent_dim == 100
    seeded(model, 2)
    batch = next(iter(loader(n=8, batch_size=8)))
    calls = []
    forward = model.discriminator.forward
    model.discriminator.forward = lambda x: calls.append(x) or forward(x)
    ctx = model.make_context(batch, generator_step=True)
    loss, _ = model.discriminator_loss(batch, ctx)
    assert [len(c) for c in calls] == [8, 8] and torch.equal(calls[0], batch["image"])
    assert torch.equal(calls[1], ctx["fake"].detach())
    with torch.no_grad():
        joint = forward(torch.cat([calls[0], calls[1]]))  # one concatenated batch would give other logits
        real, fake = forward(calls[0]), forward(calls[1])
    assert loss.item() == pytest.approx((bce(real, ones(real)) + bce(fake, zeros(fake))).item(), rel=1e-5)
    assert (joint - torch.cat([real, fake])).abs().max() > 1e-4


# --- the configs that carry a reference's settings ---------------------------------------------------------------
def config(name: str) -> dict:
    """A shipped config, from the configs/ folder next to the imported package (so the code and configs agree)."""
    path = Path(gan_modules.__file__).resolve().parents[1] / "configs" / f"{name}.yaml"
    return yaml.safe_load(path.read_text())


def adam(spec: dict) -> tuple[str, float, tuple[float, ...]]:
    return spec["class_path"], spec["init_args"]["lr"], tuple(spec["init_args"]["betas"])


def linear_to_zero(spec: dict) -> tuple[str, float, float, int]:
    a = spec["init_args"]
    return spec["class_path"], a["start_factor"], a["end_factor"], a["total_iters"]


def test_wgan_gp_cifar10_config_is_the_resnet_reference():
    """gan_cifar_resnet.py l.36-46: BATCH_SIZE 64, GEN_BS_MULTIPLE 2, ITERS 100000, DIM_G = DIM_D = 128, LR 2e-4 with
    DECAY (l.281-282: linear to 0 over ITERS), Adam β (0, 0.9) (l.305-306), z 128 (l.153)."""
    cfg = config("wgan_gp_cifar10")
    m = cfg["model"]["init_args"]
    assert (m["arch"], m["ngf"], m["ndf"], m["latent_dim"], m["generator_batch_multiple"]) == ("resnet", 128, 128, 128, 2)
    assert cfg["data"]["init_args"]["batch_size"] == 64
    for net in ("g", "d"):
        assert adam(m[f"optimizer_{net}"]) == ("torch.optim.Adam", 2e-4, (0.0, 0.9))
        assert linear_to_zero(m[f"lr_scheduler_{net}"]) == ("torch.optim.lr_scheduler.LinearLR", 1.0, 0.0, 100_000)
    assert m["max_generator_steps"] == 100_000


def test_sngan_cifar10_config_is_the_unconditional_reference():
    """sn_cifar10_unconditional.yml l.2-4 (batch 64, 50000 iterations, decay from 0), l.18/26 (ch 256 / 128), l.44-47
    (n_dis 5, n_gen_samples 128, hinge); train.py l.120-123 LinearShift of alpha to 0."""
    cfg = config("sngan_cifar10")
    m = cfg["model"]["init_args"]
    assert (m["arch"], m["ngf"], m["ndf"], m["generator_batch_multiple"]) == ("resnet", 256, 128, 2)
    assert cfg["data"]["init_args"]["batch_size"] == 64 and m["max_generator_steps"] == 50_000
    for net in ("g", "d"):
        assert linear_to_zero(m[f"lr_scheduler_{net}"]) == ("torch.optim.lr_scheduler.LinearLR", 1.0, 0.0, 50_000)


def test_cgan_cifar10_config_is_the_projection_reference_setting():
    """sn_cifar10_conditional.yml l.35-47: Adam 2e-4 (0, 0.9), n_dis 5, n_gen_samples 128 for batch 64, hinge."""
    cfg = config("cgan_cifar10")
    m = cfg["model"]["init_args"]
    assert (m["conditioning"], m["loss"], m["n_critic"], m["generator_batch_multiple"]) == ("projection", "hinge", 5, 2)
    assert m["spectral_norm"] is True and m.get("fake_labels", "uniform") == "uniform"
    for net in ("g", "d"):
        assert adam(m[f"optimizer_{net}"]) == ("torch.optim.Adam", 2e-4, (0.0, 0.9))
    assert cfg["data"]["init_args"]["batch_size"] == 64


def test_stargan_celeba_config_decays_the_lr_over_the_papers_last_100k_d_iterations():
    """StarGAN §4.1 / main.py l.73-80: batch 16, 200k D iterations with n_critic 5, lr decayed over the last 100k."""
    cfg = config("stargan_celeba")
    m = cfg["model"]["init_args"]
    n_critic = m.get("n_critic", 5)
    assert n_critic == 5 and cfg["data"]["init_args"]["batch_size"] == 16
    assert m["lr_scheduler_interval"] == "generator_step"
    assert m["max_generator_steps"] * n_critic == 200_000  # num_iters: D iterations
    assert (m["n_epochs"] * n_critic, m["n_epochs_decay"] * n_critic) == (100_000, 100_000)  # num_iters_decay


def test_goodfellow_config_is_the_yaml():
    """mnist.yaml l.57 batch_size 100; the paper sampled the trained G (no EMA)."""
    cfg = config("gan_mnist_goodfellow2014")
    m = cfg["model"]["init_args"]
    assert m["arch"] == "goodfellow" and m["ema_decay"] is None
    assert cfg["data"]["init_args"]["batch_size"] == 100


def test_ema_defaults_per_config_follow_the_measurement():
    """benchmarks/ema_study.py (3 seeds): the MLP GAN samples worse from its EMA at its budget (80.2 vs 65.6 FID at
    3,000 steps), so gan_mnist turns it off; the DCGAN configs keep the class default (0.999 from step 0: not worse
    from 3,000 steps on, better on the quickstart). benchmarks/quality.py --preset cpu (3 seeds): WGAN's EMA is worse at
    every budget tried (69.2 vs 65.3 at 800 steps, 62.5 vs 60.8 at 1,000, 52.9 vs 50.1 at 2,000), so
    wgan_fashion_mnist samples its trained G, as the paper."""
    for name in ("gan_mnist", "wgan_fashion_mnist"):
        assert config(name)["model"]["init_args"]["ema_decay"] is None
    for name in ("dcgan_mnist", "dcgan_fashion_mnist"):
        assert "ema_decay" not in config(name)["model"]["init_args"] and "ema_start" not in config(name)["model"]["init_args"]
    assert inspect.signature(gan_modules.base.AdversarialModule).parameters["ema_decay"].default == 0.999


@pytest.mark.parametrize("name", ["pix2pix_facades", "cyclegan_horse2zebra"])
def test_translation_paper_configs_use_batch_1_and_the_200_epoch_schedule(name):
    """junyanz options/base_options.py --batch_size 1; train_options.py --niter 100 --niter_decay 100 (the model's
    n_epochs/n_epochs_decay defaults, stepped per epoch)."""
    cfg = config(name)
    assert cfg["data"]["init_args"]["batch_size"] == 1
    model = {"pix2pix_facades": Pix2Pix, "cyclegan_horse2zebra": CycleGAN}[name](image_size=32, channels=1, ngf=4,
                                                                                 ndf=4)
    hp = model.hparams
    assert (hp.n_epochs, hp.n_epochs_decay, hp.lr_scheduler_interval) == (100, 100, "epoch")
    assert not {"n_epochs", "n_epochs_decay", "lr_scheduler_interval"} & set(cfg["model"].get("init_args") or {})


# --- bad inputs of the switches pinned above ---------------------------------------------------------------------
def test_bad_input_fidelity_switches():
    with pytest.raises(ConfigError, match="fake_labels must be 'data' or 'uniform', got 'random'"):
        CGAN(**TINY, num_classes=10, fake_labels="random")
    with pytest.raises(ConfigError, match=r"noise must be 'normal' \(N\(0, I\)\) or 'uniform' .*got 'gumbel'"):
        DCGAN(**TINY, noise="gumbel")
    with pytest.raises(ConfigError, match="unknown GAN arch 'maxout': choose mlp or goodfellow"):
        GAN(arch="maxout")
    with pytest.raises(ConfigError, match="steps_per_epoch must be >= 1, got 0"):
        GAN(arch="goodfellow", steps_per_epoch=0)
    with pytest.raises(ConfigError, match="test_mode must be 'eval' or 'train', got 'predict'"):
        Pix2Pix(image_size=32, channels=1, test_mode="predict")
    with pytest.raises(ConfigError, match="generator_batch_multiple must be >= 1, got 0"):
        WGANGP(**TINY, generator_batch_multiple=0)
