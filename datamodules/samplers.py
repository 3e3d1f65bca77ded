"""Reproducible, resumable shuffling for the train loader.

``SeededRandomSampler`` permutes with its own ``torch.Generator`` seeded from ``seed + epoch``, so the order never
depends on the global RNG (a model that draws noise from it cannot change the data order). ``ResumableDataLoader``
is a plain ``DataLoader`` that also has ``state_dict``/``load_state_dict``; Lightning saves those of a train loader
in every checkpoint and restores them on resume, so a mid-epoch resume skips exactly the batches already trained on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class SeededRandomSampler(Sampler[int]):
    """A random permutation of ``range(n)`` drawn from ``torch.Generator().manual_seed(seed + epoch)``.

    Lightning calls ``set_epoch`` before every epoch. ``state_dict`` records the epoch and how many indices this
    epoch's iteration has yielded; after ``load_state_dict`` the next iteration skips those indices (once).

    Args:
        n: size of the dataset.
        seed: base seed; epoch ``e`` uses ``seed + e``.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n = n
        self.seed = seed
        self.epoch = 0
        self.yielded = 0  # indices handed out by the current (or last) iteration, counting skipped ones
        self._skip = 0  # indices to skip at the start of the next iteration (set by load_state_dict)

    def __len__(self) -> int:
        return self.n

    def permutation(self, epoch: int | None = None) -> torch.Tensor:
        """The full order of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=generator)

    def __iter__(self) -> Iterator[int]:
        order = self.permutation().tolist()
        start, self._skip = self._skip, 0
        self.yielded = start
        for index in order[start:]:
            self.yielded += 1
            yield index

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``; a pending resume offset survives only if the epoch is unchanged."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._skip = 0
            self.yielded = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self.yielded, "seed": self.seed, "n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        yielded = int(state.get("yielded", 0))
        if yielded >= self.n:  # saved at the end of an epoch: resume at the start of the next one
            self.epoch, yielded = self.epoch + 1, 0
        self._skip = self.yielded = yielded


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` whose position survives a checkpoint when its sampler is a ``SeededRandomSampler``.

    It counts the samples of the batches it has *delivered* (not those that workers prefetched), so the state is exact
    with any ``num_workers``. With another sampler (e.g. the ``DistributedSampler`` that Lightning puts in under
    DDP) the state is empty and a mid-epoch resume restarts the epoch's order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Exact resume (issue 7): without a generator of its own, every ``iter(loader)`` draws the workers' base seed
        # from the global torch RNG, at epoch starts that a resumed run does not replay at the same moment. Our own
        # generator, reseeded from (seed, epoch) each epoch, keeps the global RNG untouched.
        self._own_generator = kwargs.get("generator") is None
        if self._own_generator:
            kwargs["generator"] = torch.Generator()
        super().__init__(*args, **kwargs)
        self._delivered: int | None = None  # samples delivered by the running iteration (None: not iterating)

    def _seeded_sampler(self) -> SeededRandomSampler | None:
        batch_sampler = self.batch_sampler
        sampler = getattr(batch_sampler, "sampler", None) if batch_sampler is not None else self.sampler
        return sampler if isinstance(sampler, SeededRandomSampler) else None

    def __iter__(self) -> Iterator[Any]:
        sampler = self._seeded_sampler()
        if self._own_generator:
            self.generator.manual_seed(0x5EED0000 + (sampler.seed + sampler.epoch if sampler is not None else 0))
        start = sampler._skip if sampler is not None else 0
        self._delivered = start
        step = self.batch_size or 1
        for batch in super().__iter__():
            self._delivered = min(self._delivered + step, len(sampler) if sampler is not None else 1 << 62)
            yield batch
        self._delivered = None

    def state_dict(self) -> dict[str, int]:
        sampler = self._seeded_sampler()
        if sampler is None:
            return {}
        state = sampler.state_dict()
        if self._delivered is not None:
            state["yielded"] = self._delivered
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sampler = self._seeded_sampler()
        if sampler is not None and state:
            sampler.load_state_dict(state)
