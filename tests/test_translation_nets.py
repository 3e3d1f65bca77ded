"""Translation networks and the pure pieces of the translation variants: sizes, parameter counts against the
reference implementations, loss scaling, the image pool, the LR rule, padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_modules import CycleGAN, Pix2Pix, StarGAN
from gan_modules.errors import ConfigError
from gan_modules.losses import d_least_squares, d_logistic, g_least_squares, g_non_saturating
from gan_modules.nets.patchgan import PatchGANDiscriminator
from gan_modules.nets.resnet_translation import ResnetGenerator, StarGANDiscriminator, StarGANGenerator
from gan_modules.nets.unet import UNetGenerator, unet_depth
from gan_modules.stargan import classification_loss, target_labels
from gan_modules.translation import ImagePool, LinearDecay, pad_to_multiple, reference_scales


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    ("build", "expected"),
    [  # counts of the reference implementations (junyanz unet_256 / resnet_9blocks / basic D; yunjey/stargan)
        (lambda: UNetGenerator(3, 3, 8, 64), 54_413_955),
        (lambda: ResnetGenerator(3, 3, 64, 9), 11_378_179),
        (lambda: PatchGANDiscriminator(3, 64, 3, "instance"), 2_764_737),
        (lambda: StarGANGenerator(3, 5, 64, 6), 8_430_528),
        (lambda: StarGANDiscriminator(3, 128, 5, 64), 44_762_048),
    ],
    ids=["unet256", "resnet9", "patchgan", "stargan_g", "stargan_d"],
)
def test_parameter_counts_match_the_reference(build, expected):
    with torch.device("meta"):
        assert n_params(build()) == expected


def test_patchgan_gives_30x30_logits_at_256px_and_unet_depth_rules():
    with torch.device("meta"):
        assert PatchGANDiscriminator(6)(torch.empty(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    assert [unet_depth(s) for s in (256, 128, 64, 32, 28)] == [8, 7, 6, 5, 2]
    with pytest.raises(ValueError, match="divisible by 4"):
        unet_depth(30)


@pytest.mark.parametrize(("depth", "n_dropout"), [(8, 3), (5, 3), (3, 1), (2, 0)])
def test_unet_explicit_dropout_count_sits_in_the_innermost_decoder_blocks(depth, n_dropout):
    net = UNetGenerator(1, 1, depth, 4, n_dropout=3)  # an explicit count, clamped to depth - 2
    with_dropout = [i for i, up in enumerate(net.ups) if any(isinstance(m, nn.Dropout) for m in up)]
    assert with_dropout == list(range(depth - 1 - n_dropout, depth - 1))  # never the bottleneck's nor the outermost


@pytest.mark.parametrize(("size", "expected"), [(256, 3), (128, 2), (64, 1), (32, 0), (28, 0)])
def test_unet_default_dropout_count_follows_the_reference(size, expected):
    """junyanz ``UnetGenerator``: dropout in the ``num_downs − 5`` intermediate ngf×8 blocks (unet_256: 3)."""
    with torch.device("meta"):
        net = UNetGenerator(3, 3, unet_depth(size), 4)
    dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == expected == net.n_dropout
    assert all(m.p == 0.5 for m in dropouts)
    depth = unet_depth(size)
    with_dropout = [i for i, up in enumerate(net.ups) if any(isinstance(m, nn.Dropout) for m in up)]
    assert with_dropout == list(range(depth - 1 - expected, depth - 1))  # the blocks just outside the bottleneck


def test_unet_explicit_dropout_count_and_bad_count():
    with torch.device("meta"):
        assert sum(isinstance(m, nn.Dropout) for m in UNetGenerator(3, 3, 8, 4, n_dropout=1).modules()) == 1
        assert sum(isinstance(m, nn.Dropout) for m in UNetGenerator(3, 3, 5, 4, n_dropout=2).modules()) == 2
    with pytest.raises(ValueError, match=r"n_dropout >= 0 \(or None for the reference's depth − 5\), got -1"):
        UNetGenerator(3, 3, 8, 4, n_dropout=-1)


def test_small_networks_keep_the_image_size():
    x = torch.randn(2, 3, 32, 32)
    assert UNetGenerator(3, 3, 5, 4)(x).shape == x.shape
    assert ResnetGenerator(3, 3, 4, 1)(x).shape == x.shape
    assert StarGANGenerator(3, 4, 4, 1)(x, torch.ones(2, 4)).shape == x.shape
    src, cls = StarGANDiscriminator(3, 32, 4, 4)(x)
    assert src.shape == (2, 1, 4, 4) and cls.shape == (2, 4)


def test_reference_loss_scaling_is_exact():
    real, fake = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    d, g = reference_scales("least_squares")  # CycleGAN: ½[MSE(D(x),1) + MSE(D(x̃),0)], G: MSE(D(x̃),1)
    ref_d = 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake)))
    assert (d * d_least_squares(real, fake)).item() == pytest.approx(ref_d.item(), rel=1e-6)
    assert (g * g_least_squares(fake)).item() == pytest.approx(F.mse_loss(fake, torch.ones_like(fake)).item(), rel=1e-6)
    d, g = reference_scales("non_saturating")  # pix2pix: BCE with logits, D × ½
    bce = F.binary_cross_entropy_with_logits
    ref_d = 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
    assert (d * d_logistic(real, fake)).item() == pytest.approx(ref_d.item(), rel=1e-6)
    assert (g * g_non_saturating(fake)).item() == pytest.approx(bce(fake, torch.ones_like(fake)).item(), rel=1e-6)


def test_linear_decay_rule_of_the_reference():
    rule = LinearDecay(100, 100)
    assert [rule(t) for t in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert rule(100) == pytest.approx(1 - 1 / 101)
    assert rule(199) == pytest.approx(1 - 100 / 101)


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(50, seed=0)
    first = torch.arange(50.0).view(50, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 50  # filling: every image stored and returned
    new = 1000 + torch.arange(2000.0).view(2000, 1, 1, 1)  # distinct values: a changed output means a swap
    out = torch.cat([pool.query(new[i:i + 10]) for i in range(0, 2000, 10)])
    swapped = (out != new).flatten()
    assert swapped.float().mean().item() == pytest.approx(0.5, abs=0.04)  # p = ½ once full (σ ≈ 0.011)
    assert len(pool) == 50
    seen = set(range(50))
    for value, was_swapped, incoming in zip(out.flatten().tolist(), swapped.tolist(), new.flatten().tolist()):
        assert value in seen if was_swapped else value == incoming  # a swap returns an image stored earlier
        seen.add(incoming)


def test_image_pool_state_round_trips_exactly():
    a, b = ImagePool(5, seed=3), ImagePool(5, seed=99)
    for i in range(8):
        a.query(torch.full((2, 1, 2, 2), float(i)))
    b.load_state_dict(a.state_dict())
    for i in range(8, 20):
        x = torch.full((3, 1, 2, 2), float(i))
        assert torch.equal(a.query(x), b.query(x))
    assert ImagePool(0).query(x).equal(x)
    with pytest.raises(ConfigError, match="pool_size must be >= 0"):
        ImagePool(-1)


def test_pad_to_multiple_reflects_and_crops_back():
    x = torch.randn(1, 3, 30, 45)
    padded, (h, w) = pad_to_multiple(x, 16)
    assert padded.shape[-2:] == (32, 48) and (h, w) == (30, 45)
    assert torch.equal(padded[..., :30, :45], x)
    tiny, _ = pad_to_multiple(torch.randn(1, 1, 3, 3), 8)  # too small to reflect: replicate
    assert tiny.shape[-2:] == (8, 8)


def test_stargan_classification_loss_closed_forms():
    logits, target = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
    expected = F.softplus(torch.tensor(-2.0)) + F.softplus(torch.tensor(-1.0))  # summed over attributes
    assert classification_loss(logits, target, "multi_label").item() == pytest.approx(expected.item(), rel=1e-6)
    ce = -torch.log_softmax(logits, 1)[0, 0]
    assert classification_loss(logits, torch.tensor([0]), "single_label").item() == pytest.approx(ce.item(), rel=1e-6)


def test_stargan_test_time_targets_set_groups_and_flip_binaries():
    label = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # black hair, male
    targets = target_labels(label, [[0, 1, 2]], 4, "multi_label")
    assert [t[0].tolist() for t in targets] == [[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1], [1, 0, 0, 0]]
    one_hot = target_labels(torch.tensor([2, 0]), [], 3, "single_label")
    assert torch.equal(one_hot[1], torch.tensor([[0.0, 1, 0], [0, 1, 0]]))


@pytest.mark.parametrize("cls", [Pix2Pix, CycleGAN, StarGAN])
def test_run_generator_pads_any_size_and_crops_back(cls):
    model = cls(image_size=32, channels=3, num_classes=3, ngf=4, ndf=4)
    x = torch.rand(1, 3, 37, 50) * 2 - 1
    args = (torch.ones(1, 3),) if cls is StarGAN else ()
    key = {"key": "a2b"} if cls is CycleGAN else {}
    before = [b.clone() for b in model.generator.buffers()]
    out = model.run_generator(x, *args, **key)
    assert out.shape == x.shape and out.abs().max() <= 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.generator.buffers()))  # inference never moves stats


def test_bad_input_translation_hparams():
    with pytest.raises(ConfigError, match="direction must be 'AtoB' or 'BtoA'"):
        Pix2Pix(image_size=32, channels=1, direction="up")
    with pytest.raises(ConfigError, match="updates G before D on every batch; n_critic must be 1"):
        CycleGAN(image_size=32, channels=1, n_critic=2)
    with pytest.raises(ConfigError, match="needs the number of domains"):
        StarGAN(image_size=32, channels=3, num_classes=None)
    with pytest.raises(ConfigError, match="divisible by 4"):
        Pix2Pix(image_size=30, channels=1)
