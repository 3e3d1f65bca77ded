"""Tests of datamodules/: the embedded MNIST, IDX and CIFAR readers, image folders, CelebA layouts, the seeded
resumable sampler and the predict loader. Everything but the marked Fashion-MNIST test runs on tiny synthetic files."""

from __future__ import annotations

import gzip
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import (
    DATAMODULES,
    CelebADataModule,
    CIFAR10DataModule,
    DataError,
    EmbeddedMNISTDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
    ResumableDataLoader,
    SeededRandomSampler,
)
from datamodules.mnist import IDX_DTYPES, IDX_FILES, read_idx

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


# ----------------------------------------------------------------------------------------------------- helpers
def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped when the name ends in ``.gz`` (the inverse of ``read_idx``)."""
    code = next(code for code, dtype in IDX_DTYPES.items() if dtype.newbyteorder("=") == array.dtype.newbyteorder("="))
    data = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    data += array.astype(IDX_DTYPES[code], copy=False).tobytes()
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.suffix == ".gz" else data)
    return path


def all_batches(loader) -> dict[str, torch.Tensor]:
    batches = list(loader)
    return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}


def write_idx_set(directory: Path, n_train: int, n_test: int, gz: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Four tiny MNIST-format files; image i is filled with i % 256 so it can be recognised after loading."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None], (n, 28, 28)).copy()
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, rng.integers(0, 10, n).astype(np.uint8)
    for role, stem in IDX_FILES.items():
        write_idx(directory / (stem + (".gz" if gz else "")), arrays[role])
    return arrays


def write_image(path: Path, mode: str, size: tuple[int, int], seed: int = 0) -> Path:
    """A random image of PIL ``mode`` and (width, height); the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---------------------------------------------------------------------------------------------- embedded MNIST
def test_registry_and_attributes_before_setup(tmp_path):
    assert set(DATAMODULES) >= {"EmbeddedMNISTDataModule", "MNISTDataModule", "FashionMNISTDataModule"}
    assert all(issubclass(cls, ImageDataModule) for cls in DATAMODULES.values())
    expected = {
        EmbeddedMNISTDataModule: (28, 1, 10),
        MNISTDataModule: (28, 1, 10),
        FashionMNISTDataModule: (28, 1, 10),
        CIFAR10DataModule: (32, 3, 10),
        CelebADataModule: (64, 3, None),
        ImageFolderDataModule: (64, 3, None),
    }
    for cls, attributes in expected.items():
        dm = cls(data_dir=str(tmp_path)) if cls is not EmbeddedMNISTDataModule else cls()
        assert (dm.image_size, dm.channels, dm.num_classes) == attributes, cls
        assert not dm.datasets  # nothing was loaded
    dm = EmbeddedMNISTDataModule(image_size=32, channels=3)
    assert (dm.image_size, dm.channels, dm.num_classes) == (32, 3, 10)


def test_embedded_mnist_splits_and_batches():
    dm = EmbeddedMNISTDataModule(batch_size=500)
    dm.setup("fit")
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [9000, 1000, 1000]
    assert dm.dataset("test") is dm.dataset("val")  # documented: test = the held-out 1,000
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (500, 1, 28, 28)
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (500,)
    train = all_batches(dm.train_dataloader())
    assert len(train["label"]) == 9000  # 500 divides 9000: drop_last drops nothing
    assert train["image"].min().item() == -1.0 and train["image"].max().item() == 1.0
    assert set(train["label"].tolist()) == set(range(10))
    val = all_batches(dm.val_dataloader())
    assert len(val["label"]) == 1000 and val["label"].min() >= 0 and val["label"].max() <= 9


def test_embedded_mnist_split_is_deterministic_and_disjoint():
    def split(**kwargs):
        dm = EmbeddedMNISTDataModule(**kwargs)
        return dm.dataset("train").images, dm.dataset("val").images

    train_a, val_a = split(split_seed=0)
    train_b, val_b = split(split_seed=0, seed=5)  # the train-order seed does not move the split
    assert torch.equal(train_a, train_b) and torch.equal(val_a, val_b)
    _, val_c = split(split_seed=1)
    assert not torch.equal(val_a, val_c)
    train_set = {bytes(x.numpy()) for x in train_a}
    assert not any(bytes(x.numpy()) in train_set for x in val_a[:200])


