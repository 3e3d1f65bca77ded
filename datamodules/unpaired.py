"""Unpaired domains for CycleGAN: ``trainA/ trainB/ testA/ testB/`` folders, B drawn at random for each A."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import Dataset

from .errors import DataError
from .folder import list_images, load_image
from .samplers import PairIndexSampler
from .transforms import jitter
from .translation import FileTranslationDataModule

Loader = Callable[[int], Tensor]  # index -> uint8 (C, H, W)


class UnpairedDataset(Dataset):
    """Two unpaired collections → ``{"a", "b"}``. An index ``(i, j)`` (from ``PairIndexSampler``) picks A ``i`` and B
    ``j``; a plain index ``i`` pairs A ``i mod n_A`` with B ``i mod n_B`` (deterministic, for evaluation).

    ``load_a``/``load_b`` map an index to a uint8 (C, H, W) image; ``targets`` optionally map an index to the hidden
    true translation (offline tasks) and add ``a_target``/``b_target``.
    """

    def __init__(self, load_a: Loader, n_a: int, load_b: Loader, n_b: int, image_size: int, load_size: int | None,
                 flip: bool, target_a: Loader | None = None, target_b: Loader | None = None):
        self.load_a, self.load_b, self.n_a, self.n_b = load_a, load_b, n_a, n_b
        self.image_size, self.load_size, self.flip = image_size, load_size, flip
        self.target_a, self.target_b = target_a, target_b

    def __len__(self) -> int:
        return max(self.n_a, self.n_b)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Tensor]:
        i, j = index if isinstance(index, tuple) else (index, index)
        i, j = i % self.n_a, j % self.n_b  # an epoch has max(n_A, n_B) items, as in the reference
        # A (then B) and its hidden truth, if any, get the same jitter
        a, b = (jitter([load(k)] + ([target(k)] if target else []), self.image_size, self.load_size, self.flip)
                for load, target, k in ((self.load_a, self.target_a, i), (self.load_b, self.target_b, j)))
        return {"a": a[0], "b": b[0], **({"a_target": a[1], "b_target": b[1]} if len(a) > 1 else {})}

    def subset(self, k: int, generator: torch.Generator) -> UnpairedDataset:
        """At most ``k`` images of each domain (``limit_train_images``): sorted draws of seeded permutations."""
        keep_a, keep_b = (torch.randperm(n, generator=generator)[:k].sort().values.tolist()
                          for n in (self.n_a, self.n_b))

        def pick(load: Loader | None, keep: list[int]) -> Loader | None:
            return None if load is None else lambda i: load(keep[i])

        return UnpairedDataset(pick(self.load_a, keep_a), len(keep_a), pick(self.load_b, keep_b), len(keep_b),
                               self.image_size, self.load_size, self.flip, pick(self.target_a, keep_a),
                               pick(self.target_b, keep_b))


class UnpairedTrainLoaderMixin:
    """Train order of unpaired data: ``max(n_A, n_B)`` A items per epoch, each with a random B (``PairIndexSampler``,
    resumable and shared out among DDP processes)."""

    def train_sampler(self, dataset: UnpairedDataset) -> PairIndexSampler:
        return PairIndexSampler(len(dataset), dataset.n_b, self.seed)


class UnpairedDataModule(UnpairedTrainLoaderMixin, FileTranslationDataModule):
    """Unpaired domains in the CycleGAN datasets' layout: ``data_dir/trainA/ trainB/ testA/ testB/``.

    Each training item is A ``i`` (a seeded permutation per epoch, ``max(n_A, n_B)`` items) with a B drawn at random,
    each jittered independently (resize to ``load_size``, random crop, flip). Val and test use ``testA``/``testB``
    (resized, paired by index), or the train folders with a warning when there are no test folders.
    ``limit_train_images`` keeps that many images of each domain.

    Args:
        predict_domain: ``A`` (translate A → B: ``testA`` or ``predict_dir``) or ``B``.
    """

    layout: ClassVar[str] = "trainA/ trainB/ testA/ testB/"

    def __init__(self, *args: Any, predict_domain: Literal["A", "B"] = "A", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if predict_domain not in ("A", "B"):
            raise DataError(f"predict_domain must be 'A' or 'B', got {predict_domain!r}")
        self.predict_domain = predict_domain

    def _folder(self, name: str, required: bool) -> list[Path] | None:
        root = self.data_dir / name
        if not root.is_dir():
            if required:
                raise DataError(f"{root} is missing: put trainA/ and trainB/ (and testA/ testB/) in "
                                f"{self.data_dir}, the CycleGAN datasets' layout")
            return None
        paths = list_images(root)
        if not paths and required:
            raise DataError(f"no images in {root}; put the domain's training images there")
        return paths or None

    def _dataset(self, a: list[Path], b: list[Path], train: bool) -> UnpairedDataset:
        c = self.channels
        return UnpairedDataset(lambda i: load_image(a[i], c), len(a), lambda j: load_image(b[j], c), len(b),
                               self.image_size, self.load_size if train else None, self.flip and train)

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
        return self.predict_files(self._predict_paths, self.image_size)
