"""Aligned pairs for pix2pix: A|B side-by-side images or ``A/`` and ``B/`` folders of the same file names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .base import SPLITS, random_split
from .errors import DataError
from .folder import list_images, load_image
from .transforms import jitter
from .translation import FileTranslationDataModule


def split_aligned(image: Tensor, path: Path | str) -> tuple[Tensor, Tensor]:
    """An A|B side-by-side image (C, H, 2W) → (A, B).

    Raises:
        DataError: odd width (the halves cannot be equal).
    """
    if (w := image.shape[-1]) % 2:
        raise DataError(f"{path} is {w} pixels wide, an odd width: aligned pairs must be A|B side by side with equal "
                        "halves (use separate A/ and B/ folders for other layouts)")
    return image[..., : w // 2], image[..., w // 2 :]


class PairedFileDataset(Dataset):
    """Pairs from A|B images (``b_paths`` None) or from two lists of files; ``{"source", "target", "name", "index"}``.
    ``load_size`` None disables the random crop (evaluation)."""

    def __init__(self, a_paths: Sequence[Path], b_paths: Sequence[Path] | None, channels: int, image_size: int,
                 load_size: int | None, flip: bool):
        self.a_paths, self.b_paths = list(a_paths), None if b_paths is None else list(b_paths)
        self.channels, self.image_size, self.load_size, self.flip = channels, image_size, load_size, flip

    def __len__(self) -> int:
        return len(self.a_paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.a_paths[i]
        if self.b_paths is None:
            a, b = split_aligned(load_image(path, self.channels), path)
        else:
            a, b = load_image(path, self.channels), load_image(self.b_paths[i], self.channels)
        source, target = jitter([a, b], self.image_size, self.load_size, self.flip)
        return {"source": source, "target": target, "name": path.name, "index": i}


class AlignedPairDataModule(FileTranslationDataModule):
    """Paired images for pix2pix, in either layout of ``data_dir``:

    - aligned (the pix2pix datasets: facades, maps, edges2shoes): ``train/ val/ test/`` of images holding A|B side by
      side (an odd width is an error);
    - separate folders: ``train/A/ train/B/`` (and val, test) with the same file names on both sides.

    Train images are jittered as in the reference (resize to ``load_size``, the same random ``image_size`` crop and
    the same random flip on both halves); val/test are resized to ``image_size``. A missing val split uses test (and
    vice versa); with neither, ``val_fraction`` of train. Which half is the input is the model's ``direction``.
    """

    layout: ClassVar[str] = "train/ val/ test/"

    def _split_files(self, split: str) -> tuple[list[Path], list[Path] | None] | None:
        root = self.data_dir / split
        if not root.is_dir():
            return None
        if (root / "A").is_dir() and (root / "B").is_dir():
            a = list_images(root / "A")
            b_by_name = {p.relative_to(root / "B"): p for p in list_images(root / "B")}
            missing = [p for p in a if p.relative_to(root / "A") not in b_by_name]
            if missing:
                raise DataError(f"{missing[0]} has no partner of the same name in {root / 'B'}; paired folders need "
                                "identical file names")
            return a, [b_by_name[p.relative_to(root / "A")] for p in a]
        paths = list_images(root, recursive=False)
        for path in paths:  # an odd width is an error now, not in the middle of training (reads only the headers)
            try:
                with Image.open(path) as image:
                    width = image.size[0]
            except Exception as err:  # noqa: BLE001
                raise DataError(f"cannot read {path} ({type(err).__name__}: {err}); delete or replace it") from None
            if width % 2:
                split_aligned(torch.empty(1, 1, width), path)
        return paths, None

    def build_datasets(self) -> dict[str, Dataset]:
        files = {split: self._split_files(split) for split in SPLITS}
        if files["train"] is None or not files["train"][0]:
            raise DataError(f"no training pairs in {self.data_dir / 'train'}: download a pix2pix dataset (e.g. "
                            "facades) and put its train/ val/ test/ folders of A|B images (or A/ and B/ folders) there")
        files["val"] = files["val"] or files["test"]
        files["test"] = files["test"] or files["val"]
        if files["val"] is None:  # neither: hold out val_fraction of train (also as test)
            a, b = files["train"]
            split = {k: v.tolist() for k, v in random_split(len(a), self.val_fraction, 0.0, self.split_seed).items()}
            files = {s: ([a[i] for i in split[s]], None if b is None else [b[i] for i in split[s]]) for s in SPLITS}
        return {split: PairedFileDataset(*files[split], self.channels, self.image_size,
                                         self.load_size if split == "train" else None, self.flip and split == "train")
                for split in SPLITS}
