"""The notebooks execute end to end with a small budget, so they cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(name: str, tmp_path, monkeypatch, **env: str) -> tuple[str, list]:
    """Executes ``notebooks/<name>.ipynb`` at a tiny budget in ``tmp_path``; returns its printed text and outputs."""
    for key, value in {"GAN_MODULES_NOTEBOOK_STEPS": "3", "GAN_MODULES_NOTEBOOK_WIDTH": "4", "MPLBACKEND": "Agg",
                       "PYTHONPATH": str(ROOT), **env}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return "".join(o.get("text", "") for o in outputs), outputs


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    text, outputs = run_notebook("quickstart", tmp_path, monkeypatch, GAN_MODULES_NOTEBOOK_METRIC_SAMPLES="64")
    assert "generator steps: 3" in text and "FID" in text and "64 real val images vs 64 generated" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2


@pytest.mark.slow
def test_translation_notebook_runs(tmp_path, monkeypatch):
    text, outputs = run_notebook("translation", tmp_path, monkeypatch, GAN_MODULES_NOTEBOOK_TEST_IMAGES="32")
    assert "generator steps: 3" in text and "CycleGAN generator steps: 3" in text
    assert "test pairs: 32" in text and "L1 identity (edges):" in text
    assert "pt2 export matches the eager generator" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2


def test_notebooks_have_no_stored_outputs():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        stored = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not stored, f"{path.name}: code cells {stored} have stored outputs; clear them before committing"
