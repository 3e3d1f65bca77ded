"""The MNIST networks of the original GAN (Goodfellow et al. 2014, "Generative Adversarial Nets", NeurIPS), exactly
as the authors' configuration goodfeli/adversarial ``mnist.yaml`` builds them in pylearn2.

G (yaml l.8-31): z ∈ R¹⁰⁰ ~ U(-√3, √3) (``noise: 'uniform'``, l.9; ``adversarial/__init__.py`` l.207-208: unit
variance) → ReLU 1200 → ReLU 1200 → sigmoid 784 (l.13-28), weights ~ U(-0.05, 0.05) (``irange: .05``), biases 0
except the sigmoid's, which starts at the logit of the training pixels' marginals
(``init_sigmoid_bias_from_marginals``, l.24; :func:`sigmoid_bias_from_marginals`).

D (l.32-54): 784 → maxout 240 units × 5 pieces → maxout 240 × 5 → sigmoid 1 (l.35-51), weights ~ U(-0.005, 0.005)
(``irange: .005``), biases 0, with dropout on the input of every layer (``AdversaryCost2`` l.70-81: include
probability 0.8 and scale 1.25 on the image, 0.5 and scale 2 on the two hidden layers' inputs; pylearn2 multiplies
by ``mask · scale``, ``models/mlp.py`` l.1025-1035, which with scale = 1/p is PyTorch's inverted ``nn.Dropout``).

Our images are in [-1, 1]; pylearn2's MNIST is in [0, 1]. G therefore returns ``2·sigmoid(a) − 1`` (= tanh(a/2)) and
D first maps its input back with ``(x + 1) / 2``, so that G → D composes exactly the paper's functions (dropping an
input pixel still means black, as in the paper). D returns the logit; the paper's sigmoid output with cross-entropy
(``models/mlp.py`` ``Sigmoid.cost``) is ``binary_cross_entropy_with_logits`` on it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError

#: z dimension (``nvis: 100``, mnist.yaml l.30).
NOISE_DIM = 100
#: half-width of the uniform noise: U(-√3, √3) has unit variance (adversarial/__init__.py l.207-208).
NOISE_BOUND = math.sqrt(3.0)


def sample_noise(n: int, dim: int = NOISE_DIM, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> Tensor:
    """(n, dim) noise ~ U(-√3, √3), the yaml's ``noise: 'uniform'``."""
    z = (2 * torch.rand(n, dim, generator=generator) - 1) * NOISE_BOUND  # drawn on the CPU: seeded draws agree
    return z if device is None else z.to(device)


def sigmoid_bias_from_marginals(images: Tensor, eps: float = 1e-7) -> Tensor:
    """The bias b with ``sigmoid(b)`` = the mean of each pixel over ``images`` (N, C, H, W) in [-1, 1], taken in
    [0, 1] and clipped to [eps, 1 − eps] (pylearn2 ``models/dbm/__init__.py`` ``init_sigmoid_bias_from_array``
    l.67-90, clip 1e-7 at l.86). Returns a (C·H·W,) tensor for :class:`GoodfellowGenerator`'s ``output_bias``."""
    mean = ((images.detach().double().flatten(1) + 1) / 2).mean(0).clamp(eps, 1 - eps)  # float64 as numpy
    return torch.logit(mean).float()  # log(p / (1 - p)), stored in float32 (pylearn2's sharedX)


def _uniform_(layer: nn.Linear, irange: float) -> nn.Linear:
    nn.init.uniform_(layer.weight, -irange, irange)  # pylearn2 ``irange``: W ~ U(-irange, irange), mlp.py l.1997
    nn.init.zeros_(layer.bias)  # ``init_bias`` default 0
    return layer


class Maxout(nn.Module):
    """Linear layer to ``units · pieces`` outputs, then the max over each run of ``pieces`` consecutive outputs
    (pylearn2 ``models/maxout.py`` ``Maxout.fprop`` l.478-515 with ``pool_stride = num_pieces``: unit j is the max
    of outputs j·pieces … j·pieces + pieces − 1)."""

    def __init__(self, in_features: int, units: int, pieces: int, irange: float):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = _uniform_(nn.Linear(in_features, units * pieces), irange)

    def forward(self, x: Tensor) -> Tensor:  # (N, in) -> (N, units)
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(-1)


