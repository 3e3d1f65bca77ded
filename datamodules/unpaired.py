"""Unpaired domains for CycleGAN: ``trainA/ trainB/ testA/ testB/`` folders, B drawn at random for each A."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import Dataset, Subset

from .errors import DataError
from .folder import list_images, load_image
from .samplers import PairIndexSampler
from .transforms import jitter
from .translation import FileTranslationDataModule


class UnpairedDataset(Dataset):
    """Two unpaired collections → ``{"a", "b"}``. An index ``(i, j)`` (from ``PairIndexSampler``) picks A ``i`` and B
    ``j``; a plain index ``i`` pairs A ``i mod n_A`` with B ``i mod n_B`` (deterministic, for evaluation).

    ``a``/``b`` hold image paths (read with ``channels``) or uint8 (C, H, W) images; the optional ``a_target``/
    ``b_target`` (offline tasks) hold their hidden true translations and add those keys, jittered as their source.
    """

    def __init__(self, a: Sequence, b: Sequence, image_size: int, load_size: int | None, flip: bool, channels: int = 3,
                 a_target: Sequence | None = None, b_target: Sequence | None = None):
        self.a, self.b, self.a_target, self.b_target, self.n_a, self.n_b = a, b, a_target, b_target, len(a), len(b)
        self.image_size, self.load_size, self.flip, self.channels = image_size, load_size, flip, channels

    def __len__(self) -> int:
        return max(self.n_a, self.n_b)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Tensor]:
        i, j = index if isinstance(index, tuple) else (index, index)
        i, j = i % self.n_a, j % self.n_b  # an epoch has max(n_A, n_B) items, as in the reference
        a, b = (jitter([x[k] if isinstance(x[k], Tensor) else load_image(x[k], self.channels)]
                       + ([truth[k]] if truth is not None else []), self.image_size, self.load_size, self.flip)
                for x, truth, k in ((self.a, self.a_target, i), (self.b, self.b_target, j)))
        return {"a": a[0], "b": b[0], **({"a_target": a[1], "b_target": b[1]} if len(a) > 1 else {})}

    def subset(self, k: int, generator: torch.Generator) -> UnpairedDataset:
        """At most ``k`` images of each domain (``limit_train_images``): sorted draws of seeded permutations."""
        keep_a, keep_b = (torch.randperm(n, generator=generator)[:k].sort().values.tolist()
                          for n in (self.n_a, self.n_b))
        a_target, b_target = (None if x is None else Subset(x, keep)
                              for x, keep in ((self.a_target, keep_a), (self.b_target, keep_b)))
        return UnpairedDataset(Subset(self.a, keep_a), Subset(self.b, keep_b), self.image_size, self.load_size,
                               self.flip, self.channels, a_target, b_target)

    def train_sampler(self, seed: int) -> PairIndexSampler:
        """The train order: ``max(n_A, n_B)`` A items per epoch, each with a random B."""
        return PairIndexSampler(len(self), self.n_b, seed)


class UnpairedDataModule(FileTranslationDataModule):
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
        self.predict_domain, self.predict_extra = predict_domain, {"domain": 0 if predict_domain == "A" else 1}

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
        return UnpairedDataset(a, b, self.image_size, self.load_size if train else None, self.flip and train,
                               self.channels)

    def build_datasets(self) -> dict[str, Dataset]:
        train_a, train_b = self._folder("trainA", True), self._folder("trainB", True)
        test_a, test_b = self._folder("testA", False), self._folder("testB", False)
        if test_a is None or test_b is None:
            rank_zero_warn(f"{self.data_dir} has no testA/ and testB/ with images: validating on the train images")
            test_a, test_b = test_a or train_a, test_b or train_b
        self._predict_paths = test_a if self.predict_domain == "A" else test_b
        evaluation = self._dataset(test_a, test_b, False)
        return {"train": self._dataset(train_a, train_b, True), "val": evaluation, "test": evaluation}

    def predict_split_dataset(self) -> Dataset:
        self.setup()
        return self.predict_files(self._predict_paths, self.image_size)
