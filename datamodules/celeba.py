"""CelebA aligned faces, unlabeled (attribute-conditioned variants subclass this)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset

from . import folder
from .base import SPLITS
from .errors import DataError
from .image_folder import ImageFolderDataModule

CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
PARTITION_FILES = ("list_eval_partition.txt", "list_eval_partition.csv")
PARTITION_SPLITS = {0: "train", 1: "val", 2: "test"}


def read_partition(path: Path) -> dict[str, str]:
    """``list_eval_partition.txt`` (``000001.jpg 0``) or Kaggle's ``.csv`` (``image_id,partition`` header) ->
    file name -> ``train``/``val``/``test``."""
    result: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) not in PARTITION_SPLITS:
            if number == 1:  # a header
                continue
            raise DataError(f"{path} line {number} is not '<file name> <0|1|2>': {line.strip()!r}; restore the file")
        result[parts[0]] = PARTITION_SPLITS[int(parts[1])]
    return result


class CelebADataModule(ImageFolderDataModule):
    """CelebA aligned and cropped faces (202,599 images of 178x218), preprocessed as in DCGAN: centre crop
    ``crop_size`` 178, resize to ``image_size`` (default 64). No ``label`` key; ``use_subfolders_as_classes`` is
    always false.

    Layouts, in order: ``<data_dir>/img_align_celeba/`` or ``<data_dir>/celeba/img_align_celeba/`` (torchvision's;
    nested folders from a Kaggle zip also work) with ``list_eval_partition.txt`` (or Kaggle's ``.csv``) beside it,
    whose official split (162,770 / 19,867 / 19,962) is used; without the partition file, or for any other folder of
    face images in ``data_dir``, a random split (``val_fraction``, ``test_fraction``, ``split_seed``). Unreadable
    files are handled as in ``ImageFolderDataModule`` (skipped with a counted warning).

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
        if not (paths := folder.list_images(images_dir)):
            raise folder.empty_folder_error(images_dir)
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
