"""Any folder of images (LSUN exports, scraped sets, your own data), and folder-per-domain images for StarGAN."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import Dataset

from . import cache, folder
from .base import ImageDataModule, random_split
from .errors import DataError
from .folder import CheckMode, FolderImageTransform, ImageFileDataset
from .translation import TranslationDataModule


class ImageFolderDataModule(ImageDataModule):
    """Every image under ``data_dir`` (``.jpg .jpeg .png .bmp .webp``, recursive, hidden files skipped), converted
    to ``channels`` (transparency composited over white), centre-cropped to ``crop_size``, its shorter side resized to
    ``image_size`` (small images upscaled), centre-cropped to a square and flipped at random in training. Splits are
    random over the readable files (seeded by ``split_seed``). ``setup`` **skips** files PIL cannot read, with one
    warning that counts them; a file that passes the check but fails to decode later raises a ``DataError`` naming it.
    Dataset: yours; respect its licence (LSUN: F. Yu et al. 2015, research use).

    Args:
        use_subfolders_as_classes: each top-level subfolder is a class (sorted names -> labels 0..K-1; batches get
            ``label`` and ``num_classes`` is K); images directly in ``data_dir`` are then ignored.
        crop_size: square centre crop before resizing (capped at the shorter side); ``None`` for none.
        flip: random horizontal flips of train images.
        check_images: ``header`` (PIL's ``verify``: the header and, for PNG, chunk CRCs), ``full`` (decodes every
            pixel: slow, but also catches truncated JPEG data) or ``none``.
        test_fraction: share of the images for test; 0 makes test the val images.
        cache_dir: decode and resize every readable image once into a uint8 file in this folder and train from a
            memory map of it (``datamodules.cache``: rebuilt when the files or the size change, flips on the device).
            None: decode files every epoch.
        cache_on_gpu: with ``cache_dir``, hold the whole cache on the GPU (batches are then only indices). None:
            when it takes less than half the free GPU memory.
    """

    def __init__(self, *args: Any, use_subfolders_as_classes: bool = False, crop_size: int | None = None,
                 flip: bool = False, check_images: CheckMode = "header", val_fraction: float = 0.05,
                 test_fraction: float = 0.0, num_workers: int = 4, cache_dir: str | None = None,
                 cache_on_gpu: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, val_fraction=val_fraction, num_workers=num_workers, **kwargs)
        if check_images not in ("header", "full", "none"):
            raise DataError(f"check_images must be 'header', 'full' or 'none', got {check_images!r}")
        if crop_size is not None and crop_size < 1:
            raise DataError(f"crop_size must be a positive number of pixels or null, got {crop_size}")
        if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise DataError(f"need 0 <= test_fraction and val_fraction + test_fraction < 1, got {test_fraction}")
        self.use_subfolders_as_classes, self.crop_size, self.flip = use_subfolders_as_classes, crop_size, flip
        self.check_images, self.test_fraction, self.cache_dir, self.cache_on_gpu = (check_images, test_fraction,
                                                                                    cache_dir, cache_on_gpu)
        self._device_cache: Tensor | None = None
        self.class_names: list[str] | None = None
        if use_subfolders_as_classes:  # num_classes must be known now, before setup
            root = self.image_root()
            self.class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            if not self.class_names:
                raise DataError(f"use_subfolders_as_classes needs one subfolder of images per class in {root}, found "
                                "none; set --data.use_subfolders_as_classes false")
            self.num_classes = len(self.class_names)

    def image_root(self) -> Path:
        """The folder to read (CelebA narrows it to ``img_align_celeba``)."""
        if self.data_dir is None:
            raise DataError(f"{type(self).__name__} needs --data.data_dir, the folder of images")
        if not self.data_dir.is_dir():
            folder.list_images(self.data_dir)  # raises the "does not exist" / "not a folder" error
        return self.data_dir

    def transform(self, train: bool) -> FolderImageTransform:
        return FolderImageTransform(self.image_size, self.channels, self.crop_size, flip=self.flip and train)

    def collect_files(self) -> tuple[list[Path], list[int] | None]:
        """All image paths under ``image_root()`` and, with subfolder classes, their labels."""
        root = self.image_root()
        if not self.class_names:
            return folder.list_images(root, required=True), None
        paths, labels = [], []
        for label, name in enumerate(self.class_names):
            if not (found := folder.list_images(root / name)):
                raise DataError(f"class folder {root / name} has no images ({', '.join(folder.IMAGE_EXTENSIONS)}); "
                                "add some or remove the folder")
            paths += found
            labels += [label] * len(found)
        if loose := folder.list_images(root, recursive=False):
            rank_zero_warn(f"{type(self).__name__}: ignored {len(loose)} images directly in {root} (not in a class)")
        return paths, labels

    def make_datasets(self, paths: Sequence[Path], labels: Sequence[int] | None,
                      splits: Mapping[str, Sequence[int] | Tensor]) -> dict[str, Dataset]:
        """One dataset per split from indices into ``paths``/``labels``: an ``ImageFileDataset`` (flips only in train)
        or, with ``cache_dir``, a ``CachedImageDataset``; a test split that *is* the val index object shares val's."""
        images = self._open_cache(paths) if self.cache_dir is not None else None
        datasets: dict[str, Dataset] = {}
        for split, index in splits.items():
            if split == "test" and index is splits.get("val"):  # test_fraction 0: test is val
                datasets[split] = datasets["val"]
                continue
            rows = [int(i) for i in index]
            files, split_labels = [paths[i] for i in rows], None if labels is None else [labels[i] for i in rows]
            if images is None:
                datasets[split] = ImageFileDataset(files, split_labels, self.transform(split == "train"))
            else:
                datasets[split] = cache.CachedImageDataset(images, rows, split_labels, files)
                datasets[split].indices_only = self._device_cache is not None
        return datasets

    def _open_cache(self, paths: Sequence[Path]) -> Tensor:
        """The decoded uint8 images of ``paths`` (``datamodules.cache``), also held on the GPU when wanted."""
        root = Path(os.path.commonpath([str(p.parent) for p in paths]))
        images = cache.build_or_load(paths, root, self.transform(False), self.cache_dir, self.num_workers)
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        on_gpu = self.cache_on_gpu
        if on_gpu is None:  # automatic: when it takes less than half the free memory of a CUDA device
            on_gpu = device.type == "cuda" and images.nbytes < 0.5 * torch.cuda.mem_get_info(device)[0]
        if on_gpu and device.type != "cuda":
            raise DataError("cache_on_gpu needs a CUDA trainer; set --data.cache_on_gpu null or false")
        self._device_cache = images.to(device) if on_gpu else None
        return images

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Cached batches (uint8 or cache indices) → float images in [-1, 1], flipped on the device in training."""
        if isinstance(batch, dict) and ("image_u8" in batch or "cache_index" in batch):
            training = getattr(self, "trainer", None) is not None and self.trainer.training
            return cache.device_batch(batch, self._device_cache, flip=self.flip and training)
        return batch

    def readable(self, paths: list[Path], labels: list[int] | None) -> tuple[list[Path], list[int] | None]:
        """Drop the files ``check_images`` finds unreadable (with a counted warning)."""
        good = folder.check_images(paths, self.check_images, type(self).__name__)
        return [paths[i] for i in good], None if labels is None else [labels[i] for i in good]

    def build_datasets(self) -> dict[str, Dataset]:
        paths, labels = self.readable(*self.collect_files())
        splits = random_split(len(paths), self.val_fraction, self.test_fraction, self.split_seed)
        return self.make_datasets(paths, labels, splits)


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
        test = self.dataset("test")  # its files (also with a cache: the items are named after them)
        return ImageFileDataset(test.paths, test.labels, self.transform(False), named=True)
