"""The benchmarks run end to end in a tiny mode: both timings land in the JSON and the last line is ``ratio=``.

The value of the ratio is not checked here (a 2-core CI box shared by other jobs cannot time anything); the
acceptance run is ``python benchmarks/throughput.py --device cpu --quick``. The scripts are imported and their
``main(argv)`` called in-process (the subprocess import of torch + Lightning alone costs more than the tiny runs).
"""

from __future__ import annotations

import importlib.util
import json
import math
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def last_ratio(stdout: str) -> float:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("ratio="), last
    value = float(last.removeprefix("ratio="))
    assert math.isfinite(value) and value > 0
    return value


def test_throughput_benchmark_tiny_writes_both_numbers_and_ratio(tmp_path, capsys):
    out = tmp_path / "tp.json"
    script("throughput").main(["--device", "cpu", "--tiny", "--json", str(out)])
    ratio = last_ratio(capsys.readouterr().out)
    data = json.loads(out.read_text())
    assert data["settings"]["device"] == "cpu" and data["settings"]["precision"] == "32-true"
    (res,) = data["results"]
    assert res["batch_size"] == 8 and len(res["ours_img_s"]) == len(res["plain_img_s"]) == 2
    assert res["ours_median"] > 0 and res["plain_median"] > 0
    assert data["ratio"] == pytest.approx(ratio, abs=1e-3)


def test_throughput_benchmark_refuses_fp16_on_cpu(capsys):
    with pytest.raises(SystemExit) as exit_info:
        script("throughput").parse_args(["--device", "cpu", "--precision", "16-mixed", "--tiny"])
    assert exit_info.value.code == 2
    assert "16-mixed needs CUDA" in capsys.readouterr().err.strip().splitlines()[-1]


def test_data_pipeline_benchmark_tiny_writes_both_numbers_and_ratio(tmp_path, capsys):
    out = tmp_path / "dp.json"
    script("data_pipeline").main(["--device", "cpu", "--tiny", "--json", str(out)])
    ratio = last_ratio(capsys.readouterr().out)
    data = json.loads(out.read_text())
    assert len(data["jpeg_img_s"]) == len(data["cache_img_s"]) == 1
    assert data["jpeg_img_s"][0] > 0 and data["cache_img_s"][0] > 0 and data["cache_build_s"] >= 0
    assert data["ratio"] == pytest.approx(ratio, abs=1e-3)
    assert not list(Path(tempfile.gettempdir()).glob("gan_modules_jpegs_*")), "generated JPEGs were left behind"
