"""The original GAN's MNIST networks and optimizer schedule against goodfeli/adversarial ``mnist.yaml``: parameter
counts from the yaml's widths, maxout, dropout include probabilities, init ranges, the [0, 1] ↔ [-1, 1] mapping,
the uniform noise, and the SGD schedule's learning rate and momentum against closed forms (with exact resume)."""

from __future__ import annotations

import io
import math
import pickle

import pytest
import torch
from torch import nn

from gan_modules.nets.goodfellow import (
    NOISE_BOUND,
    GoodfellowGenerator,
    Maxout,
    MaxoutDiscriminator,
    sample_noise,
    sigmoid_bias_from_marginals,
)
from gan_modules.schedules import GOODFELLOW_MNIST_SGD, ExponentialDecayMomentumSchedule


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --- networks -----------------------------------------------------------------------------------------------------
def test_parameter_counts_follow_the_yaml():
    nvis, h0, h1, pixels = 100, 1200, 1200, 784  # G: nvis l.30, h0 dim l.15, h1 dim l.20, y dim l.27
    g_expected = (nvis * h0 + h0) + (h0 * h1 + h1) + (h1 * pixels + pixels)
    units, pieces = 240, 5  # D: Maxout num_units / num_pieces l.37-38 and l.43-44, y dim 1 l.49, nvis 784 l.53
    d_expected = (784 * units * pieces + units * pieces) + (units * units * pieces + units * pieces) + (units + 1)
    with torch.device("meta"):
        assert n_params(GoodfellowGenerator()) == g_expected == 2_503_984
        assert n_params(MaxoutDiscriminator()) == d_expected == 1_231_441


