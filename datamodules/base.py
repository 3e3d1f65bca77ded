"""The generic image datamodule: splits, seeded and resumable train loader, eval loaders, and the predict loader.

A subclass supplies ``build_datasets()`` (``{"train", "val", "test"}`` -> map-style datasets whose items, or batches
from ``__getitems__``, are dicts with ``image`` float32 (C, H, W) in [-1, 1] and, where the data has classes,
``label`` int64) and sets the class attributes ``native_size``/``native_channels``/``native_num_classes``.
``image_size``, ``channels`` and ``num_classes`` are known right after ``__init__`` (the CLI links them into the
model before any ``setup``). Subclasses declare only the arguments they add or whose defaults differ and pass the
rest on through ``*args``/``**kwargs`` (jsonargparse follows that chain, so the CLI lists every argument). Nothing
here knows about models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from .errors import DataError
from .samplers import ResumableDataLoader, SeededRandomSampler
from .transforms import ResizeMode, fit_batch

SPLITS = ("train", "val", "test")


def collate(batch: Any) -> Any:
    """``default_collate``, except that a batch a dataset's ``__getitems__`` already built is passed through."""
    return batch if isinstance(batch, dict) else default_collate(batch)


class BatchDataset(Dataset):
    """A dataset that builds whole batches in ``__getitems__`` (a dict of (N, ...) tensors or lists); an item is a
    batch of one."""

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return {key: value[0] for key, value in self.__getitems__([i]).items()}


