"""Network shapes, DCGAN layout rules and initialisation, size errors."""

import pytest
import torch
from torch import nn

from gan_modules.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from gan_modules.nets.dcgan import SUPPORTED_SIZES


@pytest.mark.parametrize("size", SUPPORTED_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    g = DCGANGenerator(latent_dim=16, channels=channels, image_size=size, ngf=4)
    d = DCGANDiscriminator(channels=channels, image_size=size, ndf=4)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (3,)


def test_dcgan_64_matches_the_paper_layout():
    g = DCGANGenerator(latent_dim=100, channels=3, image_size=64, ngf=64)
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]  # 4x4x1024 in the paper's figure at ngf=128
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 4  # every block but the output
    assert isinstance(list(g.net)[-1], nn.Tanh)
    d = DCGANDiscriminator(channels=3, image_size=64, ndf=64)
    first = list(d.features)[:2]
    assert isinstance(first[0], nn.Conv2d) and isinstance(first[1], nn.LeakyReLU)  # no BN on D's input
    assert first[1].negative_slope == pytest.approx(0.2)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3


def test_dcgan_init_is_normal_0_02():
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=100, channels=3, image_size=64, ngf=64)
    w = g.net[0].weight.detach()
    assert w.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert w.std().item() == pytest.approx(0.02, rel=0.02)
    bn = g.net[1]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=2e-3)
    assert bn.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert torch.count_nonzero(bn.bias) == 0


def test_critic_without_batchnorm():
    d = DCGANDiscriminator(channels=1, image_size=32, ndf=8, norm="layer")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    # per-sample normalisation: a sample's logit does not depend on the rest of the batch
    x = torch.randn(4, 1, 32, 32)
    assert torch.allclose(d(x)[:1], d(x[:1]), atol=1e-6)


def test_mlp_seed_sizes():
    g, d = MLPGenerator(), MLPDiscriminator()
    assert [m.out_features for m in g.modules() if isinstance(m, nn.Linear)] == [256, 512, 1024, 784]
    assert [m.out_features for m in d.modules() if isinstance(m, nn.Linear)] == [1024, 512, 256, 1]
    x = g(torch.randn(5, 100))
    assert x.shape == (5, 1, 28, 28) and d(x).shape == (5,)


@pytest.mark.parametrize("size", [16, 48, 256])
def test_bad_input_unsupported_image_size(size):
    with pytest.raises(ValueError, match=rf"image_size={size}; supported sizes: 28, 32, 64, 128"):
        DCGANGenerator(image_size=size)
    with pytest.raises(ValueError, match="supported sizes"):
        DCGANDiscriminator(image_size=size)


def test_bad_input_unsupported_channels():
    with pytest.raises(ValueError, match="1 \\(grayscale\\) or 3 \\(RGB\\) channels, got channels=4"):
        DCGANGenerator(channels=4)