def test_generator_is_two_relu_layers_and_a_sigmoid_mapped_to_minus_one_one():
    torch.manual_seed(0)
    g = GoodfellowGenerator()
    assert [m.out_features for m in g.modules() if isinstance(m, nn.Linear)] == [1200, 1200, 784]
    assert sum(isinstance(m, nn.ReLU) for m in g.modules()) == 2
    z = sample_noise(4)
    x = g(z)
    assert x.shape == (4, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    a = g.out(g.hidden(z))  # pre-sigmoid activations
    assert torch.allclose(x.flatten(1), 2 * torch.sigmoid(a) - 1, atol=1e-6)  # [0, 1] sigmoid → [-1, 1]
    assert torch.allclose((x.flatten(1) + 1) / 2, torch.sigmoid(a), atol=1e-6)  # the paper's pixels, recovered


def test_maxout_takes_the_max_over_consecutive_pieces():
    m = Maxout(2, units=2, pieces=3, irange=0.1)
    with torch.no_grad():
        m.linear.weight.copy_(torch.tensor([[1.0, 0], [0, 1], [-1, 0], [2, 0], [0, -1], [0, 3]]))
        m.linear.bias.copy_(torch.tensor([0.0, 0, 0, 0, 0, -1]))
    x = torch.tensor([[1.0, 2.0], [-1.0, -3.0]])
    # unit 0 = max(x0, x1, -x0); unit 1 = max(2·x0, -x1, 3·x1 - 1)
    expected = torch.tensor([[2.0, 5.0], [1.0, 3.0]])
    assert torch.equal(m(x), expected)


def test_discriminator_dropout_follows_the_yaml_include_probabilities():
    d = MaxoutDiscriminator()
    drops = [m for m in d.net if isinstance(m, nn.Dropout)]
    assert [pytest.approx(1 - m.p) for m in drops] == [0.8, 0.5, 0.5]  # keep probs on the inputs of h0, h1, y
    assert [type(m).__name__ for m in d.net] == ["Dropout", "Maxout", "Dropout", "Maxout", "Dropout", "Linear"]
    torch.manual_seed(0)
    x = torch.full((200, 784), 0.5)
    kept = drops[0].train()(x)  # pylearn2: x · mask · scale with scale 1.25 (yaml l.78-80) = inverted dropout
    assert set(kept.unique().tolist()) == {0.0, 0.5 * 1.25}
    assert (kept > 0).float().mean().item() == pytest.approx(0.8, abs=0.01)  # 156,800 draws: σ ≈ 0.001
    assert torch.equal(drops[1].train()(x).unique(), torch.tensor([0.0, 1.0]))  # scale 2 (yaml default l.77)


def test_discriminator_sees_pixels_in_zero_one_and_returns_logits():
    torch.manual_seed(0)
    d = MaxoutDiscriminator().eval()  # eval: no dropout, as pylearn2's plain fprop
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    h = (x.flatten(1) + 1) / 2
    for layer in d.net:
        h = layer(h)
    assert torch.allclose(d(x), h.squeeze(1), atol=1e-7) and d(x).shape == (3,)
    h0 = d.net[1]
    assert torch.allclose(h0((x.flatten(1) + 1) / 2), h0.linear((x.flatten(1) + 1) / 2).view(3, 240, 5).amax(-1))


def test_init_ranges_follow_the_yaml():
    torch.manual_seed(0)
    g, d = GoodfellowGenerator(), MaxoutDiscriminator()
    for net, irange in ((g, 0.05), (d, 0.005)):  # irange: .05 (G, l.16/21/26), .005 (D, l.39/45/50)
        for m in net.modules():
            if isinstance(m, nn.Linear):
                w = m.weight.detach()
                assert w.abs().max().item() <= irange
                assert w.abs().max().item() == pytest.approx(irange, rel=0.02)
                assert w.std().item() == pytest.approx(irange / math.sqrt(3), rel=0.05)  # U(-a, a): std a/√3
                assert torch.count_nonzero(m.bias) == 0


def test_output_bias_from_the_pixel_marginals():
    images = torch.full((4, 1, 28, 28), -1.0)  # black everywhere ...
    images[:2, 0, 0, 0] = 1.0  # ... except pixel 0 in half the images, pixel 1 in all of them
    images[:, 0, 0, 1] = 1.0
    b = sigmoid_bias_from_marginals(images)
    assert b.shape == (784,)
    assert b[0].item() == pytest.approx(0.0, abs=1e-6)  # mean 0.5 → logit 0
    assert b[1].item() == pytest.approx(math.log((1 - 1e-7) / 1e-7), rel=1e-4)  # mean 1, clipped to 1 - 1e-7
    assert b[2].item() == pytest.approx(math.log(1e-7 / (1 - 1e-7)), rel=1e-4)  # mean 0, clipped to 1e-7
    g = GoodfellowGenerator(output_bias=b)
    assert torch.equal(g.out.bias.detach(), b)
    with torch.no_grad():  # with zero hidden output, sigmoid(bias) reproduces the marginals: G starts at the mean image
        for m in g.hidden:
            if isinstance(m, nn.Linear):
                m.weight.zero_()
    mean_image = (g(torch.zeros(1, 100)) + 1) / 2
    assert mean_image[0, 0, 0, 0].item() == pytest.approx(0.5, abs=1e-6)
    assert mean_image[0, 0, 0, 1].item() == pytest.approx(1.0, abs=1e-6)


def test_noise_is_uniform_with_unit_variance():
    gen = torch.Generator().manual_seed(0)
    z = sample_noise(2000, generator=gen)
    assert z.shape == (2000, 100)
    assert z.abs().max().item() <= NOISE_BOUND and z.abs().max().item() == pytest.approx(math.sqrt(3), rel=1e-3)
    assert z.mean().item() == pytest.approx(0.0, abs=0.01)  # 200,000 draws, σ of the mean ≈ 0.002
    assert z.var().item() == pytest.approx(1.0, abs=0.01)  # U(-√3, √3) has variance 1
    assert torch.equal(GoodfellowGenerator().sample_noise(3, torch.Generator().manual_seed(1)),
                       sample_noise(3, generator=torch.Generator().manual_seed(1)))
    assert GoodfellowGenerator.noise == "uniform"


def test_bad_input_goodfellow_nets():
    with pytest.raises(ValueError, match="output_bias needs 784 values \\(C·H·W\\), got 10"):
        GoodfellowGenerator(output_bias=torch.zeros(10))
    with pytest.raises(ValueError, match="input_include_prob must be in \\(0, 1\\] .*got 0"):
        MaxoutDiscriminator(input_include_prob=0)


# --- schedule -----------------------------------------------------------------------------------------------------
def sgd(**overrides) -> torch.optim.SGD:
    return torch.optim.SGD([nn.Parameter(torch.zeros(2))], **{**GOODFELLOW_MNIST_SGD, **overrides})


def run(schedule: ExponentialDecayMomentumSchedule, steps: int) -> list[tuple[float, float]]:
    out = []
    for _ in range(steps):
        schedule.optimizer.step()
        schedule.step()
        group = schedule.optimizer.param_groups[0]
        out.append((group["lr"], group["momentum"]))
    return out


def test_yaml_learning_rate_decays_per_batch_to_its_floor():
    opt = sgd()
    schedule = ExponentialDecayMomentumSchedule(opt)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.5  # batch 0: lr₀, μ₀
    lrs = [lr for lr, _ in run(schedule, 1000)]
    for t in (1, 2, 10, 1000):  # lr after t updates = 0.1 / 1.000004^t (yaml l.91-94)
        assert lrs[t - 1] == pytest.approx(0.1 / 1.000004**t, rel=1e-12)
    floor = math.ceil(math.log(0.1 / 1e-6) / math.log(1.000004))
    assert floor == 2_878_238
    state = schedule.state_dict()
    state["last_epoch"] = floor - 2  # jump ahead through the state dict (as a resume would)
    schedule.load_state_dict(state)
    (before, _), (at, _), (after, _) = run(schedule, 3)
    assert before == pytest.approx(0.1 / 1.000004 ** (floor - 1), rel=1e-9) and before > 1e-6
    assert at == after == 1e-6  # min_lr .000001 (l.93)


def test_yaml_momentum_ramps_from_epoch_1_to_250():
    opt = sgd()
    schedule = ExponentialDecayMomentumSchedule(opt)
    momenta = [m for _, m in run(schedule, 1001)]  # momenta[t - 1]: momentum after t updates
    assert momenta[498] == 0.5  # t = 499: still epoch 1 (0-based epoch 0), pylearn2 counter 1 = start
    assert momenta[499] == pytest.approx(0.5 + 0.2 * 1 / 249, rel=1e-12)  # t = 500: epoch 2, α = 1/249
    assert momenta[1000] == pytest.approx(0.5 + 0.2 * 2 / 249, rel=1e-12)  # t = 1001: epoch 3
    state = schedule.state_dict()
    state["last_epoch"] = 249 * 500 - 2
    schedule.load_state_dict(state)
    (_, m_before), (_, m_at), (_, m_after) = run(schedule, 3)
    assert m_before == pytest.approx(0.5 + 0.2 * 248 / 249, rel=1e-12)
    assert m_at == m_after == pytest.approx(0.7, rel=1e-12)  # final_momentum .7 from epoch 250 (saturate, l.103-104)


def test_schedule_closed_forms_at_small_settings():
    opt = sgd(lr=1.0, momentum=0.2)
    schedule = ExponentialDecayMomentumSchedule(opt, decay_factor=2.0, min_lr=0.05, final_momentum=0.6,
                                                momentum_start=2, momentum_saturate=4, steps_per_epoch=3)
    got = run(schedule, 15)
    for t, (lr, momentum) in enumerate(got, start=1):
        assert lr == pytest.approx(max(2.0**-t, 0.05), rel=1e-12)
        k = t // 3  # 0-based epoch; pylearn2's counter k + 1; α = clip((k + 1 - 2) / 2, 0, 1)
        alpha = min(max((k - 1) / 2, 0.0), 1.0)
        assert momentum == pytest.approx(0.2 * (1 - alpha) + 0.6 * alpha, rel=1e-12)
    assert [m for _, m in got][:9] == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.2, 0.4, 0.4, 0.4, 0.6])
    jump = ExponentialDecayMomentumSchedule(sgd(momentum=0.1), momentum_start=3, momentum_saturate=3,
                                            steps_per_epoch=1, final_momentum=0.9)
    assert [m for _, m in run(jump, 4)] == [0.1, 0.9, 0.9, 0.9]  # counter t + 1 >= 3 from t = 2 on


