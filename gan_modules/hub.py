"""A trained generator as a self-describing folder (weights, config, model card), loadable without Lightning, and
its round trip through the Hugging Face Hub.

The folder (``gan-modules-export CKPT --formats hf``, or :func:`save_pretrained`)::

    model.safetensors   the generator's state dict (safetensors: tensors only, nothing to unpickle)
    config.json         the network's class under ``gan_modules.nets`` and its constructor arguments, the model class,
                        paper, image size/channels/classes, latent size, value range, inputs and how to call it
    README.md           a model card: paper, config, metrics of the run (``metrics/*.json``), the sample grid
    samples.png         the run's final fixed-noise grid (when there is one)

:func:`load_generator` reads it back as a plain ``nn.Module`` in eval mode. Only classes defined in a module under
``gan_modules.nets`` are built (a config naming anything else is refused), and the weights are read with
``safetensors`` (no ``torch.load``, no pickle), so a folder from an untrusted source cannot run code.

Hub (optional ``[hub]`` extra, ``huggingface_hub``): ``gan-modules-export CKPT --push-to-hub owner/name`` uploads the
folder; ``load_generator("hf://owner/name")`` (or ``hf://owner/name@revision``) downloads and loads it.

This module imports no Lightning: everything here needs only torch and safetensors (plus huggingface_hub for ``hf://``).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import json
import math
import pkgutil
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError, ConfigError
from .nets.common import use_batch_statistics_

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
GRID_NAME = "samples.png"
FORMAT_VERSION = 1
NETS_PACKAGE = "gan_modules.nets"
HF_PREFIX = "hf://"


def require(module: str, extra: str, purpose: str) -> Any:
    """``import module``, or a one-line ``ConfigError`` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{purpose} needs the {module} package: pip install \"gan-modules[{extra}]\"") from None


# ----------------------------------------------------------------------------------------------------------------
# Which network, built with which arguments. Networks do not record their constructor arguments, so they are
# captured while the model is rebuilt from its hyperparameters: every class defined under gan_modules.nets reports
# its bound arguments. A new network or variant needs no entry anywhere.
def network_classes() -> dict[str, type[nn.Module]]:
    """Every ``nn.Module`` class defined in a module of ``gan_modules.nets``, by ``module.qualname``."""
    package = importlib.import_module(NETS_PACKAGE)
    found: dict[str, type[nn.Module]] = {}
    for info in pkgutil.iter_modules(package.__path__, prefix=f"{NETS_PACKAGE}."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, nn.Module) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


@contextlib.contextmanager
def recording_network_args() -> Iterator[dict[int, tuple[nn.Module, str, dict[str, Any]]]]:
    """While active, every network built from ``gan_modules.nets`` is recorded as ``id(instance) -> (instance, class
    path, bound constructor arguments with defaults)`` (the outermost ``__init__`` call per instance; the instance is
    kept so that its id cannot be reused by another object while the records live)."""
    records: dict[int, tuple[nn.Module, str, dict[str, Any]]] = {}
    patched: list[tuple[type, Any]] = []
    for cls in network_classes().values():
        original = cls.__dict__.get("__init__")
        if original is None:
            continue
        signature = inspect.signature(original)

        def init(self, *args, _original=original, _signature=signature, **kwargs):
            if id(self) not in records:
                bound = _signature.bind(self, *args, **kwargs)
                bound.apply_defaults()
                arguments = dict(list(bound.arguments.items())[1:])  # without self
                cls_of = type(self)
                records[id(self)] = (self, f"{cls_of.__module__}.{cls_of.__qualname__}", arguments)
            _original(self, *args, **kwargs)

        patched.append((cls, original))
        cls.__init__ = init
    try:
        yield records
    finally:
        for cls, original in patched:
            cls.__init__ = original


