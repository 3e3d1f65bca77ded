"""A plain-PyTorch DCGAN written independently of ``gan_modules``: the reference loops of the speed benchmarks.

It follows pytorch/examples ``dcgan/main.py`` (the loop users compare with: ``netG``/``netD`` as ``nn.Sequential``,
``weights_init``, "(1) Update D network" then "(2) Update G network" reusing the D step's ``fake``; read at
commit 00b1e34c) with today's best practice instead of its 2017 idioms:

- logits + ``softplus`` (= ``BCEWithLogitsLoss``) instead of ``Sigmoid`` + ``BCELoss`` (autocast-safe);
- ``zero_grad(set_to_none=True)``; D frozen (``requires_grad_(False)``) during the G backward, so that no gradient of
  D's weights is computed and thrown away (pytorch/examples computes them and zeroes them at the next batch);
- no ``.item()`` per step (each one is a host sync on a GPU); losses are read only when printed.

The networks have the sizes of ``gan_modules.nets.dcgan`` (same layers, biases and N(0, 0.02) init, so the same
FLOPs and parameter count) but share no code with them. Only torch, torchvision and numpy are imported: a process
that runs this file starts as fast as a user's script.

Run as a script it is the plain side of ``benchmarks/end_to_end.py``: the user-visible job of ``gan-modules fit`` on
the embedded MNIST (same digits and split, same size, same number of generator steps, sample grids from the EMA
generator at the same cadence with the same names, a checkpoint at the same cadence and at the end, losses printed at
the logging interval) in a ~40-line loop, and a JSON clock of when step 0 started and the job ended.
"""

from __future__ import annotations

import time

_T0 = time.time()  # interpreter start-up ends here (before torch is imported), reported by main()

