"""Labelled domains for StarGAN: CelebA attributes (a float 0/1 vector per image) and folder-per-domain (a class
index per image)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .errors import DataError
from .folder import FolderImageTransform, ImageFileDataset
from .image_folder import ImageFolderDataModule
from .translation import TranslationDataModule

#: yunjey/stargan's CelebA attributes.
STARGAN_ATTRIBUTES = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


def read_attributes(path: Path, selected: Sequence[str]) -> tuple[list[str], Tensor]:
    """``list_attr_celeba.txt`` → (file names, float 0/1 labels (N, len(selected)) in the order of ``selected``).

    Format: line 1 the image count, line 2 the attribute names, then ``<file> v1 ... vK`` with 1 / −1.

    Raises:
        DataError: a missing file, a malformed line, or a selected attribute the file does not have.
    """
    if not path.is_file():
        raise DataError(f"attribute file {path} does not exist; download CelebA and put list_attr_celeba.txt beside "
                        "img_align_celeba/")
    if len(lines := path.read_text().splitlines()) < 2:
        raise DataError(f"{path} is not a CelebA attribute file (needs a count line and a names line)")
    names = lines[1].split()
    for attr in selected:
        if attr not in names:
            raise DataError(f"attribute {attr!r} is not in {path.name}; choose from: {', '.join(names)}")
    columns = [names.index(a) for a in selected]
    files, rows = [], []
    for number, line in enumerate(lines[2:], 3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise DataError(f"{path} line {number} is not '<file> ' followed by {len(names)} values of 1/-1")
        files.append(parts[0])
        rows.append([parts[1 + c] == "1" for c in columns])
    return files, torch.tensor(rows, dtype=torch.float32).reshape(len(files), len(selected))


class CelebAAttributesDataModule(TranslationDataModule):
    """CelebA faces with a chosen list of binary attributes, for StarGAN: ``label`` is a float 0/1 vector (N, K).

    Layout: ``data_dir/list_attr_celeba.txt`` and ``data_dir/img_align_celeba/`` (names as in the attribute file).
    Preprocessing as yunjey/stargan: centre crop 178, resize to ``image_size`` (128), random flips for training; the
    first ``num_test`` images of a seeded permutation are the test set (2,000), which also serves as val.
    ``domain_names`` are the attributes; ``label_groups`` holds the indices of the selected hair colours (one-hot at
    test time).

    Args:
        attributes: attribute names (None: ``default_attributes``, the 5 of the paper).
        image_dir: image folder inside ``data_dir``.
        attr_file: attribute file inside ``data_dir``.
        crop_size: centre crop before resizing (178; None: none).
        flip: random horizontal flips of train images.
        num_test: images held out for test/val.
    """

    native_size: ClassVar[int] = 128
    default_data_dir: ClassVar[str | None] = "./data/celeba"
    default_attributes: ClassVar[Sequence[str]] = STARGAN_ATTRIBUTES
    one_hot_attributes: ClassVar[Sequence[str]] = HAIR_COLOURS  # at most one of them is set: a label group

    def __init__(self, *args: Any, attributes: list[str] | None = None, image_dir: str = "img_align_celeba",
                 attr_file: str = "list_attr_celeba.txt", crop_size: int | None = 178, flip: bool = True,
                 num_test: int = 2000, batch_size: int = 16, num_workers: int = 4, **kwargs: Any) -> None:
        super().__init__(*args, batch_size=batch_size, num_workers=num_workers, **kwargs)
        self.attributes = list(self.default_attributes if attributes is None else attributes)
        if not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise DataError(f"attributes must be a non-empty list without repeats, got {self.attributes}")
        self.num_classes = len(self.attributes)
        self.domain_names = self.attributes
        group = [i for i, a in enumerate(self.attributes) if a in self.one_hot_attributes]
        self.label_groups = [group] if len(group) > 1 else []
        self.image_dir, self.attr_file = image_dir, attr_file
        self.crop_size, self.flip, self.num_test = crop_size, flip, num_test

    def build_datasets(self) -> dict[str, Dataset]:
        names, labels = read_attributes(self.data_dir / self.attr_file, self.attributes)
        root = self.data_dir / self.image_dir
        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist; CelebA's images go in {self.image_dir}/")
        paths = [root / n for n in names]
        if missing := [p for p in paths[:1000] if not p.is_file()]:
            raise DataError(f"{missing[0]} (listed in {self.attr_file}) does not exist; check --data.image_dir")
        order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(self.split_seed))
        n_test = min(self.num_test, len(paths) - 1)
        if n_test < 1:
            raise DataError(f"{self.attr_file} lists {len(paths)} image(s): too few to hold any out for test")
        size, channels, crop = self.image_size, self.channels, self.crop_size
        train, test = (ImageFileDataset([paths[i] for i in idx.tolist()], labels[idx],
                                        FolderImageTransform(size, channels, crop, flip, squash=True), named=True)
                       for idx, flip in ((order[n_test:], self.flip), (order[:n_test], False)))
        return {"train": train, "val": test, "test": test}


class DomainFolderDataModule(TranslationDataModule, ImageFolderDataModule):
    """Folder-per-domain images for StarGAN (``data_dir/<domain>/``; sorted folder names → class indices ``label``),
    i.e. ``ImageFolderDataModule`` with ``use_subfolders_as_classes`` always true, whose ``predict`` translates the
    test split (or a ``predict_dir``) and which exposes ``domain_names``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["use_subfolders_as_classes"] = True
        super().__init__(*args, **kwargs)
        self.domain_names = list(self.class_names or [])
        if len(self.domain_names) < 2:
            raise DataError(f"{self.data_dir} has {len(self.domain_names)} domain folder(s); StarGAN needs at least "
                            "2 sub-folders of images, one per domain")

    def predict_split_dataset(self) -> Dataset:
        return _Named(self.dataset("test"))


class _Named(Dataset):
    """Adds ``name`` (the file's name) and ``index`` to the items of an ``ImageFileDataset``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        paths = getattr(self.dataset, "paths", None)
        return {**self.dataset[i], "name": paths[i].name if paths is not None else f"{i:06d}.png", "index": i}
