"""Small helpers shared by the network files: size checks and weight initialisation."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError


def check_image_size(name: str, image_size: int, supported: tuple[int, ...]) -> None:
    """Raises one clear line when ``image_size`` is not one the architecture was built for."""
    if image_size not in supported:
        raise ConfigError(
            f"{name} does not support image_size={image_size}; supported sizes: {', '.join(map(str, supported))} "
            "(resize your data with --data.image_size)"
        )


def check_channels(name: str, channels: int) -> None:
    if channels not in (1, 3):
        raise ConfigError(f"{name} supports 1 (grayscale) or 3 (RGB) channels, got channels={channels}")


def dcgan_init_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN initialisation (Radford et al. 2016 §4): conv and linear weights ~ N(0, 0.02); BatchNorm γ ~ N(1, 0.02),
    β = 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module
