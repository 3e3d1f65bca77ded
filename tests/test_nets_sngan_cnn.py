"""SNGAN's standard CNN against the paper's Table 3 (layer shapes, LeakyReLU 0.1) and the reference init of
chainer-gan-lib ``common/net.py`` (N(0, 0.02) weights, zero biases, BatchNorm γ = 1, β = 0)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_modules.nets.sngan_cnn import INIT_STD, StandardCNNDiscriminator, StandardCNNGenerator, init_standard_cnn_
from gan_modules.nets.spectral import add_spectral_norm


def test_discriminator_layers_match_table_3():
    with torch.device("meta"):
        d = StandardCNNDiscriminator(3, 32, ndf=64)
    convs = [(c.kernel_size[0], c.stride[0], c.out_channels) for c in d.modules() if isinstance(c, nn.Conv2d)]
    assert convs == [(3, 1, 64), (4, 2, 64), (3, 1, 128), (4, 2, 128), (3, 1, 256), (4, 2, 256), (3, 1, 512)]
    assert d.linear.in_features == 4 * 4 * 512 and d.linear.out_features == 1  # dense → 1 on the 4×4×512 map
    slopes = [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [pytest.approx(0.1)] * 7  # after every conv, none after the dense


def test_generator_layers_match_table_3():
    with torch.device("meta"):
        g = StandardCNNGenerator(128, 3, 32, ngf=64)
    assert (g.linear.in_features, g.linear.out_features) == (128, 4 * 4 * 512)  # dense → M_g × M_g × 512, M_g = 4
    deconvs = [(c.kernel_size[0], c.stride[0], c.out_channels) for c in g.modules() if isinstance(c, nn.ConvTranspose2d)]
    assert deconvs == [(4, 2, 256), (4, 2, 128), (4, 2, 64)]
    last = [m for m in g.net if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in last] == [(3, 1, 3)]
    assert isinstance(g.net[-1], nn.Tanh)
    with torch.device("meta"):
        assert StandardCNNGenerator(128, 3, 48, ngf=64).linear.out_features == 6 * 6 * 512  # STL-10: M_g = 6


def _excess_kurtosis(w: torch.Tensor) -> float:
    w = w.double().flatten()
    z = (w - w.mean()) / w.std()
    return z.pow(4).mean().item() - 3.0


def test_init_is_normal_0_02_with_zero_biases_and_unit_batchnorm():
    torch.manual_seed(0)
    d, g = StandardCNNDiscriminator(3, 32, ndf=32), StandardCNNGenerator(128, 3, 32, ngf=32)
    big = d.features[-2].weight.detach()  # conv 128 → 256, 3×3: 294,912 weights
    assert big.numel() == 294_912
    assert big.mean().item() == pytest.approx(0.0, abs=3e-4)  # SE of the mean: 0.02 / √n ≈ 4e-5
    assert big.std().item() == pytest.approx(INIT_STD, rel=0.01)  # SE ≈ 0.13 %
    # normal, not uniform: excess kurtosis 0 (a uniform, e.g. PyTorch's default kaiming_uniform, gives −1.2)
    assert _excess_kurtosis(big) == pytest.approx(0.0, abs=0.05)
    assert g.linear.weight.std().item() == pytest.approx(INIT_STD, rel=0.01)
    assert _excess_kurtosis(g.linear.weight.detach()) == pytest.approx(0.0, abs=0.05)
    for net in (d, g):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                assert m.weight.std().item() == pytest.approx(INIT_STD, rel=0.25)  # every layer, even the small ones
                assert torch.count_nonzero(m.bias) == 0
            if isinstance(m, nn.BatchNorm2d):
                assert torch.equal(m.weight, torch.ones_like(m.weight))
                assert torch.count_nonzero(m.bias) == 0


def test_init_helper_is_in_place_and_spectral_norm_keeps_the_initial_weight():
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Conv2d(4, 300, 3), nn.BatchNorm2d(300))
    nn.init.uniform_(layer[1].weight)
    assert init_standard_cnn_(layer, std=0.5) is layer
    assert layer[0].weight.std().item() == pytest.approx(0.5, rel=0.02)
    assert torch.equal(layer[1].weight, torch.ones(300))
    torch.manual_seed(1)
    d = StandardCNNDiscriminator(1, 28, ndf=4)
    before = d.linear.weight.detach().clone()
    add_spectral_norm(d)
    assert torch.equal(d.linear.parametrizations.weight.original, before)  # SN normalizes the reference init


def test_shapes_at_every_supported_size():
    for size in (28, 32, 48, 64):
        g, d = StandardCNNGenerator(8, 1, size, ngf=4), StandardCNNDiscriminator(1, size, ndf=4)
        x = g(torch.randn(2, 8))
        assert x.shape == (2, 1, size, size) and d(x).shape == (2,)
