"""Training-step throughput of our DCGAN module through the Lightning Trainer vs two plain PyTorch loops.

- ``ours``: ``gan_modules.DCGAN`` (module defaults: EMA of G, non-finite guard; see ``--guard``) fitted by a bare
  ``L.Trainer`` (no logger, progress bar or checkpoints: this measures the step and the framework around it).
- ``plain``: the best-practice loop users compare with (``benchmarks/plain_dcgan.py``, after pytorch/examples
  ``dcgan/main.py``): its own DCGAN nets of the same sizes and init, ONE G forward per iteration (the D step's fakes
  are reused for the G step), ``zero_grad(set_to_none=True)``, D frozen during the G backward, the same EMA.
- ``mirrored``: the same plain loop in our module's order (a no-grad G forward for the D step and a fresh G forward
  for the G step: two G forwards and three D forwards per iteration). ``plain``/``mirrored`` is the price of the
  second G forward; ``mirrored``/``ours`` the price of the framework.

All three train on the same few batches already in memory on the device (no data loading; ``end_to_end.py`` times
the whole ``fit``). Repeats rotate the order of the three sides so that clock and thermal drift cancel; ratios are
the median over repeats of the ratios of adjacent runs. Modes (``--modes``, several allowed):

- ``fp32``: float32 (TF32 matmuls/convolutions allowed on CUDA unless ``--no-tf32``);
- ``bf16``: bf16 autocast (``precision="bf16-mixed"`` for ours);
- ``bf16-cl-fused``: bf16 autocast + channels_last (weights and images) + fused Adam on every side;
- ``fp16``: fp16 autocast with a GradScaler (``16-mixed``; CUDA only).

    python benchmarks/throughput.py --device cpu --quick
    python benchmarks/throughput.py --device cuda --batch-sizes 128 512 --modes fp32 bf16-cl-fused --json tp.json

Prints one table row per (mode, batch) with img/s of the three sides and ``ours/plain``, ``ours/mirrored``; the last
line is ``ratio=<min over rows of ours/plain>``. ``--json PATH`` writes the settings and every timing.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import lightning as L
from plain_dcgan import PlainDCGAN

from gan_modules import DCGAN, AdversarialModule


class Mode(NamedTuple):
    precision: str  # Lightning's precision for ours
    autocast: torch.dtype | None  # the plain loops' autocast dtype
    channels_last: bool
    fused: bool
    cuda_only: bool = False


MODES = {
    "fp32": Mode("32-true", None, False, False),
    "bf16": Mode("bf16-mixed", torch.bfloat16, False, False),
    "bf16-cl-fused": Mode("bf16-mixed", torch.bfloat16, True, True),
    "fp16": Mode("16-mixed", torch.float16, False, False, cuda_only=True),
}
SIDES = ("ours", "plain", "mirrored")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="small nets and few steps (CPU: a few minutes on 2 cores)")
    p.add_argument("--tiny", action="store_true", help="a smoke run of a few seconds (tests)")
    p.add_argument("--batch-sizes", "--batch-size", dest="batch_sizes", type=int, nargs="+", default=None,
                   help="default 128 512 (quick: 64)")
    p.add_argument("--modes", nargs="+", choices=tuple(MODES), default=["fp32"], help="default fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D on every side")
    p.add_argument("--image-size", type=int, default=None, choices=(28, 32, 64, 128), help="default 64 (quick: 32)")
    p.add_argument("--channels", type=int, default=3, choices=(1, 3), help="image channels (default 3)")
    p.add_argument("--width", type=int, default=None, help="ngf = ndf (default 64; quick: 16)")
    p.add_argument("--steps", type=int, default=None, help="timed iterations per run (default 50; quick: 16)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations per run (default 10; quick: 2)")
    p.add_argument("--repeats", type=int, default=None, help="rotating repeats per side (default 5)")
    p.add_argument("--no-ema", action="store_true", help="turn the EMA of G off on every side")
    p.add_argument("--guard", choices=("default", "off", "all"), default="default",
                   help="non-finite guard (one reduction + host sync per optimizer step). default: ours keeps its "
                        "default (on), the plain loops have none (what users compare with); off: off everywhere; "
                        "all: on everywhere")
    p.add_argument("--no-tf32", action="store_true", help="CUDA: keep fp32 matmuls/convolutions in full fp32")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; --quick/--tiny on CPU: 1, because on a shared "
                        "box spinning OpenMP threads of other jobs' load swamp the comparison)")
    p.add_argument("--json", type=Path, default=None, help="write settings and results here")
    args = p.parse_args(argv)
    quick = args.quick or args.tiny
    defaults = {"batch_sizes": [64] if quick else [128, 512], "image_size": 32 if quick else 64,
                "width": 16 if quick else 64, "steps": 16 if quick else 50, "warmup": 2 if quick else 10, "repeats": 5}
    if args.tiny:
        defaults.update(batch_sizes=[8], width=4, steps=2, warmup=1, repeats=2)
    if quick and args.device == "cpu":
        defaults["threads"] = 1
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is visible; use --device cpu")
    for name in args.modes:
        if MODES[name].cuda_only and args.device != "cuda":
            p.error(f"mode {name} needs CUDA (Lightning turns 16-mixed into bf16 on CPU); use bf16 on CPU")
    if min(args.batch_sizes) < 2 or args.steps < 1 or args.warmup < 0 or args.repeats < 1:
        p.error("--batch-sizes must be >= 2 (BatchNorm), --steps and --repeats >= 1, --warmup >= 0")
    return args


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def make_batches(args, batch_size: int, mode: Mode) -> list[dict]:
    """A few distinct batches already on the device, cycled by every side."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, batch_size, args.channels, args.image_size, args.image_size, generator=g) * 2 - 1
    fmt = torch.channels_last if mode.channels_last else torch.contiguous_format
    return [{"image": x.to(args.device).contiguous(memory_format=fmt),
             "label": torch.zeros(batch_size, dtype=torch.long, device=args.device)} for x in images]