def json_safe(value: Any, where: str) -> Any:
    """``value`` with tuples as lists; raises ``ConfigError`` for anything JSON cannot hold."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} is {value}, which config.json cannot hold")
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: json_safe(v, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(f"{where} is a {type(value).__name__}, which config.json cannot hold; export with --formats pt2")


def model_hparams(model: Any) -> dict[str, Any]:
    """The constructor arguments saved by ``save_hyperparameters`` (Lightning's private ``_`` entries dropped)."""
    return {k: v for k, v in dict(model.hparams).items() if not str(k).startswith("_")}


def generator_path(model: Any, direction: str | None) -> str:
    """Attribute path of the exported generator in the model: ``generator`` or ``generator.<direction>``."""
    return "generator" if direction is None else f"generator.{direction}"


def network_spec(model: Any, direction: str | None = None) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of the model's generator (``direction`` picks one of a ``ModuleDict``), found by
    rebuilding the model from its hyperparameters while constructor arguments are recorded.

    Raises:
        ConfigError: the generator is not a single network class of ``gan_modules.nets`` or its arguments are not
            JSON values.
    """
    with recording_network_args() as records:
        fresh = type(model)(**model_hparams(model))
    net = fresh.generator if direction is None else fresh.generator[direction]
    if id(net) not in records or records[id(net)][0] is not net:
        raise ConfigError(f"{type(model).__name__}'s generator is a {type(net).__name__}, not a network class of "
                          f"{NETS_PACKAGE}; export it with --formats pt2 or onnx")
    _, class_path, arguments = records[id(net)]
    return {"class_path": class_path, "init_args": json_safe(arguments, f"{class_path} arguments")}


# ----------------------------------------------------------------------------------------------------------------
# Building a network back from its config: gan_modules.nets classes only.
def build_network(spec: dict[str, Any]) -> nn.Module:
    """The network named by ``spec["class_path"]`` (a class defined under ``gan_modules.nets``) built with
    ``spec["init_args"]``.

    Raises:
        CheckpointError: the class is outside ``gan_modules.nets``, unknown, or refuses the arguments.
    """
    class_path = str(spec.get("class_path", ""))
    if not class_path.startswith(f"{NETS_PACKAGE}."):
        raise CheckpointError(f"config.json names network {class_path!r}; only classes of {NETS_PACKAGE} are built "
                              "(is this folder from gan-modules-export?)")  # fmt: skip
    cls = network_classes().get(class_path)
    if cls is None:
        raise CheckpointError(f"config.json names {class_path}, which is not a network class of {NETS_PACKAGE} in "
                              "this version of gan_modules")  # fmt: skip
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, dict):
        raise CheckpointError(f"config.json: network.init_args must be an object, got {type(init_args).__name__}")
    try:
        return cls(**init_args)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"config.json's arguments do not build {class_path}: {err}") from None


# ----------------------------------------------------------------------------------------------------------------
# Writing the folder
def module_paper(model: Any) -> str:
    """The citation line(s) of the model's module docstring (authors, title, venue, arXiv link), on one line."""
    doc = inspect.getmodule(type(model)).__doc__ or type(model).__name__
    return " ".join(doc.split())


def find_run_dir(checkpoint: str | Path | None) -> Path | None:
    """The run directory of a checkpoint (the folder with ``samples/`` or ``metrics/``): ``<run>/checkpoints/x.ckpt``
    or ``<run>/x.ckpt``."""
    if checkpoint is None:
        return None
    ckpt = Path(checkpoint).resolve()
    for candidate in (ckpt.parent.parent, ckpt.parent):
        if (candidate / "samples").is_dir() or (candidate / "metrics").is_dir():
            return candidate
    return None


def read_metrics(run_dir: Path | None) -> list[dict[str, Any]]:
    """The metric files a run left (``<run>/metrics/*.json``, written by ``GenerativeMetrics``), oldest first."""
    if run_dir is None or not (run_dir / "metrics").is_dir():
        return []
    rows = []
    for path in sorted((run_dir / "metrics").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("results"), dict):
            rows.append({"file": path.name, **data})
    return sorted(rows, key=lambda r: (r.get("protocol", {}).get("generator_steps", 0), r["file"]))


def final_grid(run_dir: Path | None) -> Path | None:
    """The run's last fixed-input sample grid: ``samples/final.png``, else the latest ``samples/step_*.png``."""
    if run_dir is None:
        return None
    final = run_dir / "samples" / "final.png"
    if final.is_file():
        return final
    steps = sorted((run_dir / "samples").glob("step_*.png"))
    return steps[-1] if steps else None


def usage_line(config: dict[str, Any]) -> str:
    """A Python call that produces images from the loaded generator, for config.json and the card."""
    inputs = config["inputs"]
    if "z" in inputs:
        args = f"z=torch.randn(16, {config['latent_dim']})"
        if "y" in inputs:
            args += f", y=torch.arange(16) % {config['num_classes']}"
    else:
        c, s = config["channels"], config["image_size"]
        args = f"torch.rand(1, {c}, {s}, {s}) * 2 - 1"
        if len(inputs) > 1:
            args += f", torch.nn.functional.one_hot(torch.tensor([0]), {config['num_classes']}).float()"
    return f"G = load_generator(path); images = G({args})  # in [-1, 1]"


def save_pretrained(model: Any, folder: str | Path, net: nn.Module, *, inputs: dict[str, Any], direction: str | None,
                    use_ema: bool, norm_statistics: str = "running", run_dir: Path | None = None,
                    grid: Path | None = None, extra_files: dict[str, str] | None = None) -> dict[str, Path]:  # fmt: skip
    """Writes ``model.safetensors``, ``config.json``, ``README.md`` (and ``samples.png`` when the run left a grid)
    for ``net``, the generator of ``model`` that is exported, and checks that the folder loads back to the same
    weights.

    Args:
        model: the trained variant (for its class, hyperparameters, step counters and module docstring).
        folder: where to write (created).
        net: the generator network itself (the EMA copy when there is one), with running statistics intact.
        inputs: ``{name: description}`` of the generator's inputs, in call order.
        direction: CycleGAN's ``a2b``/``b2a`` (None for single-generator models).
        use_ema: whether ``net`` is the EMA copy (recorded).
        norm_statistics: ``running`` (eval mode) or ``batch`` (translation ``test_mode: train``).
        run_dir: the training run's directory, for ``metrics/*.json`` (and its final sample grid when ``grid`` is
            None).
        grid: a sample grid image to show on the card (copied to ``samples.png``).
        extra_files: other exported files in the folder (``{"pt2": "generator.pt2"}``), listed on the card.

    Raises:
        ConfigError: the generator cannot be described by a network class and JSON arguments.
    """
    safetensors_torch = require("safetensors.torch", "export", "the hf format")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = network_spec(model, direction)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    check = build_network(spec)  # the round trip load_generator will take, done now so a bad folder is never written
    try:
        check.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"{spec['class_path']} rebuilt from its arguments does not take the generator's weights "
                          f"({str(err).splitlines()[0]}); export with --formats pt2") from None  # fmt: skip
    hp = model_hparams(model)
    ema = use_ema and getattr(model, "generator_ema", None) is not None
    config: dict[str, Any] = {
        "library": "gan_modules",
        "format_version": FORMAT_VERSION,
        "network": spec,
        "norm_statistics": norm_statistics,
        "model": {"class_path": f"{type(model).__module__}.{type(model).__qualname__}", "name": type(model).__name__,
                  "paper": module_paper(model), "hparams": json_safe_hparams(hp)},
        "weights": "ema" if ema else "generator",
        "direction": direction,
        "generator_steps": int(getattr(model, "generator_steps", 0)),
        "image_size": hp.get("image_size"),
        "channels": hp.get("channels"),
        "num_classes": hp.get("num_classes"),
        "latent_dim": hp.get("latent_dim") if "z" in inputs else None,
        "value_range": [-1.0, 1.0],
        "inputs": inputs,
        "output": {"shape": ["N", hp.get("channels"), *(["H", "W"] if "z" not in inputs else [hp.get("image_size")] * 2)],
                   "dtype": "float32", "range": [-1.0, 1.0]},
    }
    config["usage"] = usage_line(config)
    written = {"weights": folder / WEIGHTS_NAME, "config": folder / CONFIG_NAME, "card": folder / CARD_NAME}
    safetensors_torch.save_file(state, str(written["weights"]), metadata={"format": "pt", "library": "gan_modules"})
    written["config"].write_text(json.dumps(config, indent=2) + "\n")
    grid = grid if grid is not None else final_grid(run_dir)
    if grid is not None:
        if Path(grid).resolve() != (folder / GRID_NAME).resolve():
            shutil.copyfile(grid, folder / GRID_NAME)
        written["grid"] = folder / GRID_NAME
    written["card"].write_text(model_card(config, read_metrics(run_dir), grid is not None, extra_files or {}))
    return written


