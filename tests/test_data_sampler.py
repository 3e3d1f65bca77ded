"""The DDP-aware seeded train sampler: one process keeps the order it always had, ranks take disjoint equal shares of
one permutation, every rank resumes exactly from the state Lightning saves on rank 0, and under a real 2-process DDP
run (gloo, CPU) Lightning keeps our sampler instead of putting in its own ``DistributedSampler``."""

from __future__ import annotations

import json
import os
import socket
import traceback
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.multiprocessing as mp
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import Dataset, DistributedSampler

from datamodules import InMemoryImageDataModule, PairIndexSampler, ResumableDataLoader, SeededRandomSampler


def reference_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order of one process, as the sampler has always drawn it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


class Indices(Dataset):
    """Item ``i`` is ``{"i": i}``, so a batch shows which indices it holds."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, int]:
        return {"i": i}


def batches(loader) -> list[list[int]]:
    return [batch["i"].tolist() for batch in loader]


# ------------------------------------------------------------------------------------------------ one process
@pytest.mark.parametrize(("n", "seed"), [(10, 0), (37, 5)])
def test_single_process_order_is_the_recorded_permutation(n, seed):
    sampler = SeededRandomSampler(n, seed)
    assert isinstance(sampler, DistributedSampler) and (sampler.num_replicas, sampler.rank) == (1, 0)
    assert len(sampler) == n
    for epoch in (0, 1, 4):
        sampler.set_epoch(epoch)
        torch.manual_seed(epoch)  # the global RNG plays no part
        assert list(sampler) == reference_order(n, seed, epoch)


def test_single_process_pair_sampler_keeps_its_draws():
    sampler = PairIndexSampler(9, 4, seed=3)
    sampler.set_epoch(2)
    generator = torch.Generator().manual_seed(3 + 2)
    order = torch.randperm(9, generator=generator).tolist()
    partners = torch.randint(4, (9,), generator=generator).tolist()
    assert list(sampler) == list(zip(order, partners))


# ------------------------------------------------------------------------------------------- explicit ranks
@pytest.mark.parametrize("n", [23, 24])
def test_two_ranks_take_disjoint_equal_shares_of_one_permutation(n):
    for epoch in (0, 3):
        shares = []
        for rank in (0, 1):
            sampler = SeededRandomSampler(n, seed=11, num_replicas=2, rank=rank)
            sampler.set_epoch(epoch)
            shares.append(list(sampler))
            assert len(shares[-1]) == len(sampler) == n // 2
            torch_sampler = DistributedSampler(range(n), 2, rank, shuffle=True, seed=11, drop_last=True)
            torch_sampler.set_epoch(epoch)
            assert shares[-1] == list(torch_sampler)  # the order torch's own DistributedSampler would give
        order = reference_order(n, 11, epoch)
        assert not set(shares[0]) & set(shares[1])
        assert sorted(shares[0] + shares[1]) == sorted(order[: 2 * (n // 2)])  # the epoch, minus a dropped tail
        assert [x for pair in zip(*shares) for x in pair] == order[: 2 * (n // 2)]  # interleaved


def test_pair_sampler_shares_pairs_between_ranks():
    full = list(PairIndexSampler(11, 5, seed=2))
    shares = [list(PairIndexSampler(11, 5, seed=2, num_replicas=2, rank=r)) for r in (0, 1)]
    assert shares[0] == full[0:10:2] and shares[1] == full[1:10:2]


def test_rank_zero_state_resumes_every_rank_exactly():
    n, batch_size, done = 29, 3, 2
    loaders = [ResumableDataLoader(Indices(n), batch_size=batch_size, drop_last=True,
                                   sampler=SeededRandomSampler(n, seed=4, num_replicas=2, rank=r)) for r in (0, 1)]
    for loader in loaders:
        loader.sampler.set_epoch(1)
    reference = [batches(loader) for loader in loaders]
    assert len(reference[0]) == len(reference[1]) == (n // 2) // batch_size  # every rank delivers the same count
    iterator = iter(loaders[0])
    for _ in range(done):
        next(iterator)
    state = loaders[0].state_dict()  # what Lightning saves, from rank 0 only
    assert state["epoch"] == 1 and state["yielded"] == done * batch_size and state["num_replicas"] == 2
    for rank in (0, 1):
        fresh = ResumableDataLoader(Indices(n), batch_size=batch_size, drop_last=True,
                                    sampler=SeededRandomSampler(n, seed=4, num_replicas=2, rank=rank))
        fresh.load_state_dict(state)
        fresh.sampler.set_epoch(1)  # Lightning calls this after restoring; the offset survives
        assert batches(fresh) == reference[rank][done:]
        assert batches(fresh) == reference[rank]  # the skip applies once


def test_resume_on_another_number_of_processes_continues_the_permutation():
    order = reference_order(20, 0, 0)
    two = SeededRandomSampler(20, num_replicas=2, rank=1)
    iterator = iter(two)
    for _ in range(3):
        next(iterator)
    one = SeededRandomSampler(20)
    one.load_state_dict(two.state_dict())  # 2 ranks x 3 items consumed
    assert list(one) == order[6:]
    finished = SeededRandomSampler(20, num_replicas=2, rank=0)
    finished.load_state_dict({"epoch": 0, "yielded": 10, "num_replicas": 2})  # saved at the end of epoch 0
    assert finished.epoch == 1 and list(finished) == reference_order(20, 0, 1)[0:20:2]


def test_rank_outside_the_group_is_refused():
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        SeededRandomSampler(10, num_replicas=2, rank=2)


# ------------------------------------------------------------------------------------ Lightning, 2 processes
N, BATCH, SEED, WORLD = 43, 4, 9, 2  # 21 items per rank (one dropped), 5 batches per rank and epoch


class IndexImages(InMemoryImageDataModule):
    """Image ``i`` is a 4x4 gray square of value ``i``: a batch shows which indices it holds."""

    native_size, native_channels = 4, 1

    def load_arrays(self):
        images = torch.arange(N, dtype=torch.uint8).view(N, 1, 1, 1).expand(N, 1, 4, 4).contiguous()
        return dict.fromkeys(("train", "val", "test"), (images, None))


class Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []
        self.samplers: set[str] = set()

    def training_step(self, batch, batch_idx):
        sampler = self.trainer.train_dataloader.sampler
        self.samplers.add(f"{type(sampler).__name__} {sampler.num_replicas} {sampler.rank}")
        self.seen.append(((batch["image"][:, 0, 0, 0] + 1) * 127.5).round().long().tolist())
        return (self.weight * batch["image"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(out: Path, ckpt_path: Path | None = None) -> Recorder:
    model = Recorder()
    trainer = L.Trainer(accelerator="cpu", devices=WORLD, strategy="ddp", max_epochs=2, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        default_root_dir=out, callbacks=[ModelCheckpoint(dirpath=out / "ckpt", filename="{step}",
                                                                         every_n_train_steps=3, save_top_k=-1)])
    trainer.fit(model, datamodule=IndexImages(batch_size=BATCH, seed=SEED), ckpt_path=ckpt_path)
    return model


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
                      LOCAL_RANK=str(rank), NODE_RANK="0")
    torch.set_num_threads(1)
    try:
        first = _fit(Path(out) / "first")
        resumed = _fit(Path(out) / "resumed", ckpt_path=Path(out) / "first" / "ckpt" / "step=3.ckpt")
        record = {"samplers": sorted(first.samplers | resumed.samplers), "first": first.seen, "resumed": resumed.seen}
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))
    except BaseException:
        (Path(out) / f"error.rank{rank}.txt").write_text(traceback.format_exc())
        raise


@pytest.mark.ddp
def test_lightning_ddp_keeps_our_sampler_and_resumes_each_rank(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.start_processes(_ddp_worker, args=(port, str(tmp_path)), nprocs=WORLD, join=False, start_method="spawn")
    try:  # each join waits a second, or less when a worker ends (at most WORLD times)
        finished = any(ctx.join(timeout=1) for _ in range(120))
    except mp.ProcessRaisedException:
        pytest.fail("a DDP worker failed:\n" + "\n".join(f.read_text() for f in tmp_path.glob("error.rank*.txt")))
    if not finished:
        for p in ctx.processes:
            p.kill()
        pytest.fail("the DDP workers did not finish within about 120 s")
    for rank in range(WORLD):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert record["samplers"] == [f"SeededRandomSampler {WORLD} {rank}"]  # Lightning kept ours, sharded
        expected = []
        for epoch in (0, 1):
            share = reference_order(N, SEED, epoch)[rank : WORLD * (N // WORLD) : WORLD]
            expected += [share[i : i + BATCH] for i in range(0, len(share) - BATCH + 1, BATCH)]
        assert record["first"] == expected  # 5 batches per epoch on every rank
        assert record["resumed"] == expected[3:]  # rank 0's saved position resumes this rank exactly
