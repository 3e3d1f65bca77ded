"""Tensor transforms shared by the datamodules: uint8 -> [-1, 1], channel conversion, resize or pad to a square."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

ResizeMode = Literal["resize", "pad"]

# ITU-R 601-2 luma, as PIL's convert("L") and torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 0..255 -> float32 -1..1 (0 -> -1 and 255 -> 1 exactly)."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def convert_channels(images: Tensor, channels: int) -> Tensor:
    """(N, C, H, W) with C in {1, 3} -> (N, channels, H, W): gray is repeated, RGB is mixed with the luma weights."""
    have = images.shape[-3]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(3, 1, 1)
        return (images * weights).sum(dim=-3, keepdim=True)
    raise ValueError(f"cannot convert {have} channels to {channels}")


def fit_square(images: Tensor, size: int, mode: ResizeMode = "resize", fill: float = -1.0) -> Tensor:
    """Float images in [-1, 1], (N, C, H, W) -> (N, C, size, size).

    ``resize``: bilinear with antialias (convex weights, so the range stays [-1, 1]; clamped against rounding).
    ``pad``: centre the image on a ``fill`` background (-1 = black), e.g. MNIST 28 -> 32 as in LeNet-5.
    """
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if mode == "pad":
        if h > size or w > size:
            raise ValueError(f"cannot pad {h}x{w} images to {size}x{size}")
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(images, (left, size - w - left, top, size - h - top), value=fill)
    return TF.resize(images, [size, size], antialias=True).clamp_(-1.0, 1.0)


def fit_batch(images: Tensor, size: int, channels: int, mode: ResizeMode = "resize") -> Tensor:
    """uint8 (N, C, H, W) -> float32 (N, channels, size, size) in [-1, 1]."""
    return fit_square(convert_channels(to_unit_range(images), channels), size, mode)