def json_safe_hparams(hp: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters that JSON can hold (others, such as callables, are left out of the card)."""
    out = {}
    for k, v in hp.items():
        try:
            out[k] = json_safe(v, k)
        except ConfigError:
            continue
    return out


def model_card(config: dict[str, Any], metrics: list[dict[str, Any]], has_grid: bool, files: dict[str, str]) -> str:
    """The folder's ``README.md``: Hub metadata, paper, how to load, config, metrics and the sample grid."""
    m = config["model"]
    translation = "z" not in config["inputs"]
    arxiv = re.findall(r"https?://arxiv\.org/abs/[\w.]+", m["paper"])
    tags = ["gan", "gan-modules", m["name"].lower(), "image-to-image" if translation else "unconditional-image-generation"]
    if config["num_classes"] and not translation:
        tags[-1] = "class-conditional-image-generation"
    lines = ["---", "library_name: gan-modules", "tags:", *[f"- {t}" for t in tags]]
    side = config["image_size"]
    lines += ["---", "", f"# {m['name']} generator ({config['channels']}×{side}×{side})", "",
              f"**Paper**: {m['paper']}", ""]
    weights = "the exponential moving average of the generator's weights" if config["weights"] == "ema" else \
        "the trained generator's weights"  # fmt: skip
    lines += [f"Exported by `gan-modules-export` after {config['generator_steps']} generator steps: {weights}"
              + (f", direction `{config['direction']}`" if config["direction"] else "") + ".", ""]
    if has_grid:
        lines += ["![fixed-input samples](samples.png)", ""]
    lines += ["## Use", "", "```python", "import torch", "from gan_modules import load_generator", "",
              "path = \"<this folder or hf://owner/name>\"", config["usage"], "```", "",
              (f"The result is a plain `torch.nn.Module` in eval mode (no Lightning): "
               f"`{config['network']['class_path']}`. Outputs are in [-1, 1]; map to [0, 1] with `(x + 1) / 2`."), ""]
    lines += ["| input | shape | dtype | meaning |", "| --- | --- | --- | --- |"]
    for name, d in config["inputs"].items():
        lines.append(f"| `{name}` | ({', '.join(map(str, d['shape']))}) | {d['dtype']} | {d['meaning']} |")
    lines += ["", "## Config", "", "| key | value |", "| --- | --- |"]
    for key in ("image_size", "channels", "num_classes", "latent_dim", "value_range", "norm_statistics"):
        if config.get(key) is not None:
            lines.append(f"| {key} | {config[key]} |")
    lines.append(f"| network | `{config['network']['class_path']}` |")
    lines.append(f"| network arguments | `{json.dumps(config['network']['init_args'])}` |")
    lines += ["", "<details><summary>training hyperparameters</summary>", "", "```json",
              json.dumps(m["hparams"], indent=2), "```", "", "</details>", ""]
    if metrics:
        lines += ["## Metrics (from the training run)", "",
                  "| split | generator step | FID | KID | IS | precision | recall | samples | features |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in metrics[-10:]:
            r, p = row["results"], row.get("protocol", {})
            lines.append("| " + " | ".join([
                str(row.get("stage", "?")), str(p.get("generator_steps", "?")), _num(r.get("fid"), 3),
                f"{_num(r.get('kid_mean'), 5)} ± {_num(r.get('kid_std'), 5)}" if "kid_mean" in r else "–",
                f"{_num(r.get('is_mean'), 3)} ± {_num(r.get('is_std'), 3)}" if "is_mean" in r else "–",
                _num(r.get("precision"), 3), _num(r.get("recall"), 3),
                f"{p.get('num_real', '?')} real / {p.get('num_generated', '?')} generated",
                str(p.get("feature_extractor", "?"))]) + " |")  # fmt: skip
        lines.append("")
    if files:
        lines += ["## Files", "", f"- `{WEIGHTS_NAME}`, `{CONFIG_NAME}`: this card's generator (safetensors)"]
        for fmt, name in files.items():
            how = {"pt2": "`torch.export.load(path).module()(*inputs)`",
                   "onnx": "`onnxruntime.InferenceSession(path).run(None, {name: array})`"}.get(fmt, fmt)
            lines.append(f"- `{name}`: {fmt} ({how}), inputs {', '.join(config['inputs'])}, output `output`")
        lines.append("")
    if arxiv:
        lines += ["## Citation", "", *[f"- {url}" for url in arxiv], ""]
    return "\n".join(lines)


def _num(value: Any, digits: int) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


# ----------------------------------------------------------------------------------------------------------------
# Loading
def resolve(path: str | Path, revision: str | None = None) -> Path:
    """A local folder for ``path``: the folder itself, or ``hf://owner/name[@revision]`` downloaded from the Hub."""
    text = str(path)
    if not text.startswith(HF_PREFIX):
        return Path(path)
    repo = text[len(HF_PREFIX):]
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ConfigError(f"{text} is not a Hub repository: write hf://owner/name (optionally @revision)")
    hub = require("huggingface_hub", "hub", "loading from the Hugging Face Hub")
    return Path(hub.snapshot_download(repo_id=repo, revision=revision,
                                      allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]))  # fmt: skip


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; pass the folder written by gan-modules-export --formats hf "
                              "or hf://owner/name")  # fmt: skip
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_NAME}; pass the folder written by gan-modules-export "
                              "--formats hf")  # fmt: skip
    try:
        config = json.loads(path.read_text())
    except ValueError as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("network"), dict):
        raise CheckpointError(f"{path} has no network entry; it was not written by gan-modules-export")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {config['format_version']}, newer than this gan_modules "
                              f"reads ({FORMAT_VERSION}); upgrade gan-modules")  # fmt: skip
    return config