class TensorImageDataset(BatchDataset):
    """uint8 images (N, C, H, W) and int labels (N,) (None: no ``label`` key) held in memory; each batch is converted
    at once to ``channels`` and ``image_size`` (``fit_square`` with ``resize_mode``)."""

    def __init__(self, images: Tensor, labels: Tensor | None, image_size: int, channels: int,
                 resize_mode: ResizeMode = "resize") -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, None if labels is None else labels.to(torch.int64)
        self.image_size, self.channels, self.resize_mode = image_size, channels, resize_mode

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: list[int]) -> dict[str, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        batch = {"image": fit_batch(self.images[index], self.image_size, self.channels, self.resize_mode)}  # (N,C,H,W)
        if self.labels is not None:
            batch["label"] = self.labels[index]  # (N,)
        return batch


def random_split(n: int, val_fraction: float, test_fraction: float = 0.0, seed: int = 0) -> dict[str, Tensor]:
    """Index tensors for train/val/test from one permutation seeded with ``seed``; a nonzero fraction holds out at
    least one item. With ``test_fraction == 0`` the test split is the validation split (the same tensor).

    Raises:
        DataError: the data are too few for the requested fractions.
    """
    n_val, n_test = (max(1, round(n * fraction)) if fraction > 0 else 0 for fraction in (val_fraction, test_fraction))
    if n - n_val - n_test < 1:
        raise DataError(f"{n} images cannot be split into val_fraction={val_fraction:g} and test_fraction="
                        f"{test_fraction:g} with any left to train on; add images or lower the fractions")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, test = order[:n_val], order[n_val : n_val + n_test]
    return {"train": order[n_val + n_test :], "val": val, "test": test if n_test else val}


class ImageDataModule(L.LightningDataModule):
    """Base of every image datamodule (see the module docstring for what a subclass supplies); the other classes
    document only the arguments they add.

    Args:
        data_dir: where the data live (or go, for downloads); ``None`` means the subclass's ``default_data_dir``.
        image_size: side of the square images in the batches; ``None`` keeps the native size.
        channels: 1 or 3; ``None`` keeps the native channels (gray is repeated to RGB, RGB is mixed to luma).
        batch_size: train batch size.
        eval_batch_size: val/test batch size; ``None`` means ``batch_size``.
        num_workers: loader worker processes (0 is best for in-memory data; the batches are sliced, not decoded).
        val_fraction: share of the training data held out for validation, where the dataset has no fixed split.
        split_seed: seed of that random split (apart from ``seed``: runs of different seeds validate on the same data).
        seed: seed of the train order (epoch ``e`` uses ``seed + e``; independent of the global RNG).
        num_predict: how many samples ``predict`` draws (``{"index": i}`` for ``i < num_predict``).
        predict_batch_size: batch size of the predict loader.
        drop_last: drop the last incomplete train batch (BatchNorm and the GAN losses prefer equal batches).
        pin_memory: pin host memory for faster copies to the GPU; ``None`` means "if CUDA is available".
        limit_train_images: train on a fixed subset of this many training images (data-efficient GAN training),
            drawn with ``split_seed`` and kept in their order; val and test are unchanged. ``None``: all of them.
    """

    native_size: ClassVar[int] = 64
    native_channels: ClassVar[int] = 3
    native_num_classes: ClassVar[int | None] = None
    default_data_dir: ClassVar[str | None] = None
    #: the ``torchvision.datasets`` class (and its arguments) that downloads the files, for ``download``.
    torchvision_name: ClassVar[str] = ""
    torchvision_args: ClassVar[dict[str, Any]] = {}
    download: bool = False  # subclasses that can download set it from their ``download`` argument

    def __init__(self, data_dir: str | None = None, image_size: int | None = None, channels: int | None = None,
                 batch_size: int = 128, eval_batch_size: int | None = None, num_workers: int = 0,
                 val_fraction: float = 0.1, split_seed: int = 0, seed: int = 0, num_predict: int = 64,
                 predict_batch_size: int = 64, drop_last: bool = True, pin_memory: bool | None = None,
                 limit_train_images: int | None = None) -> None:
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
        for name, value in (("batch_size", batch_size), ("predict_batch_size", predict_batch_size),
                            ("eval_batch_size", 1 if eval_batch_size is None else eval_batch_size)):
            if value < 1:
                raise DataError(f"{name} must be at least 1, got {value}")
        if not 0 <= val_fraction < 1:
            raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if num_predict < 0 or num_workers < 0:
            raise DataError(f"num_predict and num_workers must be >= 0, got {num_predict} and {num_workers}")
        if limit_train_images is not None and limit_train_images < 1:
            raise DataError(f"limit_train_images must be at least 1 (or null for all), got {limit_train_images}")
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size or batch_size, num_workers
        self.val_fraction, self.split_seed, self.seed = val_fraction, split_seed, seed
        self.num_predict, self.predict_batch_size, self.drop_last = num_predict, predict_batch_size, drop_last
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.limit_train_images = limit_train_images
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
            if self.limit_train_images is not None:
                datasets["train"] = self.limit_train(datasets["train"], self.limit_train_images)
            self.datasets = datasets

    def limit_train(self, dataset: Dataset, k: int) -> Dataset:
        """The sorted first ``k`` of ``torch.randperm`` seeded with ``split_seed``; a dataset with its own
        ``subset(k, generator)`` (unpaired domains) draws them itself.

        Raises:
            DataError: ``k`` is larger than the split.
        """
        if k > len(dataset):
            raise DataError(f"limit_train_images={k} is larger than the train split ({len(dataset)} images); lower "
                            "it or set it to null")
        generator = torch.Generator().manual_seed(self.split_seed)
        if callable(subset := getattr(dataset, "subset", None)):
            return subset(k, generator)
        return Subset(dataset, torch.randperm(len(dataset), generator=generator)[:k].sort().values.tolist())

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (``train``, ``val`` or ``test``), setting up on first use."""
        self.setup()
        return self.datasets[split]

    # ---------------------------------------------------------------- files
    def find_data(self) -> Any:
        """Where the files are (subclass-specific), or ``None`` when they are missing."""
        raise NotImplementedError

    def fetch_data(self) -> None:
        """Download the files into ``data_dir`` with ``torchvision.datasets.<torchvision_name>``."""
        from torchvision import datasets

        getattr(datasets, self.torchvision_name)(root=str(self.data_dir), download=True, **self.torchvision_args)

    def missing_error(self, extra: str = "") -> DataError:
        """The one-line error for missing files, with ``extra`` (why downloading failed) before the advice."""
        return DataError(f"{type(self).__name__} found no data in {self.data_dir}{extra}")

    def locate(self) -> Any:
        """``find_data()``, downloading first when it finds nothing and ``download`` is set.

        Raises:
            DataError: the files are missing (``missing_error``, with the first line of a failed download's error).
        """
        if (found := self.find_data()) is None and self.download:
            try:
                self.fetch_data()
            except Exception as err:  # noqa: BLE001 - offline, proxy, Drive quota, checksum, disk full: one line
                raise self.missing_error(f"; downloading failed: {(str(err) or repr(err)).splitlines()[0]}") from None
            found = self.find_data()
        if found is None:
            raise self.missing_error()
        return found

    def prepare_data(self) -> None:
        if self.download:
            self.locate()

    # --------------------------------------------------------------- loaders
    def _loader(self, dataset: Dataset, batch_size: int, cls: type[DataLoader] = DataLoader, **kwargs) -> DataLoader:
        return cls(dataset, batch_size=batch_size, num_workers=self.num_workers, pin_memory=self.pin_memory,
                   persistent_workers=self.num_workers > 0, collate_fn=collate, **kwargs)

    def train_sampler(self, dataset: Dataset) -> SeededRandomSampler:
        """The train order, shared out among DDP processes: ``SeededRandomSampler(seed)``, or the dataset's own
        ``train_sampler(seed)`` (unpaired domains: a random B for each A)."""
        own = getattr(dataset, "train_sampler", None)
        return own(self.seed) if callable(own) else SeededRandomSampler(len(dataset), self.seed)

    def train_dataloader(self) -> DataLoader:
        """Shuffled by ``train_sampler``; resumable mid-epoch from a checkpoint (``ResumableDataLoader``)."""
        dataset = self.dataset("train")
        sampler = self.train_sampler(dataset)
        if self.drop_last and len(sampler) < self.batch_size:
            share = f" ({len(sampler)} per process on {sampler.num_replicas})" if sampler.num_replicas > 1 else ""
            raise DataError(f"the train split has {len(dataset)} images{share}, fewer than batch_size="
                            f"{self.batch_size}, so drop_last leaves no batch; lower --data.batch_size or set "
                            "--data.drop_last false")
        return self._loader(dataset, self.batch_size, ResumableDataLoader, sampler=sampler, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        """Batches ``{"index": LongTensor (N,)}`` over ``range(num_predict)``, each index once, in order (a generator
        draws sample ``i`` from seed ``i``)."""
        return DataLoader(range(self.num_predict), batch_size=self.predict_batch_size,
                          collate_fn=lambda indices: {"index": torch.tensor(indices, dtype=torch.int64)})


class InMemoryImageDataModule(ImageDataModule):
    """Base of the datasets small enough to hold as one uint8 tensor (MNIST, Fashion-MNIST, CIFAR-10): a subclass
    implements ``load_arrays()`` -> ``{"train", "val", "test"}`` -> ``(images uint8 (N, C, H, W), labels)``.

    Args:
        resize_mode: how to reach a larger ``image_size``: ``resize`` (bilinear, antialiased) or ``pad`` (centre on a
            black background, e.g. MNIST 28 -> 32 as in LeNet-5).
    """

    def __init__(self, *args: Any, resize_mode: ResizeMode = "resize", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if resize_mode not in ("resize", "pad"):
            raise DataError(f"resize_mode must be 'resize' or 'pad', got {resize_mode!r}")
        if resize_mode == "pad" and self.image_size < self.native_size:
            raise DataError(f"resize_mode 'pad' cannot shrink {self.native_size}px images to image_size="
                            f"{self.image_size}; use resize_mode 'resize' or a larger image_size")
        self.resize_mode = resize_mode

    def load_arrays(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        raise NotImplementedError

    def split_arrays(self, images: Tensor, labels: Tensor, test: tuple[Tensor, Tensor] | None = None
                     ) -> dict[str, tuple[Tensor, Tensor]]:
        """``val_fraction`` of ``images``/``labels`` held out for val (``random_split`` seeded by ``split_seed``);
        test is ``test`` or, without one, the val arrays themselves."""
        splits = random_split(len(images), self.val_fraction, 0.0, self.split_seed)
        arrays = {split: (images[splits[split]], labels[splits[split]]) for split in ("train", "val")}
        arrays["test"] = arrays["val"] if test is None else test
        return arrays

    def build_datasets(self) -> dict[str, Dataset]:
        splits = self.load_arrays()  # a split that reuses another's arrays (test = val) shares its dataset
        built = {id(arrays): TensorImageDataset(*arrays, self.image_size, self.channels, self.resize_mode)
                 for arrays in splits.values()}
        return {split: built[id(arrays)] for split, arrays in splits.items()}
