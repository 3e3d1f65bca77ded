"""The shared base of the image-to-image translation datamodules: ``paired`` (pix2pix), ``unpaired`` (CycleGAN),
``celeba`` and ``image_folder`` (CelebA attributes and folder-per-domain, StarGAN); ``offline_tasks`` builds one of
each from Fashion-MNIST and the embedded MNIST. Batches: ``{"source", "target"}`` for paired data, ``{"a", "b"}``
for unpaired data, ``{"image", "label"}`` for domain labels (a float 0/1 attribute vector or a class index), all
images float32 (N, C, H, W) in [-1, 1]. ``predict`` translates the test split, or every image of ``predict_dir`` at
its own size (batch 1; the model pads to what its generator needs and crops back), and yields ``name`` (the file
name to keep) and ``index``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from torch.utils.data import DataLoader, Dataset

from .base import ImageDataModule, collate
from .errors import DataError
from .folder import FolderImageTransform, ImageFileDataset, list_images


class TranslationDataModule(ImageDataModule):
    """Shared predict logic: ``predict_dir`` (a folder of inputs) or the test split.

    Args:
        predict_dir: folder of images to translate (None: the test split).
        predict_keep_size: translate ``predict_dir`` images at their own size, one at a time (else resized to
            ``image_size`` and batched by ``predict_batch_size``).
    """

    def __init__(self, *args: Any, predict_dir: str | None = None, predict_keep_size: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.predict_dir = Path(predict_dir).expanduser() if predict_dir else None
        self.predict_keep_size = predict_keep_size
        self.predict_extra: dict[str, Any] = {}  # constant keys of every predicted item (e.g. the CycleGAN domain)

    def predict_files(self, paths: Sequence[Path], image_size: int | None) -> ImageFileDataset:
        """Image files to translate, resized to ``image_size`` squared (None: their own size), as items with
        ``name``, ``index`` and the ``predict_extra`` keys."""
        transform = FolderImageTransform(image_size, self.channels, squash=True)
        return ImageFileDataset(paths, None, transform, named=True, extra=self.predict_extra)

    def predict_split_dataset(self) -> Dataset:
        return self.dataset("test")

    def predict_dataloader(self) -> DataLoader:
        if self.predict_dir is None:
            return DataLoader(self.predict_split_dataset(), batch_size=self.predict_batch_size, collate_fn=collate)
        if not (paths := list_images(self.predict_dir)):
            raise DataError(f"no images in {self.predict_dir}; check --data.predict_dir")
        size = None if self.predict_keep_size else self.image_size
        return DataLoader(self.predict_files(paths, size), batch_size=1 if size is None else self.predict_batch_size,
                          collate_fn=collate)


class FileTranslationDataModule(TranslationDataModule):
    """Shared by the folder layouts of pix2pix and CycleGAN: ``data_dir`` is required, and train images are jittered
    as in the reference (resize to ``load_size``, random ``image_size`` crop, random flip); val/test are resized.
    Batch size 1, as in the reference.

    Args:
        load_size: resize side before the random crop (None: the reference's 286 for 256, scaled:
            ``round(image_size · 286/256)``; equal to ``image_size`` disables the crop jitter).
        flip: random horizontal flips of train images.
    """

    native_size: ClassVar[int] = 256
    layout: ClassVar[str] = ""  # what data_dir must hold, for the error message

    def __init__(self, *args: Any, load_size: int | None = None, flip: bool = True, num_workers: int = 4,
                 batch_size: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, num_workers=num_workers, batch_size=batch_size, **kwargs)
        if self.data_dir is None:
            raise DataError(f"{type(self).__name__} needs --data.data_dir (a folder with {self.layout})")
        self.load_size = round(self.image_size * 286 / 256) if load_size is None else load_size
        if self.load_size < self.image_size:
            raise DataError(f"load_size ({self.load_size}) must be >= image_size ({self.image_size})")
        self.flip = flip
