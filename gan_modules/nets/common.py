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


def dcgan_init_(module: nn.Module, std: float = 0.02, batchnorm_std: float | None = None) -> nn.Module:
    """DCGAN initialisation (Radford et al. 2016 §4): conv and linear weights ~ N(0, 0.02), zero biases; BatchNorm
    γ ~ N(1, ``batchnorm_std``) (default ``std``; 0: γ = 1), β = 0. In place; returns ``module``."""
    bn_std = std if batchnorm_std is None else batchnorm_std
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, bn_std) if bn_std > 0 else nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


#: the normalisation layers that can keep running statistics (public classes: nets never import Lightning)
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
               nn.InstanceNorm3d)


def use_batch_statistics_(net: nn.Module) -> nn.Module:
    """Makes every norm layer of ``net`` normalise with the statistics of its input, also in eval mode (running
    statistics dropped), in place: the deterministic form of testing with batch statistics (pix2pix, StarGAN).
    Returns ``net``."""
    for m in net.modules():
        if isinstance(m, NORM_LAYERS) and m.track_running_stats:
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
    return net
