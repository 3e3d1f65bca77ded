"""The generic image datamodule: splits, seeded and resumable train loader, eval loaders, and the predict loader.

A subclass supplies ``build_datasets()`` (``{"train", "val", "test"}`` -> map-style datasets whose items, or batches
from ``__getitems__``, are dicts with ``image`` float32 (C, H, W) in [-1, 1] and, where the data has classes,
``label`` int64) and sets the class attributes ``native_size``/``native_channels``/``native_num_classes``.
``image_size``, ``channels`` and ``num_classes`` are known right after ``__init__`` (the CLI links them into the
model before any ``setup``). Nothing here knows about models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from .errors import DataError
from .samplers import ResumableDataLoader, SeededRandomSampler
from .transforms import ResizeMode, fit_batch

SPLITS = ("train", "val", "test")


def collate(batch: Any) -> Any:
    """``default_collate``, except that a batch a dataset's ``__getitems__`` already built is passed through."""
    return batch if isinstance(batch, dict) else default_collate(batch)


class IndexDataset(Dataset):
    """``{"index": i}`` for ``i`` in ``range(n)``: what a generator needs to draw sample ``i`` from seed ``i``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, int]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {"index": i}


class TensorImageDataset(Dataset):
    """uint8 images (N, C, H, W) and optional int labels held in memory; converted a whole batch at a time.

    Args:
        images: uint8 tensor (N, C, H, W).
        labels: int tensor (N,), or None for unlabeled data (items then have no ``label`` key).
        image_size: output side; other sizes are resized (antialiased) or padded, see ``resize_mode``.
        channels: output channels (1 or 3).
        resize_mode: ``resize`` or ``pad`` (centre on a black background).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None,
        image_size: int,
        channels: int,
        resize_mode: ResizeMode = "resize",
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = None if labels is None else labels.to(torch.int64)
        self.image_size, self.channels, self.resize_mode = image_size, channels, resize_mode

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        batch = {"image": fit_batch(self.images[index], self.image_size, self.channels, self.resize_mode)}  # (N,C,H,W)
        if self.labels is not None:
            batch["label"] = self.labels[index]  # (N,)
        return batch

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return {key: value[0] for key, value in self.__getitems__([i]).items()}


def split_count(n: int, fraction: float) -> int:
    """``round(n * fraction)``, but at least 1 when ``fraction > 0``."""
    return max(1, round(n * fraction)) if fraction > 0 else 0


