"""CelebA aligned faces, unlabeled (attribute-conditioned variants subclass this)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset

from . import folder
from .errors import DataError
from .folder import CheckMode
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
    """CelebA aligned and cropped faces (202,599 images of 178x218), preprocessed as in DCGAN: centre crop 178,
    resize to ``image_size`` (default 64). No ``label`` key; ``num_classes`` is None.

    Layouts, in order: ``<data_dir>/img_align_celeba/`` or ``<data_dir>/celeba/img_align_celeba/`` (torchvision's;
    nested folders from a Kaggle zip also work) with ``list_eval_partition.txt`` (or Kaggle's ``.csv``) beside it,
    whose official split (162,770 / 19,867 / 19,962) is used; without the partition file, or for any other folder of
    face images in ``data_dir``, a random split (``val_fraction``, ``test_fraction``, ``split_seed``). Unreadable
    files are handled as in ``ImageFolderDataModule`` (skipped with a counted warning).

    Dataset: CelebA (Z. Liu, P. Luo, X. Wang, X. Tang, ICCV 2015); non-commercial research use only.

    Args:
        data_dir: default ``./data/celeba``.
        download: download with torchvision (``prepare_data``); Google Drive often refuses with a quota error.
        image_size: ``None`` = 64.
        channels: ``None`` = 3.
        crop_size: centre crop before resizing (178 keeps the face, as in DCGAN); ``None`` resizes the whole image.
        flip: random horizontal flips of train images.
        check_images: ``header``, ``full`` or ``none`` (see ``ImageFolderDataModule``).
        val_fraction: val share, only for a random split.
        test_fraction: test share, only for a random split (0 makes test the val images).
        num_workers: decoding worker processes.
        **kwargs: the other arguments of ``ImageDataModule``.
    """

    default_data_dir: ClassVar[str | None] = "./data/celeba"

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = False,
        image_size: int | None = None,
        channels: int | None = None,
        crop_size: int | None = 178,
        flip: bool = False,
        check_images: CheckMode = "header",
        val_fraction: float = 0.05,
        test_fraction: float = 0.0,
        num_workers: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            image_size=image_size,
            channels=channels,
            use_subfolders_as_classes=False,
            crop_size=crop_size,
            flip=flip,
            check_images=check_images,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            num_workers=num_workers,
            **kwargs,
        )
        self.download = download

    def find_layout(self) -> tuple[Path, Path | None] | None:
        """``(image folder, partition file or None)``, or ``None`` if ``data_dir`` does not exist."""
        assert self.data_dir is not None
        for root in (self.data_dir, self.data_dir / "celeba"):
            if (root / "img_align_celeba").is_dir():
                partition = next((root / n for n in PARTITION_FILES if (root / n).is_file()), None)
                return root / "img_align_celeba", partition
        return (self.data_dir, None) if self.data_dir.is_dir() else None

    def _missing_error(self, extra: str = "") -> DataError:
        return DataError(
            f"CelebA not found in {self.data_dir} (expected img_align_celeba/ and list_eval_partition.txt there or in "
            f"celeba/, or a folder of face images){extra}; download img_align_celeba.zip and list_eval_partition.txt "
            f"from {CELEBA_PAGE} into {self.data_dir}, or pass --data.download true"
        )

    def _download(self) -> None:
        from torchvision.datasets import CelebA

        try:
            CelebA(root=str(self.data_dir), split="all", target_type=[], download=True)
        except Exception as err:  # noqa: BLE001 - offline, Drive quota, checksum: one line
            raise self._missing_error(f"; downloading failed: {str(err).splitlines()[0] if str(err) else err!r}")

    def prepare_data(self) -> None:
        if self.download and self.find_layout() is None:
            self._download()

    def image_root(self) -> Path:
        layout = self.find_layout()
        if layout is None and self.download:
            self._download()
            layout = self.find_layout()
        if layout is None:
            raise self._missing_error()
        return layout[0]

    def build_datasets(self) -> dict[str, Dataset]:
        layout = self.find_layout()
        if layout is None or layout[1] is None:
            return super().build_datasets()  # random split of a plain folder (or the download path)
        images_dir, partition_file = layout
        partition = read_partition(partition_file)
        paths = folder.list_images(images_dir)
        if not paths:
            raise folder.empty_folder_error(images_dir)
        listed = [path for path in paths if path.name in partition]
        if not listed:
            raise DataError(
                f"none of the {len(paths)} images in {images_dir} is listed in {partition_file}; use the matching "
                "partition file or remove it for a random split"
            )
        if unlisted := len(paths) - len(listed):
            rank_zero_warn(f"CelebADataModule: ignored {unlisted} images not listed in {partition_file}")
        if absent := len(partition) - len({path.name for path in listed}):
            rank_zero_warn(f"CelebADataModule: {absent} files listed in {partition_file} are missing in {images_dir}")
        paths, _ = self.readable(listed, None)
        splits: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for i, path in enumerate(paths):
            splits[partition[path.name]].append(i)
        if empty := [split for split, index in splits.items() if not index]:
            raise DataError(
                f"the {', '.join(empty)} split of {partition_file} has no images in {images_dir}; extract all images "
                "or remove the partition file for a random split"
            )
        return self.make_datasets(paths, None, splits)