def test_embedded_mnist_resize_pad_and_channels():
    base = EmbeddedMNISTDataModule().dataset("val").__getitems__(list(range(8)))["image"]
    padded = EmbeddedMNISTDataModule(image_size=32, resize_mode="pad").dataset("val").__getitems__(list(range(8)))
    assert padded["image"].shape == (8, 1, 32, 32)
    assert torch.equal(padded["image"][:, :, 2:30, 2:30], base)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (padded["image"][:, :, border] == -1).all()  # zero padding is black: -1 after normalisation
    resized = EmbeddedMNISTDataModule(image_size=32, channels=3).dataset("val").__getitems__(list(range(8)))
    assert resized["image"].shape == (8, 3, 32, 32)
    assert torch.equal(resized["image"][:, 0], resized["image"][:, 2])  # gray repeated
    assert resized["image"].min() >= -1 and resized["image"].max() <= 1
    small = EmbeddedMNISTDataModule(image_size=16).dataset("val").__getitems__([0])["image"]
    assert small.shape == (1, 1, 16, 16)
    with pytest.raises(DataError, match="resize_mode 'pad' cannot shrink 28px"):
        EmbeddedMNISTDataModule(image_size=16, resize_mode="pad")
    with pytest.raises(DataError, match="channels must be 1 .* or 3"):
        EmbeddedMNISTDataModule(channels=2)


def test_train_batch_larger_than_split_is_an_error(tmp_path):
    for i in range(4):
        write_image(tmp_path / f"{i}.png", "RGB", (8, 8), seed=i)
    dm = ImageFolderDataModule(str(tmp_path), image_size=8, batch_size=16, num_workers=0)
    with pytest.raises(DataError, match="fewer than batch_size=16.*drop_last false"):
        dm.train_dataloader()


