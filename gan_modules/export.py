"""Export a trained translation generator alone to TorchScript and ONNX (``gan-modules-export``).

The exported graph is G only (no discriminator, no Lightning), in the model's ``test_mode``: ``eval`` uses running
statistics; ``train`` (StarGAN's default, pix2pix's paper mode) becomes norm layers that always use the statistics of
their input, with dropout off, so the export is deterministic. Inputs: ``image`` (N, C, H, W) in [-1, 1], plus
``label`` (N, c_dim) float for StarGAN (attribute vector or one-hot domain); output ``output`` (N, C, H, W) in
[-1, 1]. Height and width must be multiples of the model's ``size_multiple`` (256 for U-Net-256: pad, then crop
back); batch, height and width are dynamic axes in the ONNX graph.

Usage::

    gan-modules-export runs/.../last.ckpt --out exported/ --formats torchscript onnx [--direction b2a]
    python -m gan_modules.export runs/.../last.ckpt --out exported/
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import CheckpointError, ConfigError
from .translation import TranslationModule, batch_statistics_copy

FORMATS = ("torchscript", "onnx")


class ExportedGenerator(nn.Module):
    """G as a plain module: ``forward(image[, label]) -> output``, clamped to [-1, 1] like ``predict``."""

    def __init__(self, generator: nn.Module, conditional: bool):
        super().__init__()
        self.generator, self.conditional = generator, conditional

    def forward(self, image: Tensor, label: Tensor | None = None) -> Tensor:
        out = self.generator(image, label) if self.conditional else self.generator(image)
        return out.clamp(-1.0, 1.0)  # (N, C, H, W)


def load_translation_model(checkpoint: str | Path) -> TranslationModule:
    """Rebuilds the variant saved in a checkpoint (its class is recorded by the base module).

    Raises:
        CheckpointError: the file is missing, unreadable or not a translation model's checkpoint.
    """
    from .checkpoint import load_model  # weights-only load; the class comes from the checkpoint and MODELS

    return load_model(checkpoint, expected=TranslationModule).eval()


def export_generator(model: TranslationModule, direction: str = "a2b", use_ema: bool = True) -> ExportedGenerator:
    """The generator of ``model`` ready to trace (``direction`` picks CycleGAN's ``a2b``/``b2a``)."""
    net = model.sampling_generator(use_ema)
    if isinstance(net, nn.ModuleDict):
        if direction not in net:
            raise ConfigError(f"direction must be one of {', '.join(net)}, got {direction!r}")
        net = net[direction]
    net = batch_statistics_copy(net) if model.hparams.test_mode == "train" else copy.deepcopy(net).eval()
    return ExportedGenerator(net, conditional=hasattr(model, "c_dim")).eval()


def example_inputs(model: TranslationModule, batch: int = 1, size: int | None = None) -> tuple[Tensor, ...]:
    """Random inputs of the model's image size (or ``size``) for tracing and checks."""
    hp = model.hparams
    g = torch.Generator().manual_seed(0)
    side = size or hp.image_size
    image = torch.rand(batch, hp.channels, side, side, generator=g) * 2 - 1
    if hasattr(model, "c_dim"):
        return image, (torch.rand(batch, model.c_dim, generator=g) > 0.5).float()
    return (image,)


def export(model: TranslationModule, out_dir: str | Path, formats: tuple[str, ...] = FORMATS, direction: str = "a2b",
           use_ema: bool = True, opset: int = 17) -> dict[str, Path]:
    """Writes ``generator.pt`` (TorchScript, traced) and/or ``generator.onnx``; returns the paths by format."""
    if unknown := [f for f in formats if f not in FORMATS]:
        raise ConfigError(f"unknown export format(s) {unknown}: choose from {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = export_generator(model, direction, use_ema)
    args = example_inputs(model, batch=2)
    names = ["image", "label"][: len(args)]
    written: dict[str, Path] = {}
    with torch.no_grad():
        if "torchscript" in formats:
            traced = torch.jit.trace(net, args, check_trace=False)
            written["torchscript"] = out / "generator.pt"
            traced.save(str(written["torchscript"]))
        if "onnx" in formats:
            written["onnx"] = out / "generator.onnx"
            axes = {"image": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}}
            if len(args) > 1:
                axes["label"] = {0: "batch"}
            torch.onnx.export(net, args, str(written["onnx"]), input_names=names, output_names=["output"],
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
    return written


def main(argv: list[str] | None = None) -> int:
    """``gan-modules-export CKPT --out DIR [--formats torchscript onnx] [--direction a2b|b2a] [--no-ema]``."""
    parser = argparse.ArgumentParser(prog="gan-modules-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a Pix2Pix/CycleGAN/StarGAN checkpoint written by fit")
    parser.add_argument("--out", default="exported", help="output folder (default: exported)")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--direction", default="a2b", help="CycleGAN generator to export: a2b or b2a")
    parser.add_argument("--no-ema", action="store_true", help="export the raw generator even if an EMA copy exists")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    args = parser.parse_args(argv)
    try:
        model = load_translation_model(args.checkpoint)
        written = export(model, args.out, tuple(args.formats), args.direction, not args.no_ema, args.opset)
    except (CheckpointError, ConfigError) as err:
        print(f"gan-modules-export: error: {err}", file=sys.stderr)
        return 2
    for fmt, path in written.items():
        print(f"{fmt}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
