"""Untrusted files cannot run code or write outside their folder: no unsafe calls in the package source, checkpoints
holding pickled objects are refused without running them, prediction file names cannot escape the output folder."""

from __future__ import annotations

import io
import os
import pickle
import re
import tokenize
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gan_modules import CheckpointError
from gan_modules.callbacks import GeneratedImageWriter
from gan_modules.checkpoint import SafeCheckpointIO, read_checkpoint
from gan_modules.cli import run
from gan_modules.registry import load_model

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("gan_modules/**/*.py"), *ROOT.glob("datamodules/**/*.py"), ROOT / "cli.py"])


def _code_tokens(path: Path) -> list[str]:
    """The file's code tokens (comments, docstrings and other strings dropped), as strings."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    skip = {tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    fstring = ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")  # python >= 3.12 tokenizes f-strings in parts
    skip |= {getattr(tokenize, name) for name in fstring if hasattr(tokenize, name)}
    return [tok.string for tok in tokens if tok.type not in skip]


def _find(tokens: list[str], pattern: str) -> list[int]:
    """Positions where the code tokens spell ``pattern``: ``A.B(`` means the tokens A . B (; ``!eval(`` means an
    ``eval`` call that is not an attribute (``model.eval()`` is fine, ``eval(...)`` is not)."""
    bare = pattern.startswith("!")
    want = _code_tokens_of(pattern.lstrip("!"))
    hits = []
    for i in range(len(tokens) - len(want) + 1):
        if tokens[i : i + len(want)] == want and not (bare and i > 0 and tokens[i - 1] == "."):
            hits.append(i)
    return hits


def _code_tokens_of(text: str) -> list[str]:
    """Tokens of a fragment (may be unbalanced, e.g. ``eval(``): names/numbers and single punctuation marks."""
    return re.findall(r"\w+|\S", text)


UNSAFE = {
    "weights_only=False": "torch.load(weights_only=False) unpickles arbitrary code",
    "!eval(": "eval of text",
    "!exec(": "exec of text",
    "shell=True": "subprocess through a shell",
    "pickle.load(": "unrestricted unpickling",
    "pickle.loads(": "unrestricted unpickling",
    "pickle.Unpickler(": "unrestricted unpickling",
    "yaml.load(": "yaml.load without SafeLoader (use yaml.safe_load)",
    "os.system(": "shell command",
}

@pytest.mark.parametrize(
    "pattern",
    list(UNSAFE),
)  # fmt: skip
def test_no_unsafe_calls_in_the_package_source(pattern):
    assert len(SOURCES) > 10 and ROOT / "gan_modules/checkpoint.py" in SOURCES
    found = [f"{path.relative_to(ROOT)}" for path in SOURCES if _find(_code_tokens(path), pattern)]
    assert not found, f"{pattern} ({UNSAFE[pattern]}) in {found}"


def test_the_source_scan_finds_what_it_looks_for(tmp_path):
    code = "x = torch.load(p, weights_only=False)\nmodel.eval()\ny = eval('1')\n# eval(no)\ns = 'exec(no)'\n"
    path = tmp_path / "sample.py"
    path.write_text(code)
    tokens = _code_tokens(path)
    assert _find(tokens, "weights_only=False") and len(_find(tokens, "!eval(")) == 1
    assert not _find(tokens, "!exec(")


# ------------------------------------------------------------------------------------------ pickled payloads
class Payload:
    """Unpickling this creates the folder ``marker`` (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _plant(tmp_path: Path, name: str = "evil.ckpt") -> tuple[Path, Path]:
    marker = tmp_path / "code_ran"
    path = tmp_path / name
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": Payload(marker)}, path)
    return path, marker


def test_the_payload_runs_when_unpickled_unsafely(tmp_path):
    marker = tmp_path / "code_ran"
    pickle.loads(pickle.dumps(Payload(marker)))  # proves the tests below would see code running
    assert marker.is_dir()


def test_read_checkpoint_refuses_pickled_objects_without_running_them(tmp_path):
    path, marker = _plant(tmp_path)
    with pytest.raises(CheckpointError, match=r"^checkpoint .*evil\.ckpt holds .* a safe \(weights-only\) load "
                                              r"refuses.*only load checkpoints written by gan-modules$"):  # fmt: skip
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"weights-only"):
        load_model(path)
    with pytest.raises(CheckpointError, match=r"weights-only"):
        SafeCheckpointIO().load_checkpoint(path, weights_only=False)  # Lightning's flag cannot turn safety off
    assert not marker.exists()


def test_cli_ckpt_path_does_not_run_pickled_code(tmp_path, capsys):
    path, marker = _plant(tmp_path)
    with pytest.raises((SystemExit, Exception)):  # the message is test_bad_inputs' business
        run(["validate", "--config", str(ROOT / "configs/dcgan_mnist.yaml"), "--trainer.logger", "false",
              "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "cpu",
              "--trainer.enable_progress_bar", "false", "--model.init_args.ngf", "4", "--model.init_args.ndf", "4",
              "--data.init_args.batch_size", "4", "--ckpt_path", str(path)])  # fmt: skip
    assert not marker.exists()


def test_cifar_batch_file_does_not_run_pickled_code(tmp_path):
    from datamodules import DataError
    from datamodules.cifar import read_cifar_batch

    marker = tmp_path / "code_ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Payload(marker), "labels": [0]}))
    try:
        with pytest.raises(DataError, match=r"data_batch_1 is not a readable CIFAR-10 batch"):
            read_cifar_batch(path)
    finally:
        assert not marker.exists()


# ------------------------------------------------------------------------------ prediction file names
def _write(writer: GeneratedImageWriter, trainer, names: list[str], grid: bool = True) -> None:
    n = len(names)
    prediction = {"images": torch.zeros(n, 3, 4, 4), "index": torch.arange(n), "names": names}
    if grid:
        prediction["grid"] = torch.zeros(n, 3, 4, 8)
    writer.write_on_batch_end(trainer, None, prediction, None, None, 0)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "name",
    ["../../evil.png", "/ABS/evil.png", "sub/../../../evil.png", "..\\..\\evil.png", "evil",
     "",
     ".",
     ".."],
)  # fmt: skip
def test_prediction_names_cannot_escape_output_dir(tmp_path, name):
    out = tmp_path / "a" / "b" / "predictions"
    name = name.replace("/ABS", str(tmp_path))
    _write(GeneratedImageWriter(output_dir=str(out)), None, [name, "ok.png"])
    written = _files(tmp_path)
    assert written and all(out in p.parents for p in written), sorted(map(str, written))
    assert len([p for p in written if p.parent == out]) == 2  # one file per image, none lost or merged


def test_prediction_names_stay_in_the_run_dir_without_output_dir(tmp_path):
    run = tmp_path / "run"
    trainer = SimpleNamespace(log_dir=str(run), default_root_dir=str(run))
    _write(GeneratedImageWriter(), trainer, ["../../../evil.png", str(tmp_path / "abs.png")])
    written = _files(tmp_path)
    assert {p.relative_to(run / "predictions").as_posix() for p in written} == {
        "evil.png", "abs.png", "comparisons/evil.png", "comparisons/abs.png"}
