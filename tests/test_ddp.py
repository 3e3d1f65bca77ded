"""DDP through Lightning on 2 CPU processes (gloo): two steps of 2 ranks × B must give the weights of a single-process
run of 2B whose batches and random draws are the two ranks' halves side by side — exactly, up to float rounding.

Why the comparison can be exact: every loss is a per-sample mean, so DDP's gradient all-reduce (an average over ranks)
equals the gradient of the 2B batch, and SGD turns equal gradients into equal steps (Adam's first step, ≈ lr·sign(g),
would only compare signs). What would break it, and how the test rules it out:

- BatchNorm couples the samples of a batch: statistics over B differ from those over 2B by definition (and
  ``sync_batchnorm`` is GPU-only). The compared nets are BatchNorm-free (LayerNorm / InstanceNorm / none).
- Random draws: the ranks run the real noise path — each rank draws z, labels and the penalty's interpolation weights
  from its own stream, seeded by (seed, rank) (``gan_modules.rng``). The single process draws the first half of every
  tensor from rank 0's stream and the second half from rank 1's (``SplitContext``), which is what the 2B batch of the
  two ranks side by side means. Dropout is off.
- Lightning's DistributedSampler shuffles: ``use_distributed_sampler=False`` with a sampler that gives rank r its
  share, and the single process the same samples in the matching order.

The two ranks are started once per test session by ``torch.multiprocessing`` with the environment variables a
``torchrun``/SLURM launch sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR/PORT``), so each rank's
Lightning trainer uses ``strategy="ddp_find_unused_parameters_true"`` exactly as a multi-GPU user's would. The CLI
runs (``gan-modules fit --trainer.devices 2 ...``) are in ``tests/test_ddp_cli.py``.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import socket
import time
import traceback
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_modules import MODELS
from gan_modules.context import StepContext
from gan_modules.rng import stream_seed

pytestmark = pytest.mark.ddp

B = 4  # per-rank batch; the single-process batch is 2B
STEPS = 2  # batches per rank (each one D step and one G step)
WORLD = 2
SEED = 1234
LR = 0.05


def steps_of(name: str) -> int:
    """Generator steps compared. CycleGAN: one. Its tiny InstanceNorm ResNet is so ill-conditioned that a weight
    perturbation of 3e-7 (the float rounding of one step) changes the next step's gradients by ~2% (measured), so a
    second step would compare rounding noise amplified, not the DDP path."""
    return 1 if name == "CycleGAN" else STEPS


# ---------------------------------------------------------------------------------------------------------------
class Images(Dataset):
    """Deterministic random images in [-1, 1] with class labels, or unpaired a/b for CycleGAN."""

    def __init__(self, n: int, channels: int, size: int, unpaired: bool = False):
        g = torch.Generator().manual_seed(7)
        self.a = torch.rand(n, channels, size, size, generator=g) * 2 - 1
        self.b = torch.rand(n, channels, size, size, generator=g) * 2 - 1
        self.labels = torch.randint(0, 10, (n,), generator=g)
        self.unpaired = unpaired

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, i: int) -> dict:
        if self.unpaired:
            return {"a": self.a[i], "b": self.b[i]}
        return {"image": self.a[i], "label": self.labels[i]}


class RankShare(Sampler):
    """Rank r reads samples [r·S·B, (r+1)·S·B) in order; the single process (no process group) reads, batch by
    batch, rank 0's batch then rank 1's: the 2B batch is the two ranks' batches side by side."""

    def __iter__(self):
        if dist.is_initialized():
            r = dist.get_rank()
            return iter(range(r * STEPS * B, (r + 1) * STEPS * B))
        return iter([r * STEPS * B + s * B + i for s in range(STEPS) for r in range(WORLD) for i in range(B)])

    def __len__(self) -> int:
        return STEPS * B * (1 if dist.is_initialized() else WORLD)


class SplitContext(StepContext):
    """The single-process context: each random tensor's first half from rank 0's stream, second half from rank 1's."""

    def __init__(self, batch, streams: list[torch.Generator], generator_step: bool):
        super().__init__(batch, streams[0], generator_step)
        self.streams = streams

    def _halves(self, draw, shape: tuple[int, ...]) -> Tensor:
        n = shape[0] // WORLD
        return torch.cat([draw((n, *shape[1:]), g) for g in self.streams])

    def randn(self, *shape: int) -> Tensor:
        return self._halves(lambda s, g: torch.randn(s, generator=g), shape)

    def rand(self, *shape: int) -> Tensor:
        return self._halves(lambda s, g: torch.rand(s, generator=g), shape)

    def randint(self, high: int, *shape: int) -> Tensor:
        return self._halves(lambda s, g: torch.randint(high, s, generator=g), shape)


