"""Export the generator of any trained model alone (no discriminator, no Lightning): ``gan-modules-export``.

Formats (``--formats``, default ``pt2 hf``):

- ``pt2``: ``generator.pt2``, a ``torch.export`` program (what torch recommends since ``torch.jit`` was deprecated;
  load with ``torch.export.load(path).module()``; AOTInductor can compile it for C++).
- ``onnx``: ``generator.onnx`` through torch's ``torch.export``-based ONNX exporter; needs the ``[export]`` extra
  (``pip install "gan-modules[export]"``: onnx, onnxscript, and onnxruntime to check it).
- ``hf``: ``model.safetensors`` + ``config.json`` + model card ``README.md`` (see :mod:`gan_modules.hub`), which
  ``gan_modules.load_generator(folder)`` loads back as a plain module; ``--push-to-hub owner/name`` uploads it
  (``[hub]`` extra).

Every file lands in one folder (``--out``). Exported graphs take:

- image models: ``z`` (N, latent_dim) float32 ~ N(0, 1) (U(-√3, √3) for models trained with ``noise: uniform``), plus ``y`` (N,) int64 class indices for conditional ones;
- translation models: ``image`` (N, C, H, W) in [-1, 1], plus ``label`` (N, c_dim) float for StarGAN (attribute
  vector or one-hot domain); H and W must be multiples of the generator's ``size_multiple`` (pad, then crop back);

and return ``output`` (N, C, H, W) clamped to [-1, 1], like ``model.generate``. Batch (and H, W for translation) are
dynamic. The graph is the sampling generator (the EMA copy when the model has one; ``--no-ema`` for the raw one) in
the model's inference mode: eval, or for translation ``test_mode: train`` norm layers that always use the statistics
of their input, with dropout off, so the export is deterministic. After writing, each format is run on a fresh batch
and compared with the eager generator (``checked: max |diff|`` lines).

Exit codes: 0 written, 2 user error (missing/corrupt checkpoint, bad option, missing extra), 1 anything else.

Usage::

    gan-modules-export runs/.../last.ckpt --out exported/ [--formats pt2 onnx hf] [--direction b2a]
    gan-modules-export runs/.../last.ckpt --out exported/ --push-to-hub you/dcgan-mnist
    python -m gan_modules.export runs/.../last.ckpt --out exported/
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.export import Dim

from . import _compat
from .errors import CheckpointError, ConfigError
from .hub import GRID_NAME, final_grid, find_run_dir, push_to_hub, require, save_pretrained
from .translation import TranslationModule, batch_statistics_copy

FORMATS = ("pt2", "onnx", "hf")
DEFAULT_FORMATS = ("pt2", "hf")
FILE_NAMES = {"pt2": "generator.pt2", "onnx": "generator.onnx"}
#: max |exported − eager| accepted by the post-export check (float32 graphs; ONNX Runtime fuses ops differently)
TOLERANCE = {"pt2": 1e-5, "onnx": 1e-4, "hf": 1e-6}


class OneInputGenerator(nn.Module):
    """``forward(x) -> G(x).clamp(-1, 1)`` with a fixed signature (``torch.export`` traces positional inputs)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        return self.generator(x).clamp(-1.0, 1.0)  # (N, C, H, W)


class TwoInputGenerator(nn.Module):
    """``forward(x, c) -> G(x, c).clamp(-1, 1)``: (z, class index) or (image, target label)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        return self.generator(x, c).clamp(-1.0, 1.0)  # (N, C, H, W)


def load_translation_model(checkpoint: str | Path) -> TranslationModule:
    """Rebuilds a translation variant saved in a checkpoint (kept for callers of the translation-only exporter)."""
    from .registry import load_model

    return load_model(checkpoint, expected=TranslationModule).eval()


def is_translation(model: Any) -> bool:
    return isinstance(model, TranslationModule)


def generator_network(model: Any, direction: str | None = None, use_ema: bool = True) -> tuple[nn.Module, str | None]:
    """The sampling generator network itself (EMA copy if any) and the direction used (CycleGAN's ``a2b``/``b2a``;
    None for single-generator models)."""
    net = model.sampling_generator(use_ema)
    if isinstance(net, nn.ModuleDict):
        direction = direction or next(iter(net))
        if direction not in net:
            raise ConfigError(f"direction must be one of {', '.join(net)}, got {direction!r}")
        return net[direction], direction
    if direction not in (None, "a2b"):
        raise ConfigError(f"{type(model).__name__} has one generator; --direction applies to CycleGAN only")
    return net, None


def batch_statistics_mode(model: Any) -> bool:
    """True when the model samples with the statistics of its input batch (translation ``test_mode: train``)."""
    return is_translation(model) and model.hparams.get("test_mode") == "train"


def inference_copy(model: Any, net: nn.Module) -> nn.Module:
    """A copy of ``net`` in the model's inference mode (eval, or batch statistics with dropout off)."""
    return batch_statistics_copy(net) if batch_statistics_mode(model) else copy.deepcopy(net).eval()


