"""Time one SNGAN iteration against one WGAN-GP iteration at equal width and batch, with the networks alone.

An iteration is what the training loop does for one generator step: ``n_critic`` × [G(z) without grad, D(real),
D(fake), loss, backward, Adam step] + one G step [G(z), D(G(z)), loss, backward, Adam step]. SNGAN: spectral norm on
every D layer (``torch.nn.utils.parametrizations.spectral_norm``: one power iteration and one W/σ per D forward),
hinge loss. WGAN-GP: no normalization in D, Wasserstein loss plus λ = 10 times the gradient penalty (a third D
forward on interpolates and a double backward). Both run on the *same* G and D (``--arch cnn``: SNGAN's standard
CNN; ``resnet``: the 32×32 ResNet), so the ratio is the price of the regularizer alone.

Rows per architecture:

- ``wgan_gp``: the reference for the ratios.
- ``sngan``: what ``SNGAN`` does today (two D forwards per D step, each running the power iteration).
- ``sngan_no_sn``: the same without spectral norm: the difference is the whole cost of the SN path.
- ``sngan_cached``: the D step inside ``torch.nn.utils.parametrize.cached()``: W/σ and the power iteration once per
  D step instead of once per forward (a loop-level change: one u/v update per step where the reference has two).
- ``sngan_concat``: one D forward on ``cat([real, fake])`` (a loop-level change; same caveat).

A last group compares the library's default architectures at equal ``ngf``/``ndf`` (``SNGAN(arch="cnn")`` vs
``WGANGP(arch="dcgan")``, LayerNorm critic): ``defaults_wgan_gp_dcgan``, ``defaults_sngan_cnn`` (n_dis 5) and
``defaults_sngan_cnn_ndis1`` (n_dis 1, the optimizer setting of the SNGAN authors' standard-CNN command).

Repeats rotate the order of the rows so that drift cancels; each ratio is the median over repeats of the ratio of
timings taken in the same repeat.

    OMP_NUM_THREADS=1 python benchmarks/sngan_speed.py --width 16 --batch-size 64 --json sngan_speed.json
    python benchmarks/sngan_speed.py --quick          # a smoke run of a few seconds (tests)
    python benchmarks/sngan_speed.py --profile        # also print where a SNGAN D step spends its time

Prints a table and, last, ``ratio=<sngan / wgan_gp on the standard CNN>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_modules.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_modules.nets.resnet32 import ResNetDiscriminator, ResNetGenerator
from gan_modules.nets.sngan_cnn import StandardCNNDiscriminator, StandardCNNGenerator
from gan_modules.nets.spectral import add_spectral_norm
from gan_modules.penalties import gradient_penalty

LATENT = 128
SN_OPS = ("aten::mv", "aten::vdot", "aten::dot", "aten::linalg_vector_norm", "aten::div", "aten::clone",
          "aten::div_", "aten::clamp_min")


class Case(NamedTuple):
    name: str
    group: str  # "cnn" / "resnet" (equal nets) or "defaults"
    nets: str  # "cnn", "resnet" or "dcgan_layer"
    spectral_norm: bool
    objective: str  # "hinge" or "wgan_gp"
    d_forward: str = "separate"  # "separate", "cached" or "concat"
    n_critic: int = 5


def cases(archs: list[str], defaults: bool) -> list[Case]:
    out: list[Case] = []
    for arch in archs:
        out += [
            Case("wgan_gp", arch, arch, False, "wgan_gp"),
            Case("sngan", arch, arch, True, "hinge"),
            Case("sngan_no_sn", arch, arch, False, "hinge"),
            Case("sngan_cached", arch, arch, True, "hinge", "cached"),
            Case("sngan_concat", arch, arch, True, "hinge", "concat"),
        ]
    if defaults:
        out += [
            Case("defaults_wgan_gp_dcgan", "defaults", "dcgan_layer", False, "wgan_gp"),
            Case("defaults_sngan_cnn", "defaults", "cnn", True, "hinge"),
            Case("defaults_sngan_cnn_ndis1", "defaults", "cnn", True, "hinge", n_critic=1),
        ]
    return out


def build(case: Case, width: int, image_size: int, device: torch.device, seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    if case.nets == "cnn":
        g, d = StandardCNNGenerator(LATENT, 3, image_size, width), StandardCNNDiscriminator(3, image_size, width)
    elif case.nets == "resnet":
        g, d = ResNetGenerator(LATENT, 3, image_size, width), ResNetDiscriminator(3, image_size, width)
    else:  # WGAN-GP's default nets: DCGAN G, DCGAN critic with LayerNorm
        g, d = DCGANGenerator(LATENT, 3, image_size, width), DCGANDiscriminator(3, image_size, width, norm="layer")
    if case.spectral_norm:
        add_spectral_norm(d)
    return g.to(device).train(), d.to(device).train()


class Runner:
    """One case's networks, optimizers and a fixed real batch; ``iteration()`` is one generator step's work."""

    def __init__(self, case: Case, width: int, batch: int, image_size: int, device: torch.device, seed: int):
        self.case, self.batch, self.device = case, batch, device
        self.g, self.d = build(case, width, image_size, device, seed)
        adam = {"lr": 2e-4, "betas": (0.0, 0.9)}
        self.opt_g, self.opt_d = torch.optim.Adam(self.g.parameters(), **adam), torch.optim.Adam(self.d.parameters(), **adam)
        self.real = torch.rand(batch, 3, image_size, image_size, device=device) * 2 - 1

    def _z(self) -> Tensor:
        return torch.randn(self.batch, LATENT, device=self.device)

    def _d_logits(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        if self.case.d_forward == "concat":
            out = self.d(torch.cat([real, fake]))  # one forward on 2N images: one W/σ per layer
            return out[: real.shape[0]], out[real.shape[0]:]
        return self.d(real), self.d(fake)

    def discriminator_step(self) -> None:
        with torch.no_grad():
            fake = self.g(self._z())
        ctx = parametrize.cached() if self.case.d_forward == "cached" else contextlib.nullcontext()
        with ctx:
            d_real, d_fake = self._d_logits(self.real, fake)
            if self.case.objective == "hinge":
                loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            else:
                loss = d_fake.mean() - d_real.mean() + 10.0 * gradient_penalty(self.d, self.real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
        self.opt_d.step()

    def generator_step(self) -> None:
        self.d.requires_grad_(False)  # as the loop's optimizer toggling: D's weights get no gradient here
        loss = -self.d(self.g(self._z())).mean()  # hinge and Wasserstein share the generator loss
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.d.requires_grad_(True)

    def iteration(self) -> None:
        for _ in range(self.case.n_critic):
            self.discriminator_step()
        self.generator_step()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runner(runner: Runner, steps: int) -> float:
    sync(runner.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        runner.iteration()
    sync(runner.device)
    return (time.perf_counter() - t0) / steps


def profile_sn_share(runner: Runner, steps: int) -> dict[str, float]:
    """Self CPU time of a SNGAN D step by op; the ops of the spectral-norm path summed as ``spectral_norm_ops``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            runner.discriminator_step()
    rows = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(rows.values())
    top = dict(sorted(rows.items(), key=lambda kv: -kv[1])[:12])
    share = {k: v / total for k, v in top.items()}
    share["spectral_norm_ops"] = sum(rows.get(k, 0.0) for k in SN_OPS) / total
    return share


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny nets, one step: a smoke run of a few seconds")
    p.add_argument("--arch", nargs="+", choices=("cnn", "resnet"), default=["cnn", "resnet"])
    p.add_argument("--no-defaults", action="store_true", help="skip the default-architecture comparison")
    p.add_argument("--width", type=int, default=None, help="ngf = ndf (default 16; quick: 4)")
    p.add_argument("--batch-size", type=int, default=None, help="default 64 (quick: 4)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="timed iterations per repeat (default 3; quick: 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations per case (default 1; quick: 0)")
    p.add_argument("--repeats", type=int, default=None, help="rotations over the cases (default 5; quick: 1)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: unchanged)")
    p.add_argument("--profile", action="store_true", help="print the op breakdown of a SNGAN D step per arch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write settings, timings and ratios here")
    args = p.parse_args(argv)
    quick = args.quick
    args.width = args.width or (4 if quick else 16)
    args.batch_size = args.batch_size or (4 if quick else 64)
    args.steps = args.steps or (1 if quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (0 if quick else 1)
    args.repeats = args.repeats or (1 if quick else 5)
    return args


def ratio_to(times: dict[str, list[float]], num: str, den: str) -> float:
    return statistics.median(a / b for a, b in zip(times[num], times[den]))


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    all_cases = cases(args.arch, not args.no_defaults)
    runners: dict[str, Runner] = {}
    for case in all_cases:
        key = f"{case.group}/{case.name}"
        runners[key] = Runner(case, args.width, args.batch_size, args.image_size, device, args.seed)
        for _ in range(args.warmup):
            runners[key].iteration()
    times: dict[str, list[float]] = {k: [] for k in runners}
    keys = list(runners)
    for r in range(args.repeats):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:  # rotate the order each repeat
            times[key].append(time_runner(runners[key], args.steps))

    ratios: dict[str, float] = {}
    for key in keys:
        group, name = key.split("/")
        ref = f"{group}/{'defaults_wgan_gp_dcgan' if group == 'defaults' else 'wgan_gp'}"
        ratios[key] = ratio_to(times, key, ref)
    for arch in args.arch:
        ratios[f"{arch}/sn_overhead"] = ratio_to(times, f"{arch}/sngan", f"{arch}/sngan_no_sn")

    print(f"# device={args.device} threads={torch.get_num_threads()} width={args.width} batch={args.batch_size} "
          f"image={args.image_size} steps={args.steps} repeats={args.repeats} torch={torch.__version__}")
    print(f"{'group':<9} {'case':<26} {'n_dis':>5} {'ms/iter (median)':>17} {'vs wgan_gp':>11}")
    for key in keys:
        group, name = key.split("/")
        med = statistics.median(times[key]) * 1e3
        print(f"{group:<9} {name:<26} {runners[key].case.n_critic:>5} {med:>17.1f} {ratios[key]:>11.3f}")
    for arch in args.arch:
        print(f"{arch:<9} {'SN overhead (sngan/no_sn)':<26} {'':>5} {'':>17} {ratios[f'{arch}/sn_overhead']:>11.3f}")

    profiles = {}
    if args.profile:
        for arch in args.arch:
            profiles[arch] = profile_sn_share(runners[f"{arch}/sngan"], max(args.steps, 1))
            print(f"\n# {arch}: share of a SNGAN D step's self CPU time by op (top 12; spectral_norm_ops sums "
                  f"{', '.join(SN_OPS)})")
            for op, share in profiles[arch].items():
                print(f"  {op:<40} {100 * share:6.2f} %")

    result = {
        "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "threads_used": torch.get_num_threads(), "torch": torch.__version__,
                     "platform": platform.platform(), "processor": platform.processor()},
        "times_s": times,
        "median_ms": {k: statistics.median(v) * 1e3 for k, v in times.items()},
        "ratios": ratios,
        "profile": profiles,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    headline = "cnn/sngan" if "cnn" in args.arch else f"{args.arch[0]}/sngan"
    print(f"ratio={ratios[headline]:.4f}")
    return result


if __name__ == "__main__":
    main()
