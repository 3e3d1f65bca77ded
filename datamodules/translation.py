"""Datamodules for image-to-image translation: aligned pairs (pix2pix), unpaired domains (CycleGAN), CelebA
attributes and folder-per-domain (StarGAN).

Batches: ``{"source", "target"}`` for paired data, ``{"a", "b"}`` for unpaired data, ``{"image", "label"}`` for
domain labels (a float 0/1 attribute vector or a class index), all images float32 (N, C, H, W) in [-1, 1].
``predict`` translates the test split, or every image of ``predict_dir`` at its own size (batch 1; the model pads
to what its generator needs and crops back), and yields ``name`` (the file name to keep) and ``index``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from .base import ImageDataModule, collate
from .errors import DataError
from .folder import convert_mode, list_images
from .image_folder import ImageFolderDataModule
from .samplers import ResumableDataLoader, SeededRandomSampler
from .transforms import to_unit_range

SPLITS = ("train", "val", "test")


# ------------------------------------------------------------------------------------------------- transforms
def default_load_size(image_size: int) -> int:
    """The reference's 286 → 256 jitter, scaled: ``round(image_size · 286 / 256)`` (36 at 32 px, 143 at 128)."""
    return int(round(image_size * 286 / 256))


def load_image(path: str | Path, channels: int) -> Tensor:
    """uint8 (channels, H, W) at the file's own size.

    Raises:
        DataError: the file cannot be decoded (names it).
    """
    try:
        with Image.open(path) as image:
            return TF.pil_to_tensor(convert_mode(image, channels))
    except Exception as err:  # noqa: BLE001 - PIL raises many types
        raise DataError(f"cannot decode {path} ({type(err).__name__}: {err}); delete or replace it") from None


def jitter(images: Sequence[Tensor], image_size: int, load_size: int | None, flip: bool) -> list[Tensor]:
    """pix2pix/CycleGAN ``resize_and_crop``: each uint8 (C, H, W) image resized to ``load_size`` squared, then the
    **same** random ``image_size`` crop and the same random horizontal flip for all of them; ``load_size=None``
    (evaluation) resizes straight to ``image_size``. Returns float32 in [-1, 1]."""
    size = image_size if load_size is None else load_size
    out = [TF.resize(im, [size, size], antialias=True) for im in images]
    if load_size is not None and load_size > image_size:
        top = int(torch.randint(load_size - image_size + 1, ()))
        left = int(torch.randint(load_size - image_size + 1, ()))
        out = [im[:, top : top + image_size, left : left + image_size] for im in out]
    if flip and bool(torch.rand(()) < 0.5):
        out = [im.flip(-1) for im in out]
    return [to_unit_range(im) for im in out]