def input_names(model: Any) -> list[str]:
    """Names of the exported graph's inputs, in call order."""
    if is_translation(model):
        return ["image", "label"] if hasattr(model, "c_dim") else ["image"]
    return list(model.sample_inputs(1, seed=0))


def input_descriptions(model: Any) -> dict[str, dict[str, Any]]:
    """``{name: {shape, dtype, meaning}}`` of the generator's inputs, for config.json and the model card."""
    hp = model.hparams
    if is_translation(model):
        out = {"image": {"shape": ["N", hp.channels, "H", "W"], "dtype": "float32",
                         "meaning": f"input images in [-1, 1]; H and W multiples of {size_multiple(model)}"}}
        if hasattr(model, "c_dim"):
            out["label"] = {"shape": ["N", model.c_dim], "dtype": "float32",
                            "meaning": "target domain: attribute vector of 0/1 or one-hot domain"}
        return out
    example = model.sample_inputs(1, seed=0)
    noise = "noise ~ U(-√3, √3)" if hp.get("noise") == "uniform" else "noise ~ N(0, 1)"
    out = {"z": {"shape": ["N", hp.latent_dim], "dtype": "float32", "meaning": noise}}
    if "y" in example:
        out["y"] = {"shape": ["N"], "dtype": "int64", "meaning": f"class index in [0, {hp.num_classes})"}
    for name in example:
        if name not in out:
            out[name] = {"shape": ["N", *example[name].shape[1:]], "dtype": str(example[name].dtype).split(".")[-1],
                         "meaning": "see the model's sample_inputs"}  # fmt: skip
    return out


def size_multiple(model: Any, direction: str | None = None) -> int:
    net, _ = generator_network(model, direction)
    return int(getattr(net, "size_multiple", 1))


def example_inputs(model: Any, batch: int = 1, size: int | None = None, seed: int = 0) -> tuple[Tensor, ...]:
    """Inputs for the exported graph, in ``input_names`` order: noise (and cycling labels) from
    ``model.sample_inputs`` for image models; random images of the model's size (or ``size``) for translation."""
    if not is_translation(model):
        inputs = model.sample_inputs(batch, seed=seed)
        return tuple(v.cpu() for v in inputs.values())
    hp = model.hparams
    g = torch.Generator().manual_seed(seed)
    side = size or hp.image_size
    image = torch.rand(batch, hp.channels, side, side, generator=g) * 2 - 1
    if hasattr(model, "c_dim"):
        return image, (torch.rand(batch, model.c_dim, generator=g) > 0.5).float()
    return (image,)


def exportable(model: Any, direction: str | None = None, use_ema: bool = True) -> nn.Module:
    """The generator of ``model`` wrapped for export: fixed positional signature, inference mode, output clamped."""
    net, _ = generator_network(model, direction, use_ema)
    net = inference_copy(model, net).cpu()
    wrapper = TwoInputGenerator(net) if len(input_names(model)) == 2 else OneInputGenerator(net)
    return wrapper.eval()


def export_program(model: Any, direction: str | None = None, use_ema: bool = True) -> torch.export.ExportedProgram:
    """``torch.export`` of the generator with a dynamic batch (and, for translation, dynamic H and W in multiples of
    ``size_multiple``).

    Export is traced on a batch of 2 and sides of 2 × ``size_multiple`` with ``backed_size_oblivious`` on, so sizes 1
    are not specialised away (the torch export tutorial's "Avoiding 0/1 specialization"): batch 1 and a side of one
    ``size_multiple`` (U-Net's 1×1 bottleneck at its training size) run too.
    """
    wrapper = exportable(model, direction, use_ema)
    batch = Dim("batch", min=1)
    if is_translation(model):
        k = size_multiple(model, direction)
        args = example_inputs(model, batch=2, size=2 * k)
        shapes: list[dict[int, Any]] = [{0: batch, 2: k * Dim("h_blocks", min=1), 3: k * Dim("w_blocks", min=1)}]
    else:
        args = example_inputs(model, batch=2)
        shapes = [{0: batch}]
    shapes += [{0: batch}] * (len(args) - 1)
    with torch.no_grad(), _compat.export_without_size_specialization():
        return torch.export.export(wrapper, args, dynamic_shapes=tuple(shapes))


