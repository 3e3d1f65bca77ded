"""Folders of image files, shared by the folder and translation datamodules: listing, cheap validity checks, decoding
with PIL, the resize/crop/flip pipeline and the predict loader over a folder of inputs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from .base import collate
from .errors import DataError
from .transforms import to_unit_range

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CheckMode = Literal["header", "full", "none"]


def list_images(root: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (by extension, case-insensitive), sorted; hidden files and folders are skipped.

    Raises:
        DataError: ``root`` does not exist or is not a folder.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder {root} does not exist; check --data.data_dir")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder of images; point --data.data_dir at its folder")
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        files += [Path(dirpath, f) for f in filenames if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(files)


def empty_folder_error(root: str | Path) -> DataError:
    return DataError(f"no images in {root} (searched recursively for {', '.join(IMAGE_EXTENSIONS)}); check "
                     "--data.data_dir")


def image_problem(path: Path, mode: CheckMode = "header") -> str | None:
    """Why PIL cannot read ``path`` (``None`` if it can).

    ``header`` opens the file and runs ``Image.verify()`` (cheap: reads the header; PNG also checks chunk CRCs but a
    truncated JPEG passes); ``full`` decodes every pixel.
    """
    if mode == "none":
        return None
    try:
        with Image.open(path) as image:
            image.load() if mode == "full" else image.verify()
    except Exception as err:  # noqa: BLE001 - PIL raises many types (UnidentifiedImageError, OSError, SyntaxError, ...)
        return f"{type(err).__name__}: {err}"
    return None


def check_images(paths: Sequence[Path], mode: CheckMode, owner: str) -> list[int]:
    """Indices of the readable files of ``paths``; unreadable ones are skipped with one counted warning.

    Raises:
        DataError: no file is readable (names the first one).
    """
    if mode == "none" or not paths:
        return list(range(len(paths)))
    if len(paths) > 256:  # file opening is I/O-bound; PIL releases the GIL while decoding
        with ThreadPoolExecutor(max_workers=8) as pool:
            problems = list(pool.map(image_problem, paths, [mode] * len(paths), chunksize=64))
    else:
        problems = [image_problem(path, mode) for path in paths]
    good = [i for i, problem in enumerate(problems) if problem is None]
    bad = [(paths[i], problem) for i, problem in enumerate(problems) if problem is not None]
    if bad and not good:
        raise DataError(f"none of the {len(paths)} image files can be read, e.g. {bad[0][0]} ({bad[0][1]}); "
                        "replace the files or point --data.data_dir elsewhere")
    if bad:
        shown = "; ".join(f"{path} ({problem})" for path, problem in bad[:3]) + ("; ..." if len(bad) > 3 else "")
        rank_zero_warn(f"{owner}: skipped {len(bad)} of {len(paths)} image files that cannot be read: {shown}")
    return good


def convert_mode(image: Image.Image, channels: int) -> Image.Image:
    """Any PIL mode -> ``L`` (1 channel) or ``RGB`` (3); transparency is composited over white, as viewers show it."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("L" if channels == 1 else "RGB")


def decode(path: str | Path, channels: int, draft: int | None = None) -> Tensor:
    """uint8 (channels, H, W) at the file's own size; with ``draft``, a JPEG is decoded at the smallest of its
    scales 1/1..1/8 still at least ``draft`` pixels (PIL's ``draft``: much faster, pixels differ from a full decode)."""
    with Image.open(path) as image:
        if draft is not None:
            image.draft("L" if channels == 1 else "RGB", (draft, draft))
        return TF.pil_to_tensor(convert_mode(image, channels))


def load_image(path: str | Path, channels: int) -> Tensor:
    """``decode`` at full scale; a file that cannot be decoded raises a ``DataError`` naming it."""
    try:
        return decode(path, channels)
    except Exception as err:  # noqa: BLE001 - PIL raises many types
        raise DataError(f"cannot decode {path} ({type(err).__name__}: {err}); delete or replace it") from None


