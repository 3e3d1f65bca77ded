"""benchmarks/quality.py end to end in its tiny mode, its aggregation and target cells on hand-made numbers, and its
refusals of bad input.

The tiny mode trains every row for 3 generator steps of 4-channel nets and evaluates 64 samples, so the scores say
nothing about the models; what is checked is the pipeline: configs through the CLI, the plain-PyTorch reference on
the module's data and budget, the JSON/Markdown reports, mean ± std over seeds, target cells, grids, --resume.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.io import decode_png

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "benchmarks" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_line(markdown: str, row: str) -> str:
    """The row's line of the results table (the first table; the budgets table follows under "## Budgets")."""
    (line,) = [x for x in markdown.split("## Budgets")[0].splitlines() if x.startswith(f"| {row} |")]
    return line


def png_shape(path: Path) -> tuple[int, ...]:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    return tuple(decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8)).shape)


def test_tiny_run_reports_every_run_mean_std_targets_grids_and_resumes(quality, tmp_path, capsys):
    out = tmp_path / "q"
    argv = ["--tiny", "--models", "dcgan", "dcgan_reference", "cgan", "--seeds", "0", "1", "--out", str(out),
            "--device", "cpu", "--raw-generator-fid"]  # fmt: skip
    quality.main(argv)
    stdout = capsys.readouterr().out
    data = json.loads((out / "quality.json").read_text())

    s = data["settings"]
    assert s["command"] == "python benchmarks/quality.py " + " ".join(argv)
    assert (s["preset"], s["seeds"], s["eval_samples"], s["device"]) == ("tiny", [0, 1], 64, "cpu")
    assert s["reference_sampling_mode"] == quality.REFERENCE_SAMPLING_MODE == "eval"
    assert {"cpu", "cpu_cores", "torch_threads", "gpu", "torch", "lightning"} <= set(s["hardware"])
    assert s["elapsed_seconds"] > 0
    # the reference trains the dcgan row's nets on its data for its budget
    assert s["budgets"]["dcgan"] == {"generator_steps": 3, "batch_size": 8, "ngf": 4, "ndf": 4}
    ref_budget = s["budgets"]["dcgan_reference"]
    assert (ref_budget["generator_steps"], ref_budget["batch_size"], ref_budget["ngf"], ref_budget["ndf"]) == (
        3,
        8,
        4,
        4,
    )
    assert (ref_budget["lr"], ref_budget["betas"]) == (pytest.approx(2e-4), [0.5, 0.999])

    runs = data["runs"]
    assert sorted((r["row"], r["seed"]) for r in runs) == sorted(
        (row, seed) for row in ("dcgan", "dcgan_reference", "cgan") for seed in (0, 1)
    )
    for r in runs:
        assert r["generator_steps"] == 3 and r["train_seconds"] > 0 and r["eval_seconds"] > 0
        m = r["metrics"]
        assert m["num_real"] == m["num_fake"] == 64
        assert all(math.isfinite(m[k]) for k in ("fid", "kid_mean", "is_mean", "precision", "recall"))
        assert 1.0 <= m["is_mean"] <= 10.0
        # the diagnostic FID of the trained G (our modules sample from their EMA G; the references have none)
        assert ("fid_raw_g" in m) == (r["row"] != "dcgan_reference")
        assert r["row"] == "dcgan_reference" or math.isfinite(m["fid_raw_g"])
    for r in (r for r in runs if r["row"] == "cgan"):
        assert 0.0 <= r["metrics"]["class_accuracy"] <= 1.0 and len(r["metrics"]["per_class_accuracy"]) == 10
        assert r["metrics"]["class_accuracy_samples"] == 60  # 64 // 10 per class
        assert 0.5 < r["metrics"]["class_accuracy_real"] <= 1.0  # the shipped classifier on real test images

    # aggregates: mean and sample std (ddof 1) of the two seeds, for every scalar metric and the wall times
    for row, agg in data["aggregates"].items():
        mine = [r for r in runs if r["row"] == row]
        assert agg["seeds"] == [0, 1]
        for key in ("fid", "kid_mean", "is_mean", "precision"):
            values = np.array([r["metrics"][key] for r in mine])
            assert agg["metrics"][key]["mean"] == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
            assert agg["metrics"][key]["std"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-12)
            assert agg["metrics"][key]["n"] == 2
        times = np.array([r["train_seconds"] for r in mine])
        assert agg["train_seconds"]["mean"] == pytest.approx(times.mean())
        assert agg["train_seconds"]["std"] == pytest.approx(times.std(ddof=1))

    md = (out / "RESULTS.md").read_text()
    assert f"Command: `{s['command']}`" in md
    for row in ("dcgan", "dcgan_reference", "cgan"):
        assert table_line(md, row) in stdout  # the same table is printed
        assert f"![{row}](grids/{row}.png)" in md
    fid = data["aggregates"]["dcgan"]["metrics"]["fid"]
    assert f"{fid['mean']:.2f} ± {fid['std']:.2f}" in table_line(md, "dcgan")
    assert table_line(md, "dcgan").endswith(quality.target_cell(quality.ROWS["dcgan"], data["aggregates"]) + " |")
    assert "FID" in table_line(md, "dcgan").rsplit("|", 2)[1]
    assert table_line(md, "cgan").rsplit("|", 2)[1].strip().startswith(("met (class acc", "missed (class acc"))
    assert table_line(md, "dcgan_reference").endswith("| reference |")
    assert "FID of raw G" in table_line(md, "dcgan") and "FID of raw G" not in table_line(md, "dcgan_reference")

    # grids: 8 x 8 samples of 28 px with 2 px padding; CGAN one row per class
    assert png_shape(out / "grids" / "dcgan.png") == (3, 242, 242)
    assert png_shape(out / "grids" / "dcgan_reference.png") == (3, 242, 242)
    assert png_shape(out / "grids" / "cgan.png") == (3, 302, 242)

    # --resume keeps the finished runs and adds only the missing one
    before = {(r["row"], r["seed"]): r for r in runs}
    quality.main(["--tiny", "--models", "dcgan", "--seeds", "0", "1", "2", "--out", str(out), "--device", "cpu",
                  "--resume"])  # fmt: skip
    resumed = json.loads((out / "quality.json").read_text())
    assert len(resumed["runs"]) == 7
    for r in resumed["runs"]:
        assert r == before.get((r["row"], r["seed"]), r)
    assert [r["seed"] for r in resumed["runs"] if r["row"] == "dcgan"] == [0, 1, 2]
    assert resumed["aggregates"]["dcgan"]["metrics"]["fid"]["n"] == 3
    assert resumed["settings"]["elapsed_seconds"] > s["elapsed_seconds"]
    assert resumed["settings"]["command"] == s["command"]
    assert resumed["settings"]["resumed_with"][0].endswith("--device cpu --resume")
    assert "resumed with `python benchmarks/quality.py --tiny --models dcgan" in (out / "RESULTS.md").read_text()


