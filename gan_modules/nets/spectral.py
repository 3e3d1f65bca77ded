"""Spectral normalization on every layer of a network (Miyato et al. 2018, "Spectral Normalization for Generative
Adversarial Networks", ICLR), through ``torch.nn.utils.parametrizations.spectral_norm``.

The power-iteration vectors ``u``/``v`` live in each parametrization as buffers, so they are saved, restored and
(being buffers) broadcast by DDP like BatchNorm statistics.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

#: layer types whose ``weight`` is spectrally normalized.
SN_LAYERS = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def add_spectral_norm(module: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12) -> nn.Module:
    """Puts spectral normalization on the ``weight`` of every conv, linear and embedding layer of ``module``
    (in place; layers that already have it are left alone) and returns ``module``."""
    for layer in list(module.modules()):
        if isinstance(layer, SN_LAYERS) and not parametrize.is_parametrized(layer, "weight"):
            spectral_norm(layer, n_power_iterations=n_power_iterations, eps=eps)
    return module


def spectrally_normalized_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of ``module`` whose ``weight`` carries a spectral-norm parametrization."""
    return [m for m in module.modules() if parametrize.is_parametrized(m, "weight")
            and any(type(p).__name__ == "_SpectralNorm" for p in m.parametrizations.weight)]


@torch.no_grad()
def top_singular_value(weight: torch.Tensor, dim: int = 0) -> float:
    """Largest singular value of ``weight`` reshaped to a matrix with ``dim`` as rows (as spectral_norm does)."""
    w = weight.movedim(dim, 0).flatten(1).float()
    return float(torch.linalg.matrix_norm(w, ord=2))


__all__ = ["SN_LAYERS", "add_spectral_norm", "spectrally_normalized_layers", "top_singular_value"]
