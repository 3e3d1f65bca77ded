"""The 32×32 ResNet G and D against the two references (igul222 ``gan_cifar_resnet.py``, sngan_projection
``dis_models/snresnet_32.py``): global sum vs mean pooling, the head bias, block widths, parameter counts, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan_modules.nets.resnet32 import DiscriminatorBlock, ResNetDiscriminator, ResNetGenerator


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_pooling_of_a_constant_feature_map_matches_the_closed_form(pooling):
    d = ResNetDiscriminator(3, 32, ndf=6, pooling=pooling)
    d.blocks = nn.Identity()  # feed the head an (N, ndf, 8, 8) map directly
    c = torch.tensor([0.5, -2.0, 3.0])  # one constant per sample; the head's ReLU zeroes the negative one
    x = c[:, None, None, None].expand(3, 6, 8, 8)
    w, b = d.linear.weight.detach().flatten(), d.linear.bias.detach()
    area = 64 if pooling == "sum" else 1  # Σ over 8×8 of relu(c) = 64·relu(c); the mean is relu(c)
    expected = area * torch.relu(c) * w.sum() + b  # w·pool(relu(x)) + b
    assert d(x).tolist() == pytest.approx(expected.tolist(), rel=1e-6, abs=1e-6)


def test_sum_pooling_is_area_times_mean_pooling_on_the_real_network():
    torch.manual_seed(0)
    d_sum = ResNetDiscriminator(3, 32, ndf=8, pooling="sum", head_bias=False)
    d_mean = ResNetDiscriminator(3, 32, ndf=8, pooling="mean", head_bias=False)
    d_mean.load_state_dict(d_sum.state_dict())  # the pooling adds no parameter: same keys, same weights
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(d_sum(x), 64 * d_mean(x), rtol=1e-5, atol=1e-6)  # 8×8 final map


def test_head_bias_switch_and_state_dict_keys():
    assert ResNetDiscriminator(3, 32, 4).linear.bias is not None  # default keeps the historical keys
    d = ResNetDiscriminator(3, 32, 4, head_bias=False)  # sngan_projection: SNLinear(ch, 1, nobias=True)
    assert d.linear.bias is None
    assert set(ResNetDiscriminator(3, 32, 4).state_dict()) - set(d.state_dict()) == {"linear.bias"}


def test_parameter_counts_match_the_references_at_width_128():
    conv3 = 128 * 128 * 9 + 128  # a 128 → 128 3×3 conv with bias
    first = (3 * 128 * 9 + 128) + conv3 + (3 * 128 + 128)  # OptimizedBlock: conv 3→128, conv, 1×1 shortcut
    down = 2 * conv3 + (128 * 128 + 128)  # Block(down): two convs + 1×1 shortcut
    plain = 2 * conv3  # Block: identity shortcut
    head = 128 + 1
    with torch.device("meta"):
        assert n_params(ResNetDiscriminator(3, 32, 128)) == first + down + 2 * plain + head == 1_053_825
        assert n_params(ResNetDiscriminator(3, 32, 128, head_bias=False)) == 1_053_824  # sngan_projection
        # G: linear 128 → 4·4·128, 3 up blocks (2 BN, 2 convs, 1×1 shortcut), BN + conv 128 → 3
        block = 2 * (2 * 128) + 2 * conv3 + (128 * 128 + 128)
        g = (128 * 2048 + 2048) + 3 * block + 2 * 128 + (128 * 3 * 9 + 3)
        assert n_params(ResNetGenerator(128, 3, 32, 128)) == g


def test_discriminator_blocks_keep_the_input_width_in_their_first_conv():
    block = DiscriminatorBlock(4, 8, down=True)  # igul222 conv_1: input_dim → input_dim; sngan hidden = in
    assert (block.conv1.in_channels, block.conv1.out_channels, block.conv2.out_channels) == (4, 4, 8)
    first = DiscriminatorBlock(3, 8, down=True, first=True)  # OptimizedBlock: c1 in → out
    assert (first.conv1.out_channels, first.conv2.in_channels) == (8, 8)
    assert block(torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)


def _xavier_bound(conv: nn.Module, gain: float) -> float:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
    return gain * math.sqrt(6.0 / (fan_in + fan_out))


def test_init_gains_follow_the_references():
    torch.manual_seed(0)
    g = ResNetGenerator(128, 3, 32, ngf=64)
    cases = [(g.out[2], 1.0), (g.blocks[0].conv1, math.sqrt(2)), (g.blocks[0].shortcut, 1.0), (g.linear, 1.0)]
    for layer, gain in cases:  # Xavier-uniform U(-a, a): max |w| close to a, std a/√3
        w, a = layer.weight.detach(), _xavier_bound(layer, gain)
        assert w.abs().max().item() <= a
        assert w.abs().max().item() == pytest.approx(a, rel=0.05)
        assert w.std().item() == pytest.approx(a / math.sqrt(3), rel=0.1)
        assert torch.count_nonzero(layer.bias) == 0
    d = ResNetDiscriminator(3, 32, ndf=64)
    for layer, gain in [(d.blocks[1].conv1, math.sqrt(2)), (d.blocks[0].shortcut, 1.0), (d.linear, 1.0)]:
        assert layer.weight.detach().abs().max().item() == pytest.approx(_xavier_bound(layer, gain), rel=0.1)


def test_bad_input_unknown_pooling():
    with pytest.raises(ValueError, match="unknown pooling 'max': choose sum \\(sngan_projection\\) or mean \\(WGAN-GP\\)"):
        ResNetDiscriminator(3, 32, 4, pooling="max")
