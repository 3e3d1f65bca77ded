"""DDP through Lightning on 2 CPU processes (gloo): one step (D then G; G then D for CycleGAN) of 2 ranks × B must
give the weights of a single-process step of 2B.

Why the comparison can be exact (up to float rounding): every loss is a per-sample mean, so DDP's gradient
all-reduce (an average over ranks) equals the gradient of the 2B batch, and both ranks then take the same optimizer
step. What would break it, and how the test rules it out:

- BatchNorm couples the samples of a batch: statistics over B differ from those over 2B by definition (and
  ``sync_batchnorm`` is GPU-only). The compared nets are BatchNorm-free (LayerNorm / InstanceNorm / none; SNGAN's
  generator has its BatchNorms replaced by identities).
- Random draws (z, the gradient penalty's ε, dropout) must be the same per sample in both runs: the test subclasses
  draw them from the sample's index in the batch, and dropout is off.
- Lightning's DistributedSampler shuffles: ``use_distributed_sampler=False`` with a sampler that gives rank r the
  r-th half of the batch.

The two ranks are started once per test session by ``torch.multiprocessing`` with the environment variables a
``torchrun``/SLURM launch sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR/PORT``), so each rank's
Lightning trainer uses ``strategy="ddp_find_unused_parameters_true"`` exactly as a multi-GPU user's would (Lightning
sees the externally created processes and does not launch its own). All variants run in that one pair of processes
to keep the import cost (~10 s on 2 cores) paid once.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
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
from gan_modules.penalties import gradient_penalty

pytestmark = pytest.mark.ddp

B = 4  # per-rank batch; the single-process batch is 2B
WORLD = 2
SEED = 1234


# ---------------------------------------------------------------------------------------------------------------
# Data: unconditional images with their index, or unpaired a/b for CycleGAN; rank r reads the r-th half.
class IndexedImages(Dataset):
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
            return {"a": self.a[i], "b": self.b[i], "index": torch.tensor(i)}
        return {"image": self.a[i], "label": self.labels[i], "index": torch.tensor(i)}


class RankHalf(Sampler):
    """Indices of this rank's contiguous share of the dataset (the whole dataset without a process group)."""

    def __init__(self, n: int):
        self.n = n

    def _range(self) -> range:
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        per = self.n // world
        return range(rank * per, (rank + 1) * per)

    def __iter__(self):
        return iter(self._range())

    def __len__(self) -> int:
        return len(self._range())


# ---------------------------------------------------------------------------------------------------------------
# Per-sample deterministic randomness: z and ε come from (sample index, call number), identical in both setups.
def per_sample(index: Tensor, call: int, shape: tuple[int, ...], device) -> Tensor:
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(int(i) * 1000 + call)) for i in index]
    return torch.stack(rows).to(device)


class IndexedNoise:
    """Mixin: G's noise and the penalty's interpolation weight from the batch's ``index`` (no global RNG)."""

    _calls = 0

    def fake_images(self, batch):
        self._calls += 1
        z = per_sample(batch["index"], self._calls, (self.hparams.latent_dim,), self.device)
        return self.generator(z=z)

    def discriminator_penalty(self, real, fake, batch):
        if self.hparams.get("penalty") is None:
            return None, {}
        alpha = per_sample(batch["index"], 999, (1, 1, 1), self.device).abs().clamp(max=1.0)
        value = gradient_penalty(lambda x: self.discriminate(x, batch), real, fake, alpha=alpha)
        return self.hparams.penalty_weight * value, {"gradient_penalty": value.detach()}


def strip_batchnorm(module: nn.Module) -> nn.Module:
    """Replaces every BatchNorm by an identity (BatchNorm couples samples: 2×B and 2B differ by definition)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            strip_batchnorm(child)
    return module


def _indexed(cls):
    return type(f"Indexed{cls.__name__}", (IndexedNoise, cls), {"__module__": __name__})


IndexedGAN = _indexed(MODELS["GAN"])
IndexedDCGAN = _indexed(MODELS["DCGAN"])
IndexedWGANGP = _indexed(MODELS["WGANGP"])
IndexedSNGAN = _indexed(MODELS["SNGAN"])


def build(name: str) -> tuple[L.LightningModule, DataLoader]:
    """The model (seeded init, BatchNorm-free) and its full 2B dataset for variant ``name``."""
    torch.manual_seed(SEED)
    common = dict(image_size=28, channels=1, n_critic=1, ema_decay=0.5)
    if name == "GAN":
        model = IndexedGAN(image_size=8, channels=1, g_hidden=(16, 16), d_hidden=(16, 16), d_dropout=0.0,
                           latent_dim=8, ema_decay=0.5)
        data = IndexedImages(2 * B, 1, 8)
    elif name == "DCGAN":
        model = IndexedDCGAN(ngf=4, ndf=4, g_norm="layer", d_norm="layer", latent_dim=8, **common)
        data = IndexedImages(2 * B, 1, 28)
    elif name.startswith("WGANGP"):  # "WGANGP-nopenalty": λ = 0, to show the penalty's share of the step
        model = IndexedWGANGP(ngf=4, ndf=4, g_norm="layer", d_norm="layer", latent_dim=8,
                              penalty_weight=0.0 if name.endswith("nopenalty") else 10.0, **common)
        data = IndexedImages(2 * B, 1, 28)
    elif name == "SNGAN":
        model = IndexedSNGAN(ngf=4, ndf=4, latent_dim=8, image_size=32, channels=1, n_critic=1, ema_decay=0.5)
        strip_batchnorm(model.generator), strip_batchnorm(model.generator_ema)
        data = IndexedImages(2 * B, 1, 32)
    elif name == "CycleGAN":
        cls = MODELS["CycleGAN"]
        blocks = "n_residual_blocks" if "n_residual_blocks" in inspect.signature(cls).parameters else "n_blocks"
        # SGD here: the convs before InstanceNorm have biases whose exact gradient is 0 (the norm removes them), and
        # Adam's first step (≈ lr·g/|g|) would turn their rounding noise into ±lr; SGD compares the gradients as is.
        sgd = functools.partial(torch.optim.SGD, lr=0.1)
        model = cls(image_size=32, channels=1, ngf=4, ndf=4, pool_size=50, optimizer_g=sgd, optimizer_d=sgd,
                    **{blocks: 1})
        data = IndexedImages(2 * B, 1, 32, unpaired=True)
    else:
        raise KeyError(name)
    return model, data


class SaveState(L.Callback):
    """Writes the module's state dict (weights, EMA, buffers such as spectral-norm vectors) per rank at the end."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"state": state, "g": pl_module.generator_steps, "d": pl_module.discriminator_steps},
                   self.path.with_name(f"{self.path.name}.rank{trainer.global_rank}.pt"))