class GoodfellowGenerator(nn.Module):
    """z (N, 100) → image (N, 1, 28, 28) in [-1, 1] (``2·sigmoid − 1`` of the paper's sigmoid output).

    Args:
        latent_dim: z dimension (100).
        hidden: ReLU layer widths (1200, 1200).
        image_shape: output (C, H, W).
        irange: half-width of the uniform weight init (0.05).
        output_bias: initial bias of the sigmoid layer, e.g. :func:`sigmoid_bias_from_marginals` of the training
            images (the yaml's choice); None leaves it at 0.
    """

    #: the noise distribution this generator was trained with (see :func:`sample_noise`).
    noise = "uniform"

    def __init__(self, latent_dim: int = NOISE_DIM, hidden: tuple[int, ...] = (1200, 1200),
                 image_shape: tuple[int, int, int] = (1, 28, 28), irange: float = 0.05,
                 output_bias: Tensor | None = None):
        super().__init__()
        self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
        out = math.prod(self.image_shape)
        layers: list[nn.Module] = []
        for i, o in zip((latent_dim, *hidden[:-1]), hidden):
            layers += [_uniform_(nn.Linear(i, o), irange), nn.ReLU()]  # pylearn2 RectifiedLinear
        self.hidden = nn.Sequential(*layers)
        self.out = _uniform_(nn.Linear(hidden[-1], out), irange)  # pylearn2 Sigmoid layer
        if output_bias is not None:
            if output_bias.numel() != out:
                raise ConfigError(f"output_bias needs {out} values (C·H·W), got {output_bias.numel()}")
            with torch.no_grad():
                self.out.bias.copy_(output_bias.flatten())

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, latent_dim) noise ~ U(-√3, √3) on this module's device."""
        return sample_noise(n, self.latent_dim, generator, self.out.weight.device)

    def forward(self, z: Tensor) -> Tensor:  # (N, latent_dim) -> (N, C, H, W) in [-1, 1]
        a = self.out(self.hidden(z.flatten(1)))  # pre-sigmoid activations (N, C·H·W)
        return (2 * torch.sigmoid(a) - 1).view(z.shape[0], *self.image_shape)  # [0, 1] sigmoid → [-1, 1]


class MaxoutDiscriminator(nn.Module):
    """image (N, 1, 28, 28) in [-1, 1] → logits (N,): the paper's maxout D with dropout on every layer's input.

    Args:
        image_shape: input (C, H, W).
        units: maxout units per hidden layer (240).
        pieces: linear pieces per unit (5).
        n_hidden: maxout layers (2).
        input_include_prob: probability of keeping an input pixel (0.8, scale 1/0.8 = 1.25).
        hidden_include_prob: probability of keeping a hidden unit at the next layer's input (0.5, scale 2).
        irange: half-width of the uniform weight init (0.005).
    """

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), units: int = 240, pieces: int = 5,
                 n_hidden: int = 2, input_include_prob: float = 0.8, hidden_include_prob: float = 0.5,
                 irange: float = 0.005):
        super().__init__()
        for name, p in (("input_include_prob", input_include_prob), ("hidden_include_prob", hidden_include_prob)):
            if not 0 < p <= 1:
                raise ConfigError(f"{name} must be in (0, 1] (the probability of keeping a unit), got {p}")
        layers: list[nn.Module] = [nn.Dropout(1 - input_include_prob)]  # keep p, scale 1/p (yaml: .8 and 1.25)
        width = math.prod(image_shape)
        for i in range(n_hidden):
            if i:
                layers.append(nn.Dropout(1 - hidden_include_prob))  # yaml defaults: keep .5, scale 2
            layers.append(Maxout(width, units, pieces, irange))
            width = units
        layers += [nn.Dropout(1 - hidden_include_prob), _uniform_(nn.Linear(width, 1), irange)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) in [-1, 1] -> (N,) logits
        return self.net((x.flatten(1) + 1) / 2).squeeze(1)  # the paper's D sees pixels in [0, 1]
