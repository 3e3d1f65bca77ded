"""CIFAR-10, read from torchvision's pickle layout (``<data_dir>/cifar-10-batches-py``) into one uint8 tensor."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .base import InMemoryImageDataModule
from .errors import DataError

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


class _CifarBatchUnpickler(pickle.Unpickler):
    """Reads CIFAR-10 batch files without running code: only the numpy globals an array needs are allowed (plain
    pickle would run whatever a planted ``data_batch_1`` asks for)."""

    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a CIFAR-10 batch holds only arrays and lists")


def read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch -> images (N, 3, 32, 32) uint8, labels (N,) int64, read with a restricted unpickler."""
    try:
        with open(path, "rb") as f:
            entry = _CifarBatchUnpickler(f, encoding="latin1").load()
        images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    except Exception as err:  # noqa: BLE001 - truncated pickle, wrong file, wrong shape
        raise DataError(f"{path} is not a readable CIFAR-10 batch ({type(err).__name__}: {err}); delete {path.parent} "
                        f"and extract {CIFAR10_URL} again (or pass --data.download true)") from None
    if len(images) != len(labels):
        raise DataError(f"{path} holds {len(images)} images but {len(labels)} labels; extract the archive again")
    return torch.from_numpy(images), torch.from_numpy(labels)


class CIFAR10DataModule(InMemoryImageDataModule):
    """CIFAR-10: 60,000 32x32 colour images in 10 classes, read (without touching the network) from
    ``<data_dir>/cifar-10-batches-py`` (torchvision's layout) or ``data_dir``. Train = the 50k train batches minus a
    random val split (``val_fraction=0.1`` -> 45,000 / 5,000); test = the official 10k test batch.

    Dataset: CIFAR-10 (A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009); no licence is
    stated: cite the report.

    Args:
        download: download with torchvision when the batches are missing.
    """

    native_size: ClassVar[int] = 32
    native_num_classes: ClassVar[int | None] = 10
    default_data_dir: ClassVar[str | None] = "./data/cifar10"
    torchvision_name: ClassVar[str] = "CIFAR10"

    def __init__(self, *args: Any, download: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.download = download

    def find_data(self) -> Path | None:
        assert self.data_dir is not None
        for folder in (self.data_dir / CIFAR10_FOLDER, self.data_dir):
            if all((folder / name).is_file() for name in CIFAR10_TRAIN + CIFAR10_TEST):
                return folder
        return None

    def missing_error(self, extra: str = "") -> DataError:
        return DataError(f"CIFAR-10 not found in {self.data_dir / CIFAR10_FOLDER}{extra}; pass --data.download true, "
                         f"or extract {CIFAR10_URL} into {self.data_dir}")

    def load_arrays(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        folder = self.locate()
        images, labels = (torch.cat(parts) for parts in zip(*(read_cifar_batch(folder / n) for n in CIFAR10_TRAIN)))
        return self.split_arrays(images, labels, read_cifar_batch(folder / CIFAR10_TEST[0]))
