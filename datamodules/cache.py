"""Decoded-image cache for folder datasets: decode and resize every image once into a uint8 ``.npy`` file, then
train from a memory map of it (or from a copy on the GPU) with flips and normalization done on the device.

Why: a JPEG pipeline (PIL decode + resize per image per epoch) starves a fast GPU about tenfold at 64×64; the
decoded uint8 array of CelebA at 64×64 is 2.5 GB, read with no decoding at all.

- **What is cached**: exactly the deterministic part of ``folder.FolderImageTransform`` (decode, channel conversion,
  the centre crop, the resize, the square crop), as uint8 (N, C, S, S). Random flips are applied per batch on the
  device; normalization to [-1, 1] is the same ``u8 / 127.5 - 1`` as the uncached path, so pixels are identical.
- **Fingerprint**: a hash of the file list (path relative to the root, size, mtime in ns) and the transform settings
  (image size, channels, crop). A changed, added or removed file or a new size builds a new cache file; the old one
  stays until deleted (the name says which fingerprint it holds).
- **Corrupt files**: the folder datamodules' ``check_images`` policy runs first (unreadable files are skipped with a
  counted warning); a file that passes the check but fails to decode while the cache is built raises the same
  ``DataError`` naming the file as the uncached loader.
- **Writes** go to a temporary file renamed into place, so an interrupted build never leaves a half cache, and
  concurrent builders (DDP ranks) produce the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import Dataset

from .errors import DataError
from .folder import FolderImageTransform, ImageFileDataset

CACHE_VERSION = 1


def fingerprint(paths: Sequence[Path], root: Path, transform: FolderImageTransform) -> str:
    """Hex digest over (relative path, size, mtime_ns) of every file and the transform's deterministic settings."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": CACHE_VERSION, "image_size": transform.image_size,
                         "channels": transform.channels, "crop_size": transform.crop_size}).encode())
    for path in paths:
        st = os.stat(path)
        try:
            rel = str(Path(path).relative_to(root))
        except ValueError:
            rel = str(path)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def build_or_load(paths: Sequence[Path], root: Path, transform: FolderImageTransform, cache_dir: str | Path,
                  num_workers: int = 0) -> Tensor:
    """The uint8 (N, C, S, S) images of ``paths`` (in order), memory-mapped from ``cache_dir``; built if absent.

    Raises:
        DataError: the cache folder cannot be written, or an image cannot be decoded (names the file).
    """
    cache_dir = Path(cache_dir)
    key = fingerprint(paths, root, transform)
    s, c = transform.image_size, transform.channels
    target = cache_dir / f"images-{s}px-{c}ch-{key[:16]}.npy"
    if not target.is_file():
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(f"cannot create the image cache folder {cache_dir} ({err}); set --data.cache_dir to a "
                            "writable folder or null") from None
        rank_zero_info(f"decoding {len(paths)} images into {target} (once; later runs memory-map it)")
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npy")
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), c, s, s))
        # the uncached pipeline without flips (its errors name the file); its floats are exactly u8 / 127.5 - 1
        files = ImageFileDataset(paths, None, FolderImageTransform(s, c, transform.crop_size, flip=False))
        try:  # threads: PIL and torch release the GIL while decoding/resizing, and errors keep their one line
            with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
                for i, image in enumerate(pool.map(lambda k: files[k]["image"], range(len(paths)))):
                    array[i] = image.add(1.0).mul(127.5).round_().to(torch.uint8).numpy()
            array.flush()
            del array
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        (cache_dir / f"{target.stem}.json").write_text(json.dumps(
            {"fingerprint": key, "count": len(paths), "shape": [c, s, s], "root": str(root),
             "crop_size": transform.crop_size}, indent=1))
    images = torch.from_numpy(np.load(target, mmap_mode="c"))  # copy-on-write map: no read of the whole file
    if tuple(images.shape) != (len(paths), c, s, s):
        raise DataError(f"image cache {target} holds {tuple(images.shape)}, expected {(len(paths), c, s, s)}; delete "
                        "it to rebuild")
    return images


class CachedImageDataset(Dataset):
    """A split of the cache: items are indices into the cache; batches (``__getitems__``) are either the uint8
    images (``image_u8``, gathered from the memory map) or, when the cache lives on the GPU, just ``cache_index``.
    ``device_batch`` turns either into the usual float ``image`` on the device.

    Args:
        images: the whole cache, uint8 (N, C, S, S).
        index: this split's rows of the cache.
        labels: int labels of this split's rows, or None.
    """

    def __init__(self, images: Tensor, index: Sequence[int], labels: Sequence[int] | None = None):
        self.images = images
        self.index = torch.as_tensor(list(index), dtype=torch.int64)
        self.labels = None if labels is None else torch.as_tensor(list(labels), dtype=torch.int64)
        self.indices_only = False  # set when the images are on the GPU

    def __len__(self) -> int:
        return len(self.index)

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        rows = torch.as_tensor(indices, dtype=torch.int64)
        batch = {"cache_index": self.index[rows]} if self.indices_only else {"image_u8": self.images[self.index[rows]]}
        if self.labels is not None:
            batch["label"] = self.labels[rows]
        return batch

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


def device_batch(batch: dict, device_images: Tensor | None, flip: bool) -> dict:
    """uint8 batch (``image_u8``, or ``cache_index`` into ``device_images``) → float ``image`` in [-1, 1] on the
    batch's device, with a random horizontal flip per sample when ``flip`` (torch's device RNG)."""
    if "cache_index" in batch:
        u8 = device_images[batch.pop("cache_index").to(device_images.device)]
    elif "image_u8" in batch:
        u8 = batch.pop("image_u8")
    else:
        return batch
    image = u8.to(torch.float32).div_(127.5).sub_(1.0)  # same op as transforms.to_unit_range: identical pixels
    if flip:
        mask = torch.rand(image.shape[0], device=image.device) < 0.5
        image = torch.where(mask[:, None, None, None], image.flip(-1), image)
    batch["image"] = image  # (N, C, S, S)
    return batch


def fits_on_device(images: Tensor, device: torch.device, fraction: float = 0.5) -> bool:
    """Whether ``images`` take less than ``fraction`` of the CUDA device's free memory (False off CUDA)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return images.numel() * images.element_size() < fraction * free


__all__ = ["CachedImageDataset", "build_or_load", "device_batch", "fingerprint", "fits_on_device"]
