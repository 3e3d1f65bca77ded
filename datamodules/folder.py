"""Folders of image files, shared by the folder and translation datamodules: listing, cheap validity checks, decoding
with PIL, and the crop/resize/flip pipeline."""

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
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from .errors import DataError
from .transforms import to_unit_range

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CheckMode = Literal["header", "full", "none"]
CHECK_HINT = ", or set --data.check_images full to skip such files at setup"


def list_images(root: str | Path, recursive: bool = True, required: bool = False) -> list[Path]:
    """Image files under ``root`` (by extension, case-insensitive), sorted; hidden files and folders are skipped.

    Raises:
        DataError: ``root`` does not exist or is not a folder, or (``required``) holds no images.
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
    if required and not files:
        raise DataError(f"no images in {root} (searched recursively for {', '.join(IMAGE_EXTENSIONS)}); check "
                        "--data.data_dir")
    return sorted(files)


def image_problem(path: Path, mode: CheckMode = "header") -> str | None:
    """Why PIL cannot read ``path`` (``None`` if it can): ``header`` runs ``Image.verify()``, ``full`` decodes it."""
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
    # threads for many files: opening them is I/O-bound, and PIL releases the GIL while decoding
    with ThreadPoolExecutor(max_workers=8 if len(paths) > 256 else 1) as pool:
        problems = list(pool.map(image_problem, paths, [mode] * len(paths), chunksize=64))
    good = [i for i, problem in enumerate(problems) if problem is None]
    bad = [(paths[i], problem) for i, problem in enumerate(problems) if problem is not None]
    if bad and not good:
        raise DataError(f"none of the {len(paths)} image files can be read, e.g. {bad[0][0]} ({bad[0][1]}); "
                        "replace the files or point --data.data_dir elsewhere")
    if bad:
        shown = "; ".join(f"{path} ({problem})" for path, problem in bad[:3]) + ("; ..." if len(bad) > 3 else "")
        rank_zero_warn(f"{owner}: skipped {len(bad)} of {len(paths)} image files that cannot be read: {shown}")
    return good


def load_image(path: str | Path, channels: int, draft: int | None = None, hint: str = "") -> Tensor:
    """uint8 (channels, H, W) at the file's own size: any PIL mode becomes ``L`` or ``RGB``, transparency composited
    over white (as viewers show it). With ``draft``, a JPEG is decoded at the smallest of its scales 1/1..1/8 still
    at least ``draft`` pixels (PIL's ``draft``: much faster, pixels differ from a full decode).

    Raises:
        DataError: the file cannot be decoded (names it; ``hint`` is added to the advice).
    """
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as image:
            if draft is not None:
                image.draft(mode, (draft, draft))
            if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            return TF.pil_to_tensor(image.convert(mode))
    except Exception as err:  # noqa: BLE001 - PIL raises many types
        raise DataError(f"cannot decode {path} ({type(err).__name__}: {err}); delete or replace it{hint}") from None


class FolderImageTransform:
    """Path -> float32 (channels, image_size, image_size) in [-1, 1]: decode, optional centre crop of a ``crop_size``
    square (capped at the shorter side), resize, random horizontal flip (p = 1/2, torch's RNG) if ``flip``.

    ``squash`` (translation data) resizes straight to ``image_size`` squared (``None``: the file's size). Otherwise
    (image folders) the shorter side is resized, upscaling small images, and a square centre-cropped; JPEGs are then
    decoded at the smallest scale >= the target when there is no fixed crop, and decoding errors advise
    ``check_images``.
    """

    def __init__(self, image_size: int | None, channels: int, crop_size: int | None = None, flip: bool = False,
                 squash: bool = False) -> None:
        self.image_size, self.channels, self.crop_size, self.flip, self.squash = (image_size, channels, crop_size,
                                                                                  flip, squash)

    def load(self, path: str | Path) -> Tensor:
        """uint8 (channels, H, W) at the file's own size (after a JPEG draft, see ``squash``)."""
        if self.squash:
            return load_image(path, self.channels)
        return load_image(path, self.channels, self.image_size if self.crop_size is None else None, CHECK_HINT)

    def __call__(self, path: str | Path) -> Tensor:
        image = self.load(path)  # (C, H, W) uint8
        if self.crop_size is not None:
            side = min(self.crop_size, *image.shape[-2:])
            image = TF.center_crop(image, [side, side])
        if self.squash and self.image_size is not None:
            image = TF.resize(image, [self.image_size, self.image_size], antialias=True)
        elif not self.squash:
            if min(image.shape[-2:]) != self.image_size:
                image = TF.resize(image, self.image_size, antialias=True)
            image = TF.center_crop(image, [self.image_size, self.image_size])
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        return to_unit_range(image)  # (C, S, S)


class ImageFileDataset(Dataset):
    """Image files and optional labels (int, or a float attribute vector per file) -> ``{"image": (C, S, S),
    "label"}``; ``named`` adds ``name`` (the file's name), ``index`` and the constant ``extra`` keys (translation
    data and predict folders). A file that cannot be decoded raises a ``DataError`` naming it, at load time."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int] | Tensor | None, transform: FolderImageTransform,
                 named: bool = False, extra: dict[str, Any] | None = None) -> None:
        if labels is not None and len(labels) != len(paths):
            raise ValueError(f"{len(paths)} files but {len(labels)} labels")
        self.paths, self.transform, self.named, self.extra = list(paths), transform, named, extra or {}
        int_labels = labels is not None and not isinstance(labels, Tensor)
        self.labels = torch.as_tensor(labels, dtype=torch.int64) if int_labels else labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"image": self.transform(self.paths[i])}
        if self.labels is not None:
            item["label"] = self.labels[i]
        return {**item, "name": self.paths[i].name, "index": i, **self.extra} if self.named else item
