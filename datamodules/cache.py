"""Decoded-image cache for folder datasets (``--data.cache_dir``): every image is decoded and resized once into a
uint8 ``.npy`` file, then read from a memory map of it or a copy on the GPU (a JPEG pipeline starves a fast GPU about
tenfold at 64x64; CelebA at 64x64 is 2.5 GB). It holds exactly the deterministic part of ``FolderImageTransform``;
flips and the same ``u8 / 127.5 - 1`` run per batch on the device, so pixels are identical to the uncached path. The
file name carries a fingerprint of the file list (relative path, size, mtime) and the settings: a changed folder or
size builds a new cache. Writes go to a temporary file renamed into place, so an interrupted build leaves no half
cache and concurrent builders (DDP ranks) produce the same bytes.
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

from .base import BatchDataset
from .errors import DataError
from .folder import FolderImageTransform, ImageFileDataset
from .transforms import to_unit_range

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


class CachedImageDataset(BatchDataset):
    """The ``index`` rows of the cache ``images`` (uint8 (N, C, S, S)), with their int ``labels`` and ``paths``:
    batches are the uint8 images (``image_u8``, gathered from the memory map) or, when the cache lives on the GPU
    (``indices_only``), just ``cache_index``; ``device_batch`` turns either into the usual float ``image``."""

    def __init__(self, images: Tensor, index: Sequence[int], labels: Sequence[int] | None = None,
                 paths: Sequence[Path] = ()):
        self.images, self.paths = images, list(paths)
        self.index = torch.as_tensor(list(index), dtype=torch.int64)
        self.labels = None if labels is None else torch.as_tensor(list(labels), dtype=torch.int64)
        self.indices_only = False

    def __len__(self) -> int:
        return len(self.index)

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        rows = torch.as_tensor(indices, dtype=torch.int64)
        batch = {"cache_index": self.index[rows]} if self.indices_only else {"image_u8": self.images[self.index[rows]]}
        if self.labels is not None:
            batch["label"] = self.labels[rows]
        return batch


def device_batch(batch: dict, device_images: Tensor | None, flip: bool) -> dict:
    """uint8 batch (``image_u8``, or ``cache_index`` into ``device_images``) → float ``image`` in [-1, 1] on the
    batch's device, with a random horizontal flip per sample when ``flip`` (torch's device RNG)."""
    if "cache_index" in batch:
        u8 = device_images[batch.pop("cache_index").to(device_images.device)]
    elif "image_u8" in batch:
        u8 = batch.pop("image_u8")
    else:
        return batch
    image = to_unit_range(u8)
    if flip:
        mask = torch.rand(image.shape[0], device=image.device) < 0.5
        image = torch.where(mask[:, None, None, None], image.flip(-1), image)
    batch["image"] = image  # (N, C, S, S)
    return batch