def random_split(n: int, val_fraction: float, test_fraction: float = 0.0, seed: int = 0) -> dict[str, Tensor]:
    """Index tensors for train/val/test from one permutation seeded with ``seed``.

    With ``test_fraction == 0`` the test split is the validation split (there is no other held-out data).

    Raises:
        DataError: the data are too few for the requested fractions.
    """
    n_val, n_test = split_count(n, val_fraction), split_count(n, test_fraction)
    if n - n_val - n_test < 1:
        raise DataError(
            f"{n} images cannot be split into val_fraction={val_fraction:g} and test_fraction={test_fraction:g} "
            "with any left to train on; add images or lower the fractions"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, test = order[:n_val], order[n_val : n_val + n_test]
    return {"train": order[n_val + n_test :], "val": val, "test": test if n_test else val}


class ImageDataModule(L.LightningDataModule):
    """Base of every image datamodule (see the module docstring for what a subclass supplies).

    Args:
        data_dir: where the data live (or go, for downloads); ``None`` means the subclass's ``default_data_dir``.
        image_size: side of the square images in the batches; ``None`` keeps the native size.
        channels: 1 or 3; ``None`` keeps the native channels (gray is repeated to RGB, RGB is mixed to luma).
        batch_size: train batch size.
        eval_batch_size: val/test batch size; ``None`` means ``batch_size``.
        num_workers: loader worker processes (0 is best for in-memory data; the batches are sliced, not decoded).
        val_fraction: share of the training data held out for validation, where the dataset has no fixed split.
        split_seed: seed of that random split; separate from ``seed`` so that runs with different seeds are validated
            on the same images.
        seed: seed of the train order (epoch ``e`` uses ``seed + e``; independent of the global RNG).
        num_predict: how many samples ``predict`` draws (``{"index": i}`` for ``i < num_predict``).
        predict_batch_size: batch size of the predict loader.
        drop_last: drop the last incomplete train batch (BatchNorm and the GAN losses prefer equal batches).
        pin_memory: pin host memory for faster copies to the GPU; ``None`` means "if CUDA is available".
    """

    native_size: ClassVar[int] = 64
    native_channels: ClassVar[int] = 3
    native_num_classes: ClassVar[int | None] = None
    default_data_dir: ClassVar[str | None] = None

    def __init__(
        self,
        data_dir: str | None = None,
        image_size: int | None = None,
        channels: int | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        seed: int = 0,
        num_predict: int = 64,
        predict_batch_size: int = 64,
        drop_last: bool = True,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__()
        data_dir = data_dir if data_dir is not None else self.default_data_dir
        self.data_dir: Path | None = Path(data_dir).expanduser() if data_dir is not None else None
        self.image_size: int = self.native_size if image_size is None else int(image_size)
        self.channels: int = self.native_channels if channels is None else int(channels)
        self.num_classes: int | None = self.native_num_classes
        if self.image_size < 1:
            raise DataError(f"image_size must be a positive number of pixels, got {image_size}")
        if self.channels not in (1, 3):
            raise DataError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        for name, value in (("batch_size", batch_size), ("predict_batch_size", predict_batch_size)):
            if value < 1:
                raise DataError(f"{name} must be at least 1, got {value}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise DataError(f"eval_batch_size must be at least 1, got {eval_batch_size}")
        if not 0 <= val_fraction < 1:
            raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if num_predict < 0 or num_workers < 0:
            raise DataError(f"num_predict and num_workers must be >= 0, got {num_predict} and {num_workers}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.seed = seed
        self.num_predict = num_predict
        self.predict_batch_size = predict_batch_size
        self.drop_last = drop_last
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.datasets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ data
    def build_datasets(self) -> dict[str, Dataset]:
        """Return ``{"train", "val", "test"}`` datasets (called once, by the first ``setup``)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            datasets = self.build_datasets()
            if missing := [split for split in SPLITS if split not in datasets]:
                raise RuntimeError(f"{type(self).__name__}.build_datasets() returned no {missing}")
            self.datasets = datasets

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (``train``, ``val`` or ``test``), setting up on first use."""
        self.setup()
        return self.datasets[split]

    # --------------------------------------------------------------- loaders
    def _loader_kwargs(self) -> dict[str, Any]:
        return {
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.num_workers > 0,
            "collate_fn": collate,
        }

    def train_dataloader(self) -> DataLoader:
        """Shuffled by ``SeededRandomSampler(seed)``; resumable mid-epoch from a checkpoint (``ResumableDataLoader``)."""
        dataset = self.dataset("train")
        if self.drop_last and len(dataset) < self.batch_size:
            raise DataError(
                f"the train split has {len(dataset)} images, fewer than batch_size={self.batch_size}, so drop_last "
                "leaves no batch; lower --data.batch_size or set --data.drop_last false"
            )
        sampler = SeededRandomSampler(len(dataset), self.seed)
        return ResumableDataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, drop_last=self.drop_last, **self._loader_kwargs()
        )

    def _eval_dataloader(self, split: str) -> DataLoader:
        return DataLoader(self.dataset(split), batch_size=self.eval_batch_size, shuffle=False, **self._loader_kwargs())

    def val_dataloader(self) -> DataLoader:
        return self._eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        """Batches ``{"index": LongTensor (N,)}`` over ``range(num_predict)``, each index once, in order."""
        return DataLoader(IndexDataset(self.num_predict), batch_size=self.predict_batch_size, shuffle=False)


class InMemoryImageDataModule(ImageDataModule):
    """Base of the datasets small enough to hold as one uint8 tensor (MNIST, Fashion-MNIST, CIFAR-10).

    A subclass implements ``load_arrays()`` -> ``{"train", "val", "test"}`` -> ``(images, labels)`` with images
    uint8 (N, C, H, W) at the native size; this class converts whole batches to the requested size and channels.

    Args:
        resize_mode: how to reach a larger ``image_size``: ``resize`` (bilinear, antialiased) or ``pad`` (centre on a
            black background, e.g. MNIST 28 -> 32 as in LeNet-5; smaller sizes always resize).
        **kwargs: the arguments of ``ImageDataModule``.
    """

    def __init__(self, resize_mode: ResizeMode = "resize", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if resize_mode not in ("resize", "pad"):
            raise DataError(f"resize_mode must be 'resize' or 'pad', got {resize_mode!r}")
        if resize_mode == "pad" and self.image_size < self.native_size:
            raise DataError(
                f"resize_mode 'pad' cannot shrink {self.native_size}px images to image_size={self.image_size}; "
                "use resize_mode 'resize' or a larger image_size"
            )
        self.resize_mode = resize_mode

    def load_arrays(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        raise NotImplementedError

    def build_datasets(self) -> dict[str, Dataset]:
        datasets: dict[str, Dataset] = {}
        built: dict[int, Dataset] = {}  # a split that reuses another's arrays (test = val) shares its dataset
        for split, arrays in self.load_arrays().items():
            if id(arrays) not in built:
                built[id(arrays)] = TensorImageDataset(*arrays, self.image_size, self.channels, self.resize_mode)
            datasets[split] = built[id(arrays)]
        return datasets
