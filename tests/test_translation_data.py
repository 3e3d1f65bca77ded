"""Translation datamodules: aligned/paired folders, unpaired domains, CelebA attributes, folder-per-domain and the
offline tasks, including the bad layouts (each a one-line DataError that says what to do)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import (
    AlignedPairDataModule,
    CelebAAttributesDataModule,
    DataError,
    DomainFolderDataModule,
    FashionEdgesDataModule,
    FashionUnpairedDataModule,
    MNISTColorsDataModule,
    PairIndexSampler,
    UnpairedDataModule,
)
from datamodules.offline_tasks import render_colored_digit, sobel_edges


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def gradient(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3))


def aligned_dataset(root: Path, n: int = 3, h: int = 12, w: int = 12, splits=("train", "val", "test")) -> Path:
    for split in splits:
        for i in range(n):
            half = gradient(h, w, i)
            save(root / split / f"{i}.png", np.concatenate([half, half], axis=1))  # A == B: jitter must agree
    return root


def test_aligned_pairs_get_identical_jitter_on_both_halves(tmp_path):
    dm = AlignedPairDataModule(data_dir=str(aligned_dataset(tmp_path / "d")), image_size=8, load_size=12,
                               batch_size=2, num_workers=0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].shape == (2, 3, 8, 8)
    assert torch.equal(batch["source"], batch["target"])  # same crop and flip on both halves
    pred = next(iter(dm.predict_dataloader()))
    assert pred["name"] == ["0.png", "1.png", "2.png"] and pred["source"].shape == (3, 3, 8, 8)


def test_paired_folders_are_matched_by_name_and_missing_val_uses_test(tmp_path):
    root = tmp_path / "d"
    for split in ("train", "test"):
        for i in range(3):
            save(root / split / "A" / f"{i}.png", gradient(8, 8, i))
            save(root / split / "B" / f"{i}.png", 255 - gradient(8, 8, i))
    dm = AlignedPairDataModule(data_dir=str(root), image_size=8, load_size=8, flip=False, batch_size=3,
                               num_workers=0)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    assert torch.allclose(batch["source"], -batch["target"], atol=1e-6)  # B = 255 − A  ⇔  target = −source
    assert len(dm.dataset("val")) == 3


def test_bad_input_odd_width_aligned_image(tmp_path):
    root = aligned_dataset(tmp_path / "d")
    save(root / "train" / "odd.png", gradient(12, 25))
    dm = AlignedPairDataModule(data_dir=str(root), image_size=8, num_workers=0)
    with pytest.raises(DataError, match=r"odd.png is 25 pixels wide, an odd width: aligned pairs must be A\|B") as e:
        dm.setup()
    assert "\n" not in str(e.value)


def test_bad_input_missing_train_pairs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no training pairs in .*download a pix2pix dataset"):
        AlignedPairDataModule(data_dir=str(tmp_path / "empty"), num_workers=0).setup()


def unpaired_dataset(root: Path, folders=("trainA", "trainB", "testA", "testB"), n: int = 4) -> Path:
    for k, folder in enumerate(folders):
        for i in range(n + k):
            save(root / folder / f"{folder}_{i}.png", gradient(10, 14, 10 * k + i))
    return root


def test_unpaired_batches_draw_b_at_random_and_resume_exactly(tmp_path):
    dm = UnpairedDataModule(data_dir=str(unpaired_dataset(tmp_path / "d")), image_size=8, batch_size=2,
                            num_workers=0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["a"].shape == batch["b"].shape == (2, 3, 8, 8)
    assert len(dm.dataset("train")) == 5  # max(|A|, |B|)
    sampler = PairIndexSampler(6, 4, seed=1)
    full = list(sampler)
    assert sorted(a for a, _ in full) == list(range(6)) and all(0 <= b < 4 for _, b in full)
    sampler.load_state_dict({"epoch": 0, "yielded": 2})
    assert list(sampler) == full[2:]
    sampler.set_epoch(1)
    assert list(sampler) != full  # a fresh draw of both orders each epoch
    pred = next(iter(dm.predict_dataloader()))
    assert pred["name"][0] == "testA_0.png" and pred["domain"].tolist() == [0] * len(pred["name"])


def test_bad_input_missing_trainB(tmp_path):
    root = unpaired_dataset(tmp_path / "d", folders=("trainA", "testA", "testB"))
    with pytest.raises(DataError, match=r"trainB is missing: put trainA/ and trainB/ \(and testA/ testB/\)"):
        UnpairedDataModule(data_dir=str(root), num_workers=0).setup()


def attribute_dataset(root: Path, n: int = 6) -> Path:
    names = ["5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    lines = [str(n), " ".join(names)]
    for i in range(n):
        save(root / "img_align_celeba" / f"{i:06d}.jpg", gradient(20, 16, i))
        values = ["1" if (i + j) % 3 == 0 else "-1" for j in range(len(names))]
        lines.append(f"{i:06d}.jpg  " + " ".join(values))
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    return root


def test_celeba_attributes_are_read_in_the_chosen_order(tmp_path):
    root = attribute_dataset(tmp_path / "c")
    dm = CelebAAttributesDataModule(data_dir=str(root), attributes=["Male", "Black_Hair", "Blond_Hair"],
                                    image_size=8, crop_size=16, num_test=2, batch_size=2, num_workers=0)
    assert dm.num_classes == 3 and dm.label_groups == [[1, 2]] and dm.domain_names[0] == "Male"
    dm.setup()
    item = dm.dataset("train")[0]
    i = int(item["name"][:6])
    expected = [1.0 if (i + j) % 3 == 0 else 0.0 for j in (4, 1, 2)]  # file columns of Male, Black, Blond
    assert item["label"].tolist() == expected and item["image"].shape == (3, 8, 8)
    assert len(dm.dataset("test")) == 2 and len(dm.dataset("train")) == 4


def test_bad_input_attribute_not_in_the_file(tmp_path):
    dm = CelebAAttributesDataModule(data_dir=str(attribute_dataset(tmp_path / "c")), attributes=["Male", "Bald"],
                                    num_workers=0)
    with pytest.raises(DataError, match="attribute 'Bald' is not in list_attr_celeba.txt; choose from: 5_o_Clock"):
        dm.setup()


def test_domain_folders_give_class_indices_and_names(tmp_path):
    for d in ("cats", "dogs", "owls"):
        for i in range(4):
            save(tmp_path / "dom" / d / f"{d}{i}.png", gradient(9, 9, i))
    dm = DomainFolderDataModule(data_dir=str(tmp_path / "dom"), image_size=8, batch_size=2, num_workers=0,
                                val_fraction=0.25)
    assert dm.num_classes == 3 and dm.domain_names == ["cats", "dogs", "owls"]
    pred = next(iter(dm.predict_dataloader()))
    assert pred["label"].dtype == torch.int64 and pred["name"][0].endswith(".png")


def test_fashion_edges_task_pairs_sobel_edges_with_items():
    dm = FashionEdgesDataModule(max_train=32, max_test=8, batch_size=4)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].shape == batch["target"].shape == (4, 1, 32, 32)
    assert set(batch["source"].unique().tolist()) <= {-1.0, 1.0}  # binary edge maps
    target_u8 = ((batch["target"] + 1) * 127.5).round().to(torch.uint8)
    assert torch.equal(((sobel_edges(target_u8) > 0).float() * 2 - 1), batch["source"])


def test_fashion_unpaired_tint_task_carries_the_hidden_truth():
    dm = FashionUnpairedDataModule(task="tint", max_train=16, max_test=8, batch_size=4)
    assert dm.channels == 3
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    a, truth = (batch["a"] + 1) / 2, (batch["a_target"] + 1) / 2
    assert torch.allclose(truth[:, 1], a[:, 1] * 0.35, atol=1 / 255) and torch.allclose(truth[:, 0], a[:, 0], atol=0)
    classes = FashionUnpairedDataModule(task="classes", max_train=16, max_test=8)
    classes.setup()
    assert classes.channels == 1 and len(classes.images["train"]["a"]) == 16
    with pytest.raises(DataError, match="class_a and class_b are both 7"):
        FashionUnpairedDataModule(class_a=7, class_b=7)


def test_mnist_colors_task_writes_a_celeba_format_file_and_renders_truth(tmp_path):
    from datamodules.mnist import load_embedded_mnist

    dm = MNISTColorsDataModule(cache_dir=str(tmp_path / "colors"), num_images=40, num_test=8, batch_size=4)
    assert dm.num_classes == 4 and dm.label_groups == [[0, 1, 2]]
    dm.setup()
    lines = (tmp_path / "colors" / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "40" and lines[1].split() == ["Red", "Green", "Blue", "Inverted"]
    item = dm.dataset("train")[0]
    k, label = int(item["name"][:5]), item["label"]
    assert label[:3].sum() == 1  # one colour
    digits, _ = load_embedded_mnist()
    truth = render_colored_digit(torch.from_numpy(digits[k]), int(label[:3].argmax()), bool(label[3]))
    assert torch.equal(((item["image"] + 1) * 127.5).round().to(torch.uint8), truth)
