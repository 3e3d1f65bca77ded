"""CelebA aligned faces: unlabeled (``CelebADataModule``, a folder of faces) and with binary attributes for StarGAN
(``CelebAAttributesDataModule``, a float 0/1 vector per image)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import Dataset

from . import folder
from .base import SPLITS
from .errors import DataError
from .folder import FolderImageTransform, ImageFileDataset
from .image_folder import ImageFolderDataModule
from .translation import TranslationDataModule

CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")


def read_partition(path: Path) -> dict[str, str]:
    """``list_eval_partition.txt`` (``000001.jpg 0``) or Kaggle's ``.csv`` (``image_id,partition`` header) ->
    file name -> ``train``/``val``/``test`` (0/1/2)."""
    result: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) < len(SPLITS):
            result[parts[0]] = SPLITS[int(parts[1])]
        elif parts and number > 1:  # blank lines and a header are skipped
            raise DataError(f"{path} line {number} is not '<file name> <0|1|2>': {line.strip()!r}; restore the file")
    return result


class CelebADataModule(ImageFolderDataModule):
    """CelebA aligned and cropped faces (202,599 images of 178x218), an ``ImageFolderDataModule`` preprocessed as in
    DCGAN (centre crop ``crop_size`` 178, resize to ``image_size`` 64); no ``label`` key.

    ``<data_dir>/img_align_celeba/`` or ``<data_dir>/celeba/img_align_celeba/`` (torchvision's layout; nested folders
    from a Kaggle zip work) with ``list_eval_partition.txt`` (or Kaggle's ``.csv``) beside it use the official split
    (162,770 / 19,867 / 19,962); without the partition file, or for any other folder of faces, the split is random.
    Dataset: CelebA (Z. Liu, P. Luo, X. Wang, X. Tang, ICCV 2015); non-commercial research use only.

    Args:
        download: download with torchvision (``prepare_data``); Google Drive often refuses with a quota error.
    """

    default_data_dir: ClassVar[str | None] = "./data/celeba"
    torchvision_name: ClassVar[str] = "CelebA"
    torchvision_args: ClassVar[dict[str, Any]] = {"split": "all", "target_type": []}

    def __init__(self, *args: Any, download: bool = False, crop_size: int | None = 178, **kwargs: Any) -> None:
        super().__init__(*args, use_subfolders_as_classes=False, crop_size=crop_size, **kwargs)
        self.download = download

    def find_data(self) -> tuple[Path, Path | None] | None:
        """``(image folder, partition file or None)``, or ``None`` if ``data_dir`` does not exist."""
        assert self.data_dir is not None
        for root in (self.data_dir, self.data_dir / "celeba"):
            if (root / "img_align_celeba").is_dir():
                partition = next((root / n for n in PARTITION_FILES if (root / n).is_file()), None)
                return root / "img_align_celeba", partition
        return (self.data_dir, None) if self.data_dir.is_dir() else None

    def missing_error(self, extra: str = "") -> DataError:
        return DataError(f"CelebA not found in {self.data_dir} (expected img_align_celeba/ and list_eval_partition.txt "
                         f"there or in celeba/, or a folder of face images){extra}; download img_align_celeba.zip and "
                         f"list_eval_partition.txt from {CELEBA_PAGE} into {self.data_dir}, or pass --data.download "
                         "true")

    def image_root(self) -> Path:
        return self.locate()[0]

    def build_datasets(self) -> dict[str, Dataset]:
        layout = self.find_data()
        if layout is None or layout[1] is None:
            return super().build_datasets()  # random split of a plain folder (or the download path)
        images_dir, partition_file = layout
        partition = read_partition(partition_file)
        paths = folder.list_images(images_dir, required=True)
        if not (listed := [path for path in paths if path.name in partition]):
            raise DataError(f"none of the {len(paths)} images in {images_dir} is listed in {partition_file}; use the "
                            "matching partition file or remove it for a random split")
        if unlisted := len(paths) - len(listed):
            rank_zero_warn(f"CelebADataModule: ignored {unlisted} images not listed in {partition_file}")
        if absent := len(partition) - len({path.name for path in listed}):
            rank_zero_warn(f"CelebADataModule: {absent} files listed in {partition_file} are missing in {images_dir}")
        paths, _ = self.readable(listed, None)
        splits = {split: [i for i, path in enumerate(paths) if partition[path.name] == split] for split in SPLITS}
        if empty := [split for split, index in splits.items() if not index]:
            raise DataError(f"the {', '.join(empty)} split of {partition_file} has no images in {images_dir}; extract "
                            "all images or remove the partition file for a random split")
        return self.make_datasets(paths, None, splits)


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
    """CelebA faces with a chosen list of binary attributes, for StarGAN: ``label`` is a float 0/1 vector (N, K),
    ``domain_names`` the attributes, ``label_groups`` the indices of the selected hair colours (one-hot at test time).
    Preprocessing as yunjey/stargan: centre crop 178, resize to 128, random flips in training, batch size 16; the
    first ``num_test`` images of a permutation seeded by ``split_seed`` are the test set, which also serves as val.

    Args:
        attributes: attribute names (None: ``default_attributes``, the 5 of the paper).
        image_dir: image folder inside ``data_dir`` (file names as in the attribute file).
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
