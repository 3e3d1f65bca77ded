"""Penalties: gradient penalty and R1 against closed forms on linear/quadratic critics, the AMP recipe with a fake
loss scaler, weight clipping during a fit, penalties chosen by name from config, bf16 finiteness."""

from types import SimpleNamespace

import pytest
import torch

from gan_modules import DCGAN, WGAN, WGANGP, ConfigError
from gan_modules.penalties import (
    PENALTIES,
    clip_weights_,
    get_penalty,
    gradient_penalty,
    input_gradients,
    interpolation_weights,
    loss_scaler,
    r1_penalty,
)
from tests.helpers import loader, trainer

TINY = dict(image_size=28, channels=1, ngf=4, ndf=4, latent_dim=8)


def linear_critic(weight: torch.Tensor):
    return lambda x: x.flatten(1) @ weight  # D(x) = <w, x>: ∇_x D = w everywhere


class FakeScaler:
    """Stands in for torch.amp.GradScaler (fp16 needs a GPU): multiplies by a power of two and counts calls."""

    def __init__(self, scale: float = 2.0**12):
        self.value, self.calls = scale, 0

    def scale(self, t):
        self.calls += 1
        return t * self.value

    def get_scale(self):
        return self.value


def _batch(n, channels, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, size, size, generator=g), torch.randn(n, channels, size, size, generator=g)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [4, 8, 28])
def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic(channels, size):
    real, fake = _batch(6, channels, size)
    w = torch.randn(channels * size * size, generator=torch.Generator().manual_seed(1))
    gp = gradient_penalty(linear_critic(w / w.norm()), real, fake)
    assert gp.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [4, 8, 28])
@pytest.mark.parametrize("norm", [0.25, 2.0, 3.5])
def test_gradient_penalty_is_norm_minus_one_squared(channels, size, norm):
    real, fake = _batch(5, channels, size)
    w = torch.randn(channels * size * size, generator=torch.Generator().manual_seed(2))
    gp = gradient_penalty(linear_critic(w * (norm / w.norm())), real, fake)
    assert gp.item() == pytest.approx((norm - 1.0) ** 2, rel=1e-5)


def test_gradient_penalty_gradient_reaches_the_critic_parameters():
    critic = torch.nn.Linear(3 * 8 * 8, 1, bias=True)
    with torch.no_grad():
        critic.weight.mul_(3.0 / critic.weight.norm())
    real, fake = _batch(4, 3, 8)
    gp = gradient_penalty(lambda x: critic(x.flatten(1)).flatten(), real, fake)
    gp.backward()
    w = critic.weight.detach()
    expected = 2 * (w.norm() - 1) * w / w.norm()  # d/dw (‖w‖ - 1)²
    assert gp.item() == pytest.approx(4.0, rel=1e-5)
    assert torch.allclose(critic.weight.grad, expected, rtol=1e-4, atol=1e-7)
    assert critic.bias.grad is None or critic.bias.grad.abs().max() == 0  # the penalty does not depend on b


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (3, 3, 32, 32), (4, 2, 6)])
def test_interpolation_uses_one_weight_per_sample(shape):
    alpha = interpolation_weights(shape[0], len(shape), torch.empty(0))
    assert alpha.shape == (shape[0],) + (1,) * (len(shape) - 1)
    assert ((alpha >= 0) & (alpha < 1)).all()
    real, fake = torch.randn(shape), torch.randn(shape)
    seen = []

    def critic(x):
        seen.append(x.detach())
        return x.flatten(1).sum(1)

    gradient_penalty(critic, real, fake)
    d, e = (real - fake).flatten(1), (seen[0] - fake).flatten(1)
    a = (d * e).sum(1, keepdim=True) / d.square().sum(1, keepdim=True)  # least-squares α of each sample
    assert torch.allclose(e, a * d, atol=1e-5)  # x̂ - fake = α (real - fake) with one α per sample
    assert a.unique().numel() == shape[0] and ((a >= 0) & (a < 1)).all()


def test_gradient_penalty_uses_given_alpha_exactly():
    real, fake = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    alpha = torch.tensor([0.25, 0.75]).view(2, 1, 1, 1)
    # D(x) = ½ Σ x² → ∇ = x̂ = α (every pixel) → ‖∇‖ = 2α over 4 pixels
    gp = gradient_penalty(lambda x: 0.5 * x.square().flatten(1).sum(1), real, fake, alpha=alpha)
    assert gp.item() == pytest.approx(((0.5 - 1) ** 2 + (1.5 - 1) ** 2) / 2, rel=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_r1_closed_form_on_linear_and_quadratic_critics(channels):
    real, fake = _batch(4, channels, 8)
    w = torch.randn(channels * 64, generator=torch.Generator().manual_seed(3))
    assert r1_penalty(linear_critic(w), real, fake).item() == pytest.approx(0.5 * w.square().sum().item(), rel=1e-5)
    a = 0.7  # D(x) = a/2 ‖x‖² → ∇ = a x → R1 = ½ a² E‖x‖²
    r1 = r1_penalty(lambda x: 0.5 * a * x.square().flatten(1).sum(1), real)
    assert r1.item() == pytest.approx(0.5 * a**2 * real.square().flatten(1).sum(1).mean().item(), rel=1e-5)


def test_r1_gradient_reaches_the_critic_parameters():
    critic = torch.nn.Linear(16, 1)
    real = torch.randn(4, 1, 4, 4)
    r1_penalty(lambda x: critic(x.flatten(1)).flatten(), real).backward()
    assert torch.allclose(critic.weight.grad, critic.weight.detach(), rtol=1e-5, atol=1e-7)  # d/dw ½‖w‖² = w


def test_scaled_gradient_penalty_matches_the_unscaled_one():
    real, fake = _batch(4, 3, 8)
    w = torch.randn(3 * 64, generator=torch.Generator().manual_seed(4))
    scaler = FakeScaler(2.0**10)
    plain = gradient_penalty(linear_critic(w), real, fake, alpha=torch.full((4, 1, 1, 1), 0.3))
    scaled = gradient_penalty(linear_critic(w), real, fake, scaler=scaler, alpha=torch.full((4, 1, 1, 1), 0.3))
    assert scaler.calls == 1
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-6)


