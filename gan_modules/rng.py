"""Random streams of training, per rank, saved and restored for exact resume.

Two kinds of randomness drive a GAN step: the draws the loop makes on purpose (noise z, sampled labels and targets,
the gradient penalty's interpolation weights), which come from the model's own ``torch.Generator`` on its device
(``RandomStreams.noise``), and the draws layers make by themselves (dropout masks), which come from the global torch
RNG. Under DDP every rank must draw different numbers — otherwise N GPUs train on one GPU's fake diversity — and each
rank's streams must be reproducible. So at the start of fit, rank ``r`` seeds its noise generator from
``stream_seed(seed, r)`` and, when there are several ranks, reseeds the global torch/numpy/python RNGs from it too
(a single process keeps the global streams that ``seed_everything`` set). ``seed`` is the run's seed
(``seed_everything``; ``torch.initial_seed()``), so the same command draws the same numbers on every run.

Checkpoints hold every rank's states (``gather`` collects them on all ranks when saving); a resume with the same
number of ranks continues each rank's streams exactly; with another number of ranks the streams restart from
``stream_seed(seed + generator_steps, r)`` (reproducible, not identical).
"""

from __future__ import annotations

import random
from typing import Any

import torch

_MASK64 = (1 << 64) - 1


def stream_seed(seed: int, rank: int) -> int:
    """A 63-bit seed for ``rank``'s streams, well mixed (SplitMix64 finaliser), different for every (seed, rank)."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + (int(rank) + 1) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def global_rng_state() -> dict[str, Any]:
    """The torch CPU/CUDA, numpy and python RNG states, in types that ``weights_only=True`` loads."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    try:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}  # fmt: skip
    except ImportError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restores what ``global_rng_state`` returned (streams missing from ``state`` are left alone)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        try:
            import numpy as np

            s = state["numpy"]
            np.random.set_state((s["kind"], s["keys"].numpy().astype("uint32"), s["pos"], s["has_gauss"],
                                 s["cached_gaussian"]))  # fmt: skip
        except ImportError:
            pass
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_global_rngs(seed: int) -> None:
    """Seeds the global torch (CPU and every CUDA device), numpy and python RNGs."""
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (1 << 32))
    except ImportError:
        pass


class RandomStreams:
    """This rank's noise generator (on the model's device) plus the global RNG streams, as one saveable unit."""

    def __init__(self) -> None:
        self.noise: torch.Generator | None = None

    def start(self, seed: int, rank: int, world_size: int, device: torch.device) -> None:
        """Fresh streams for ``rank``: the noise generator from ``stream_seed(seed, rank)``; with several ranks the
        global RNGs too (dropout masks must differ between ranks)."""
        s = stream_seed(seed, rank)
        self.noise = torch.Generator(device=device).manual_seed(s)
        if world_size > 1:
            seed_global_rngs(stream_seed(s, 1 << 20))

    def ensure(self, device: torch.device) -> torch.Generator:
        """The noise generator, created (seeded from the global torch RNG) if ``start`` was never called — e.g. a
        loss computed by hand outside ``fit``."""
        if self.noise is None or self.noise.device.type != torch.device(device).type:
            seed = int(torch.randint(0, 1 << 62, (1,)).item())
            self.noise = torch.Generator(device=device).manual_seed(seed)
        return self.noise

    def state(self) -> dict[str, Any]:
        state = {"global": global_rng_state()}
        if self.noise is not None:
            state["noise"] = self.noise.get_state()
        return state

    def load(self, state: dict[str, Any], device: torch.device) -> None:
        set_global_rng_state(state.get("global", state))  # checkpoints of version 0.1 stored the global state alone
        if "noise" in state:
            self.noise = torch.Generator(device=device)
            self.noise.set_state(state["noise"].cpu())  # a generator's state is a CPU byte tensor on every device


def gather(state: Any, world_size: int) -> list[Any]:
    """Every rank's ``state`` (picklable), in rank order: a collective, called on every rank."""
    if world_size <= 1 or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [state]
    out: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(out, state)
    return out


__all__ = ["RandomStreams", "gather", "global_rng_state", "seed_global_rngs", "set_global_rng_state", "stream_seed"]