def test_mean_std_and_target_cells_on_hand_made_numbers(quality):
    agg = quality.mean_std([1.0, 2.0, 4.0])
    assert agg["mean"] == pytest.approx(7 / 3) and agg["std"] == pytest.approx(math.sqrt(7 / 3)) and agg["n"] == 3
    assert quality.mean_std([5.0]) == {"mean": 5.0, "std": None, "n": 1}
    assert quality.mean_std([None, float("nan"), 3.0]) == {"mean": 3.0, "std": None, "n": 1}
    assert quality.fmt({"mean": 0.5, "std": None, "n": 1}, 1, percent=True) == "50.0% ± n/a"
    assert quality.fmt({"mean": 41.234, "std": 1.5, "n": 3}) == "41.23 ± 1.50"
    assert quality.fmt(None) == "—"

    runs = [
        {
            "row": "dcgan",
            "seed": s,
            "generator_steps": 10,
            "train_seconds": t,
            "eval_seconds": 1.0,
            "metrics": {"fid": fid, "per_class_accuracy": [0.1]},
        }
        for s, t, fid in ((0, 2.0, 40.0), (1, 4.0, 44.0))
    ]
    agg = quality.aggregate(runs)["dcgan"]
    assert agg["metrics"]["fid"] == {"mean": pytest.approx(42.0), "std": pytest.approx(2 * math.sqrt(2)), "n": 2}
    assert "per_class_accuracy" not in agg["metrics"]  # lists stay per run
    assert agg["train_seconds"]["mean"] == pytest.approx(3.0) and agg["generator_steps"]["std"] == 0.0
    runs[1]["metrics"]["fid_raw_g"] = 50.0  # a metric only one seed has (a resumed run with another option)
    assert quality.aggregate(runs)["dcgan"]["metrics"]["fid_raw_g"] == {"mean": 50.0, "std": None, "n": 1}

    rows = quality.ROWS

    def metrics(**values):
        return {"metrics": {k: {"mean": v, "std": None, "n": 1} for k, v in values.items()}}

    aggs = {"dcgan": metrics(fid=41.2), "wgan": metrics(fid=38.0), "sngan": metrics(fid=30.0),
            "dcgan_reference": metrics(fid=38.0)}  # fmt: skip
    assert quality.target_cell(rows["dcgan"], aggs) == "missed (FID 41.20 > ref 38.00)"
    assert quality.target_cell(rows["wgan"], aggs) == "met (FID 38.00 ≤ ref 38.00)"
    assert quality.target_cell(rows["sngan"], aggs) == "met (FID 30.00 ≤ ref 38.00)"
    assert quality.target_cell(rows["gan"], {"gan": metrics(fid=10.0)}) == "not judged (dcgan_reference_mnist not run)"
    assert quality.target_cell(rows["dcgan_reference"], aggs) == "reference"
    assert quality.target_cell(rows["cgan"], {"cgan": metrics(class_accuracy=0.961, class_accuracy_real=0.88)}) == (
        "met (class acc 96.1% ≥ 95.0%)"
    )
    assert quality.target_cell(rows["cgan"], {"cgan": metrics(class_accuracy=0.712, class_accuracy_real=0.88)}) == (
        "missed (class acc 71.2% < 95.0%; real images: 88.0%)"
    )
    assert quality.target_cell(rows["cyclegan"], {"cyclegan": metrics(a2b_target_rate=0.95, b2a_target_rate=0.85)}) == (
        "missed (sneaker→boot 95.0% ≥ 90.0%, boot→sneaker 85.0% < 90.0%)"
    )
    assert quality.target_cell(rows["stargan"], {"stargan": metrics(colour_accuracy=0.9)}) == (
        "met (colour acc 90.0% ≥ 90.0%)"
    )
    assert quality.target_cell(rows["pix2pix"], {}) == "not judged (no class acc of outputs)"


