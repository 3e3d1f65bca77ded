"""Tensor transforms shared by the datamodules: uint8 -> [-1, 1], channel conversion, resize or pad to a square,
and the pix2pix/CycleGAN resize-and-crop jitter."""

from __future__ import annotations

from collections.abc import Sequence
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


def fit_square(images: Tensor, size: int, mode: ResizeMode = "resize") -> Tensor:
    """Images (N, C, H, W), float in [-1, 1] or uint8 -> (N, C, size, size) of the same dtype.

    ``resize``: bilinear with antialias (convex weights, so a float range stays [-1, 1]; clamped against rounding;
    uint8 is rounded). ``pad``: centre smaller images on a black background (-1 or 0), e.g. MNIST 28 -> 32 as in
    LeNet-5; larger ones are resized.
    """
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if mode == "pad" and h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        black = 0 if images.dtype == torch.uint8 else -1.0
        return F.pad(images, (left, size - w - left, top, size - h - top), value=black)
    resized = TF.resize(images, [size, size], antialias=True)
    return resized if resized.dtype == torch.uint8 else resized.clamp_(-1.0, 1.0)


def fit_batch(images: Tensor, size: int, channels: int, mode: ResizeMode = "resize") -> Tensor:
    """uint8 (N, C, H, W) -> float32 (N, channels, size, size) in [-1, 1]."""
    return fit_square(convert_channels(to_unit_range(images), channels), size, mode)


def jitter(images: Sequence[Tensor], image_size: int, load_size: int | None, flip: bool) -> list[Tensor]:
    """pix2pix/CycleGAN ``resize_and_crop``: each uint8 (C, H, W) image resized to ``load_size`` squared, then the
    **same** random ``image_size`` crop and the same random horizontal flip for all of them; ``load_size=None``
    (evaluation) resizes straight to ``image_size``. Returns float32 in [-1, 1]."""
    size = image_size if load_size is None else load_size
    out = [TF.resize(im, [size, size], antialias=True) for im in images]
    if load_size is not None and load_size > image_size:
        top = int(torch.randint(load_size - image_size + 1, ()))
        left = int(torch.randint(load_size - image_size + 1, ()))
        out = [im[:, top : top + image_size, left : left + image_size] for im in out]
    if flip and bool(torch.rand(()) < 0.5):
        out = [im.flip(-1) for im in out]
    return [to_unit_range(im) for im in out]