def check_onnx_dependencies() -> None:
    """One line naming the extra when the ONNX exporter's packages are missing (before anything is written)."""
    for module in ("onnx", "onnxscript"):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"ONNX export needs the {module} package: pip install \"gan-modules[export]\"")


def export(model: Any, out_dir: str | Path, formats: tuple[str, ...] = DEFAULT_FORMATS, direction: str | None = None,
           use_ema: bool = True, opset: int | None = None, checkpoint: str | Path | None = None,
           run_dir: str | Path | None = None) -> dict[str, Path]:  # fmt: skip
    """Writes the generator of ``model`` in ``formats`` into ``out_dir``; returns the written paths by format (``hf``:
    the folder).

    Args:
        model: a trained variant (any of ``gan_modules.MODELS``).
        out_dir: output folder (created).
        formats: any of ``pt2``, ``onnx``, ``hf``.
        direction: CycleGAN's ``a2b`` (default) or ``b2a``.
        use_ema: export the EMA generator when the model has one.
        opset: ONNX opset (None: torch's default).
        checkpoint: the checkpoint the model came from (its run directory gives the card's metrics and grid).
        run_dir: the run directory itself (overrides the one found from ``checkpoint``).

    Raises:
        ConfigError: unknown format or direction, or a missing optional package (one line naming the extra).
    """
    if unknown := [f for f in formats if f not in FORMATS]:
        hint = "; TorchScript (torch.jit) is deprecated by torch: use pt2" if "torchscript" in unknown else ""
        raise ConfigError(f"unknown export format(s) {', '.join(unknown)}: choose from {', '.join(FORMATS)}{hint}")
    if "onnx" in formats:
        check_onnx_dependencies()
    if "hf" in formats:
        require("safetensors", "export", "the hf format")
    _, direction = generator_network(model, direction, use_ema)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if "pt2" in formats or "onnx" in formats:
        program = export_program(model, direction, use_ema)
        if "pt2" in formats:
            written["pt2"] = out / FILE_NAMES["pt2"]
            torch.export.save(program, str(written["pt2"]))
        if "onnx" in formats:
            written["onnx"] = out / FILE_NAMES["onnx"]
            torch.onnx.export(program, f=str(written["onnx"]), input_names=input_names(model),
                              output_names=["output"], opset_version=opset, external_data=False,
                              verbose=False)  # fmt: skip
    if "hf" in formats:
        net, _ = generator_network(model, direction, use_ema)
        found = Path(run_dir) if run_dir is not None else find_run_dir(checkpoint)
        grid = final_grid(found) or render_grid(model, out / GRID_NAME, use_ema)
        save_pretrained(model, out, net, inputs=input_descriptions(model), direction=direction, use_ema=use_ema,
                        norm_statistics="batch" if batch_statistics_mode(model) else "running", run_dir=found,
                        grid=grid, extra_files={f: p.name for f, p in written.items()})  # fmt: skip
        written["hf"] = out
    return written