import argparse
import contextlib
import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _base_and_blocks(image_size: int) -> tuple[int, int]:
    base = 7 if image_size == 28 else 4  # 28 px starts from 7x7, the powers of two from 4x4
    blocks = int(math.log2(image_size // base))
    if base * 2**blocks != image_size:
        raise ValueError(f"image_size must be 28, 32, 64 or 128, got {image_size}")
    return base, blocks


def weights_init(m: nn.Module) -> None:
    """pytorch/examples ``dcgan/main.py`` ``weights_init``: conv ~ N(0, 0.02), BN weight ~ N(1, 0.02), BN bias 0
    (no conv has a bias, as in the example)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def make_generator(nz: int, ngf: int, nc: int, image_size: int) -> nn.Sequential:
    """z (N, nz, 1, 1) -> image (N, nc, S, S) in [-1, 1]."""
    base, blocks = _base_and_blocks(image_size)
    width = ngf * 2 ** (blocks - 1)
    layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width, base, 1, 0, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU(True)]  # state size (ngf*2^(blocks-1)) x base x base
    for _ in range(blocks - 1):
        layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                   nn.ReLU(True)]
        width //= 2
    layers += [nn.ConvTranspose2d(width, nc, 4, 2, 1, bias=False), nn.Tanh()]
    net = nn.Sequential(*layers)
    net.apply(weights_init)
    return net


def make_discriminator(nc: int, ndf: int, image_size: int) -> nn.Sequential:
    """image (N, nc, S, S) -> logits (N, 1, 1, 1)."""
    base, blocks = _base_and_blocks(image_size)
    layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    width = ndf
    for _ in range(blocks - 1):
        layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2),
                   nn.LeakyReLU(0.2, True)]
        width *= 2
    layers += [nn.Conv2d(width, 1, base, 1, 0, bias=False)]
    net = nn.Sequential(*layers)
    net.apply(weights_init)
    return net


class PlainDCGAN:
    """Networks, Adam optimizers (lr 2e-4, β (0.5, 0.999)), an optional EMA of G and the training step.

    Args:
        image_size, channels, ngf, ndf, nz: the DCGAN's sizes.
        device: where everything lives.
        autocast_dtype: ``torch.bfloat16``/``torch.float16`` for mixed precision, None for fp32.
        channels_last: NHWC weights (the batches must be NHWC too).
        fused: ``Adam(fused=True)``.
        ema_decay: EMA of G's parameters with the warm-up ``min(decay, (1 + t) / (10 + t))``, buffers copied (what
            our module does, so that both sides sample the same kind of generator); None: no EMA.
        lr, betas: Adam's settings for both networks.
        mirrored: the loop of ``gan_modules`` today (a no-grad G forward for the D step and a fresh G forward for the
            G step: two G forwards per iteration) instead of the best-practice reuse of the D step's fakes.
        guard: check the loss and gradients for inf/NaN before each optimizer step (one reduction and one host sync
            per step, as our module's ``max_nonfinite_steps`` guard does).
    """

    def __init__(self, image_size: int, channels: int, ngf: int, ndf: int, nz: int = 100, device: str = "cpu",
                 autocast_dtype: torch.dtype | None = None, channels_last: bool = False, fused: bool = False,
                 ema_decay: float | None = 0.999, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999),
                 mirrored: bool = False, guard: bool = False):
        self.device = torch.device(device)
        self.nz, self.autocast_dtype, self.mirrored, self.guard = nz, autocast_dtype, mirrored, guard
        self.g = make_generator(nz, ngf, channels, image_size).to(self.device)
        self.d = make_discriminator(channels, ndf, image_size).to(self.device)
        self.ema = None
        if ema_decay is not None:
            self.ema = make_generator(nz, ngf, channels, image_size).to(self.device).requires_grad_(False)
            self.ema.load_state_dict(self.g.state_dict())
        if channels_last:
            for net in (self.g, self.d, self.ema):
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        extra = {"fused": True} if fused else {}
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr, betas=betas, **extra)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr, betas=betas, **extra)
        self.scaler = torch.amp.GradScaler(self.device.type) if autocast_dtype == torch.float16 else None
        self.ema_decay = ema_decay
        self.step_count = 0
        self.last_losses: tuple[Tensor, Tensor] | None = None

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def noise(self, n: int) -> Tensor:
        return torch.randn(n, self.nz, 1, 1, device=self.device)

    def _update(self, loss: Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
            return
        loss.backward()
        if self.guard:  # one fused reduction over loss and gradient norms, one host sync
            grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
            total = loss.detach().float() + torch.stack(torch._foreach_norm(grads)).float().sum()
            if not bool(torch.isfinite(total)):
                return
        opt.step()

    def train_step(self, real: Tensor) -> None:
        """One D step then one G step on a batch of real images in [-1, 1]."""
        n = real.shape[0]
        # (1) Update D: maximize log D(x) + log(1 - D(G(z)))
        with self.autocast():
            if self.mirrored:
                with torch.no_grad():
                    fake = self.g(self.noise(n))
            else:
                fake = self.g(self.noise(n))  # kept with its graph: reused by the G step (one G forward)
            loss_d = F.softplus(-self.d(real)).mean() + F.softplus(self.d(fake.detach())).mean()
        self._update(loss_d, self.opt_d)
        # (2) Update G: maximize log D(G(z)) (non-saturating), D frozen
        self.d.requires_grad_(False)
        with self.autocast():
            if self.mirrored:
                fake = self.g(self.noise(n))
            loss_g = F.softplus(-self.d(fake)).mean()
        self._update(loss_g, self.opt_g)
        self.d.requires_grad_(True)
        self.step_count += 1
        self.update_ema()
        self.last_losses = (loss_d.detach(), loss_g.detach())

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.ema is None:
            return
        t = self.step_count
        decay = min(self.ema_decay, (1 + t) / (10 + t))
        torch._foreach_lerp_(list(self.ema.parameters()), [p.detach() for p in self.g.parameters()], 1.0 - decay)
        for b_ema, b in zip(self.ema.buffers(), self.g.buffers()):
            b_ema.copy_(b)

    @torch.no_grad()
    def sample(self, z: Tensor) -> Tensor:
        """Images in [-1, 1] from the EMA G (else G) in eval mode, for grids."""
        net = self.ema if self.ema is not None else self.g
        net.eval()
        try:
            return net(z).float().clamp(-1, 1)
        finally:
            net.train()

    def state_dict(self) -> dict:
        state = {"generator": self.g.state_dict(), "discriminator": self.d.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "step": self.step_count}
        if self.ema is not None:
            state["generator_ema"] = self.ema.state_dict()
        return state


# ---------------------------------------------------------------------------------------------------------------------
# The plain training script (the plain side of benchmarks/end_to_end.py)
def load_mnist(path: Path, image_size: int, channels: int, resize_mode: str, val_fraction: float,
               split_seed: int) -> Tensor:
    """The embedded digits' train split as float (N, C, S, S) in [-1, 1], converted once (not per batch). The split is
    the datamodule's: one ``randperm`` seeded with ``split_seed``, the first ``round(N * val_fraction)`` held out."""
    import numpy as np

    with np.load(path) as npz:
        images = torch.from_numpy(npz["images"]).unsqueeze(1)  # (N, 1, 28, 28) uint8
    n_val = max(1, round(len(images) * val_fraction)) if val_fraction > 0 else 0
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(split_seed))
    x = images[order[n_val:]].float().div_(127.5).sub_(1.0)
    if channels == 3:
        x = x.expand(-1, 3, -1, -1).contiguous()
    if x.shape[-1] != image_size:
        if resize_mode == "pad":
            before = (image_size - x.shape[-1]) // 2
            after = image_size - x.shape[-1] - before
            x = F.pad(x, (before, after, before, after), value=-1.0)
        else:
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True).clamp_(-1, 1)
    return x