def test_schedule_state_round_trips_for_exact_resume():
    opt = sgd()
    schedule = ExponentialDecayMomentumSchedule(opt, steps_per_epoch=4, momentum_saturate=5)
    run(schedule, 7)
    blob = pickle.dumps((opt.state_dict(), schedule.state_dict()))  # picklable: no lambdas, no closures
    buffer = io.BytesIO()
    torch.save(schedule.state_dict(), buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True) == schedule.state_dict()  # loads in a weights_only checkpoint
    opt2 = sgd()
    schedule2 = ExponentialDecayMomentumSchedule(opt2, steps_per_epoch=4, momentum_saturate=5)
    opt_state, sched_state = pickle.loads(blob)
    opt2.load_state_dict(opt_state)
    schedule2.load_state_dict(sched_state)
    assert run(schedule2, 9) == run(schedule, 9)  # the same lr and momentum, step for step
    assert schedule2.get_last_momentum() == schedule.get_last_momentum()
    assert schedule2.get_last_lr() == schedule.get_last_lr()


def test_schedule_drives_torch_sgd_momentum():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0, momentum=0.5)
    schedule = ExponentialDecayMomentumSchedule(opt, decay_factor=1.0, momentum_start=1, momentum_saturate=2,
                                                final_momentum=0.9, steps_per_epoch=1)
    for _ in range(2):  # gradient 1 each step: b₁ = 1 (μ 0.5 unused), b₂ = 0.9·1 + 1 = 1.9 (μ set by the schedule)
        p.grad = torch.ones(1)
        opt.step()
        schedule.step()
    assert p.item() == pytest.approx(-(1 + 1.9), rel=1e-6)


def test_bad_input_schedule():
    adam = torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="Adam has no 'momentum' setting; this schedule needs torch.optim.SGD"):
        ExponentialDecayMomentumSchedule(adam)
    with pytest.raises(ValueError, match="momentum_saturate \\(1\\) must be >= momentum_start \\(250\\)"):
        ExponentialDecayMomentumSchedule(sgd(), momentum_start=250, momentum_saturate=1)
    with pytest.raises(ValueError, match="decay_factor must be > 0"):
        ExponentialDecayMomentumSchedule(sgd(), decay_factor=0)