class FolderImageTransform:
    """Path -> float32 (channels, image_size, image_size) in [-1, 1].

    Steps: decode (JPEGs are decoded at the smallest scale >= the target, via ``draft``, when there is no fixed
    crop), convert to ``channels``, optionally centre-crop a ``crop_size`` square (capped at the shorter side),
    resize the shorter side to ``image_size`` (antialiased; small images are upscaled), centre-crop a square,
    optionally flip horizontally with probability 1/2.

    Args:
        image_size: output side.
        channels: 1 or 3.
        crop_size: square crop before resizing (CelebA: 178, as in DCGAN); ``None`` for none.
        flip: random horizontal flip (train augmentation; uses torch's RNG, seeded per worker by Lightning).
    """

    def __init__(self, image_size: int, channels: int, crop_size: int | None = None, flip: bool = False) -> None:
        self.image_size, self.channels, self.crop_size, self.flip = image_size, channels, crop_size, flip

    def load(self, path: str | Path) -> Tensor:
        """uint8 (channels, H, W) at the file's own size (after a JPEG draft when there is no fixed crop)."""
        return decode(path, self.channels, self.image_size if self.crop_size is None else None)

    def __call__(self, path: str | Path) -> Tensor:
        image = self.load(path)  # (C, H, W) uint8
        if self.crop_size is not None:
            side = min(self.crop_size, *image.shape[-2:])
            image = TF.center_crop(image, [side, side])
        if min(image.shape[-2:]) != self.image_size:
            image = TF.resize(image, self.image_size, antialias=True)
        image = TF.center_crop(image, [self.image_size, self.image_size])
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        return to_unit_range(image)  # (C, S, S)


class ImageFileDataset(Dataset):
    """Image files (and optional int labels) -> ``{"image": (C, S, S), "label": int64}``.

    Raises:
        DataError: at load time, for a file that passed the setup check but cannot be decoded (names the file).
    """

    def __init__(self, paths: Sequence[Path], labels: Sequence[int] | None, transform: FolderImageTransform) -> None:
        if labels is not None and len(labels) != len(paths):
            raise ValueError(f"{len(paths)} files but {len(labels)} labels")
        self.paths, self.transform = list(paths), transform
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        path = self.paths[i]
        try:
            item = {"image": self.transform(path)}
        except Exception as err:  # noqa: BLE001 - any decoding failure becomes one DataError
            raise DataError(f"cannot decode {path} ({type(err).__name__}: {err}); delete or replace it, or set "
                            "--data.check_images full to skip such files at setup") from None
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item


class NamedFileDataset(Dataset):
    """Image files at their own size, or centre-cropped to a ``crop_size`` square (capped at the shorter side) and
    resized to ``image_size`` squared, optionally flipped at random -> ``{"image", "label" (with ``labels``), "name",
    "index"}`` plus the constant ``extra`` keys (translation datasets and predict folders)."""

    def __init__(self, paths: Sequence[Path], channels: int, image_size: int | None = None,
                 crop_size: int | None = None, flip: bool = False, labels: Tensor | None = None,
                 extra: dict[str, Any] | None = None):
        self.paths, self.channels, self.image_size, self.crop_size = list(paths), channels, image_size, crop_size
        self.flip, self.labels, self.extra = flip, labels, extra or {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = load_image(self.paths[i], self.channels)  # (C, H, W) uint8
        if self.crop_size is not None:
            side = min(self.crop_size, *image.shape[-2:])
            image = TF.center_crop(image, [side, side])
        if self.image_size is not None:
            image = TF.resize(image, [self.image_size, self.image_size], antialias=True)
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        label = {} if self.labels is None else {"label": self.labels[i]}
        return {"image": to_unit_range(image), **label, "name": self.paths[i].name, "index": i, **self.extra}


def predict_folder_loader(root: Path, channels: int, image_size: int | None, batch_size: int,
                          extra: dict[str, Any] | None = None) -> DataLoader:
    """The images of ``root`` in file order: at their own size one at a time (``image_size`` None), else resized and
    batched; a folder without images raises a ``DataError``."""
    if not (paths := list_images(root)):
        raise DataError(f"no images in {root}; check --data.predict_dir")
    return DataLoader(NamedFileDataset(paths, channels, image_size, extra=extra),
                      batch_size=1 if image_size is None else batch_size, collate_fn=collate)
