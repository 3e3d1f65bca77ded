"""Reproducible, resumable shuffling for the train loader, single process and under DDP. ``SeededRandomSampler`` is
a ``DistributedSampler``, so Lightning keeps it under DDP instead of putting in its own (Lightning 2.6
``trainer/connectors/data_connector.py``, ``_requires_distributed_sampler``); ``ResumableDataLoader`` has
``state_dict``/``load_state_dict``, which Lightning saves in every checkpoint (from rank 0) and restores on resume (on
every rank), so a mid-epoch resume skips exactly the batches already trained on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler


class SeededRandomSampler(DistributedSampler):
    """A random permutation of ``range(n)`` drawn from ``torch.Generator().manual_seed(seed + epoch)``, shared out
    among ``num_replicas`` processes: the order of ``DistributedSampler(shuffle=True, drop_last=True, seed=seed)``.

    Rank ``r`` yields ``order[r : num_samples * num_replicas : num_replicas]``, ``num_samples = n // num_replicas``:
    equal shares (the last ``n mod num_replicas`` items are dropped, never padded), so every rank delivers the same
    number of batches, the loader state Lightning saves from rank 0 serves every rank, and the ``k``-th batches of all
    ranks together are the ``k``-th batch of size ``num_replicas * batch_size`` of one process. ``state_dict`` records
    the epoch and how many indices of this rank's share the current iteration has yielded; after ``load_state_dict``
    the next iteration skips them (once).

    Args:
        n: size of the dataset.
        seed: base seed; epoch ``e`` uses ``seed + e``.
        num_replicas: processes sharing each epoch; ``None``: the world size of ``torch.distributed`` when a process
            group is initialised, else 1.
        rank: this process's share, in ``[0, num_replicas)``; ``None``: its rank in that group, else 0.
    """

    def __init__(self, n: int, seed: int = 0, num_replicas: int | None = None, rank: int | None = None) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        grouped = dist.is_available() and dist.is_initialized()
        num_replicas = (dist.get_world_size() if grouped else 1) if num_replicas is None else num_replicas
        rank = (dist.get_rank() if grouped else 0) if rank is None else rank
        # sets num_replicas, rank, epoch = 0, num_samples = n // num_replicas (drop_last), total_size, seed
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.n = n
        self.yielded = 0  # indices of this rank's share handed out by the current (or last) iteration, skipped too
        self._skip = 0  # indices to skip at the start of the next iteration (set by load_state_dict)

    def permutation(self, epoch: int | None = None) -> torch.Tensor:
        """The full order of ``epoch`` (default: the current one), before it is shared out."""
        generator = torch.Generator().manual_seed(self.seed + (self.epoch if epoch is None else epoch))
        return torch.randperm(self.n, generator=generator)

    def epoch_items(self, epoch: int) -> list[Any]:
        """Everything epoch ``epoch`` yields, in order, before it is shared out (subclasses yield other items)."""
        return self.permutation(epoch).tolist()

    def __iter__(self) -> Iterator[Any]:
        share = self.epoch_items(self.epoch)[self.rank : self.total_size : self.num_replicas]
        start, self._skip = self._skip, 0
        self.yielded = start
        for item in share[start:]:
            self.yielded += 1
            yield item

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``; a pending resume offset survives only if the epoch is unchanged."""
        if epoch != self.epoch:
            self.epoch, self._skip, self.yielded = epoch, 0, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self.yielded, "seed": self.seed, "n": self.n,
                "num_replicas": self.num_replicas}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume where ``state`` stopped: the ranks together had consumed the first ``yielded * num_replicas``
        items of the permutation, so another number of processes continues from there (exactly if it divides)."""
        self.epoch = int(state["epoch"])
        consumed = int(state.get("yielded", 0)) * int(state.get("num_replicas", 1))
        yielded = consumed // self.num_replicas
        if yielded >= len(self):  # saved at the end of an epoch: resume at the start of the next one
            self.epoch, yielded = self.epoch + 1, 0
        self._skip = self.yielded = yielded


class PairIndexSampler(SeededRandomSampler):
    """A seeded permutation of the ``n`` (``max(n_A, n_B)``) A items, each paired with one of ``n_b`` B indices drawn
    uniformly from the same epoch's generator ("B drawn at random each step", the CycleGAN reference's
    ``serial_batches=False``); yields ``(a_index, b_index)``, shared out and resumed as ``SeededRandomSampler``."""

    def __init__(self, n: int, n_b: int, seed: int = 0, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(n, seed, num_replicas, rank)
        self.n_b = n_b

    def epoch_items(self, epoch: int) -> list[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        partners = torch.randint(self.n_b, (self.n,), generator=generator).tolist()
        return list(zip(order, partners))


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` whose position survives a checkpoint when its sampler is a ``SeededRandomSampler``: it counts
    the samples of the batches it has *delivered* (not those workers prefetched), so the state is exact with any
    ``num_workers``. With another sampler the state is empty and a mid-epoch resume restarts the epoch's order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Exact resume: without a generator of its own, every ``iter(loader)`` draws the workers' base seed from the
        # global RNG, at epoch starts a resumed run does not replay. Ours is reseeded from (seed, epoch, rank) each
        # epoch; the rank term (0 on rank 0) keeps the augmentation draws of different DDP ranks apart.
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
            offset = sampler.seed + sampler.epoch + (sampler.rank << 32) if sampler is not None else 0
            self.generator.manual_seed(0x5EED0000 + offset)
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