def single_process(cls):
    """``cls`` drawing from both ranks' streams (the reference run of 2B)."""

    def new_context(self, batch, generator_step):
        if not hasattr(self, "_split"):
            self._split = [torch.Generator().manual_seed(stream_seed(SEED, r)) for r in range(WORLD)]
        return SplitContext(batch, self._split, generator_step)

    return type(f"Split{cls.__name__}", (cls,), {"new_context": new_context, "__module__": __name__})


class Recorder(L.Callback):
    """Per rank: the module's state at the end, the first iteration's z and the global RNG state at the first batch
    (what dropout masks are drawn from)."""

    def __init__(self, path: Path):
        self.path, self.first = path, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.first:  # the first draw of the first iteration is z (B, 8): read it from a copy of the stream
            gen = torch.Generator()
            gen.set_state(pl_module.streams.noise.get_state())
            self.first = {"rng": torch.get_rng_state().clone(), "z": torch.randn(B, 8, generator=gen)}

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"state": state, "g": pl_module.generator_steps, "d": pl_module.discriminator_steps, **self.first},
                   self.path.with_name(f"{self.path.name}.rank{trainer.global_rank}.pt"))


def strip_batchnorm(module: nn.Module) -> nn.Module:
    """Replaces every BatchNorm by an identity (BatchNorm couples samples: 2×B and 2B differ by definition)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            strip_batchnorm(child)
    return module


def build(name: str, single: bool = False) -> tuple[L.LightningModule, Dataset]:
    """The model (seeded init, BatchNorm-free, SGD) and its full dataset for ``name``."""
    torch.manual_seed(SEED)
    sgd = functools.partial(torch.optim.SGD, lr=LR)
    common = dict(n_critic=1, ema_decay=0.5, optimizer_g=sgd, optimizer_d=sgd, max_generator_steps=steps_of(name))
    image = dict(image_size=28, channels=1, latent_dim=8)
    base = name.split("-")[0]
    cls = MODELS[base] if not single else single_process(MODELS[base])
    if name == "GAN":
        model = cls(image_size=8, channels=1, latent_dim=8, g_hidden=(16, 16), d_hidden=(16, 16), d_dropout=0.0,
                    **common)
        data = Images(WORLD * STEPS * B, 1, 8)
    elif name == "DCGAN":
        model = cls(ngf=4, ndf=4, g_norm="layer", d_norm="layer", **image, **common)
        data = Images(WORLD * STEPS * B, 1, 28)
    elif base == "WGANGP":  # "WGANGP-nopenalty": λ = 0, to show the penalty's share of the step
        model = cls(ngf=4, ndf=4, g_norm="layer", d_norm="layer", penalty_weight=0.0 if "nopenalty" in name else 10.0,
                    **image, **common)
        data = Images(WORLD * STEPS * B, 1, 28)
    elif name == "SNGAN":
        model = cls(ngf=4, ndf=4, latent_dim=8, image_size=32, channels=1, **common)
        strip_batchnorm(model.generator), strip_batchnorm(model.generator_ema)
        data = Images(WORLD * STEPS * B, 1, 32)
    elif name == "CGAN":  # conditional, with the gradient penalty through the labelled critic, uniform fake labels
        model = cls(ngf=4, ndf=4, d_norm="layer", num_classes=10, penalty="gradient_penalty", fake_labels="uniform",
                    **image, **common)
        strip_batchnorm(model.generator), strip_batchnorm(model.generator_ema)
        data = Images(WORLD * STEPS * B, 1, 28)
    elif name == "CycleGAN":
        common.pop("ema_decay")
        model = cls(image_size=32, channels=1, ngf=4, ndf=4, pool_size=50, n_residual_blocks=1, **common)
        data = Images(WORLD * STEPS * B, 1, 32, unpaired=True)
    else:
        raise KeyError(name)
    return model, data


def fit(name: str, out: Path, per_rank_batch: int, single: bool = False, **trainer_kwargs) -> None:
    L.seed_everything(SEED)
    model, data = build(name, single)
    loader = DataLoader(data, batch_size=per_rank_batch, sampler=RankShare())
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        use_distributed_sampler=False, callbacks=[Recorder(out / name)], default_root_dir=out,
                        **trainer_kwargs)
    trainer.fit(model, loader)


DDP_NAMES = ["GAN", "DCGAN", "WGANGP", "WGANGP-nopenalty", "SNGAN", "CGAN", "CycleGAN"]


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
                      LOCAL_RANK=str(rank), NODE_RANK="0")
    torch.set_num_threads(1)
    try:
        for name in DDP_NAMES:
            fit(name, Path(out), B, devices=WORLD, strategy="ddp_find_unused_parameters_true")
    except BaseException:
        (Path(out) / f"error.rank{rank}.txt").write_text(traceback.format_exc())
        raise


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    """The folder of every variant's run on 2 gloo ranks and in one process, computed once per test session: under
    pytest-xdist the workers share the session's temp root and the first one runs it while the others wait."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # pytest-N/, common to this session's xdist workers
    out = shared / "ddp_runs"
    with open(shared / "ddp_runs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "done").exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            _run_all(out)
            (out / "done").touch()
    return out


def _run_all(out: Path) -> None:
    started = time.monotonic()
    ctx = mp.start_processes(_ddp_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 300
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                pytest.fail("DDP workers did not finish within 300 s")
    except mp.ProcessRaisedException:
        errors = "\n".join(f.read_text() for f in sorted(out.glob("error.rank*.txt")))
        pytest.fail(f"a DDP worker failed:\n{errors}")
    (out / "ddp_seconds.txt").write_text(f"{time.monotonic() - started:.1f}")
    single = out / "single"
    single.mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: the same kernels, so the same rounding
    try:
        for name in DDP_NAMES:
            fit(name, single, WORLD * B, single=True, devices=1)
    finally:
        torch.set_num_threads(threads)


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


# SGD: a weight moves by lr·g; the averaged gradient of 2 ranks and the 2B gradient differ by float rounding only
# (~1e-7 relative), so 2×B and 2B agree to ~lr·1e-6 after two steps. ATOL is 1e-6, a thousand times below one
# step's change of a typical weight (lr·|g| ≈ 1e-3).
ATOL = 1e-6


@pytest.mark.parametrize("name", DDP_NAMES)
def test_ddp_2_ranks_of_b_match_one_process_of_2b_exactly(ddp_runs, name):
    r0, r1 = _load(ddp_runs / f"{name}.rank0.pt"), _load(ddp_runs / f"{name}.rank1.pt")
    one = _load(ddp_runs / "single" / f"{name}.rank0.pt")
    assert (r0["d"], r0["g"]) == (r1["d"], r1["g"]) == (one["d"], one["g"]) == (steps_of(name), steps_of(name))
    init, _ = build(name)
    changed, worst = 0, 0.0
    for key, w in one["state"].items():
        assert torch.equal(r0["state"][key], r1["state"][key]), f"{key} differs between ranks"
        if w.is_floating_point():
            worst = max(worst, (r0["state"][key] - w).abs().max().item())
            changed += int(not torch.equal(w, init.state_dict()[key]))
        torch.testing.assert_close(r0["state"][key], w, atol=ATOL, rtol=0, msg=f"{key}: 2×B DDP != 2B")
    assert changed >= 4, "the steps changed almost nothing: the comparison would be vacuous"
    (ddp_runs / f"{name}.max_abs_diff.txt").write_text(f"{worst:.3e}")


def test_ddp_ranks_draw_different_noise_and_dropout_streams(ddp_runs):
    """Every rank draws its own z (the fake half of the batch is not the same on every GPU) and its own dropout masks
    (the global RNG is seeded per rank), reproducibly: rank r's z is what stream_seed(seed, r) gives."""
    r0, r1 = _load(ddp_runs / "DCGAN.rank0.pt"), _load(ddp_runs / "DCGAN.rank1.pt")
    assert not torch.equal(r0["z"], r1["z"])
    assert not torch.equal(r0["rng"], r1["rng"])
    for r, rec in enumerate((r0, r1)):
        expected = torch.randn(B, 8, generator=torch.Generator().manual_seed(stream_seed(SEED, r)))
        assert torch.equal(rec["z"], expected)


def test_ddp_spectral_norm_vectors_identical_across_ranks(ddp_runs):
    r0, r1 = _load(ddp_runs / "SNGAN.rank0.pt"), _load(ddp_runs / "SNGAN.rank1.pt")
    init, _ = build("SNGAN")
    u_keys = [k for k in r0["state"] if k.endswith("_u") and k.startswith("discriminator.")]
    assert u_keys, "SNGAN's discriminator has no spectral-norm vectors"
    for k in u_keys:
        assert torch.equal(r0["state"][k], r1["state"][k]), f"{k} differs between ranks"
        if r0["state"][k].numel() > 1:  # a 1-row weight's u is ±1 whatever the iteration does
            assert not torch.equal(r0["state"][k], init.state_dict()[k]), f"{k} not updated by the power iteration"


def test_ddp_gradient_penalty_changes_the_critic_step(ddp_runs):
    """The same WGAN-GP steps with λ = 10 and with λ = 0 (both matched the single process above) leave different
    critic weights: the penalty's double-backward gradient took part in DDP's all-reduce."""
    with_gp = _load(ddp_runs / "WGANGP.rank0.pt")["state"]
    without = _load(ddp_runs / "WGANGP-nopenalty.rank0.pt")["state"]
    d_keys = [k for k in with_gp if k.startswith("discriminator.") and with_gp[k].is_floating_point()]
    diff = max((with_gp[k] - without[k]).abs().max().item() for k in d_keys)
    assert diff > 100 * ATOL, f"the penalty changed D's step by only {diff:.2e}"