@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "dcgan", "biggan"], "argument --models: invalid choice: 'biggan'"),
    (["--quick", "--tiny"], "argument --tiny: not allowed with argument --quick"),
    (["--seeds", "0", "0"], "--seeds repeats a seed: [0, 0]"),
    (["--eval-samples", "1"], "--eval-samples must be at least 2"),
    (["--steps", "0"], "--steps must be at least 1"),
])  # fmt: skip
def test_bad_arguments_exit_2_with_one_clear_line(quality, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        quality.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_resume_refuses_results_of_another_preset(quality, tmp_path, capsys):
    settings = {"preset": "quick", "eval_samples": 5000, "steps_override": None, "models": ["dcgan"], "seeds": [0]}
    (tmp_path / "quality.json").write_text(json.dumps({"settings": settings, "runs": [], "aggregates": {}}))
    with pytest.raises(SystemExit) as exit_info:
        quality.main(["--tiny", "--resume", "--models", "dcgan", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "was written with preset quick, 5000 eval samples" in last and "another --out" in last


@pytest.mark.slow
def test_tiny_translation_rows_score_and_judge_their_targets(quality, tmp_path):
    out = tmp_path / "t"
    quality.main(["--tiny", "--models", "pix2pix", "cyclegan", "stargan", "--seeds", "0", "--out", str(out),
                  "--device", "cpu"])  # fmt: skip
    data = json.loads((out / "quality.json").read_text())
    runs = {r["row"]: r for r in data["runs"]}
    assert set(runs) == {"pix2pix", "cyclegan", "stargan"}
    assert {"l1", "l1_identity", "classifier_acc_outputs", "classifier_acc_real"} <= set(runs["pix2pix"]["metrics"])
    assert runs["pix2pix"]["metrics"]["n_test"] == 32
    assert {"a2b_target_rate", "b2a_target_rate", "cycle_l1_a"} <= set(runs["cyclegan"]["metrics"])
    assert {"colour_accuracy", "inverted_accuracy", "l1_to_truth"} <= set(runs["stargan"]["metrics"])
    for r in runs.values():
        assert r["generator_steps"] == 3
        assert all(0.0 <= v <= 1.0 for k, v in r["metrics"].items() if "acc" in k or "rate" in k)
    md = (out / "RESULTS.md").read_text()
    for row in runs:
        cell = table_line(md, row).rsplit("|", 2)[1].strip()
        assert cell == quality.target_cell(quality.ROWS[row], data["aggregates"])
        assert cell.startswith(("met (", "missed ("))
        _, h, w = png_shape(out / "grids" / f"{row}.png")  # rows of input | output | target (| ...), 32 px items
        assert (h - 2) % 34 == 0 and (w - 2) % 34 == 0 and h >= 8 * 34 + 2 and w >= 3 * 34 + 2