def load_generator(path: str | Path, revision: str | None = None, map_location: str | torch.device = "cpu",
                   ) -> nn.Module:  # fmt: skip
    """The generator in a folder written by ``gan-modules-export --formats hf`` (or ``hf://owner/name[@rev]``), as a
    plain ``nn.Module`` in eval mode with gradients off. Its config is attached as ``generator.gan_modules_config``.

    Call it as ``config.json``'s ``usage`` says: ``G(z=...)`` / ``G(z=..., y=...)`` for image models (images in
    [-1, 1]), ``G(image)`` / ``G(image, label)`` for translation models.

    Raises:
        CheckpointError: not such a folder, a network class outside ``gan_modules.nets``, or weights that do not fit.
        ConfigError: ``hf://`` without ``huggingface_hub`` installed.
    """
    folder = resolve(path, revision)
    config = read_config(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS_NAME}")
    safetensors_torch = require("safetensors.torch", "export", "loading a generator folder")
    net = build_network(config["network"])
    try:
        state = safetensors_torch.load_file(str(weights), device=str(map_location))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for truncated or foreign files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{weights} is not a readable safetensors file ({reason})") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{weights} does not fit {config['network']['class_path']}: "
                              f"{str(err).splitlines()[0]}") from None  # fmt: skip
    if config.get("norm_statistics") == "batch":
        use_batch_statistics_(net)
    net = net.to(map_location).eval().requires_grad_(False)
    net.gan_modules_config = copy.deepcopy(config)
    return net


def push_to_hub(folder: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload generator exported by gan-modules") -> str:  # fmt: skip
    """Creates ``repo_id`` on the Hub if needed and uploads ``folder``; returns the repository's URL.

    Raises:
        ConfigError: ``huggingface_hub`` is not installed, or ``repo_id`` is not ``owner/name``.
    """
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise ConfigError(f"--push-to-hub needs a repository as owner/name, got {repo_id!r}")
    hub = require("huggingface_hub", "hub", "--push-to-hub")
    api = hub.HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
    return str(url)


__all__ = ["load_generator", "network_spec", "push_to_hub", "save_pretrained"]
