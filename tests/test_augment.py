"""Augmentation: DiffAugment's ops against hand computations and closed-form gradients, one draw applied to several
tensors, per-sample probability p, the policy parser's errors, and ADA's adaptive p at the documented speed with an
exact state_dict resume and a real two-process reduction (gloo)."""

import dataclasses
import io
import itertools
import threading

import pytest
import torch
import torch.distributed as dist
from torch import nn

from gan_modules import ConfigError
from gan_modules.augment import (
    POLICIES,
    AdaptiveAugmentProbability,
    AugmentParams,
    apply_params,
    augment,
    parse_policy,
    sample_params,
)
from gan_modules.penalties import gradient_penalty, r1_penalty

ALL = "color,translation,cutout"
OPS = ["color", "translation", "cutout", ALL]


def batch(n=4, c=3, size=8, seed=0, dtype=torch.float32):
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed)).to(dtype)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def fixed(x, policy, **values):
    """Parameters for ``x`` with every op applied (p = 1) and the given values replacing the random draws."""
    params = sample_params(x, policy, p=1.0, generator=seeded(123))
    return dataclasses.replace(params, **values)


def translate_by_loop(x, dy, dx):
    """Reference: out[i, j] = x[i - dy, j - dx], zero outside the image."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[..., i, j] = x[..., i - dy, j - dx]
    return out


# --- parser ----------------------------------------------------------------------------------------------------------
def test_parse_policy_keeps_the_given_order():
    assert parse_policy(ALL) == ("color", "translation", "cutout")
    assert parse_policy("cutout, color") == ("cutout", "color")
    assert parse_policy(["translation"]) == ("translation",)
    assert parse_policy(("cutout", "color")) == ("cutout", "color")


@pytest.mark.parametrize("off", [None, "", "  ", [], ()])
def test_parse_policy_empty_means_off(off):
    assert parse_policy(off) == ()
    x = batch()
    assert augment(x, off) is x


@pytest.mark.parametrize("policy, needle", [
    ("color,flip", "unknown augmentation 'flip'"),
    ("colour", "unknown augmentation 'colour'"),
    ("color,,cutout", "an empty entry"),
    ("color,", "an empty entry"),
    ("color,translation,color", "repeats an augmentation"),
])
def test_parse_policy_errors_are_one_line_and_list_the_valid_names(policy, needle):
    with pytest.raises(ConfigError) as err:
        parse_policy(policy)
    message = str(err.value)
    assert needle in message
    assert "color, translation, cutout" in message
    assert "\n" not in message


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_probability_outside_0_1_is_a_config_error(p):
    with pytest.raises(ConfigError, match=r"augmentation probability p must be in \[0, 1\], got"):
        augment(batch(), ALL, p=p)


def test_bad_tensors_are_one_line_value_errors():
    x = batch(n=4, size=8)
    with pytest.raises(ValueError, match=r"needs an image batch \(N, C, H, W\), got a tensor of shape \(3, 8, 8\)"):
        sample_params(x[0], ALL)
    params = sample_params(x, ALL)
    with pytest.raises(ValueError, match="drawn for 4 images of 8x8, got a tensor of shape \\(2, 3, 8, 8\\)"):
        params.apply(x[:2])
    with pytest.raises(ValueError, match="drawn for 4 images of 8x8, got a tensor of shape \\(4, 3, 16, 16\\)"):
        params.apply(batch(n=4, size=16))
    with pytest.raises(ValueError, match="given parameters drawn for policy"):
        augment(x, "color", params=params)


# --- shape, dtype, device ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", OPS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [4, 7, 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_output_keeps_shape_dtype_and_device(policy, channels, size, dtype):
    x = batch(n=3, c=channels, size=size, dtype=dtype)
    y = augment(x, policy, generator=seeded())
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y.float()).all()


@pytest.mark.parametrize("policy", OPS)
def test_bf16_autocast_keeps_bf16_and_fp32_keeps_fp32(policy):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = nn.Conv2d(3, 3, 1)(batch())  # a bf16 image, as a generator under autocast makes
        assert fake.dtype == torch.bfloat16
        assert augment(fake, policy).dtype == torch.bfloat16
        assert augment(batch(), policy).dtype == torch.float32


def test_everything_stays_on_the_input_device_without_reading_back():
    """On the meta device any host read-back (.item(), .tolist(), a CPU tensor mixed in) raises."""
    x = torch.empty(4, 3, 8, 8, device="meta")
    params = sample_params(x, ALL, p=0.5)
    assert {t.device.type for t in [params.brightness, params.translation, params.cutout, *params.applied.values()]} \
        == {"meta"}
    assert augment(x, ALL, params=params).device.type == "meta"
    assert augment(x, ALL, p=torch.tensor(0.3, device="meta")).device.type == "meta"  # ADA's p kept on the device


def test_generator_draws_on_its_device_and_lands_on_the_input_device():
    x = torch.empty(2, 3, 8, 8, device="meta")
    params = sample_params(x, ALL, generator=seeded())  # CPU generator, meta input
    assert params.contrast.device.type == "meta" and params.cutout.device.type == "meta"


# --- colour ----------------------------------------------------------------------------------------------------------
def test_color_with_fixed_params_equals_the_hand_computation():
    # one image, 2 channels, 1x2 pixels: channel 0 = [0, 2], channel 1 = [2, 4]
    x = torch.tensor([[[[0.0, 2.0]], [[2.0, 4.0]]]])
    params = fixed(x, "color", brightness=torch.tensor([0.5]), saturation=torch.tensor([2.0]),
                   contrast=torch.tensor([0.5]))
    # brightness +0.5:          c0 = [0.5, 2.5], c1 = [2.5, 4.5]
    # saturation ×2 about the per-pixel channel mean [1.5, 3.5]:   c0 = [-0.5, 1.5], c1 = [3.5, 5.5]
    # contrast ×0.5 about the image mean 2.5:                        c0 = [1.0, 2.0],  c1 = [3.0, 4.0]
    expected = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    assert torch.equal(params.apply(x), expected)


def test_color_matches_diffaugment_formulas_on_random_input():
    x = batch(n=5, c=3, size=6)
    params = sample_params(x, "color", generator=seeded(7))
    b, s, c = (v.view(-1, 1, 1, 1) for v in (params.brightness, params.saturation, params.contrast))
    ref = x + b  # DiffAugment_pytorch.py:22-36, written independently
    ref = (ref - ref.mean(dim=1, keepdim=True)) * s + ref.mean(dim=1, keepdim=True)
    ref = (ref - ref.mean(dim=[1, 2, 3], keepdim=True)) * c + ref.mean(dim=[1, 2, 3], keepdim=True)
    torch.testing.assert_close(params.apply(x), ref, rtol=1e-6, atol=1e-6)


def test_color_parameter_ranges_follow_diffaugment():
    params = sample_params(torch.empty(20000, 1, 2, 2), "color", generator=seeded())
    for values, low, high in [(params.brightness, -0.5, 0.5), (params.saturation, 0.0, 2.0),
                              (params.contrast, 0.5, 1.5)]:
        assert values.min().item() >= low and values.max().item() < high
        assert values.mean().item() == pytest.approx((low + high) / 2, abs=0.02)  # 4.9σ of U's mean at n = 20000


def test_saturation_is_the_identity_on_one_channel():
    x = batch(c=1)
    params = fixed(x, "color", brightness=torch.zeros(4), contrast=torch.ones(4), saturation=torch.full((4,), 1.7))
    assert torch.equal(params.apply(x), x)


# --- translation -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dy, dx", [(0, 0), (1, 0), (0, -1), (2, 3), (-3, 2), (-1, -1), (8, 0), (0, -9)])
def test_translation_moves_every_pixel_by_the_shift_with_zero_fill(dy, dx):
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1  # no zero pixel in the input
    params = fixed(x, "translation", translation=torch.tensor([[dy, dx], [0, 0]]))
    out = params.apply(x)
    assert torch.equal(out[0], translate_by_loop(x[0], dy, dx))
    assert torch.equal(out[1], x[1])


def test_translation_moves_a_known_pixel():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 2, 5] = 1.0
    out = fixed(x, "translation", translation=torch.tensor([[1, -2]])).apply(x)
    assert out[0, 0, 3, 3].item() == 1.0 and out.sum().item() == 1.0  # (2, 5) + (1, -2) = (3, 3)


@pytest.mark.parametrize("size, shift", [(4, 1), (8, 1), (16, 2), (20, 3), (32, 4)])
def test_translation_shifts_are_uniform_over_minus_to_plus_an_eighth(size, shift):
    params = sample_params(torch.empty(6000, 1, size, size), "translation", generator=seeded())
    assert shift == int(size / 8 + 0.5)  # DiffAugment_pytorch.py:40
    for axis in range(2):
        counts = torch.bincount(params.translation[:, axis] + shift, minlength=2 * shift + 1)
        assert counts.numel() == 2 * shift + 1  # nothing outside [-shift, shift]
        freq = counts.float() / 6000
        assert freq.min().item() == pytest.approx(1 / (2 * shift + 1), abs=0.03)
        assert freq.max().item() == pytest.approx(1 / (2 * shift + 1), abs=0.03)


# --- cutout ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, side", [(4, 2), (7, 4), (8, 4), (9, 5), (16, 8)])
def test_cutout_zeros_a_square_of_half_the_size(size, side):
    x = torch.rand(1, 3, size, size) + 1  # no zero pixel in the input
    params = fixed(x, "cutout", cutout=torch.tensor([[1, 2]]))
    assert params.cutout_size == (side, side) == (int(size / 2 + 0.5),) * 2  # DiffAugment_pytorch.py:56
    out = params.apply(x)
    expected = x.clone()
    expected[..., 1:1 + side, 2:2 + side] = 0  # clipped by slicing where it passes the border
    assert torch.equal(out, expected)


def test_cutout_is_clipped_at_the_border():
    x = torch.rand(2, 1, 8, 8) + 1
    out = fixed(x, "cutout", cutout=torch.tensor([[-2, 6], [5, -3]])).apply(x)
    zero0 = torch.zeros(8, 8, dtype=torch.bool)
    zero0[0:2, 6:8] = True  # rows -2..1, cols 6..9 clipped to the image
    zero1 = torch.zeros(8, 8, dtype=torch.bool)
    zero1[5:8, 0:1] = True  # rows 5..8, cols -3..0
    assert torch.equal(out[0, 0] == 0, zero0) and torch.equal(out[1, 0] == 0, zero1)


@pytest.mark.parametrize("size", [7, 8])
def test_cutout_corners_cover_diffaugment_range(size):
    params = sample_params(torch.empty(5000, 1, size, size), "cutout", generator=seeded())
    side = params.cutout_size[0]
    # centre in [0, size + (1 - side % 2)), corner = centre - side // 2   (DiffAugment_pytorch.py:57, :64)
    low, high = -(side // 2), size + (1 - side % 2) - 1 - side // 2
    for axis in range(2):
        corners = params.cutout[:, axis]
        assert corners.min().item() == low and corners.max().item() == high
    out = params.apply(torch.ones(5000, 1, size, size))
    zeros = (out == 0).sum(dim=(1, 2, 3))
    inside = ((params.cutout >= 0) & (params.cutout + side <= size)).all(dim=1)
    assert (zeros[inside] == side * side).all() and (zeros <= side * side).all() and (zeros > 0).all()


# --- gradients -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", OPS)
@pytest.mark.parametrize("channels", [1, 3])
def test_gradients_and_second_derivatives_match_finite_differences(policy, channels):
    x = batch(n=2, c=channels, size=5, dtype=torch.float64).requires_grad_(True)
    params = sample_params(x, policy, generator=seeded(3))
    assert torch.autograd.gradcheck(params.apply, (x,))
    assert torch.autograd.gradgradcheck(params.apply, (x,))  # R1 / GP through the augmentation


def test_brightness_and_cutout_gradients_are_closed_form():
    x = batch(n=2, c=3, size=8).requires_grad_(True)
    weight = batch(n=2, c=3, size=8, seed=1)
    params = fixed(x, "color,cutout", saturation=torch.ones(2), contrast=torch.ones(2),
                   cutout=torch.tensor([[0, 0], [4, 3]]))
    (params.apply(x) * weight).sum().backward()
    mask = torch.ones(2, 1, 8, 8)
    mask[0, :, 0:4, 0:4] = 0
    mask[1, :, 4:8, 3:7] = 0
    torch.testing.assert_close(x.grad, weight * mask, rtol=0, atol=0)  # d(x + b)·m / dx = m


def test_translation_gradient_is_the_opposite_shift():
    x = batch(n=1, c=2, size=8).requires_grad_(True)
    weight = batch(n=1, c=2, size=8, seed=1)
    (fixed(x, "translation", translation=torch.tensor([[2, -1]])).apply(x) * weight).sum().backward()
    assert torch.equal(x.grad[0], translate_by_loop(weight[0], -2, 1))


def test_generator_receives_the_gradient_through_the_augmentation():
    torch.manual_seed(0)
    generator = nn.Linear(4, 3 * 8 * 8)  # a tiny G: z -> image
    critic = nn.Conv2d(3, 1, 8)  # a tiny D: image -> logit
    z = torch.randn(5, 4)
    image = generator(z).view(5, 3, 8, 8)
    image.retain_grad()
    critic(augment(image, ALL, generator=seeded(1))).sum().backward()
    assert image.grad.abs().sum() > 0
    # chain rule through the linear layer: dL/dW = (dL/dimage)ᵀ z, dL/db = Σ dL/dimage
    torch.testing.assert_close(generator.weight.grad, image.grad.view(5, -1).T @ z, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(generator.bias.grad, image.grad.view(5, -1).sum(0), rtol=1e-5, atol=1e-6)


def test_r1_through_the_augmentation_is_closed_form_and_reaches_the_critic():
    """R1 w.r.t. the un-augmented real, through the augmentation (stylegan2-ada training/loss.py:111-124): for a
    linear critic D(x) = <w, T(x)> with T a cutout, ∇ₓ D = w ⊙ m, so R1 = ½·mean_i ‖w ⊙ mᵢ‖², dR1/dw = mean_i w ⊙ mᵢ."""
    real = batch(n=2, c=1, size=4)
    w = nn.Parameter(torch.randn(16, generator=seeded(2)))
    params = fixed(real, "cutout", cutout=torch.tensor([[0, 0], [2, 1]]))
    mask = torch.ones(2, 16)
    mask.view(2, 4, 4)[0, 0:2, 0:2] = 0
    mask.view(2, 4, 4)[1, 2:4, 1:3] = 0
    r1 = r1_penalty(lambda x: params.apply(x).flatten(1) @ w, real)
    assert r1.item() == pytest.approx(0.5 * (w.detach().square() * mask).sum(1).mean().item(), rel=1e-6)
    r1.backward()
    torch.testing.assert_close(w.grad, (w.detach() * mask).mean(0), rtol=1e-6, atol=1e-7)


def test_gradient_penalty_through_the_augmentation_is_closed_form():
    """GP on the interpolate through the real batch's translation: T is a permutation-with-zeros, so
    ‖∇ₓ <w, T(x)>‖ = ‖Tᵀw‖ = norm of the w entries that stay in the image."""
    real, fake = batch(n=2, c=1, size=4), batch(n=2, c=1, size=4, seed=5)
    w = torch.randn(16, generator=seeded(2))
    params = fixed(real, "translation", translation=torch.tensor([[1, 0], [0, -1]]))
    # sample 0 moves down 1: T(x)[i] = x[i - 1], so Tᵀw = w's rows 1..3; sample 1 moves left 1: Tᵀw = w's columns 0..2
    grid = w.view(4, 4)
    norms = torch.stack([grid[1:, :].norm(), grid[:, :3].norm()])
    gp = gradient_penalty(lambda x: params.apply(x).flatten(1) @ w, real, fake)
    assert gp.item() == pytest.approx((norms - 1).square().mean().item(), rel=1e-5)


# --- one draw, several tensors; probability --------------------------------------------------------------------------
def test_same_params_give_the_same_spatial_transform_on_two_tensors():
    a, b = batch(seed=1), batch(seed=2)
    params = sample_params(a, "translation,cutout", generator=seeded())
    out_a, out_b = params.apply(a), params.apply(b)
    ones = params.apply(torch.ones_like(a))  # where each output pixel comes from (1) or zero fill / cutout (0)
    assert torch.equal(out_a == 0, ones == 0) and torch.equal(out_b == 0, ones == 0)
    assert torch.equal(params.apply(a), out_a)  # applying twice is deterministic


@pytest.mark.parametrize("policy", OPS)
def test_augmenting_an_interpolate_equals_interpolating_the_augmented(policy):
    """Each op is affine in x for fixed parameters, so the GP interpolate is augmented consistently."""
    a, b = batch(seed=1), batch(seed=2)
    alpha = torch.rand(4, 1, 1, 1, generator=seeded(9))
    params = sample_params(a, policy, generator=seeded())
    torch.testing.assert_close(params.apply(alpha * a + (1 - alpha) * b),
                               alpha * params.apply(a) + (1 - alpha) * params.apply(b), rtol=1e-5, atol=1e-5)


def test_independent_draws_for_real_and_fake_differ():
    x = batch()
    g = seeded()
    real_params, fake_params = sample_params(x, ALL, generator=g), sample_params(x, ALL, generator=g)
    assert not torch.equal(real_params.brightness, fake_params.brightness)
    assert not torch.equal(real_params.apply(x), fake_params.apply(x))


@pytest.mark.parametrize("policy", OPS)
def test_p_zero_is_the_identity_bit_for_bit(policy):
    x = batch(c=3, size=8)
    params = sample_params(x, policy, p=0.0, generator=seeded())
    assert all(not flags.any() for flags in params.applied.values())
    assert torch.equal(params.apply(x), x)


@pytest.mark.parametrize("policy", OPS)
def test_p_one_always_augments(policy):
    x = batch(n=64)
    params = sample_params(x, policy, p=1.0, generator=seeded())
    expected_ops = [op for name in parse_policy(policy) for op in POLICIES[name]]
    assert sorted(params.applied) == sorted(expected_ops)
    assert all(flags.all() for flags in params.applied.values())
    changed = (params.apply(x) != x).flatten(1).any(1)
    if policy != "translation":  # a drawn shift of (0, 0) is a legitimate translation
        assert changed.all()


@pytest.mark.parametrize("p", [0.1, 0.3, 0.8])
def test_each_op_is_applied_to_each_sample_with_probability_p(p):
    n = 4000
    params = sample_params(torch.empty(n, 3, 8, 8), ALL, p=p, generator=seeded())
    sigma = (p * (1 - p) / n) ** 0.5
    for flags in params.applied.values():
        assert flags.float().mean().item() == pytest.approx(p, abs=4.5 * sigma)
    flags = torch.stack(list(params.applied.values()))
    assert flags.all(0).float().mean().item() == pytest.approx(p ** 5, abs=4.5 * (p ** 5 * (1 - p ** 5) / n) ** 0.5)


def test_samples_not_drawn_are_untouched_bit_for_bit():
    x = batch(n=200)
    params = sample_params(x, ALL, p=0.5, generator=seeded())
    untouched = torch.stack(list(params.applied.values())).any(0).logical_not()
    assert 0 < untouched.sum() < 200
    out = params.apply(x)
    assert torch.equal(out[untouched], x[untouched])


def test_seeded_generator_reproduces_and_the_stream_does_not_depend_on_p():
    x = batch()
    one = augment(x, ALL, p=0.5, generator=seeded(11))
    assert torch.equal(one, augment(x, ALL, p=0.5, generator=seeded(11)))
    assert not torch.equal(one, augment(x, ALL, p=0.5, generator=seeded(12)))
    low, high = sample_params(x, ALL, p=0.2, generator=seeded(4)), sample_params(x, ALL, p=0.9, generator=seeded(4))
    assert torch.equal(low.translation, high.translation) and torch.equal(low.contrast, high.contrast)


def test_params_can_be_built_by_hand():
    x = batch(n=1, c=1, size=4)
    params = AugmentParams(policy=("translation",), size=(4, 4), translation=torch.tensor([[0, 1]]),
                           applied={"translation": torch.tensor([True])})
    assert torch.equal(apply_params(x, params), translate_by_loop(x, 0, 1))


# --- ADA -------------------------------------------------------------------------------------------------------------
def run_ada(ada, logits, steps, reduce_fn=None):
    history = []
    for _ in range(steps):
        adjusted = ada.update(logits, reduce_fn)
        history.append((adjusted, ada.p, ada.r_t))
    return history


def test_ada_p_rises_at_the_documented_speed_when_d_overfits():
    ada = AdaptiveAugmentProbability(p=0.0, target=0.6, interval=4, speed_images=1000)
    history = run_ada(ada, torch.full((8, 1), 3.0), 40)  # sign(D(real)) = 1 > 0.6
    step = 8 * 4 / 1000  # batch · interval / speed
    for i, (adjusted, p, r_t) in enumerate(history, start=1):
        assert adjusted == (i % 4 == 0)
        assert p == pytest.approx(step * (i // 4), abs=1e-6)
        assert r_t == (None if i < 4 else 1.0)


def test_ada_p_falls_when_d_does_not_overfit_and_clamps_at_0():
    ada = AdaptiveAugmentProbability(p=0.1, interval=2, speed_images=100)
    history = run_ada(ada, -torch.ones(5), 10)  # r_t = -1 < 0.6
    assert [p for _, p, _ in history] == pytest.approx([0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], abs=1e-6)
    ada = AdaptiveAugmentProbability(p=0.5, interval=2, speed_images=100)
    history = run_ada(ada, -torch.ones(5), 8)
    assert [p for _, p, _ in history] == pytest.approx([0.5, 0.4, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1], abs=1e-6)
    assert history[-1][2] == -1.0


def test_ada_p_clamps_at_1():
    ada = AdaptiveAugmentProbability(p=0.95, interval=1, speed_images=100)
    assert [p for _, p, _ in run_ada(ada, torch.ones(4), 3)] == pytest.approx([0.99, 1.0, 1.0], abs=1e-6)


def test_ada_default_speed_moves_p_from_0_to_1_in_500k_images():
    ada = AdaptiveAugmentProbability()  # p 0, target 0.6, interval 4, 500k images
    assert (ada.p, ada.target, ada.interval, ada.speed_images) == (0.0, 0.6, 4, 500_000)
    logits = torch.ones(64)
    adjustments = 500_000 // (64 * 4)  # 1953 adjustments = 499,968 images
    run_ada(ada, logits, 4 * adjustments)
    assert ada.p == pytest.approx(adjustments * 256 / 500_000, abs=1e-6)  # 0.999936
    run_ada(ada, logits, 4)
    assert ada.p == 1.0


def test_ada_r_t_is_the_mean_sign_over_every_logit_and_holds_p_at_the_target():
    ada = AdaptiveAugmentProbability(p=0.5, interval=1, speed_images=100)
    ada.update(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, -1.0, -2.0]))  # (8 - 2) / 10 = 0.6
    assert ada.r_t == 0.6 and ada.p == 0.5  # sign(0) = 0
    ada.update(torch.tensor([1.0, 0.0, 0.0, -1.0, 1.0]))  # zero logits count 0: r_t = 1/5
    assert ada.r_t == pytest.approx(0.2, abs=1e-7) and ada.p == pytest.approx(0.45, abs=1e-6)


def test_ada_counts_images_not_patch_logits():
    ada = AdaptiveAugmentProbability(interval=2, speed_images=1000)
    patch_logits = torch.ones(8, 1, 3, 3)  # a PatchGAN map: 9 logits per image
    run_ada(ada, patch_logits, 2)
    assert ada.p == pytest.approx(8 * 2 / 1000, abs=1e-9)
    assert ada.accumulator.tolist() == [0.0, 0.0, 0.0]  # reset after the adjustment


def test_ada_reads_back_and_reduces_only_at_the_interval():
    calls = []

    def reduce_fn(t):
        calls.append(t.clone())
        return t

    ada = AdaptiveAugmentProbability(interval=4)
    for _ in range(3):  # meta logits: a host read-back would raise
        assert ada.update(torch.empty(8, 1, device="meta"), reduce_fn) is False
    assert ada.accumulator.device.type == "meta" and calls == []
    ada = AdaptiveAugmentProbability(interval=4, speed_images=1000)
    run_ada(ada, torch.ones(8), 12, reduce_fn)
    assert len(calls) == 3 and all(c.tolist() == [32.0, 32.0, 32.0] for c in calls)


def test_ada_reduce_fn_combines_processes():
    """Two simulated ranks: 8 real images each, rank 0 all positive, rank 1 three quarters negative over one
    interval of 2 steps -> r_t = (16 - 8) / 32 = 0.25 < 0.6, p falls by 32 images / 1000."""
    ranks = [AdaptiveAugmentProbability(p=0.5, interval=2, speed_images=1000) for _ in range(2)]
    logits = [torch.ones(8), torch.tensor([1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0])]
    calls = []
    for ada, x in zip(ranks, logits):
        ada.accumulate(x)
        assert ada.step(calls.append) is False and calls == []  # step 1 of 2: no reduction, no read-back
        ada.accumulate(x)
    total = ranks[0].accumulator + ranks[1].accumulator  # what an all-reduce(sum) returns on every rank
    for ada in ranks:
        assert ada.step(lambda t: total.clone()) is True
        assert ada.r_t == pytest.approx(0.25, abs=1e-7) and ada.p == pytest.approx(0.5 - 0.032, abs=1e-6)


def test_ada_state_dict_resumes_bit_identically_mid_interval():
    torch.manual_seed(0)
    stream = [torch.randn(6) + 1.0 for _ in range(30)]  # P(D > 0) = 0.84: r_t wanders around the target
    ada = AdaptiveAugmentProbability(p=0.2, interval=4, speed_images=500)
    for x in stream[:6]:  # 6 steps: one adjustment, then 2 steps into the next interval
        ada.update(x)
    buffer = io.BytesIO()
    torch.save(ada.state_dict(), buffer)  # as a checkpoint would
    buffer.seek(0)
    resumed = AdaptiveAugmentProbability(p=0.2, interval=4, speed_images=500)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert (resumed.p, resumed.r_t, resumed.steps) == (ada.p, ada.r_t, ada.steps)
    assert torch.equal(resumed.accumulator, ada.accumulator)
    history = []
    for x in stream[6:]:
        assert resumed.update(x) == ada.update(x)
        assert (resumed.p, resumed.r_t, resumed.steps) == (ada.p, ada.r_t, ada.steps)
        history.append(ada.p)
    assert ada.steps == 30 and 0 < ada.p < 1
    steps = [b - a for a, b in itertools.pairwise(history)]
    assert min(steps) < 0 < max(steps)  # p went both down and up after the resume: a non-trivial path


def test_ada_state_lives_in_the_parent_state_dict():
    parent = nn.Module()
    parent.ada = AdaptiveAugmentProbability(p=0.25)
    parent.ada.update(torch.ones(3))
    state = parent.state_dict()
    assert set(state) == {"ada._extra_state"}
    other = nn.Module()
    other.ada = AdaptiveAugmentProbability()
    other.load_state_dict(state)
    assert other.ada.p == 0.25 and other.ada.steps == 1 and other.ada.accumulator.tolist() == [3.0, 3.0, 3.0]
    assert list(parent.ada.buffers()) == [] and list(parent.ada.parameters()) == []  # nothing DDP would broadcast


@pytest.mark.parametrize("kwargs, needle", [
    ({"target": 1.5}, r"ADA target must be in \[0, 1\]"),
    ({"interval": 0}, "ADA interval must be a whole number of D steps >= 1"),
    ({"interval": 2.5}, "ADA interval must be a whole number of D steps >= 1"),
    ({"speed_images": 0}, "ADA speed_images must be > 0"),
    ({"p": -0.1}, r"augmentation probability p must be in \[0, 1\]"),
])
def test_ada_bad_settings_are_one_line_config_errors(kwargs, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        AdaptiveAugmentProbability(**kwargs)
    assert "\n" not in str(err.value)


def test_ada_with_a_real_gloo_all_reduce_agrees_on_the_combined_p():
    """Two gloo ranks (threads sharing a HashStore: a real collective without spawning processes) pass
    ``all_reduce(sum)`` as reduce_fn, as the loop passes ``trainer.strategy.reduce(t, reduce_op="sum")``."""
    store, results, errors = dist.HashStore(), {}, []

    def rank_main(rank):
        try:
            group = dist.ProcessGroupGloo(dist.PrefixStore("ada", store), rank, 2)

            def all_reduce_sum(t):
                group.allreduce([t]).wait()  # in place, like torch.distributed.all_reduce
                return t

            ada = AdaptiveAugmentProbability(p=0.5, interval=2, speed_images=1000)
            logits = torch.ones(8) if rank == 0 else torch.tensor([1.0, 1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0])
            for _ in range(4):
                ada.update(logits, all_reduce_sum)
            results[rank] = (ada.p, ada.r_t)
        except Exception as err:  # noqa: BLE001 - surfaced below: a thread's exception would otherwise vanish
            errors.append(err)

    threads = [threading.Thread(target=rank_main, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(results) == 2
    assert results[0] == results[1]  # every rank holds the same p
    p, r_t = results[0]
    assert r_t == pytest.approx(0.25, abs=1e-7)  # (16 - 8) / 32 per interval
    assert p == pytest.approx(0.5 - 2 * 0.032, abs=1e-6)  # two adjustments of 2 ranks · 8 images · 2 steps / 1000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_augment_and_ada_do_not_synchronize():
    x = batch().cuda().requires_grad_(True)
    g = torch.Generator(device="cuda").manual_seed(0)
    ada = AdaptiveAugmentProbability(interval=4)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        y = augment(x, ALL, p=0.5, generator=g)
        for _ in range(3):
            ada.update(y.mean(dim=(1, 2, 3)))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert y.device == x.device and y.dtype == x.dtype
    assert ada.update(y.mean(dim=(1, 2, 3)).detach()) is True