def fit_one_step(name: str, out: Path, per_rank_batch: int, **trainer_kwargs) -> None:
    model, data = build(name)
    loader = DataLoader(data, batch_size=per_rank_batch, sampler=RankHalf(len(data)))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=[SaveState(out / name)],
                        default_root_dir=out, **trainer_kwargs)
    trainer.fit(model, loader)


DDP_NAMES = ["GAN", "DCGAN", "WGANGP", "WGANGP-nopenalty", "SNGAN", "CycleGAN"]


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank),
                      LOCAL_RANK=str(rank), NODE_RANK="0")
    torch.set_num_threads(1)
    try:
        for name in DDP_NAMES:
            fit_one_step(name, Path(out), B, devices=WORLD, strategy="ddp_find_unused_parameters_true")
    except BaseException:
        (Path(out) / f"error.rank{rank}.txt").write_text(traceback.format_exc())
        raise


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    """The folder of every variant's step on 2 gloo ranks and in one process, computed once per test session: under
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
    ctx = mp.start_processes(_ddp_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 240
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                pytest.fail("DDP workers did not finish within 240 s")
    except mp.ProcessRaisedException:
        errors = "\n".join(f.read_text() for f in sorted(out.glob("error.rank*.txt")))
        pytest.fail(f"a DDP worker failed:\n{errors}")
    single = out / "single"
    single.mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers: the same kernels, so the same rounding
    try:
        for name in DDP_NAMES:
            fit_one_step(name, single, 2 * B, devices=1)
    finally:
        torch.set_num_threads(threads)


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _compare(ddp_runs: Path, name: str, atol: float) -> dict:
    r0, r1 = _load(ddp_runs / f"{name}.rank0.pt"), _load(ddp_runs / f"{name}.rank1.pt")
    one = _load(ddp_runs / "single" / f"{name}.rank0.pt")
    assert (r0["d"], r0["g"]) == (r1["d"], r1["g"]) == (one["d"], one["g"]) == (1, 1)
    init, _ = build(name)
    changed = 0
    for key, w in one["state"].items():
        assert torch.equal(r0["state"][key], r1["state"][key]), f"{key} differs between ranks"
        torch.testing.assert_close(r0["state"][key], w, atol=atol, rtol=1e-4, msg=f"{key}: 2×B DDP != 2B")
        if w.is_floating_point() and not torch.equal(w, init.state_dict()[key]):
            changed += 1
    assert changed >= 4, "the step changed almost nothing: the comparison would be vacuous"
    return one["state"]


# Adam's first step moves each weight by ≈ lr·sign(g) (|g| ≫ eps), so float-rounding differences in the averaged
# gradient change a weight by far less than lr; atol = lr / 100 is two orders below one step's change.
@pytest.mark.parametrize("name", DDP_NAMES)
def test_ddp_step_of_2xB_matches_single_process_2B(ddp_runs, name):
    lr = 0.1 if name == "CycleGAN" else MODELS[name.split("-")[0]].default_optimizer["lr"]
    _compare(ddp_runs, name, atol=lr / 100 if name != "CycleGAN" else 1e-6)


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
    """The same WGAN-GP step with λ = 10 and with λ = 0 (both matched the single process above) leaves different
    critic weights: the penalty's double-backward gradient took part in DDP's all-reduce."""
    with_gp = _load(ddp_runs / "WGANGP.rank0.pt")["state"]
    without = _load(ddp_runs / "WGANGP-nopenalty.rank0.pt")["state"]
    d_keys = [k for k in with_gp if k.startswith("discriminator.") and with_gp[k].is_floating_point()]
    diff = max((with_gp[k] - without[k]).abs().max().item() for k in d_keys)
    lr = MODELS["WGANGP"].default_optimizer["lr"]
    assert diff > lr / 10, f"the penalty changed D's step by only {diff:.2e}"