class Cycle:
    """An iterable of ``n`` batches cycling over a few device-resident ones (what Lightning iterates)."""

    def __init__(self, batches: list[dict], n: int):
        self.batches, self.n = batches, n

    def __iter__(self):
        return (self.batches[i % len(self.batches)] for i in range(self.n))

    def __len__(self) -> int:
        return self.n


class Timer(L.Callback):
    """Wall time from the start of batch ``warmup`` to the end of the last batch (synchronized at those two points)."""

    def __init__(self, warmup: int, device: str):
        self.warmup, self.device = warmup, device
        self.start = self.end = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            sync(self.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        sync(self.device)
        self.end = time.perf_counter()


def build_ours(args, mode: Mode) -> DCGAN:
    torch.manual_seed(0)
    params = inspect.signature(AdversarialModule.__init__).parameters
    extra = {}
    if "max_nonfinite_steps" in params and args.guard == "off":
        extra["max_nonfinite_steps"] = None
    if "fused_optimizer" in params:
        extra["fused_optimizer"] = True if mode.fused else None  # None: the module's default (fused on CUDA)
    return DCGAN(image_size=args.image_size, channels=args.channels, ngf=args.width, ndf=args.width, latent_dim=100,
                 ema_decay=None if args.no_ema else 0.999, channels_last=mode.channels_last,
                 compile_nets=args.compile, **extra)


def time_ours(args, mode: Mode, module: DCGAN, batches: list[dict]) -> float:
    timer = Timer(args.warmup, args.device)
    trainer = L.Trainer(accelerator=args.device, devices=1, precision=mode.precision, max_epochs=1,
                        limit_train_batches=args.warmup + args.steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[timer], use_distributed_sampler=False)
    trainer.fit(module, Cycle(batches, args.warmup + args.steps))
    return timer.end - timer.start


def build_plain(args, mode: Mode, mirrored: bool) -> PlainDCGAN:
    torch.manual_seed(0)
    loop = PlainDCGAN(args.image_size, args.channels, args.width, args.width, nz=100, device=args.device,
                      autocast_dtype=mode.autocast, channels_last=mode.channels_last, fused=mode.fused,
                      ema_decay=None if args.no_ema else 0.999, mirrored=mirrored, guard=args.guard == "all")
    if args.compile:
        loop.g.compile()
        loop.d.compile()
    return loop


def time_plain(args, loop: PlainDCGAN, batches: list[dict]) -> float:
    for i in range(args.warmup):
        loop.train_step(batches[i % len(batches)]["image"])
    sync(args.device)
    start = time.perf_counter()
    for i in range(args.steps):
        loop.train_step(batches[(args.warmup + i) % len(batches)]["image"])
    sync(args.device)
    return time.perf_counter() - start


def bench(args, mode_name: str, batch_size: int) -> dict:
    mode = MODES[mode_name]
    batches = make_batches(args, batch_size, mode)
    ours = build_ours(args, mode)
    loops = {"plain": build_plain(args, mode, mirrored=False), "mirrored": build_plain(args, mode, mirrored=True)}
    img_s: dict[str, list[float]] = {side: [] for side in SIDES}
    for r in range(args.repeats):
        order = SIDES[r % 3:] + SIDES[:r % 3]  # rotate who runs first
        for side in order:
            seconds = time_ours(args, mode, ours, batches) if side == "ours" else time_plain(args, loops[side], batches)
            img_s[side].append(args.steps * batch_size / seconds)
        print(f"  {mode_name} batch {batch_size} repeat {r + 1}/{args.repeats}: "
              + ", ".join(f"{side} {img_s[side][-1]:.1f}" for side in SIDES) + " img/s", flush=True)
    ratios = [o / p for o, p in zip(img_s["ours"], img_s["plain"])]
    ratios_mirrored = [o / m for o, m in zip(img_s["ours"], img_s["mirrored"])]
    ratios_plain_mirrored = [p / m for p, m in zip(img_s["plain"], img_s["mirrored"])]
    return {"mode": mode_name, "batch_size": batch_size, "precision": mode.precision,
            "channels_last": mode.channels_last, "fused": mode.fused,
            "ours_img_s": img_s["ours"], "plain_img_s": img_s["plain"], "mirrored_img_s": img_s["mirrored"],
            "ours_median": statistics.median(img_s["ours"]), "plain_median": statistics.median(img_s["plain"]),
            "mirrored_median": statistics.median(img_s["mirrored"]),
            "ratios": ratios, "ratio": statistics.median(ratios),
            "ratios_vs_mirrored": ratios_mirrored, "ratio_vs_mirrored": statistics.median(ratios_mirrored),
            "plain_over_mirrored": statistics.median(ratios_plain_mirrored)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.benchmark = True
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update(torch=torch.__version__, lightning=L.__version__, python=platform.python_version(),
                    device_name=torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
                    or platform.machine(), threads=torch.get_num_threads(),
                    tf32=args.device == "cuda" and not args.no_tf32)
    print(f"DCGAN {args.channels}x{args.image_size}x{args.image_size} width {args.width}, modes {args.modes}, device "
          f"{args.device} ({settings['device_name']}, {settings['threads']} threads), compile={args.compile}, "
          f"guard={args.guard}, {args.steps} timed steps x {args.repeats} repeats", flush=True)
    results = [bench(args, mode, bs) for mode in args.modes for bs in args.batch_sizes]
    print()
    print("| mode | batch | ours (Lightning) img/s | plain best-practice img/s | mirrored plain img/s | ours/plain | "
          "ours/mirrored | plain/mirrored |")
    print("|---|---|---|---|---|---|---|---|")
    for res in results:
        print(f"| {res['mode']} | {res['batch_size']} | {res['ours_median']:.1f} | {res['plain_median']:.1f} | "
              f"{res['mirrored_median']:.1f} | {res['ratio']:.3f} | {res['ratio_vs_mirrored']:.3f} | "
              f"{res['plain_over_mirrored']:.3f} |")
    ratio = min(res["ratio"] for res in results)
    out = {"settings": settings, "results": results, "ratio": ratio}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    print(f"ratio={ratio:.3f}")
    return out


if __name__ == "__main__":
    main()