# ------------------------------------------------------------------------------------------------- IDX reader
@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_idx_round_trip(tmp_path, name, dtype):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = write_idx(tmp_path / name, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    loaded = read_idx(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.shape == (2, 3, 5)
    np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize(
    ("corruption", "message"),
    [
        ("truncate_data", "is truncated: shape \\(4, 28, 28\\) needs 3136 data bytes, found 3000"),
        ("truncate_gzip", "is a corrupt or truncated gzip file"),
        ("bad_magic", "is not an IDX file \\(bad magic number"),
        ("header_only", "is truncated inside its header"),
    ],
)
def test_idx_corrupt_files_name_the_file(tmp_path, corruption, message):
    images = np.zeros((4, 28, 28), np.uint8)
    plain = write_idx(tmp_path / "plain-idx3-ubyte", images).read_bytes()
    path = tmp_path / "train-images-idx3-ubyte.gz"
    if corruption == "truncate_data":
        path.write_bytes(gzip.compress(plain[: 16 + 3000]))
    elif corruption == "truncate_gzip":
        path.write_bytes(gzip.compress(plain)[:-20])
    elif corruption == "bad_magic":
        path.write_bytes(gzip.compress(b"PK\x03\x04" + plain[4:]))
    else:
        path.write_bytes(plain[:10])
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


# -------------------------------------------------------------------------------------- MNIST / Fashion-MNIST
@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_torchvision_layout(tmp_path, monkeypatch, gz):
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", ())
    arrays = write_idx_set(tmp_path / "FashionMNIST" / "raw", n_train=48, n_test=10, gz=gz)
    dm = FashionMNISTDataModule(data_dir=str(tmp_path), batch_size=4, image_size=32, resize_mode="pad")
    dm.setup("fit")
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [44, 4, 10]  # 48 / 12 = 4 held out
    test = all_batches(dm.test_dataloader())
    assert test["image"].shape == (10, 1, 32, 32)
    # image i of the test file is filled with i: its centre is i / 127.5 - 1, and labels keep their order
    assert torch.allclose(test["image"][:, 0, 16, 16], torch.arange(10) / 127.5 - 1)
    assert torch.equal(test["label"], torch.from_numpy(arrays["test_labels"].astype(np.int64)))
    train_values = {round((v.item() + 1) * 127.5) for v in all_batches(dm.train_dataloader())["image"][:, 0, 16, 16]}
    val_values = {round((v.item() + 1) * 127.5) for v in all_batches(dm.val_dataloader())["image"][:, 0, 16, 16]}
    assert train_values | val_values == set(range(48)) and not train_values & val_values


def test_mnist_files_directly_in_data_dir(tmp_path):
    write_idx_set(tmp_path, n_train=24, n_test=6)
    dm = MNISTDataModule(data_dir=str(tmp_path), batch_size=2)
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [22, 2, 6]


def test_idx_missing_data_offline_errors(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", (str(tmp_path / "nowhere"),))
    with pytest.raises(
        DataError, match=r"Fashion-MNIST not found in .*apt-get install dataset-fashion-mnist.*download"
    ):
        FashionMNISTDataModule(data_dir=str(tmp_path / "fm")).setup()
    with pytest.raises(DataError, match=r"MNIST not found in .*put the four IDX files.*--data.download true"):
        MNISTDataModule(data_dir=str(tmp_path / "m")).setup()
    partial = tmp_path / "partial"
    write_idx_set(partial, 12, 3)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"partial lacks t10k-labels-idx1-ubyte.gz"):
        MNISTDataModule(data_dir=str(partial)).setup()


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_debian_package(tmp_path):
    dm = FashionMNISTDataModule(data_dir=str(tmp_path / "empty"), batch_size=256)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [55000, 5000, 10000]
    test = dm.dataset("test")
    assert test.images.shape == (10000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [1000] * 10  # Fashion-MNIST's test split is balanced
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (256, 1, 28, 28) and batch["image"].min() == -1 and batch["image"].max() == 1


# --------------------------------------------------------------------------------------------------- CIFAR-10
def test_cifar10_missing_offline_does_not_touch_network(tmp_path, no_network):
    with pytest.raises(DataError, match=r"CIFAR-10 not found in .*cifar-10-batches-py; pass --data.download true"):
        CIFAR10DataModule(data_dir=str(tmp_path)).setup()


def test_cifar10_reads_torchvision_pickles(tmp_path, no_network):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = np.full((6, 3072), k * 40, dtype=np.uint8)
        data[:, 1024:2048] = 255  # the green plane
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": list(range(k, k + 6))}, f)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), batch_size=3, val_fraction=0.1)
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [27, 3, 6]
    test = all_batches(dm.test_dataloader())
    assert test["image"].shape == (6, 3, 32, 32)
    assert test["label"].tolist() == [5, 6, 7, 8, 9, 10]
    assert (test["image"][:, 1] == 1).all() and torch.allclose(test["image"][:, 0], torch.tensor(200 / 127.5 - 1))
    gray = CIFAR10DataModule(data_dir=str(tmp_path), channels=1, image_size=16).dataset("test").__getitems__([0])
    assert gray["image"].shape == (1, 1, 16, 16)
    (folder / "test_batch").write_bytes(b"\x80\x04 not a pickle")
    with pytest.raises(DataError, match="test_batch is not a readable CIFAR-10 batch"):
        CIFAR10DataModule(data_dir=str(tmp_path)).setup()


# ----------------------------------------------------------------------------------------------- image folder
def test_image_folder_mixed_modes_and_sizes(tmp_path):
    write_image(tmp_path / "a" / "gray.png", "L", (20, 12), seed=1)
    write_image(tmp_path / "a" / "b" / "rgba.png", "RGBA", (12, 30), seed=2)
    write_image(tmp_path / "rgb.jpg", "RGB", (16, 16), seed=3)
    write_image(tmp_path / "rgb2.JPEG", "RGB", (40, 24), seed=4)
    write_image(tmp_path / "la.webp", "LA", (10, 10), seed=5)
    write_image(tmp_path / "x.bmp", "RGB", (9, 14), seed=6)
    (tmp_path / "notes.txt").write_text("not an image")
    write_image(tmp_path / ".hidden.png", "RGB", (8, 8))
    for channels in (3, 1):
        dm = ImageFolderDataModule(
            str(tmp_path), image_size=8, channels=channels, val_fraction=0.2, batch_size=2, num_workers=0, flip=True
        )
        dm.setup()
        assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [5, 1, 1]
        everything = all_batches(dm.train_dataloader())  # drop_last: 2 batches of 2
        assert set(everything) == {"image"}  # unlabeled: no "label" key
        assert everything["image"].shape == (4, channels, 8, 8) and everything["image"].dtype == torch.float32
        assert everything["image"].min() >= -1 and everything["image"].max() <= 1
    # transparency is composited over white: a fully transparent pixel becomes +1
    clear = Image.new("RGBA", (8, 8), (10, 200, 30, 0))
    clear.save(tmp_path / "a" / "clear.png")
    dm = ImageFolderDataModule(str(tmp_path / "a"), image_size=8, val_fraction=0.3, num_workers=0)
    dataset = dm.dataset("train")
    names = [p.name for p in dataset.paths] + [p.name for p in dm.dataset("val").paths]
    assert sorted(names) == ["clear.png", "gray.png", "rgba.png"]
    all_items = {p.name: item for ds in (dm.dataset("train"), dm.dataset("val")) for p, item in zip(ds.paths, ds)}
    assert (all_items["clear.png"]["image"] == 1).all()


def test_image_folder_skips_corrupt_files_with_a_counted_warning(tmp_path):
    for i in range(6):
        write_image(tmp_path / f"ok{i}.png", "RGB", (8, 8), seed=i)
    (tmp_path / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    good_png = (tmp_path / "ok0.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good_png[: len(good_png) // 2])
    dm = ImageFolderDataModule(str(tmp_path), image_size=8, val_fraction=0.2, num_workers=0, batch_size=2)
    with pytest.warns(UserWarning, match=r"skipped 2 of 8 image files that cannot be read: .*garbage\.jpg"):
        dm.setup()
    kept = [p.name for split in ("train", "val") for p in dm.dataset(split).paths]
    assert sorted(kept) == [f"ok{i}.png" for i in range(6)]
    assert len(all_batches(dm.train_dataloader())["image"]) == 4


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"no images in .*empty \(searched recursively for \.jpg, \.jpeg, \.png"):
        ImageFolderDataModule(str(tmp_path / "empty")).setup()
    with pytest.raises(DataError, match=r"image folder .*missing does not exist"):
        ImageFolderDataModule(str(tmp_path / "missing")).setup()
    with pytest.raises(DataError, match=r"needs --data.data_dir"):
        ImageFolderDataModule().setup()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "bad" / "b.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"none of the 2 image files can be read, e.g. .*a\.png"):
        ImageFolderDataModule(str(tmp_path / "bad")).setup()
    with pytest.raises(DataError, match=r"class folder .*empty.sub has no images"):
        ImageFolderDataModule(str(tmp_path / "empty"), use_subfolders_as_classes=True).setup()
    with pytest.raises(DataError, match=r"needs one subfolder of images per class in .*bad, found none"):
        ImageFolderDataModule(str(tmp_path / "bad"), use_subfolders_as_classes=True)


def test_image_folder_truncated_jpeg_is_named_when_decoded(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"ok{i}.jpg", "RGB", (32, 32), seed=i)
    jpeg = write_image(tmp_path / "cut.jpg", "RGB", (32, 32), seed=2)
    jpeg.write_bytes(
        jpeg.read_bytes()[: jpeg.stat().st_size * 2 // 3]
    )  # the header survives: "header" checking lets it through
    dm = ImageFolderDataModule(str(tmp_path), image_size=8, val_fraction=0.5, num_workers=0, batch_size=1)
    dataset = next(dm.dataset(s) for s in ("train", "val") if any(p.name == "cut.jpg" for p in dm.dataset(s).paths))
    with pytest.raises(DataError, match=r"cannot decode .*cut\.jpg .*--data.check_images full"):
        dataset[[p.name for p in dataset.paths].index("cut.jpg")]
    # raised in a loader worker, it still reaches the main process as a one-line DataError naming the file
    in_worker = torch.utils.data.DataLoader(dataset, batch_size=len(dataset), num_workers=1)
    with pytest.raises(DataError, match=r"^cannot decode .*cut\.jpg") as info:
        next(iter(in_worker))
    assert "\n" not in str(info.value)
    full = ImageFolderDataModule(str(tmp_path), image_size=8, check_images="full", val_fraction=0.4)
    with pytest.warns(UserWarning, match=r"skipped 1 of 4 .*cut\.jpg \(OSError"):
        full.setup()


def test_image_folder_subfolders_as_classes(tmp_path):
    for name, count in (("cat", 3), ("dog", 4), ("zebra", 2)):
        for i in range(count):
            write_image(tmp_path / name / "deeper" / f"{i}.png", "RGB", (10, 10), seed=i)
    write_image(tmp_path / "loose.png", "RGB", (10, 10))
    dm = ImageFolderDataModule(str(tmp_path), use_subfolders_as_classes=True, image_size=8, val_fraction=0.2)
    assert dm.num_classes == 3 and dm.class_names == ["cat", "dog", "zebra"]  # known before setup
    with pytest.warns(UserWarning, match="ignored 1 images directly in"):
        dm.setup()
    for split in ("train", "val"):
        dataset = dm.dataset(split)
        for path, label in zip(dataset.paths, dataset.labels.tolist()):
            assert path.parent.parent.name == dm.class_names[label]
    assert len(dm.dataset("train")) + len(dm.dataset("val")) == 9
    batch = next(iter(torch.utils.data.DataLoader(dm.dataset("train"), batch_size=4)))
    assert batch["label"].dtype == torch.int64 and batch["image"].shape == (4, 3, 8, 8)


# ------------------------------------------------------------------------------------------------------ CelebA
def write_celeba(root: Path, n: int = 9, size: tuple[int, int] = (178, 218)) -> list[str]:
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        write_image(root / "img_align_celeba" / name, "RGB", size, seed=i)
    return names


def test_celeba_torchvision_layout_uses_partition_file(tmp_path):
    names = write_celeba(tmp_path / "celeba")
    lines = [f"{name} {0 if i < 5 else 1 if i < 7 else 2}" for i, name in enumerate(names)]
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines + ["999999.jpg 0"]) + "\n")
    dm = CelebADataModule(data_dir=str(tmp_path), image_size=16, batch_size=2, num_workers=0, flip=True)
    assert dm.num_classes is None and dm.channels == 3
    with pytest.warns(UserWarning, match="1 files listed in .* are missing"):
        dm.setup()
    assert [[p.name for p in dm.dataset(s).paths] for s in ("train", "val", "test")] == [
        names[:5],
        names[5:7],
        names[7:],
    ]
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image"} and batch["image"].shape == (2, 3, 16, 16)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    # DCGAN preprocessing: the centre 178x178 square, resized; not the whole 178x218 image squashed
    transform = dm.transform(train=False)
    image = transform.load(dm.dataset("val").paths[0])[:, 20:198, :]  # rows 20..197 are the centre crop
    expected = torch.nn.functional.interpolate(
        image[None].float() / 127.5 - 1, size=(16, 16), mode="bilinear", antialias=True
    )[0]
    assert torch.allclose(dm.dataset("val")[0]["image"], expected, atol=2 / 127.5)


def test_celeba_plain_folder_and_missing(tmp_path):
    write_celeba(tmp_path / "faces", n=10, size=(40, 50))
    dm = CelebADataModule(data_dir=str(tmp_path / "faces"), image_size=8, val_fraction=0.2, num_workers=0)
    dm.setup()
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [8, 2, 2]
    assert dm.dataset("val")[0]["image"].shape == (3, 8, 8) and "label" not in dm.dataset("val")[0]
    with pytest.raises(DataError, match=r"CelebA not found in .*img_align_celeba.*--data.download true"):
        CelebADataModule(data_dir=str(tmp_path / "absent")).setup()


# ------------------------------------------------------------------------------------- sampler, loaders, predict
def test_seeded_sampler_order_and_epochs():
    a, b = SeededRandomSampler(50, seed=3), SeededRandomSampler(50, seed=3)
    torch.manual_seed(0)
    first = list(a)
    torch.manual_seed(1)  # the global RNG does not matter
    assert list(b) == first and sorted(first) == list(range(50))
    assert list(SeededRandomSampler(50, seed=4)) != first
    a.set_epoch(1)
    second = list(a)
    assert second != first and sorted(second) == list(range(50))
    assert second == SeededRandomSampler(50, seed=4).permutation().tolist()  # epoch e uses seed + e


def test_seeded_sampler_state_dict_resumes_remaining_indices():
    sampler = SeededRandomSampler(20, seed=7)
    sampler.set_epoch(2)
    full = sampler.permutation().tolist()
    iterator = iter(sampler)
    seen = [next(iterator) for _ in range(8)]
    state = sampler.state_dict()
    assert state["epoch"] == 2 and state["yielded"] == 8
    resumed = SeededRandomSampler(20, seed=7)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # Lightning calls this after restoring; it must keep the offset
    assert seen + list(resumed) == full
    assert list(resumed) == full  # the skip applies once
    resumed.load_state_dict({"epoch": 2, "yielded": 20})  # saved at the end of epoch 2
    assert resumed.epoch == 3 and list(resumed) == resumed.permutation(3).tolist()


def test_train_loader_state_dict_resumes_mid_epoch():
    dm = EmbeddedMNISTDataModule(batch_size=1000, seed=11)
    reference = [batch["image"].sum().item() for batch in dm.train_dataloader()]
    assert len(reference) == 9
    loader = dm.train_dataloader()
    assert isinstance(loader, ResumableDataLoader)
    iterator = iter(loader)
    done = [next(iterator)["image"].sum().item() for _ in range(4)]
    state = loader.state_dict()
    assert state["yielded"] == 4000
    fresh = dm.train_dataloader()
    fresh.load_state_dict(state)
    assert done + [batch["image"].sum().item() for batch in fresh] == reference


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_lightning_restores_the_train_loader_mid_epoch(tmp_path):
    """Resuming from a checkpoint saved after 3 of 6 batches replays exactly the batches of the uninterrupted run."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[float] = []

        def training_step(self, batch, batch_idx):
            self.seen.append(batch["image"].sum().item())
            return (self.weight * batch["image"].mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    def fit(ckpt_path=None):
        model = Recorder()
        every_3 = ModelCheckpoint(
            dirpath=tmp_path / ("resumed" if ckpt_path else "first"),
            filename="{step}",
            every_n_train_steps=3,
            save_top_k=-1,
        )
        trainer = L.Trainer(
            max_steps=8,  # 6 batches per epoch: crosses into epoch 1
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            callbacks=[every_3],
        )
        trainer.fit(model, datamodule=EmbeddedMNISTDataModule(batch_size=1500, seed=2), ckpt_path=ckpt_path)
        return model.seen

    reference = fit()
    assert len(reference) == 8
    assert fit(ckpt_path=tmp_path / "first" / "step=3.ckpt") == reference[3:]


def test_predict_dataloader_yields_each_index_once():
    dm = EmbeddedMNISTDataModule(num_predict=70, predict_batch_size=16)
    batches = list(dm.predict_dataloader())
    assert [len(b["index"]) for b in batches] == [16, 16, 16, 16, 6]
    assert all(set(b) == {"index"} and b["index"].dtype == torch.int64 for b in batches)
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(70))
