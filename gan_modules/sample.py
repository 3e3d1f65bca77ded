"""``gan-modules-sample CKPT -n 64 -o DIR [--interpolate]``: images from a checkpoint without a config file.

The model class is resolved from the checkpoint itself (``checkpoint["gan_modules"]["class_path"]``, written by
``AdversarialModule.on_save_checkpoint``) and the checkpoint is read with ``torch.load(weights_only=True)``, so a
checkpoint from an untrusted source cannot run code. Image ``i`` comes from seed ``seed + i`` exactly as
``gan-modules predict`` draws it, so both commands agree image by image.

Writes ``DIR/000000.png ...`` (one file per image, for external FID tools), ``DIR/grid.png`` (the model's own grid
layout: one row per class for conditional models) and, with ``--interpolate``, ``DIR/interpolation.png``: one row
per pair of seeds, spherical interpolation (White 2016) of the noise from one seed's to the next.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image

from .base import AdversarialModule
from .errors import CheckpointError, ConfigError


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> AdversarialModule:
    """The model saved in a Lightning checkpoint of a gan_modules variant, in eval mode.

    Raises:
        CheckpointError: missing, unreadable, unsafe (objects that ``weights_only=True`` refuses), or not from
            gan_modules.
    """
    from .registry import load_model  # the one safe loader: weights-only, class resolved from gan_modules.MODELS

    return load_model(path, map_location=map_location).to(map_location).eval()


@torch.no_grad()
def generate_images(model: AdversarialModule, n: int, seed: int | None = None, batch_size: int = 256) -> Tensor:
    """``n`` images ``(n, C, H, W)`` in [-1, 1] through the model's ``predict_step`` (image ``i`` from seed
    ``seed + i``; ``seed`` defaults to the model's ``sample_seed``)."""
    if seed is not None:
        model.hparams.sample_seed = seed
    out = []
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(n, start + batch_size))
        try:
            out.append(model.predict_step({"index": index}, start // batch_size)["images"].cpu())
        except KeyError as err:
            raise ConfigError(
                f"{type(model).__name__} needs input images ({err}) to generate; use `gan-modules predict --config "
                "...` with a datamodule that provides them"
            ) from None
    return torch.cat(out)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows ``a`` and ``b`` (N, D) at fractions ``t`` (T,): (T, N, D)."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.arccos((a_n * b_n).sum(-1).clamp(-1, 1)).view(1, -1, 1)  # (1, N, 1) angle between a and b
    so = torch.sin(omega)
    t = t.view(-1, 1, 1)  # (T, 1, 1)
    linear = (1 - t) * a + t * b
    spherical = torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b
    return torch.where(so.abs() < 1e-6, linear, spherical)  # parallel endpoints: plain linear interpolation


@torch.no_grad()
def interpolation_grid(model: AdversarialModule, seeds: list[int], steps: int = 10) -> Tensor:
    """Images ``(pairs * steps, C, H, W)``: for each consecutive pair of seeds, the noise ``z`` interpolated
    spherically in ``steps`` steps; other inputs (a conditional model's label) stay those of the first seed."""
    rows = []
    t = torch.linspace(0, 1, steps)
    for a, b in zip(seeds[:-1], seeds[1:]):
        start, end = model.sample_inputs(1, seed=a), model.sample_inputs(1, seed=b)
        if "z" not in start:
            raise ConfigError(f"{type(model).__name__} has no noise input z to interpolate")
        z = slerp(start["z"].flatten(1), end["z"].flatten(1), t.to(start["z"].device))  # (steps, 1, D)
        inputs = {k: v.expand(steps, *v.shape[1:]) if k != "z" else z.reshape(steps, *v.shape[1:])
                  for k, v in start.items()}  # fmt: skip
        rows.append(model.generate(inputs).cpu())
    return torch.cat(rows)


def write_samples(model: AdversarialModule, out: str | Path, n: int = 64, seed: int | None = None,
                  interpolate: bool = False, pairs: int = 8, steps: int = 10) -> dict[str, Any]:  # fmt: skip
    """Writes ``n`` PNGs, ``grid.png`` and optionally ``interpolation.png`` into ``out``; returns what it wrote."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = (generate_images(model, n, seed) + 1) / 2  # [-1, 1] -> [0, 1]
    for i, img in enumerate(images):
        save_image(img, out / f"{i:06d}.png")
    grid, nrow = model.sample_grid(min(n, 64), seed=seed)  # the model's layout (per class for conditional models)
    save_image(make_grid((grid.cpu() + 1) / 2, nrow=nrow, padding=2, pad_value=1.0), out / "grid.png")
    written = {"images": n, "grid": str(out / "grid.png")}
    if interpolate:
        base = model.hparams.sample_seed if seed is None else seed
        inter = interpolation_grid(model, [base + i for i in range(pairs + 1)], steps)
        save_image(make_grid((inter + 1) / 2, nrow=steps, padding=2, pad_value=1.0), out / "interpolation.png")
        written["interpolation"] = str(out / "interpolation.png")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gan-modules-sample", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a .ckpt written by gan-modules fit")
    parser.add_argument("-n", "--num-samples", type=int, default=64, help="images to write (default 64)")
    parser.add_argument("-o", "--output-dir", default="samples", help="where to write (default ./samples)")
    parser.add_argument("--seed", type=int, default=None, help="image i uses seed SEED + i (default: the model's)")
    parser.add_argument("--interpolate", action="store_true", help="also write interpolation.png")
    parser.add_argument("--pairs", type=int, default=8, help="interpolation rows (default 8)")
    parser.add_argument("--steps", type=int, default=10, help="images per interpolation row (default 10)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    args = parser.parse_args(argv)
    if args.num_samples < 1 or args.pairs < 1 or args.steps < 2:
        parser.error("-n and --pairs must be >= 1 and --steps >= 2")
    try:
        model = load_checkpoint(args.checkpoint, map_location=args.device)
        written = write_samples(model, args.output_dir, args.num_samples, args.seed, args.interpolate, args.pairs,
                                args.steps)  # fmt: skip
    except (CheckpointError, ConfigError) as err:
        print(f"gan-modules-sample: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    extra = f", {written['interpolation']}" if "interpolation" in written else ""
    print(f"wrote {written['images']} images to {args.output_dir} ({written['grid']}{extra})")


if __name__ == "__main__":
    main()
