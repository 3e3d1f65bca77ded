"""Independent reference implementations of the six image GANs, for ``benchmarks/quality.py``.

Each reference is plain PyTorch written after the official code of its paper (cited above every class and loop, with
the file it follows), at the sizes and hyperparameters of our config at the preset being run. Nothing here imports
``gan_modules`` (networks, variants, losses, penalties or the base loop): a defect in our modules cannot hide in
its own reference (``tests/test_quality_benchmark.py`` scans this file's imports). The evaluation is shared instead
(quality.py scores a reference's samples exactly as it scores our module's).

Where the official code differs from our module, the reference does what the official code does, e.g. pytorch/examples
DCGAN reuses the D-step fakes for the G step and has no conv biases; WassersteinGAN clamps before each critic step and
draws a new batch for every critic step; the SNGAN updater takes its G step before its n_dis D steps. 28×28 images
start G from 7×7 (one stride-2 layer fewer than 32×32), as our nets do; the official DCGAN/WGAN code supports only
multiples of 16.

Official code followed (repository, file):

- gan: znxlwm/pytorch-MNIST-CelebA-GAN-DCGAN ``pytorch_MNIST_GAN.py`` (the 100-256-512-1024-784 / 784-1024-512-256-1
  MLPs, LeakyReLU 0.2, dropout 0.3 in D; Goodfellow et al. 2014 Algorithm 1 with k = 1, non-saturating G loss).
- dcgan: pytorch/examples ``dcgan/main.py`` (``weights_init``, ``Generator``/``Discriminator``, training loop).
- cgan: the same DCGAN code with Mirza & Osindero 2014's conditioning: one-hot y concatenated to z and, as constant
  planes, to D's input; fake labels drawn uniformly as in eriklindernoren/PyTorch-GAN ``implementations/cgan/cgan.py``.
- wgan: martinarjovsky/WassersteinGAN ``main.py`` and ``models/dcgan.py`` (``DCGAN_D``/``DCGAN_G``).
- wgan_gp: igul222/improved_wgan_training ``gan_mnist.py`` (loop, penalty) and ``tflib/ops/layernorm.py`` (the critic's
  LayerNorm), on DCGAN-layout nets as in our config.
- sngan: Miyato et al. 2018 Table 3 (standard CNN), pfnet-research/sngan_projection ``updater.py`` (hinge loss, one G
  step then n_dis D steps), pfnet-research/chainer-gan-lib ``common/net.py`` (``DCGANGenerator``: BN on the linear
  output, N(0, 0.02) init), ``torch.nn.utils.parametrizations.spectral_norm`` on every D layer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

Batch = dict[str, Tensor]


@dataclass
class Settings:
    """Sizes and hyperparameters of one reference run. quality.py fills them from the row's config file and the
    preset's overrides; the defaults are the papers' (used only where a config does not say).

    Attributes:
        image_size: side of the square images.
        channels: image channels.
        num_classes: classes of the data (cgan).
        latent_dim: size of z.
        ngf: generator width (DCGAN: last hidden block; SNGAN CNN: last hidden layer).
        ndf: discriminator width (first block / layer).
        g_hidden: MLP generator widths (gan).
        d_hidden: MLP discriminator widths (gan).
        d_dropout: dropout after each hidden layer of the MLP discriminator.
        g_norm: ``batch`` or ``none`` in the DCGAN generator.
        d_norm: ``batch``, ``layer`` or ``none`` in the DCGAN discriminator.
        optimizer_g: ``(torch.optim class name, keyword arguments)`` of G's optimizer.
        optimizer_d: the same for D.
        n_critic: D steps per G step (WGAN, WGAN-GP, SNGAN).
        weight_clip: WGAN's clipping bound c.
        warmup_critic_steps: WGAN: critic steps on warm-up and boost generator steps.
        warmup_generator_steps: WGAN: generator steps that get ``warmup_critic_steps``.
        critic_boost_every: WGAN: every this many generator steps, ``warmup_critic_steps`` again (0: never).
        penalty_weight: WGAN-GP's λ.
        n_power_iterations: SNGAN's power iterations per forward pass.
        loss: SNGAN's objective: ``non_saturating`` (softplus, the standard-CNN results: chainer-gan-lib
            ``stdgan/updater.py``) or ``hinge`` (sngan_projection ``updater.py``).
    """

    image_size: int = 28
    channels: int = 1
    num_classes: int = 10
    latent_dim: int = 100
    ngf: int = 64
    ndf: int = 64
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (1024, 512, 256)
    d_dropout: float = 0.3
    g_norm: str = "batch"
    d_norm: str = "batch"
    optimizer_g: tuple[str, dict[str, Any]] = ("Adam", {"lr": 2e-4, "betas": (0.5, 0.999)})
    optimizer_d: tuple[str, dict[str, Any]] = ("Adam", {"lr": 2e-4, "betas": (0.5, 0.999)})
    n_critic: int = 1
    weight_clip: float = 0.01
    warmup_critic_steps: int = 100
    warmup_generator_steps: int = 25
    critic_boost_every: int = 500
    penalty_weight: float = 10.0
    n_power_iterations: int = 1
    loss: str = "non_saturating"
    extra: dict[str, Any] = field(default_factory=dict)


def make_optimizer(spec: tuple[str, dict[str, Any]], params: Any) -> torch.optim.Optimizer:
    """``torch.optim.<name>(params, **kwargs)``."""
    name, kwargs = spec
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return getattr(torch.optim, name)(params, **kwargs)


def optimizers(pair: nn.Module, s: Settings) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """G's and D's optimizers (``pair.g``, ``pair.d``) as the settings say."""
    return make_optimizer(s.optimizer_g, pair.g.parameters()), make_optimizer(s.optimizer_d, pair.d.parameters())


def _start(image_size: int) -> tuple[int, int]:
    """(side of G's first feature map, stride-2 layers after it): 28 → (7, 2); 2^k → (4, k - 2)."""
    if image_size == 28:
        return 7, 2
    if image_size < 16 or image_size & (image_size - 1):
        raise ValueError(f"the references support image_size 28 or a power of two >= 16, got {image_size}")
    return 4, int(math.log2(image_size // 4))


# ------------------------------------------------------------------------------------------------ gan (MLP)
class MLPGenerator(nn.Module):
    """znxlwm ``pytorch_MNIST_GAN.py`` ``generator``: z → 256 → 512 → 1024 → C·H·W, LeakyReLU 0.2, tanh; PyTorch's
    default init (the file sets none)."""

    def __init__(self, s: Settings):
        super().__init__()
        widths = [s.latent_dim, *s.g_hidden]
        self.hidden = nn.ModuleList(nn.Linear(i, o) for i, o in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], s.channels * s.image_size * s.image_size)
        self.shape = (s.channels, s.image_size, s.image_size)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:  # (N, nz) -> (N, C, H, W)
        h = z
        for layer in self.hidden:
            h = F.leaky_relu(layer(h), 0.2)
        return torch.tanh(self.out(h)).view(len(z), *self.shape)


class MLPDiscriminator(nn.Module):
    """znxlwm ``pytorch_MNIST_GAN.py`` ``discriminator``: C·H·W → 1024 → 512 → 256 → 1, LeakyReLU 0.2 and dropout 0.3
    after each hidden layer; returns the logit (the file's sigmoid + BCELoss is BCE-with-logits here)."""

    def __init__(self, s: Settings):
        super().__init__()
        widths = [s.channels * s.image_size * s.image_size, *s.d_hidden]
        self.hidden = nn.ModuleList(nn.Linear(i, o) for i, o in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], 1)
        self.p = s.d_dropout

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:  # (N, C, H, W) -> (N,)
        h = x.flatten(1)
        for layer in self.hidden:
            h = F.dropout(F.leaky_relu(layer(h), 0.2), self.p, self.training)
        return self.out(h).flatten()


# ------------------------------------------------------------------------------------------------ DCGAN nets
class LayerNormCHW(nn.Module):
    """igul222 ``tflib/ops/layernorm.py`` with ``norm_axes=[1, 2, 3]``: mean and variance over (C, H, W) of each
    sample, then a per-channel scale (init 1) and offset (init 0); ε = 1e-5."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.offset = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, H, W)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        var = x.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + 1e-5) * self.scale.view(1, -1, 1, 1) + self.offset.view(1, -1, 1, 1)


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":
        return [LayerNormCHW(channels)]
    if kind == "none":
        return []
    raise ValueError(f"unknown norm {kind!r} for a reference: batch, layer or none")


def dcgan_weights_init(module: nn.Module) -> None:
    """pytorch/examples ``dcgan/main.py`` ``weights_init`` (also WassersteinGAN ``main.py``): conv weights
    N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """pytorch/examples ``dcgan/main.py`` ``Generator`` (WassersteinGAN ``models/dcgan.py`` ``DCGAN_G`` is the same
    stack for any size): ConvTranspose(z → 2^k·ngf, start×start), then stride-2 ConvTranspose 4×4 halving the width
    to ngf, BN + ReLU after each, a last stride-2 ConvTranspose to C channels and tanh; no biases. ``extra_inputs``
    widens the input for a concatenated label code (cgan)."""

    def __init__(self, s: Settings, extra_inputs: int = 0):
        super().__init__()
        start, strided = _start(s.image_size)
        width = s.ngf * 2 ** (strided - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(s.latent_dim + extra_inputs, width, start, 1, 0, bias=False),
                                   *_norm(s.g_norm, width), nn.ReLU(True)]
        for _ in range(strided - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), *_norm(s.g_norm, width // 2),
                       nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, s.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        dcgan_weights_init(self)

    def forward(self, z: Tensor) -> Tensor:  # (N, nz [+ K]) -> (N, C, S, S)
        return self.main(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """pytorch/examples ``dcgan/main.py`` ``Discriminator`` (WassersteinGAN ``DCGAN_D``): stride-2 Conv 4×4 +
    LeakyReLU 0.2 from C to ndf, then stride-2 convs doubling the width with a norm + LeakyReLU 0.2 until the map is
    start×start, then Conv(start×start) to one logit per sample; no biases, no sigmoid (BCE-with-logits)."""

    def __init__(self, s: Settings, extra_inputs: int = 0):
        super().__init__()
        start, strided = _start(s.image_size)
        layers: list[nn.Module] = [nn.Conv2d(s.channels + extra_inputs, s.ndf, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, True)]
        width = s.ndf
        for _ in range(strided - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), *_norm(s.d_norm, width * 2),
                       nn.LeakyReLU(0.2, True)]
            width *= 2
        layers += [nn.Conv2d(width, 1, start, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)
        dcgan_weights_init(self)

    def forward(self, x: Tensor) -> Tensor:  # (N, C [+ K], S, S) -> (N,)
        return self.main(x).flatten()


class DCGANPair(nn.Module):
    """G and D of an unconditional DCGAN-layout reference, with the ``(z, y)`` / ``(x, y)`` call signature of the
    loops (``y`` ignored)."""

    def __init__(self, s: Settings):
        super().__init__()
        self.g, self.d = DCGANGenerator(s), DCGANDiscriminator(s)

    def generate(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.g(z)

    def discriminate(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.d(x)


class ConcatCGANPair(nn.Module):
    """Mirza & Osindero 2014 §3.2 on the DCGAN nets: G(z ⊕ onehot(y)); D(x ⊕ onehot(y) as K constant planes)."""

    def __init__(self, s: Settings):
        super().__init__()
        self.k = s.num_classes
        self.g, self.d = DCGANGenerator(s, extra_inputs=self.k), DCGANDiscriminator(s, extra_inputs=self.k)

    def generate(self, z: Tensor, y: Tensor) -> Tensor:  # (N, nz), (N,) -> (N, C, S, S)
        return self.g(torch.cat([z, F.one_hot(y, self.k).to(z.dtype)], 1))

    def discriminate(self, x: Tensor, y: Tensor) -> Tensor:  # (N, C, S, S), (N,) -> (N,)
        planes = F.one_hot(y, self.k).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return self.d(torch.cat([x, planes], 1))


class MLPPair(nn.Module):
    def __init__(self, s: Settings):
        super().__init__()
        self.g, self.d = MLPGenerator(s), MLPDiscriminator(s)

    def generate(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.g(z)

    def discriminate(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.d(x)


# ------------------------------------------------------------------------------------------------ SNGAN nets
def _normal_init(module: nn.Module) -> None:
    """chainer-gan-lib ``common/net.py``: every conv/linear weight N(0, 0.02) (``wscale``), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)


class SNGANGenerator(nn.Module):
    """Miyato et al. 2018 Table 3 generator as chainer-gan-lib ``common/net.py`` ``DCGANGenerator`` builds it:
    Linear z → start²·(2^k·ngf), BatchNorm over those features, ReLU, k stride-2 ConvTranspose 4×4 halving the width
    (BN, ReLU), Conv 3×3 to C channels, tanh; N(0, 0.02) init."""

    def __init__(self, s: Settings):
        super().__init__()
        self.start, strided = (7, 2) if s.image_size == 28 else (s.image_size // 8, 3)
        self.width = s.ngf * 2**strided
        self.linear = nn.Linear(s.latent_dim, self.start * self.start * self.width)
        self.bn0 = nn.BatchNorm1d(self.start * self.start * self.width)
        layers: list[nn.Module] = []
        width = self.width
        for _ in range(strided):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.Conv2d(width, s.channels, 3, 1, 1), nn.Tanh()]
        self.ups = nn.Sequential(*layers)
        _normal_init(self)

    def forward(self, z: Tensor) -> Tensor:  # (N, nz) -> (N, C, S, S)
        h = F.relu(self.bn0(self.linear(z)))
        return self.ups(h.view(len(z), self.width, self.start, self.start))


class SNGANDiscriminator(nn.Module):
    """Miyato et al. 2018 Table 3 discriminator: [Conv 3×3 s1, Conv 4×4 s2] at ndf, 2·ndf, 4·ndf, Conv 3×3 s1 8·ndf,
    Linear → 1, LeakyReLU 0.1, no normalization layers; N(0, 0.02) init, then
    ``torch.nn.utils.parametrizations.spectral_norm`` on every conv and the linear layer."""

    def __init__(self, s: Settings):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, side = s.channels, s.image_size
        for width in (s.ndf, 2 * s.ndf, 4 * s.ndf):
            layers += [nn.Conv2d(c_in, width, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(width, width, 4, 2, 1),
                       nn.LeakyReLU(0.1)]
            c_in, side = width, (side + 2 - 4) // 2 + 1
        layers += [nn.Conv2d(c_in, 8 * s.ndf, 3, 1, 1), nn.LeakyReLU(0.1)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(8 * s.ndf * side * side, 1)
        _normal_init(self)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                spectral_norm(m, n_power_iterations=s.n_power_iterations)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, S, S) -> (N,)
        return self.head(self.features(x).flatten(1)).flatten()


class SNGANPair(DCGANPair):
    """SNGAN's standard CNN pair (G and D above)."""

    def __init__(self, s: Settings):
        nn.Module.__init__(self)
        self.g, self.d = SNGANGenerator(s), SNGANDiscriminator(s)


# ------------------------------------------------------------------------------------------------ the loops
def _bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _uniform_labels(n: int, k: int, device: torch.device) -> Tensor:
    return torch.randint(0, k, (n,), device=device)


StepHook = Callable[[int], None]


def train_gan(pair: nn.Module, s: Settings, batches: Iterator[Batch], steps: int, device: torch.device,
              hook: StepHook) -> None:
    """znxlwm ``pytorch_MNIST_GAN.py`` training loop (Goodfellow et al. 2014 Algorithm 1, k = 1): per batch, D on
    BCE(D(x), 1) + BCE(D(G(z)), 0) in one backward, then G on BCE(D(G(z')), 1) with fresh z'."""
    opt_g, opt_d = optimizers(pair, s)
    for step in range(1, steps + 1):
        real = next(batches)["image"].to(device)
        n = len(real)
        fake = pair.generate(torch.randn(n, s.latent_dim, device=device))
        loss_d = _bce(pair.discriminate(real), 1.0) + _bce(pair.discriminate(fake.detach()), 0.0)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = _bce(pair.discriminate(pair.generate(torch.randn(n, s.latent_dim, device=device))), 1.0)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        hook(step)


def train_dcgan(pair: nn.Module, s: Settings, batches: Iterator[Batch], steps: int, device: torch.device,
                hook: StepHook, conditional: bool = False) -> None:
    """pytorch/examples ``dcgan/main.py`` loop: "(1) Update D": BCE(D(x), 1).backward(), then z ~ N(0, I),
    fake = G(z), BCE(D(fake.detach()), 0).backward() (real and fake in separate D passes, so BatchNorm sees separate
    batches), step; "(2) Update G": BCE(D(fake), 1) on the *same* fake through the updated D, step. ``conditional``:
    D sees the real labels with x, and the fakes get labels drawn uniformly (PyTorch-GAN ``cgan.py``)."""
    opt_g, opt_d = optimizers(pair, s)
    for step in range(1, steps + 1):
        batch = next(batches)
        real = batch["image"].to(device)
        n = len(real)
        y_real = batch["label"].to(device) if conditional else None
        y_fake = _uniform_labels(n, s.num_classes, device) if conditional else None
        opt_d.zero_grad(set_to_none=True)
        _bce(pair.discriminate(real, y_real), 1.0).backward()
        fake = pair.generate(torch.randn(n, s.latent_dim, device=device), y_fake)
        _bce(pair.discriminate(fake.detach(), y_fake), 0.0).backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        _bce(pair.discriminate(fake, y_fake), 1.0).backward()  # D's gradients from this pass are zeroed next step
        opt_g.step()
        hook(step)


def train_cgan(pair: nn.Module, s: Settings, batches: Iterator[Batch], steps: int, device: torch.device,
               hook: StepHook) -> None:
    train_dcgan(pair, s, batches, steps, device, hook, conditional=True)


def train_wgan(pair: nn.Module, s: Settings, batches: Iterator[Batch], steps: int, device: torch.device,
               hook: StepHook) -> None:
    """martinarjovsky/WassersteinGAN ``main.py``: Diters = 100 while gen_iterations < 25 or gen_iterations % 500 == 0,
    else n_critic; each critic iteration clamps every D parameter to [-c, c] *before* its forward pass, takes a new
    batch, and minimizes D(x) - D(G(z)) (``errD_real.backward(one)``, ``errD_fake.backward(mone)``: the file's sign
    convention, the critic being -f); then G minimizes D(G(z)) with fresh z (``errG.backward(one)``). RMSprop."""
    opt_g, opt_d = optimizers(pair, s)
    for step in range(1, steps + 1):
        t = step - 1  # gen_iterations before this G step
        boost = t < s.warmup_generator_steps or (s.critic_boost_every and t % s.critic_boost_every == 0)
        for _ in range(s.warmup_critic_steps if boost else s.n_critic):
            with torch.no_grad():
                for p in pair.d.parameters():
                    p.clamp_(-s.weight_clip, s.weight_clip)
            real = next(batches)["image"].to(device)
            with torch.no_grad():
                fake = pair.generate(torch.randn(len(real), s.latent_dim, device=device))
            loss_d = pair.discriminate(real).mean() - pair.discriminate(fake).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        for p in pair.d.parameters():
            p.requires_grad_(False)
        loss_g = pair.discriminate(pair.generate(torch.randn(len(real), s.latent_dim, device=device))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in pair.d.parameters():
            p.requires_grad_(True)
        hook(step)


def train_wgan_gp(pair: nn.Module, s: Settings, batches: Iterator[Batch], steps: int, device: torch.device,
                  hook: StepHook) -> None:
    """igul222/improved_wgan_training ``gan_mnist.py`` (MODE wgan-gp): CRITIC_ITERS critic steps, each on a new batch
    and fresh fakes, minimizing mean(D(G(z))) - mean(D(x)) + λ·mean((‖∇D(x̂)‖₂ - 1)²) with
    x̂ = x + α(G(z) - x), α ~ U[0, 1] one per sample, the norm over all of a sample's pixels; then a G step on
    -mean(D(G(z'))). (The file's ``if iteration > 0: gen_train_op`` at the top of each iteration gives the same
    order: 5 critic steps, G, 5 critic steps, G, ...)"""
    opt_g, opt_d = optimizers(pair, s)
    for step in range(1, steps + 1):
        for _ in range(s.n_critic):
            real = next(batches)["image"].to(device)
            n = len(real)
            with torch.no_grad():
                fake = pair.generate(torch.randn(n, s.latent_dim, device=device))
            alpha = torch.rand(n, 1, 1, 1, device=device)
            interpolates = (real + alpha * (fake - real)).requires_grad_(True)
            (gradients,) = torch.autograd.grad(pair.discriminate(interpolates).sum(), interpolates, create_graph=True)
            slopes = gradients.flatten(1).square().sum(1).sqrt()
            penalty = (slopes - 1.0).square().mean()
            loss_d = pair.discriminate(fake).mean() - pair.discriminate(real).mean() + s.penalty_weight * penalty
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        for p in pair.d.parameters():
            p.requires_grad_(False)
        loss_g = -pair.discriminate(pair.generate(torch.randn(n, s.latent_dim, device=device))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in pair.d.parameters():
            p.requires_grad_(True)
        hook(step)


def train_sngan(pair: nn.Module, s: Settings, batches: Iterator[Batch], steps: int, device: torch.device,
                hook: StepHook) -> None:
    """pfnet-research/chainer-gan-lib ``stdgan/updater.py`` ``Updater.update_core`` (the standard-CNN results,
    ``loss: non_saturating``) and pfnet-research/sngan_projection ``updater.py`` (``loss: hinge``): per iteration, first
    one G step with fresh z (softplus(-D(G(z))), resp. -D(G(z))), then n_dis D steps, each on a new batch and fresh
    fakes (softplus(-D(x)) + softplus(D(G(z))), resp. relu(1 - D(x)) + relu(1 + D(G(z)))), means over the batch. G's
    batch is the data batch size here (the projection updater's ``n_gen_samples`` is a separate setting)."""
    hinge = s.loss == "hinge"
    opt_g, opt_d = optimizers(pair, s)
    pending: Batch | None = next(batches)
    n = len(pending["image"])
    for step in range(1, steps + 1):
        for p in pair.d.parameters():
            p.requires_grad_(False)
        d_fake = pair.discriminate(pair.generate(torch.randn(n, s.latent_dim, device=device)))
        loss_g = -d_fake.mean() if hinge else F.softplus(-d_fake).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in pair.d.parameters():
            p.requires_grad_(True)
        for _ in range(s.n_critic):
            batch, pending = (pending if pending is not None else next(batches)), None
            real = batch["image"].to(device)
            with torch.no_grad():
                fake = pair.generate(torch.randn(len(real), s.latent_dim, device=device))
            d_real, d_fake = pair.discriminate(real), pair.discriminate(fake)
            loss_d = (F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean() if hinge
                      else F.softplus(-d_real).mean() + F.softplus(d_fake).mean())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        hook(step)


@dataclass(frozen=True)
class Reference:
    """One reference: how to build its networks and train them.

    Attributes:
        build: ``Settings -> module`` with ``.g``/``.d`` (parameter groups) and ``generate(z, y)``/``discriminate``.
        train: the loop ``(pair, settings, batches, steps, device, hook)``; ``hook(step)`` runs after each G step.
        follows: the official code it is written after (for the report).
        conditional: G takes class labels.
    """

    build: Callable[[Settings], nn.Module]
    train: Callable[..., None]
    follows: str
    conditional: bool = False


REFERENCES: dict[str, Reference] = {
    "gan": Reference(MLPPair, train_gan, "znxlwm/pytorch-MNIST-CelebA-GAN-DCGAN pytorch_MNIST_GAN.py"),
    "dcgan": Reference(DCGANPair, train_dcgan, "pytorch/examples dcgan/main.py"),
    "cgan": Reference(ConcatCGANPair, train_cgan, "pytorch/examples dcgan/main.py + Mirza & Osindero concat "
                      "(PyTorch-GAN cgan.py labels)", conditional=True),
    "wgan": Reference(DCGANPair, train_wgan, "martinarjovsky/WassersteinGAN main.py, models/dcgan.py"),
    "wgan_gp": Reference(DCGANPair, train_wgan_gp, "igul222/improved_wgan_training gan_mnist.py, "
                         "tflib/ops/layernorm.py"),
    "sngan": Reference(SNGANPair, train_sngan, "Miyato et al. 2018 Table 3; pfnet-research/sngan_projection "
                       "updater.py; chainer-gan-lib common/net.py"),
}


def run(name: str, s: Settings, batches: Iterator[Batch], steps: int, device: torch.device, seed: int,
        hook: StepHook | None = None) -> nn.Module:
    """Builds reference ``name`` with weights from ``seed``, trains it ``steps`` generator steps on ``batches`` and
    returns it (in train mode). ``hook(step)`` runs after every generator step (for evaluations during training)."""
    if name not in REFERENCES:
        raise ValueError(f"no reference named {name!r}; choose one of {', '.join(REFERENCES)}")
    torch.manual_seed(seed)
    ref = REFERENCES[name]
    pair = ref.build(s).to(device).train()
    ref.train(pair, s, batches, steps, device, hook or (lambda step: None))
    return pair
