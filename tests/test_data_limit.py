"""``limit_train_images``: a fixed subset of the train split, seeded by ``split_seed`` alone (data-efficient GAN
training); val and test unchanged; one-line errors for impossible sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import DataError, EmbeddedMNISTDataModule, ImageFolderDataModule, UnpairedDataModule


def train_images(dm) -> torch.Tensor:
    dataset = dm.dataset("train")
    return dataset.__getitems__(list(range(len(dataset))))["image"]


def rows(images: torch.Tensor) -> list[bytes]:
    return [bytes(x.numpy()) for x in images]


def test_subset_size_order_and_unchanged_eval_splits():
    full, limited = EmbeddedMNISTDataModule(), EmbeddedMNISTDataModule(limit_train_images=100)
    assert len(limited.dataset("train")) == 100 and len(full.dataset("train")) == 9000
    for split in ("val", "test"):
        assert torch.equal(limited.dataset(split).images, full.dataset(split).images)
    position = {row: i for i, row in enumerate(rows(train_images(full)))}
    kept = [position[row] for row in rows(train_images(limited))]  # every kept image is a train image ...
    assert kept == sorted(kept) and len(set(kept)) == 100  # ... in the split's own order, none twice
    expected = torch.randperm(9000, generator=torch.Generator().manual_seed(0))[:100].sort().values.tolist()
    assert kept == expected  # the first 100 of a permutation seeded by split_seed (0)
    everything = EmbeddedMNISTDataModule(limit_train_images=9000)  # the whole split: exactly the unlimited data
    assert torch.equal(train_images(everything), train_images(full))


def test_subset_is_deterministic_and_follows_split_seed_only():
    torch.manual_seed(1)
    a = train_images(EmbeddedMNISTDataModule(limit_train_images=50, seed=0))
    torch.manual_seed(2)  # neither the global RNG nor the train-order seed moves the subset
    b = train_images(EmbeddedMNISTDataModule(limit_train_images=50, seed=7))
    assert torch.equal(a, b)
    other = train_images(EmbeddedMNISTDataModule(limit_train_images=50, split_seed=1))
    assert len(set(rows(a)) & set(rows(other))) < 10  # 50 of 9000 images: another seed, another subset


def test_train_loader_draws_only_from_the_subset():
    dm = EmbeddedMNISTDataModule(limit_train_images=64, batch_size=16)
    loaded = torch.cat([batch["image"] for batch in dm.train_dataloader()])
    assert loaded.shape == (64, 1, 28, 28) and sorted(rows(loaded)) == sorted(rows(train_images(dm)))
    assert next(iter(dm.train_dataloader()))["label"].dtype == torch.int64  # batches keep their keys and dtypes


def save(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(path)


def test_folder_and_unpaired_datamodules(tmp_path):
    for i in range(20):
        save(tmp_path / "folder" / f"{i:02d}.png", i)
    dm = ImageFolderDataModule(str(tmp_path / "folder"), image_size=8, num_workers=0, limit_train_images=5)
    full = ImageFolderDataModule(str(tmp_path / "folder"), image_size=8, num_workers=0)
    kept = dm.dataset("train").indices  # a torch Subset of the split, in the split's order
    assert len(kept) == 5 and kept == sorted(kept) and 0 <= min(kept) and max(kept) < len(full.dataset("train"))
    assert dm.dataset("train")[0]["image"].equal(full.dataset("train")[kept[0]]["image"])
    assert dm.dataset("val").paths == full.dataset("val").paths

    for domain, n in (("trainA", 6), ("trainB", 9), ("testA", 2), ("testB", 2)):
        for i in range(n):
            save(tmp_path / "unpaired" / domain / f"{i}.png", 100 * len(domain) + i)
    unpaired = UnpairedDataModule(data_dir=str(tmp_path / "unpaired"), image_size=8, num_workers=0,
                                  limit_train_images=7)
    train = unpaired.dataset("train")
    assert (train.n_a, train.n_b, len(train)) == (6, 7, 7)  # at most 7 of each domain
    batch = next(iter(unpaired.train_dataloader()))
    assert set(batch) == {"a", "b"} and batch["a"].shape == (1, 3, 8, 8)


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_input_limit_below_one(bad):
    with pytest.raises(DataError, match=rf"^limit_train_images must be at least 1 \(or null for all\), got {bad}$"):
        EmbeddedMNISTDataModule(limit_train_images=bad)


def test_bad_input_limit_larger_than_the_train_split():
    dm = EmbeddedMNISTDataModule(limit_train_images=9001)
    with pytest.raises(DataError, match=r"^limit_train_images=9001 is larger than the train split \(9000 images\); "
                                        r"lower it or set it to null$"):
        dm.setup()
