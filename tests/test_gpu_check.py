"""benchmarks/gpu_check.sh in its dry run: the whole GPU check (throughput, the gpu quality preset in parallel
processes with the bundle's Fashion-MNIST folder, the merge and the report) on the CPU at a tiny size.

The bundle is a temporary folder laid out as ``benchmarks/prepare_gpu_bundle.sh`` lays out ``.carry/gpu``, with the
Debian Fashion-MNIST files linked in and no wheels (this environment has every package already).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
FASHION = Path("/usr/share/datasets/fashion-mnist")
ROWS = ("dcgan", "wgan_gp", "dcgan_reference", "wgan_gp_reference")


def run_check(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env.pop("OUT", None)  # the device runner's variable would redirect the output
    return subprocess.run(["bash", str(SCRIPT), *args], check=False, cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_dry_run_writes_throughput_and_quality_as_json_and_markdown(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "fashion-mnist").mkdir(parents=True)
    for f in FASHION.iterdir():
        (bundle / "fashion-mnist" / f.name).symlink_to(f)
    out = tmp_path / "out"
    proc = run_check("--dry-run", str(out), env={"GPU_BUNDLE": str(bundle)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote {out}/gpu_check.json and {out}/gpu_check.md" in proc.stdout

    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] is True and report["seconds"] > 0
    throughput = report["throughput"]
    assert throughput["settings"]["device"] == "cpu"
    assert all(r["ours_median"] > 0 and r["plain_median"] > 0 for r in throughput["results"])

    quality = report["quality"]
    s = quality["settings"]
    assert (s["preset"], s["device"], s["seeds"], s["merged_from"]) == ("gpu-dry", "cpu", [0, 1], 2)
    assert s["overrides"]["dcgan"]["data.init_args.image_size"] == 32  # the GPU check's 32 px
    assert s["overrides"]["dcgan"]["data.init_args.data_dir"] == str(bundle / "fashion-mnist")
    assert sorted((r["row"], r["seed"]) for r in quality["runs"]) == sorted((r, sd) for r in ROWS for sd in (0, 1))
    for r in quality["runs"]:
        assert r["generator_steps"] == 2 and r["metrics"]["num_fake"] == 64
        assert r["metrics"]["fid"] is not None and r["metrics"]["fid"] > 0
    assert quality["aggregates"]["wgan_gp_reference"]["metrics"]["fid_70"]["n"] == 2

    md = (out / "gpu_check.md").read_text()
    assert md.startswith("# GPU check (dry run on the CPU")
    for heading in ("## Throughput (`benchmarks/throughput.py`)", "## Quality (`benchmarks/quality.py --preset gpu`)",
                    "### Targets", "| wgan_gp | FID ≤ 1.10 × ref mean |"):  # fmt: skip
        assert heading in md
    for row in ROWS:
        assert f"| {row} |" in md
        assert (out / "grids" / f"{row}.png").read_bytes().startswith(b"\x89PNG")
    assert "| dcgan_reference |" in (out / "RESULTS.md").read_text()
    assert "throughput done" in (out / "gpu_check.log").read_text()


def test_unknown_option_exits_2_with_one_clear_line(tmp_path):
    proc = run_check("--fast", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu_check.sh: unknown option --fast (use --dry-run and/or an output folder)"
    ]
    assert not list(tmp_path.iterdir())  # refused before writing anything


def test_a_package_that_does_not_import_stops_the_check_with_what_to_do(tmp_path):
    """No bundle and a Python without our dependencies: one line that says how to build and carry the bundle."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    out = tmp_path / "out"
    proc = run_check(str(out), env={"PYTHON": str(fake), "GPU_BUNDLE": str(tmp_path / "none")}, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines()[-1].endswith(
        "our package does not import here (see above); build the bundle with benchmarks/prepare_gpu_bundle.sh and "
        f"carry {tmp_path / 'none'}"
    )
