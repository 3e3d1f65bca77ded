"""Decoded-image cache of the folder datamodules (``datamodules.cache``, ``--data.cache_dir``)."""

from __future__ import annotations

import os

import pytest
import torch
from PIL import Image

from datamodules import DataError, ImageFolderDataModule
from datamodules.cache import CachedImageDataset, device_batch
from gan_modules import DCGAN

from .helpers import trainer


def write_images(root, n: int = 10, size=(30, 40), fmt: str = "JPEG") -> list:
    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    paths = []
    for i in range(n):
        pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy()
        path = root / f"img{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        Image.fromarray(pixels).save(path, fmt)
        paths.append(path)
    return paths


def module(root, cache_dir=None, **kwargs) -> ImageFolderDataModule:
    opts = {"image_size": 16, "channels": 3, "val_fraction": 0.2, "batch_size": 4, "num_workers": 0, "crop_size": 28}
    opts.update(kwargs)
    return ImageFolderDataModule(str(root), cache_dir=None if cache_dir is None else str(cache_dir), **opts)


def cache_files(cache_dir) -> list:
    return sorted(p.name for p in cache_dir.glob("*.npy"))


def images_of(dm: ImageFolderDataModule, split: str) -> torch.Tensor:
    """Every image of a split as the model would see it (cached: through the device transform, no flip)."""
    dataset = dm.dataset(split)
    if isinstance(dataset, CachedImageDataset):
        return device_batch(dataset.__getitems__(list(range(len(dataset)))), None, flip=False)["image"]
    return torch.stack([dataset[i]["image"] for i in range(len(dataset))])


def test_cache_gives_identical_pixels_to_the_uncached_pipeline(tmp_path):
    write_images(tmp_path / "data")
    plain, cached = module(tmp_path / "data"), module(tmp_path / "data", tmp_path / "cache")
    for split in ("train", "val"):
        expected, got = images_of(plain, split), images_of(cached, split)
        assert got.dtype == torch.float32 and got.shape == expected.shape == (len(expected), 3, 16, 16)
        assert torch.equal(got, expected)
    assert len(cache_files(tmp_path / "cache")) == 1


def test_cache_is_reused_and_rebuilt_when_a_file_or_the_size_changes(tmp_path):
    paths = write_images(tmp_path / "data")
    module(tmp_path / "data", tmp_path / "cache").setup()
    (first,) = cache_files(tmp_path / "cache")
    stamp = os.stat(tmp_path / "cache" / first).st_mtime_ns
    module(tmp_path / "data", tmp_path / "cache").setup()  # unchanged folder: the same file, not rewritten
    assert cache_files(tmp_path / "cache") == [first]
    assert os.stat(tmp_path / "cache" / first).st_mtime_ns == stamp

    Image.new("RGB", (30, 40), (255, 0, 0)).save(paths[0], "JPEG")  # a changed file
    os.utime(paths[0], ns=(stamp + 10**9, stamp + 10**9))
    dm = module(tmp_path / "data", tmp_path / "cache")
    dm.setup()
    assert len(cache_files(tmp_path / "cache")) == 2
    plain = module(tmp_path / "data")
    assert torch.equal(images_of(dm, "train"), images_of(plain, "train"))  # the new pixels, not the stale ones

    module(tmp_path / "data", tmp_path / "cache", image_size=8).setup()  # a new size
    names = cache_files(tmp_path / "cache")
    assert len(names) == 3 and sum("8px" in n for n in names) == 1


def test_cache_keeps_the_corrupt_file_policy(tmp_path):
    write_images(tmp_path / "data", n=8)
    (tmp_path / "data" / "garbage.jpg").write_bytes(b"not an image at all")
    dm = module(tmp_path / "data", tmp_path / "cache")
    with pytest.warns(UserWarning, match=r"skipped 1 of 9 image files that cannot be read: .*garbage\.jpg"):
        dm.setup()
    assert len(dm.dataset("train")) + len(dm.dataset("val")) == 8

    unchecked = module(tmp_path / "data", tmp_path / "cache2", check_images="none")
    with pytest.raises(DataError, match=r"cannot decode .*garbage\.jpg .*check_images full"):
        unchecked.setup()
    assert not list((tmp_path / "cache2").glob("*.npy")), "a failed build must not leave a cache file"


def test_cache_flips_on_the_device_in_training_only(tmp_path):
    write_images(tmp_path / "data", n=20)
    dm = module(tmp_path / "data", tmp_path / "cache", flip=True, val_fraction=0.1)
    dataset = dm.dataset("train")
    raw = dataset.__getitems__(list(range(len(dataset))))
    plain = device_batch(dict(raw), None, flip=False)["image"]
    torch.manual_seed(0)
    flipped = device_batch(dict(raw), None, flip=True)["image"]
    same = (flipped == plain).flatten(1).all(1)
    mirrored = (flipped == plain.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and same.any() and mirrored.any()
    assert dm.on_after_batch_transfer(dict(raw), 0)["image"].equal(plain)  # no trainer: not training, no flip


def test_cache_trains_a_model_through_lightning(tmp_path):
    write_images(tmp_path / "data", n=12)
    dm = module(tmp_path / "data", tmp_path / "cache", image_size=28, crop_size=None, flip=True)
    model = DCGAN(image_size=28, channels=3, ngf=4, ndf=4, latent_dim=8, max_generator_steps=2)
    trainer(tmp_path).fit(model, datamodule=dm)
    assert model.generator_steps == 2


def test_cache_on_gpu_without_cuda_is_one_clear_line(tmp_path):
    write_images(tmp_path / "data", n=6)
    dm = module(tmp_path / "data", tmp_path / "cache", cache_on_gpu=True)
    with pytest.raises(DataError, match="cache_on_gpu needs a CUDA trainer"):
        dm.setup()
