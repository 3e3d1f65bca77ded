"""Two-sided closed-form tests for every adversarial loss (values and gradient directions)."""

import math

import pytest
import torch

from gan_modules import ConfigError
from gan_modules.losses import LOSSES, get_loss

REAL = torch.tensor([0.0, 2.0])
FAKE = torch.tensor([-1.0, 1.0])


def sp(x: float) -> float:  # softplus
    return math.log1p(math.exp(x))


EXPECTED = {
    # name: (D loss, G loss) at REAL, FAKE, computed by hand from each paper's formula
    "minimax": ((sp(0) + sp(-2)) / 2 + (sp(-1) + sp(1)) / 2, -(sp(-1) + sp(1)) / 2),
    "non_saturating": ((sp(0) + sp(-2)) / 2 + (sp(-1) + sp(1)) / 2, (sp(1) + sp(-1)) / 2),
    "wasserstein": ((-1 + 1) / 2 - (0 + 2) / 2, -(-1 + 1) / 2),
    "hinge": ((1 + 0) / 2 + (0 + 2) / 2, -(-1 + 1) / 2),
    "least_squares": (0.5 * ((0 - 1) ** 2 + (2 - 1) ** 2) / 2 + 0.5 * (1 + 1) / 2, 0.5 * ((-2) ** 2 + 0) / 2),
}


def test_every_loss_has_a_closed_form_test():
    assert set(EXPECTED) == set(LOSSES)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_values_match_closed_form(name):
    d_expected, g_expected = EXPECTED[name]
    loss = get_loss(name)
    assert loss.discriminator(REAL, FAKE).item() == pytest.approx(d_expected, rel=1e-6, abs=1e-6)
    assert loss.generator(FAKE).item() == pytest.approx(g_expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_discriminator_gradient_pushes_real_up_and_fake_down(name):
    real = torch.tensor([0.3, -0.2], requires_grad=True)  # below every loss's real target (1 for LS/hinge)
    fake = torch.tensor([0.1, 0.4], requires_grad=True)  # above every loss's fake target (0 for LS, -1 hinge)
    get_loss(name).discriminator(real, fake).backward()
    assert (real.grad < 0).all()  # descending the loss raises D(x)
    assert (fake.grad > 0).all()  # ... and lowers D(G(z))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_generator_gradient_pushes_fake_up(name):
    fake = torch.tensor([0.1, -0.4], requires_grad=True)
    get_loss(name).generator(fake).backward()
    assert (fake.grad < 0).all()


def test_minimax_saturates_where_non_saturating_does_not():
    # Goodfellow et al. 2014 §3: early on D rejects fakes confidently; log(1 - D) then gives vanishing gradients.
    grads = {}
    for name in ("minimax", "non_saturating"):
        fake = torch.tensor([-10.0], requires_grad=True)
        get_loss(name).generator(fake).backward()
        grads[name] = fake.grad.item()
    assert grads["minimax"] == pytest.approx(-torch.sigmoid(torch.tensor(-10.0)).item(), rel=1e-4)  # ≈ -4.5e-5
    assert grads["non_saturating"] == pytest.approx(-(1 - torch.sigmoid(torch.tensor(-10.0)).item()), rel=1e-4)


def test_logistic_loss_is_stable_for_huge_logits():
    out = get_loss("non_saturating").discriminator(torch.tensor([1e4]), torch.tensor([-1e4]))
    assert out.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(get_loss("non_saturating").generator(torch.tensor([-1e4])))


def test_loss_reduces_over_patch_maps():
    real, fake = torch.full((2, 1, 3, 3), 2.0), torch.full((2, 1, 3, 3), -1.0)
    assert get_loss("hinge").discriminator(real, fake).item() == pytest.approx(0.0, abs=1e-7)
    assert get_loss("least_squares").generator(fake).item() == pytest.approx(0.5 * 4.0, rel=1e-6)


def test_bad_input_unknown_loss_name():
    with pytest.raises(ValueError, match=r"unknown loss 'wgan': choose one of hinge, least_squares, minimax"):
        get_loss("wgan")


def test_bad_input_unknown_loss_name_in_model():
    from gan_modules import DCGAN

    with pytest.raises(ValueError, match="unknown loss 'bce'"):
        DCGAN(loss="bce")
    assert issubclass(ConfigError, ValueError)