@torch.no_grad()
def render_grid(model: Any, path: Path, use_ema: bool = True, n: int = 64) -> Path | None:
    """The model's own fixed-input grid (``sample_grid``), enlarged for a web page, as ``path``; None when the model
    cannot draw one (a translation model that saw no training batch)."""
    from torchvision.utils import make_grid, save_image

    from .callbacks.plots import upscale_grid

    try:
        images, nrow = model.sample_grid(n)
    except (RuntimeError, NotImplementedError, KeyError):
        return None
    grid = make_grid((images.detach().float().cpu() + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(upscale_grid(grid), path)
    return path


@torch.no_grad()
def eager_output(model: Any, args: tuple[Tensor, ...], direction: str | None = None, use_ema: bool = True) -> Tensor:
    """What the model itself produces for the exported graph's inputs (the reference of every check), on the CPU."""
    args = tuple(a.to(model.device) for a in args)
    if not is_translation(model):
        return model.generate(dict(zip(input_names(model), args)), use_ema=use_ema).cpu()
    _, direction = generator_network(model, direction, use_ema)
    return model.run_generator(*args, key=direction, use_ema=use_ema).cpu()


@torch.no_grad()
def check_exports(model: Any, written: dict[str, Path], direction: str | None = None, use_ema: bool = True,
                  batch: int = 3) -> dict[str, float | None]:  # fmt: skip
    """Max |exported − eager| per written format on a batch of ``batch`` (and, for translation, another image size
    than the traced one); None for ONNX when onnxruntime is not installed."""
    size = 3 * size_multiple(model, direction) if is_translation(model) else None
    args = example_inputs(model, batch=batch, size=size, seed=1)
    eager = eager_output(model, args, direction, use_ema)
    diffs: dict[str, float | None] = {}
    if "pt2" in written:
        diffs["pt2"] = float((torch.export.load(str(written["pt2"])).module()(*args) - eager).abs().max())
    if "onnx" in written:
        if importlib.util.find_spec("onnxruntime") is None:
            diffs["onnx"] = None
        else:
            import onnxruntime as ort

            session = ort.InferenceSession(str(written["onnx"]), providers=["CPUExecutionProvider"])
            out = session.run(["output"], {n: a.numpy() for n, a in zip(input_names(model), args)})[0]
            diffs["onnx"] = float((torch.from_numpy(out) - eager).abs().max())
    if "hf" in written:
        from .hub import load_generator

        net = load_generator(written["hf"])
        diffs["hf"] = float((net(*args).clamp(-1, 1) - eager).abs().max())
    return diffs


def main(argv: list[str] | None = None) -> int:
    """``gan-modules-export CKPT [--out DIR] [--formats pt2 onnx hf] [--direction a2b|b2a] [--no-ema]
    [--push-to-hub owner/name]``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="gan-modules-export", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Formats: pt2 (torch.export), onnx (needs gan-modules[export]), hf "
                                            "(safetensors + config.json + README.md; gan_modules.load_generator).")
    parser.add_argument("checkpoint", help="a .ckpt written by gan-modules fit (any model)")
    parser.add_argument("--out", default="exported", help="output folder (default: exported)")
    parser.add_argument("--formats", nargs="+", default=list(DEFAULT_FORMATS), metavar="FORMAT",
                        help=f"any of {', '.join(FORMATS)} (default: {' '.join(DEFAULT_FORMATS)})")
    parser.add_argument("--direction", default=None, help="CycleGAN generator to export: a2b (default) or b2a")
    parser.add_argument("--no-ema", action="store_true", help="export the raw generator even if an EMA copy exists")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: torch's)")
    parser.add_argument("--run-dir", default=None, help="training run folder with samples/ and metrics/ for the "
                                                        "model card (default: found from the checkpoint's path)")
    parser.add_argument("--push-to-hub", default=None, metavar="OWNER/NAME",
                        help="upload the hf folder to this Hugging Face Hub repository (needs gan-modules[hub])")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    parser.add_argument("--no-check", action="store_true", help="skip running the exports against the eager model")
    args = parser.parse_args(argv)
    formats = tuple(dict.fromkeys(args.formats + (["hf"] if args.push_to_hub else [])))
    try:
        if args.push_to_hub:  # fail before the (slow) export when the upload cannot happen
            require("huggingface_hub", "hub", "--push-to-hub")
        from .registry import load_model

        model = load_model(args.checkpoint)
        written = export(model, args.out, formats, args.direction, not args.no_ema, args.opset,
                         checkpoint=args.checkpoint, run_dir=args.run_dir)  # fmt: skip
        diffs = {} if args.no_check else check_exports(model, written, args.direction, not args.no_ema)
        url = push_to_hub(written["hf"], args.push_to_hub, private=args.private or None) if args.push_to_hub else None
    except (CheckpointError, ConfigError) as err:
        print(f"gan-modules-export: error: {err}", file=sys.stderr)
        return 2
    for fmt, path in written.items():
        diff = diffs.get(fmt)
        note = "" if fmt not in diffs else (" (not checked: onnxruntime is not installed)" if diff is None
                                            else f" (checked against eager: max |diff| {diff:.2e})")
        print(f"{fmt}: {path}{note}")
    if url:
        print(f"pushed to {url}")
    bad = {f: d for f, d in diffs.items() if d is not None and d > TOLERANCE[f]}
    if bad:
        print(f"gan-modules-export: exported outputs differ from the eager generator: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
