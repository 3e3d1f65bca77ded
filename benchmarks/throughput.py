"""Training throughput of our DCGAN module through the Lightning Trainer vs a plain PyTorch loop doing the same work.

Both sides use the same networks (``gan_modules.nets`` DCGAN G and D, N(0, 0.02) init, identical initial weights),
the same loss functions (``gan_modules.losses``), the same optimizer settings (Adam 2e-4, β (0.5, 0.999); fused on
CUDA when our module would use it), the same order (a D step on real vs G(z) detached, then a G step with fresh z:
two G forwards and three D forwards per iteration), the same EMA update of G, and the same batches, already in
memory on the device (no data loading: this measures the training step and the framework around it). Repeats
alternate which side runs first so that clock and thermal drift cancel; the final line is the median over repeats
of ours/plain from adjacent pairs.

    python benchmarks/throughput.py --device cpu --quick
    python benchmarks/throughput.py --device cuda --batch-size 128 512 --precision bf16-mixed --channels-last

Prints a table of img/s and ``ratio=<ours/plain>``; ``--json out.json`` writes the settings and every timing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning as L  # noqa: E402

from gan_modules import DCGAN, AdversarialModule  # noqa: E402
from gan_modules.losses import get_loss  # noqa: E402

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="small nets and few steps (CPU: a few minutes on 2 cores)")
    p.add_argument("--tiny", action="store_true", help="a smoke run of a few seconds (tests)")
    p.add_argument("--batch-size", type=int, nargs="+", default=None, help="default 128 512 (quick: 64)")
    p.add_argument("--precision", choices=PRECISIONS, default="32-true")
    p.add_argument("--channels-last", action="store_true", help="NHWC weights and images on both sides")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D on both sides")
    p.add_argument("--image-size", type=int, default=None, help="default 64 (quick: 32)")
    p.add_argument("--width", type=int, default=None, help="ngf = ndf (default 64; quick: 16)")
    p.add_argument("--steps", type=int, default=None, help="timed iterations per repeat (default 50; quick: 16)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations per repeat (default 10; quick: 2)")
    p.add_argument("--repeats", type=int, default=None, help="alternating repeats per side (default 5)")
    p.add_argument("--no-ema", action="store_true", help="turn the EMA of G off on both sides")
    p.add_argument("--nonfinite-guard", action="store_true",
                   help="keep the module's non-finite guard on (one host sync per optimizer step) and do the same "
                        "check in the plain loop; default: off on both sides")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convs on CUDA (the anchors used TF32)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; --quick/--tiny on CPU: 1, because on a shared "
                        "box spinning OpenMP threads of other jobs' load swamp the comparison)")
    p.add_argument("--json", type=Path, default=None, help="write settings and results here")
    args = p.parse_args(argv)
    quick = args.quick or args.tiny
    defaults = dict(batch_size=[64] if quick else [128, 512], image_size=32 if quick else 64,
                    width=16 if quick else 64, steps=16 if quick else 50, warmup=2 if quick else 10,
                    repeats=5)
    if args.tiny:
        defaults.update(batch_size=[8], width=4, steps=2, warmup=1, repeats=2)
    if quick and args.device == "cpu":
        defaults["threads"] = 1
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is visible; use --device cpu")
    if args.precision == "16-mixed" and args.device == "cpu":
        p.error("--precision 16-mixed needs CUDA (Lightning turns it into bf16 on CPU); use bf16-mixed on CPU")
    return args


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def make_batches(args, batch_size: int) -> list[dict]:
    """A few distinct batches already on the device, cycled by both sides."""
    g = torch.Generator().manual_seed(0)
    n_distinct = 4
    images = torch.rand(n_distinct, batch_size, 3, args.image_size, args.image_size, generator=g) * 2 - 1
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    batches = [{"image": x.to(args.device).contiguous(memory_format=fmt),
                "label": torch.zeros(batch_size, dtype=torch.long, device=args.device)} for x in images]
    return batches


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


def build_module(args) -> DCGAN:
    torch.manual_seed(0)
    extra = {}
    if "max_nonfinite_steps" in inspect.signature(AdversarialModule.__init__).parameters and not args.nonfinite_guard:
        extra["max_nonfinite_steps"] = None
    return DCGAN(image_size=args.image_size, channels=3, ngf=args.width, ndf=args.width, latent_dim=100,
                 ema_decay=None if args.no_ema else 0.999, channels_last=args.channels_last,
                 compile_nets=args.compile, **extra)


def time_ours(args, module: DCGAN, batches: list[dict]) -> float:
    timer = Timer(args.warmup, args.device)
    trainer = L.Trainer(accelerator=args.device, devices=1, precision=args.precision, max_epochs=1,
                        limit_train_batches=args.warmup + args.steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[timer], use_distributed_sampler=False)
    trainer.fit(module, Cycle(batches, args.warmup + args.steps))
    return timer.end - timer.start


class PlainLoop:
    """What a user would write by hand: the same nets, losses, optimizers, order and EMA, no framework."""

    def __init__(self, args, module: DCGAN):
        self.args = args
        self.device = torch.device(args.device)
        self.g = copy.deepcopy(module.generator).to(self.device)  # same initial weights as ours
        self.d = copy.deepcopy(module.discriminator).to(self.device)
        self.ema = copy.deepcopy(module.generator_ema).to(self.device) if module.generator_ema is not None else None
        if args.channels_last:
            for net in (self.g, self.d, self.ema):
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        if args.compile:
            self.g.compile(), self.d.compile()
        fused = {"fused": True} if args.device == "cuda" and args.precision != "16-mixed" else {}
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999), **fused)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=(0.5, 0.999), **fused)
        self.loss = get_loss("non_saturating")
        self.latent = module.hparams.latent_dim
        self.dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
        self.scaler = torch.amp.GradScaler("cuda") if args.precision == "16-mixed" else None
        self.t = 0

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward_step(self, loss, opt) -> None:
        if self.scaler is None:
            loss.backward()
            if self.args.nonfinite_guard:  # the module's guard: one reduction and one host sync per step
                grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
                total = loss.detach().float().sum() + torch.stack(torch._foreach_norm(grads)).float().sum()
                if not bool(torch.isfinite(total)):
                    opt.zero_grad(set_to_none=True)
                    return
            opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
        opt.zero_grad(set_to_none=True)

    def step(self, batch: dict) -> None:
        real = batch["image"]
        n = real.shape[0]
        with self.autocast():  # D step: real vs G(z) detached
            with torch.no_grad():
                fake = self.g(torch.randn(n, self.latent, device=self.device))
            loss_d = self.loss.discriminator(self.d(real), self.d(fake))
        self.d.requires_grad_(True)
        self.backward_step(loss_d, self.opt_d)
        self.d.requires_grad_(False)  # G step: no grads into D
        with self.autocast():
            loss_g = self.loss.generator(self.d(self.g(torch.randn(n, self.latent, device=self.device))))
        self.backward_step(loss_g, self.opt_g)
        self.d.requires_grad_(True)
        self.t += 1
        if self.ema is not None:
            with torch.no_grad():
                decay = min(0.999, (1 + self.t) / (10 + self.t))
                torch._foreach_lerp_(list(self.ema.parameters()), [p.detach() for p in self.g.parameters()],
                                     1.0 - decay)
                for b_ema, b in zip(self.ema.buffers(), self.g.buffers()):
                    b_ema.copy_(b)

    def run(self, batches: list[dict], n_warmup: int, n_steps: int) -> float:
        for i in range(n_warmup):
            self.step(batches[i % len(batches)])
        sync(self.args.device)
        start = time.perf_counter()
        for i in range(n_steps):
            self.step(batches[(n_warmup + i) % len(batches)])
        sync(self.args.device)
        return time.perf_counter() - start


def bench_batch_size(args, batch_size: int) -> dict:
    batches = make_batches(args, batch_size)
    module = build_module(args)
    plain = PlainLoop(args, module)
    ours_t, plain_t, ratios = [], [], []
    for r in range(args.repeats):
        pair = {}
        order = ("ours", "plain") if r % 2 == 0 else ("plain", "ours")
        for side in order:
            if side == "ours":
                pair["ours"] = args.steps * batch_size / time_ours(args, module, batches)
            else:
                pair["plain"] = args.steps * batch_size / plain.run(batches, args.warmup, args.steps)
        ours_t.append(pair["ours"])
        plain_t.append(pair["plain"])
        ratios.append(pair["ours"] / pair["plain"])
        print(f"  batch {batch_size} repeat {r + 1}/{args.repeats}: ours {pair['ours']:.1f} img/s, "
              f"plain {pair['plain']:.1f} img/s, ratio {ratios[-1]:.3f}", flush=True)
    return {"batch_size": batch_size, "ours_img_s": ours_t, "plain_img_s": plain_t, "ratios": ratios,
            "ours_median": statistics.median(ours_t), "plain_median": statistics.median(plain_t),
            "ratio": statistics.median(ratios)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings.update(torch=torch.__version__, lightning=L.__version__, python=platform.python_version(),
                    device_name=torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
                    or platform.machine(), threads=torch.get_num_threads())
    print(f"DCGAN {args.image_size}x{args.image_size} width {args.width}, {args.precision}, device {args.device} "
          f"({settings['device_name']}), channels_last={args.channels_last}, compile={args.compile}, "
          f"{args.steps} timed steps x {args.repeats} repeats", flush=True)
    results = [bench_batch_size(args, bs) for bs in args.batch_size]
    print()
    print("| batch | ours (Lightning) img/s | plain PyTorch img/s | ours/plain |")
    print("|---|---|---|---|")
    for res in results:
        print(f"| {res['batch_size']} | {res['ours_median']:.1f} | {res['plain_median']:.1f} | {res['ratio']:.3f} |")
    ratio = min(res["ratio"] for res in results)
    out = {"settings": settings, "results": results, "ratio": ratio}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    print(f"ratio={ratio:.3f}")
    return out


if __name__ == "__main__":
    main()