def split_aligned(image: Tensor, path: Path | str) -> tuple[Tensor, Tensor]:
    """An A|B side-by-side image (C, H, 2W) → (A, B).

    Raises:
        DataError: odd width (the halves cannot be equal).
    """
    w = image.shape[-1]
    if w % 2:
        raise DataError(
            f"{path} is {w} pixels wide, an odd width: aligned pairs must be A|B side by side with equal "
            "halves (use separate A/ and B/ folders for other layouts)"
        )
    return image[..., : w // 2], image[..., w // 2 :]


def check_aligned_widths(paths: Sequence[Path]) -> None:
    """Reads only the headers; raises the ``split_aligned`` error for the first odd-width file."""
    for path in paths:
        try:
            with Image.open(path) as image:
                width = image.size[0]
        except Exception as err:  # noqa: BLE001
            raise DataError(f"cannot read {path} ({type(err).__name__}: {err}); delete or replace it") from None
        if width % 2:
            split_aligned(torch.empty(1, 1, width), path)


class PredictFolder(Dataset):
    """Every image of a folder at its own size: ``{"image", "name", "index"}`` (plus ``extra`` constant keys)."""

    def __init__(
        self, paths: Sequence[Path], channels: int, image_size: int | None = None, extra: dict[str, Any] | None = None
    ):
        self.paths, self.channels, self.image_size, self.extra = list(paths), channels, image_size, extra or {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = load_image(self.paths[i], self.channels)
        if self.image_size is not None:
            image = TF.resize(image, [self.image_size, self.image_size], antialias=True)
        return {"image": to_unit_range(image), "name": self.paths[i].name, "index": i, **self.extra}


class TranslationDataModule(ImageDataModule):
    """Shared predict logic: ``predict_dir`` (a folder of inputs at their own size, batch 1) or the test split.

    Args:
        predict_dir: folder of images to translate (None: the test split).
        predict_keep_size: translate ``predict_dir`` images at their own size (else resized to ``image_size``).
        **kwargs: the arguments of ``ImageDataModule``.
    """

    def __init__(self, predict_dir: str | None = None, predict_keep_size: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.predict_dir = Path(predict_dir).expanduser() if predict_dir else None
        self.predict_keep_size = predict_keep_size

    def predict_extra(self) -> dict[str, Any]:
        """Constant keys added to every ``predict_dir`` item (e.g. the CycleGAN ``domain``)."""
        return {}

    def predict_split_dataset(self) -> Dataset:
        return self.dataset("test")

    def predict_dataloader(self) -> DataLoader:
        if self.predict_dir is not None:
            paths = list_images(self.predict_dir)
            if not paths:
                raise DataError(f"no images in {self.predict_dir}; check --data.predict_dir")
            keep = self.predict_keep_size
            dataset = PredictFolder(paths, self.channels, None if keep else self.image_size, self.predict_extra())
            return DataLoader(dataset, batch_size=1 if keep else self.predict_batch_size, collate_fn=collate)
        return DataLoader(
            self.predict_split_dataset(), batch_size=self.predict_batch_size, shuffle=False, collate_fn=collate
        )


# -------------------------------------------------------------------------------------------------- paired data
class PairedFileDataset(Dataset):
    """Pairs from A|B images (``b_paths`` None) or from two lists of files; ``{"source", "target", "name", "index"}``.
    ``load_size`` None disables the random crop (evaluation)."""

    def __init__(
        self,
        a_paths: Sequence[Path],
        b_paths: Sequence[Path] | None,
        channels: int,
        image_size: int,
        load_size: int | None,
        flip: bool,
    ):
        self.a_paths, self.b_paths = list(a_paths), None if b_paths is None else list(b_paths)
        self.channels, self.image_size, self.load_size, self.flip = channels, image_size, load_size, flip

    def __len__(self) -> int:
        return len(self.a_paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.a_paths[i]
        if self.b_paths is None:
            a, b = split_aligned(load_image(path, self.channels), path)
        else:
            a, b = load_image(path, self.channels), load_image(self.b_paths[i], self.channels)
        source, target = jitter([a, b], self.image_size, self.load_size, self.flip)
        return {"source": source, "target": target, "name": path.name, "index": i}


class AlignedPairDataModule(TranslationDataModule):
    """Paired images for pix2pix, in either layout of ``data_dir``:

    - aligned (the pix2pix datasets: facades, maps, edges2shoes): ``train/ val/ test/`` of images holding A|B side by
      side (an odd width is an error);
    - separate folders: ``train/A/ train/B/`` (and val, test) with the same file names on both sides.

    Train images are jittered as in the reference (resize to ``load_size``, the same random ``image_size`` crop and
    the same random flip on both halves); val/test are resized to ``image_size``. A missing val split uses test (and
    vice versa); with neither, ``val_fraction`` of train. Which half is the input is the model's ``direction``.

    Args:
        data_dir: the dataset folder.
        image_size: crop side (256 in the reference).
        channels: 1 or 3.
        load_size: resize side before the random crop (None: ``round(image_size · 286/256)``; equal to
            ``image_size`` disables the crop jitter).
        flip: random horizontal flips of train pairs.
        num_workers: decoding worker processes.
        batch_size: 1 in the reference.
        **kwargs: the other arguments of ``TranslationDataModule``.
    """

    native_size: ClassVar[int] = 256
    native_channels: ClassVar[int] = 3

    def __init__(
        self,
        data_dir: str | None = None,
        image_size: int | None = None,
        channels: int | None = None,
        load_size: int | None = None,
        flip: bool = True,
        num_workers: int = 4,
        batch_size: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            image_size=image_size,
            channels=channels,
            num_workers=num_workers,
            batch_size=batch_size,
            **kwargs,
        )
        if self.data_dir is None:
            raise DataError("AlignedPairDataModule needs --data.data_dir (a folder with train/ val/ test/)")
        self.load_size = default_load_size(self.image_size) if load_size is None else load_size
        if self.load_size < self.image_size:
            raise DataError(f"load_size ({self.load_size}) must be >= image_size ({self.image_size})")
        self.flip = flip

    def _split_files(self, split: str) -> tuple[list[Path], list[Path] | None] | None:
        root = self.data_dir / split
        if not root.is_dir():
            return None
        if (root / "A").is_dir() and (root / "B").is_dir():
            a = list_images(root / "A")
            b_by_name = {p.relative_to(root / "B"): p for p in list_images(root / "B")}
            missing = [p for p in a if p.relative_to(root / "A") not in b_by_name]
            if missing:
                raise DataError(
                    f"{missing[0]} has no partner of the same name in {root / 'B'}; paired folders need "
                    "identical file names"
                )
            return a, [b_by_name[p.relative_to(root / "A")] for p in a]
        paths = list_images(root, recursive=False)
        check_aligned_widths(paths)
        return paths, None

    def build_datasets(self) -> dict[str, Dataset]:
        files = {split: self._split_files(split) for split in SPLITS}
        if files["train"] is None or not files["train"][0]:
            raise DataError(
                f"no training pairs in {self.data_dir / 'train'}: download a pix2pix dataset (e.g. facades) "
                "and put its train/ val/ test/ folders of A|B images (or A/ and B/ folders) there"
            )
        files["val"] = files["val"] or files["test"]
        files["test"] = files["test"] or files["val"]
        if files["val"] is None:
            a, b = files["train"]
            n_val = max(1, round(len(a) * self.val_fraction))
            order = torch.randperm(len(a), generator=torch.Generator().manual_seed(self.split_seed)).tolist()
            pick = lambda idx, lst: None if lst is None else [lst[i] for i in idx]  # noqa: E731
            files["train"] = pick(order[n_val:], a), pick(order[n_val:], b)
            files["val"] = files["test"] = pick(order[:n_val], a), pick(order[:n_val], b)
        return {
            split: PairedFileDataset(
                *files[split],
                self.channels,
                self.image_size,
                self.load_size if split == "train" else None,
                self.flip and split == "train",
            )
            for split in SPLITS
        }


# ------------------------------------------------------------------------------------------------ unpaired data
class PairIndexSampler(SeededRandomSampler):
    """A seeded permutation of the A items, each paired with a B index drawn uniformly from the same epoch's
    generator ("B drawn at random each step", as the CycleGAN reference's ``serial_batches=False``); yields
    ``(a_index, b_index)``. Being a ``SeededRandomSampler``, it resumes exactly mid-epoch."""

    def __init__(self, n: int, n_b: int, seed: int = 0) -> None:
        super().__init__(n, seed)
        self.n_b = n_b

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        partners = torch.randint(self.n_b, (self.n,), generator=generator).tolist()
        start, self._skip = self._skip, 0
        self.yielded = start
        for a, b in zip(order[start:], partners[start:]):
            self.yielded += 1
            yield a, b


class UnpairedDataset(Dataset):
    """Two unpaired collections → ``{"a", "b"}``. An index ``(i, j)`` (from ``PairIndexSampler``) picks A ``i`` and B
    ``j``; a plain index ``i`` pairs A ``i mod n_A`` with B ``i mod n_B`` (deterministic, for evaluation).

    ``load_a``/``load_b`` map an index to a uint8 (C, H, W) image; ``targets`` optionally map an index to the hidden
    true translation (offline tasks) and add ``a_target``/``b_target``.
    """

    def __init__(
        self,
        load_a,
        n_a: int,
        load_b,
        n_b: int,
        image_size: int,
        load_size: int | None,
        flip: bool,
        target_a=None,
        target_b=None,
    ):
        self.load_a, self.load_b, self.n_a, self.n_b = load_a, load_b, n_a, n_b
        self.image_size, self.load_size, self.flip = image_size, load_size, flip
        self.target_a, self.target_b = target_a, target_b

    def __len__(self) -> int:
        return max(self.n_a, self.n_b)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Tensor]:
        i, j = index if isinstance(index, tuple) else (index, index)
        i, j = i % self.n_a, j % self.n_b  # an epoch has max(n_A, n_B) items, as in the reference
        if self.target_a is None and self.target_b is None:
            (a,), (b,) = (
                jitter([self.load_a(i)], self.image_size, self.load_size, self.flip),
                jitter([self.load_b(j)], self.image_size, self.load_size, self.flip),
            )
            return {"a": a, "b": b}
        # offline tasks: A and its hidden truth get the same jitter (and B likewise)
        a, a_t = jitter([self.load_a(i), self.target_a(i)], self.image_size, self.load_size, self.flip)
        b, b_t = jitter([self.load_b(j), self.target_b(j)], self.image_size, self.load_size, self.flip)
        return {"a": a, "b": b, "a_target": a_t, "b_target": b_t}


class UnpairedTrainLoaderMixin:
    """Train loader over ``max(n_A, n_B)`` steps per epoch with ``PairIndexSampler`` (resumable)."""

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        if self.drop_last and len(dataset) < self.batch_size:
            raise DataError(
                f"the train split has {len(dataset)} items, fewer than batch_size={self.batch_size}; "
                "lower --data.batch_size"
            )
        sampler = PairIndexSampler(len(dataset), dataset.n_b, self.seed)
        return ResumableDataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, drop_last=self.drop_last, **self._loader_kwargs()
        )


class UnpairedDataModule(UnpairedTrainLoaderMixin, TranslationDataModule):
    """Unpaired domains in the CycleGAN datasets' layout: ``data_dir/trainA/ trainB/ testA/ testB/``.

    Each training item is A ``i`` (a seeded permutation per epoch, ``max(n_A, n_B)`` items) with a B drawn at random,
    each jittered independently (resize to ``load_size``, random crop, flip). Val and test use ``testA``/``testB``
    (resized, paired by index), or the train folders with a warning when there are no test folders.

    Args:
        data_dir: the dataset folder.
        image_size: crop side (256).
        channels: 1 or 3.
        load_size: resize side before the random crop (None: ``round(image_size · 286/256)``).
        flip: random horizontal flips.
        predict_domain: ``A`` (translate A → B: ``testA`` or ``predict_dir``) or ``B``.
        num_workers: decoding worker processes.
        batch_size: 1 in the reference.
        **kwargs: the other arguments of ``TranslationDataModule``.
    """

    native_size: ClassVar[int] = 256
    native_channels: ClassVar[int] = 3

    def __init__(
        self,
        data_dir: str | None = None,
        image_size: int | None = None,
        channels: int | None = None,
        load_size: int | None = None,
        flip: bool = True,
        predict_domain: Literal["A", "B"] = "A",
        num_workers: int = 4,
        batch_size: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            image_size=image_size,
            channels=channels,
            num_workers=num_workers,
            batch_size=batch_size,
            **kwargs,
        )
        if self.data_dir is None:
            raise DataError("UnpairedDataModule needs --data.data_dir (a folder with trainA/ trainB/ testA/ testB/)")
        if predict_domain not in ("A", "B"):
            raise DataError(f"predict_domain must be 'A' or 'B', got {predict_domain!r}")
        self.load_size = default_load_size(self.image_size) if load_size is None else load_size
        self.flip, self.predict_domain = flip, predict_domain

    def _folder(self, name: str, required: bool) -> list[Path] | None:
        root = self.data_dir / name
        if not root.is_dir():
            if required:
                raise DataError(
                    f"{root} is missing: put trainA/ and trainB/ (and testA/ testB/) in "
                    f"{self.data_dir}, the CycleGAN datasets' layout"
                )
            return None
        paths = list_images(root)
        if not paths and required:
            raise DataError(f"no images in {root}; put the domain's training images there")
        return paths or None

    def _dataset(self, a: list[Path], b: list[Path], train: bool) -> UnpairedDataset:
        c = self.channels
        return UnpairedDataset(
            lambda i: load_image(a[i], c),
            len(a),
            lambda j: load_image(b[j], c),
            len(b),
            self.image_size,
            self.load_size if train else None,
            self.flip and train,
        )

    def build_datasets(self) -> dict[str, Dataset]:
        train_a, train_b = self._folder("trainA", True), self._folder("trainB", True)
        test_a, test_b = self._folder("testA", False), self._folder("testB", False)
        if test_a is None or test_b is None:
            rank_zero_warn(f"{self.data_dir} has no testA/ and testB/ with images: validating on the train images")
            test_a, test_b = test_a or train_a, test_b or train_b
        self._predict_paths = test_a if self.predict_domain == "A" else test_b
        evaluation = self._dataset(test_a, test_b, False)
        return {"train": self._dataset(train_a, train_b, True), "val": evaluation, "test": evaluation}

    def predict_extra(self) -> dict[str, Any]:
        return {"domain": 0 if self.predict_domain == "A" else 1}

    def predict_split_dataset(self) -> Dataset:
        self.setup()
        return PredictFolder(self._predict_paths, self.channels, self.image_size, self.predict_extra())


# ------------------------------------------------------------------------------------------- labelled domains
#: yunjey/stargan's CelebA attributes.
STARGAN_ATTRIBUTES = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


def read_attributes(path: Path, selected: Sequence[str]) -> tuple[list[str], Tensor]:
    """``list_attr_celeba.txt`` → (file names, float 0/1 labels (N, len(selected)) in the order of ``selected``).

    Format: line 1 the image count, line 2 the attribute names, then ``<file> v1 ... vK`` with 1 / −1.

    Raises:
        DataError: a missing file, a malformed line, or a selected attribute the file does not have.
    """
    if not path.is_file():
        raise DataError(
            f"attribute file {path} does not exist; download CelebA and put list_attr_celeba.txt beside img_align_celeba/"
        )
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise DataError(f"{path} is not a CelebA attribute file (needs a count line and a names line)")
    names = lines[1].split()
    for attr in selected:
        if attr not in names:
            raise DataError(f"attribute {attr!r} is not in {path.name}; choose from: {', '.join(names)}")
    columns = [names.index(a) for a in selected]
    files, rows = [], []
    for number, line in enumerate(lines[2:], 3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise DataError(f"{path} line {number} is not '<file> ' followed by {len(names)} values of 1/-1")
        files.append(parts[0])
        rows.append([parts[1 + c] == "1" for c in columns])
    return files, torch.tensor(rows, dtype=torch.float32).reshape(len(files), len(selected))


class LabelledFileDataset(Dataset):
    """Image files with labels → ``{"image", "label", "name", "index"}``; centre crop, resize, optional flip."""

    def __init__(
        self, paths: Sequence[Path], labels: Tensor, channels: int, image_size: int, crop_size: int | None, flip: bool
    ):
        self.paths, self.labels = list(paths), labels
        self.channels, self.image_size, self.crop_size, self.flip = channels, image_size, crop_size, flip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = load_image(self.paths[i], self.channels)
        if self.crop_size is not None:
            side = min(self.crop_size, *image.shape[-2:])
            image = TF.center_crop(image, [side, side])
        image = TF.resize(image, [self.image_size, self.image_size], antialias=True)
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        return {"image": to_unit_range(image), "label": self.labels[i], "name": self.paths[i].name, "index": i}


class CelebAAttributesDataModule(TranslationDataModule):
    """CelebA faces with a chosen list of binary attributes, for StarGAN: ``label`` is a float 0/1 vector (N, K).

    Layout: ``data_dir/list_attr_celeba.txt`` and ``data_dir/img_align_celeba/`` (names as in the attribute file).
    Preprocessing as yunjey/stargan: centre crop 178, resize to ``image_size`` (128), random flips for training; the
    first ``num_test`` images of a seeded permutation are the test set (2,000), which also serves as val.
    ``domain_names`` are the attributes; ``label_groups`` holds the indices of the selected hair colours (one-hot at
    test time).

    Args:
        data_dir: the CelebA folder.
        attributes: attribute names (the 5 of the paper by default).
        image_dir: image folder inside ``data_dir``.
        attr_file: attribute file inside ``data_dir``.
        image_size: output side (128).
        channels: 1 or 3.
        crop_size: centre crop before resizing (178; None: none).
        flip: random horizontal flips of train images.
        num_test: images held out for test/val.
        batch_size: 16 in the reference.
        num_workers: decoding worker processes.
        **kwargs: the other arguments of ``TranslationDataModule``.
    """

    native_size: ClassVar[int] = 128
    native_channels: ClassVar[int] = 3
    default_data_dir: ClassVar[str | None] = "./data/celeba"

    def __init__(
        self,
        data_dir: str | None = None,
        attributes: list[str] | None = None,
        image_dir: str = "img_align_celeba",
        attr_file: str = "list_attr_celeba.txt",
        image_size: int | None = None,
        channels: int | None = None,
        crop_size: int | None = 178,
        flip: bool = True,
        num_test: int = 2000,
        batch_size: int = 16,
        num_workers: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            image_size=image_size,
            channels=channels,
            batch_size=batch_size,
            num_workers=num_workers,
            **kwargs,
        )
        self.attributes = list(attributes) if attributes is not None else list(STARGAN_ATTRIBUTES)
        if not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise DataError(f"attributes must be a non-empty list without repeats, got {self.attributes}")
        self.num_classes = len(self.attributes)
        self.domain_names = self.attributes
        hair = [i for i, a in enumerate(self.attributes) if a in HAIR_COLOURS]
        self.label_groups = [hair] if len(hair) > 1 else []
        self.image_dir, self.attr_file = image_dir, attr_file
        self.crop_size, self.flip, self.num_test = crop_size, flip, num_test

    def build_datasets(self) -> dict[str, Dataset]:
        names, labels = read_attributes(self.data_dir / self.attr_file, self.attributes)
        root = self.data_dir / self.image_dir
        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist; CelebA's images go in {self.image_dir}/")
        paths = [root / n for n in names]
        if missing := [p for p in paths[:1000] if not p.is_file()]:
            raise DataError(f"{missing[0]} (listed in {self.attr_file}) does not exist; check --data.image_dir")
        order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(self.split_seed))
        n_test = min(self.num_test, len(paths) - 1)
        if n_test < 1:
            raise DataError(f"{self.attr_file} lists {len(paths)} image(s): too few to hold any out for test")
        parts = {"train": order[n_test:], "test": order[:n_test]}
        made = {
            split: LabelledFileDataset(
                [paths[i] for i in idx.tolist()],
                labels[idx],
                self.channels,
                self.image_size,
                self.crop_size,
                self.flip and split == "train",
            )
            for split, idx in parts.items()
        }
        return {"train": made["train"], "val": made["test"], "test": made["test"]}


class DomainFolderDataModule(ImageFolderDataModule):
    """Folder-per-domain images for StarGAN (``data_dir/<domain>/``; sorted folder names → class indices ``label``),
    i.e. ``ImageFolderDataModule(use_subfolders_as_classes=True)`` whose ``predict`` translates the test split (or a
    ``predict_dir``) and which exposes ``domain_names``.

    Args:
        data_dir: the folder of domain folders.
        predict_dir: folder of images to translate (None: the test split).
        **kwargs: the arguments of ``ImageFolderDataModule`` (image_size, crop_size, flip, val_fraction, ...).
    """

    def __init__(self, data_dir: str | None = None, predict_dir: str | None = None, **kwargs: Any) -> None:
        kwargs["use_subfolders_as_classes"] = True
        super().__init__(data_dir=data_dir, **kwargs)
        self.domain_names = list(self.class_names or [])
        if len(self.domain_names) < 2:
            raise DataError(
                f"{self.data_dir} has {len(self.domain_names)} domain folder(s); StarGAN needs at least "
                "2 sub-folders of images, one per domain"
            )
        self.predict_dir = Path(predict_dir).expanduser() if predict_dir else None

    def predict_dataloader(self) -> DataLoader:
        if self.predict_dir is not None:
            paths = list_images(self.predict_dir)
            if not paths:
                raise DataError(f"no images in {self.predict_dir}; check --data.predict_dir")
            return DataLoader(PredictFolder(paths, self.channels), batch_size=1, collate_fn=collate)
        test = self.dataset("test")
        return DataLoader(_Named(test), batch_size=self.predict_batch_size, collate_fn=collate)


class _Named(Dataset):
    """Adds ``name`` (the file's name) and ``index`` to the items of an ``ImageFileDataset`` (or a Subset of one)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.dataset[i])
        ds, j = self.dataset, i
        while hasattr(ds, "indices"):  # torch Subset
            ds, j = ds.dataset, ds.indices[j]
        paths = getattr(ds, "paths", None)
        item["name"] = paths[j].name if paths is not None else f"{i:06d}.png"
        item["index"] = i
        return item