def save_grid(gan: PlainDCGAN, z: Tensor, path: Path) -> None:
    """A grid of samples from fixed noise, as ``SampleGrid`` lays it out (sqrt(n) columns, 2 px white padding)."""
    from torchvision.utils import make_grid, save_image

    images = (gan.sample(z).cpu() + 1) / 2
    save_image(make_grid(images, nrow=math.ceil(math.sqrt(len(images))), padding=2, pad_value=1.0), path)


def save_checkpoint(gan: PlainDCGAN, path: Path) -> None:
    """``torch.save`` of the networks, EMA and optimizers, written to a temporary name and moved into place."""
    torch.save(gan.state_dict(), path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="plain-PyTorch DCGAN on the embedded MNIST (end_to_end.py's plain side)")
    p.add_argument("--data-file", type=Path, required=True, help="datamodules/data/mnist10k.npz")
    p.add_argument("--out", type=Path, required=True, help="run folder: samples/, checkpoints/")
    p.add_argument("--clock", type=Path, required=True, help="write the JSON clock here")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed", "16-mixed"))
    p.add_argument("--steps", type=int, required=True, help="generator steps")
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--resize-mode", default="resize", choices=("resize", "pad"))
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--drop-last", type=int, default=1)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--nz", type=int, default=100)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--betas", type=float, nargs=2, default=(0.5, 0.999))
    p.add_argument("--ema-decay", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--grid-every", type=int, default=0, help="grid every N generator steps (0: only the final one)")
    p.add_argument("--grid-samples", type=int, default=64)
    p.add_argument("--ckpt-every-steps", type=int, default=0)
    p.add_argument("--ckpt-every-seconds", type=float, default=0.0)
    p.add_argument("--log-every", type=int, default=0, help="print the losses every N steps (0: never)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
    data = load_mnist(args.data_file, args.image_size, args.channels, args.resize_mode, args.val_fraction,
                      args.split_seed).to(device)
    gan = PlainDCGAN(args.image_size, args.channels, args.ngf, args.ndf, args.nz, args.device, autocast_dtype=dtype,
                     ema_decay=args.ema_decay, lr=args.lr, betas=tuple(args.betas))
    fixed_z = torch.randn(args.grid_samples, args.nz, generator=torch.Generator().manual_seed(args.sample_seed))
    fixed_z = fixed_z.view(args.grid_samples, args.nz, 1, 1).to(device)
    (args.out / "samples").mkdir(parents=True, exist_ok=True)
    (args.out / "checkpoints").mkdir(parents=True, exist_ok=True)

    n, bs = len(data), args.batch_size
    batches_per_epoch = n // bs if args.drop_last else math.ceil(n / bs)
    step, epoch = 0, 0
    t_first = time.time()
    last_ckpt = time.monotonic()
    while step < args.steps:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed + epoch), device="cpu").to(device)
        for i in range(batches_per_epoch):
            gan.train_step(data[perm[i * bs:(i + 1) * bs]])
            step += 1
            if args.log_every and step % args.log_every == 0:
                loss_d, loss_g = (x.item() for x in gan.last_losses)
                print(f"[{epoch}][{step}/{args.steps}] loss_d {loss_d:.4f} loss_g {loss_g:.4f}", flush=True)
            if args.grid_every and step % args.grid_every == 0:
                save_grid(gan, fixed_z, args.out / "samples" / f"step_{step:07d}.png")
            if (args.ckpt_every_steps and step % args.ckpt_every_steps == 0) or (
                    args.ckpt_every_seconds and time.monotonic() - last_ckpt >= args.ckpt_every_seconds):
                save_checkpoint(gan, args.out / "checkpoints" / "last.pt")
                last_ckpt = time.monotonic()
            if step >= args.steps:
                break
        epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_last = time.time()
    save_grid(gan, fixed_z, args.out / "samples" / "final.png")
    save_checkpoint(gan, args.out / "checkpoints" / "last.pt")
    t_done = time.time()
    clock = {"side": "plain", "t_interpreter": _T0, "t_first_step_start": t_first, "t_last_step_end": t_last,
             "t_done": t_done, "generator_steps": step, "threads": torch.get_num_threads()}
    args.clock.write_text(json.dumps(clock))
    return clock


if __name__ == "__main__":
    main()