def test_amp_recipe_recovers_gradients_that_underflow_in_fp16():
    """An fp16 critic whose input gradient is ~1e-8 (below fp16's smallest subnormal): the naive gradient is 0,
    the recipe (grad of the scaled output, then divide by the scale) recovers it."""
    w = torch.randn(16, generator=torch.Generator().manual_seed(5))
    w_half = (w / w.norm() * 2**-10).half()
    a = 2.0**-14

    def critic(x):
        return (x.half() @ w_half) * a  # ∇_x = a · w ≈ 1.5e-8 per entry

    x = torch.randn(4, 16)
    expected = (a * w_half.float()).expand(4, -1)
    assert input_gradients(critic, x).abs().max().item() == 0.0  # flushed to zero without the scaler
    recovered = input_gradients(critic, x, FakeScaler(2.0**12))
    assert torch.allclose(recovered, expected, rtol=1e-2, atol=2 * 2.0**-24 / 2.0**12)  # fp16 subnormal step


def test_model_penalty_uses_the_trainers_loss_scaler():
    model = WGANGP(**TINY)
    scaler = FakeScaler()
    model._trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=scaler))
    assert loss_scaler(model._trainer) is scaler
    batch = next(iter(loader(n=4, batch_size=4)))
    ctx = model.make_context(batch, generator_step=False)
    loss, logs = model.discriminator_loss(batch, ctx)
    total = model._add_penalty(loss, logs, ctx)  # the loop adds the penalty over the critics the variant recorded
    assert scaler.calls == 1
    assert (total - loss).item() == pytest.approx(10.0 * logs["gradient_penalty"].item(), rel=1e-6)
    assert loss_scaler(None) is None and loss_scaler(SimpleNamespace(precision_plugin=object())) is None


def test_clip_weights_clamps_in_place():
    params = [torch.nn.Parameter(torch.tensor([-1.0, -0.005, 0.0, 0.02, 3.0]))]
    clip_weights_(params, 0.01)
    assert params[0].tolist() == pytest.approx([-0.01, -0.005, 0.0, 0.01, 0.01])


class ClipChecked(WGAN):
    """WGAN that checks every critic parameter right after each clipping."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.checked = 0
        self.max_abs_before = 0.0

    def after_discriminator_step(self):
        largest = max(p.abs().max().item() for p in self.discriminator.parameters())
        self.max_abs_before = max(self.max_abs_before, largest)
        super().after_discriminator_step()
        c = self.hparams.weight_clip
        assert all(p.abs().max().item() <= c for p in self.discriminator.parameters())
        self.checked += 1


def test_weight_clipping_keeps_every_critic_parameter_in_range_after_each_step(tmp_path):
    model = ClipChecked(**TINY, max_generator_steps=3, warmup_critic_steps=2, warmup_generator_steps=1)
    trainer(tmp_path).fit(model, loader(n=16, batch_size=4))
    assert model.checked == model.discriminator_steps == 2 + 5 * 2
    assert model.max_abs_before > 0.01  # the clipping had work to do (N(0, 0.02) init, BatchNorm γ ≈ 1)


@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_any_variant_takes_a_penalty_from_config(tmp_path, name):
    model = DCGAN(**TINY, d_norm="layer", penalty=name, penalty_weight=5.0, max_generator_steps=2)
    tr = trainer(tmp_path)
    tr.fit(model, loader(n=8, batch_size=4))
    assert torch.isfinite(tr.callback_metrics[f"train/{name}"])
    assert tr.callback_metrics[f"train/{name}"].item() > 0


def test_wgan_gp_losses_are_finite_under_bf16_mixed(tmp_path):
    model = WGANGP(**TINY, max_generator_steps=2)
    tr = trainer(tmp_path, precision="bf16-mixed")
    tr.fit(model, loader(n=16, batch_size=4))
    metrics = {k: v for k, v in tr.callback_metrics.items() if k.startswith("train/")}
    assert {"train/loss_d", "train/loss_g", "train/gradient_penalty"} <= set(metrics)
    assert all(torch.isfinite(v) for v in metrics.values())
    assert metrics["train/gradient_penalty"].item() > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_input_unknown_penalty_name():
    with pytest.raises(ConfigError, match=r"unknown penalty 'gp2': choose one of gradient_penalty, r1"):
        DCGAN(**TINY, penalty="gp2")
    with pytest.raises(ConfigError, match="unknown penalty"):
        get_penalty("nope")


def test_bad_input_negative_penalty_weight():
    with pytest.raises(ConfigError, match=r"penalty_weight must be >= 0 .* got -1.0"):
        WGANGP(**TINY, penalty_weight=-1.0)


def test_bad_input_non_positive_weight_clip():
    with pytest.raises(ConfigError, match=r"weight_clip must be > 0 .* got 0.0"):
        WGAN(**TINY, weight_clip=0.0)
