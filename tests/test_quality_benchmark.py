"""benchmarks/quality.py end to end in its tiny mode, its aggregation and target cells on hand-made numbers, and its
refusals of bad input.

The tiny mode trains every row for 3 generator steps of 4-channel nets and evaluates 64 samples, so the scores say
nothing about the models; what is checked is the pipeline: configs through the CLI, the independent reference on
the module's data and budget (and its 70% evaluation), the JSON/Markdown reports, mean ± std over seeds, target
cells, grids, --resume. The references themselves (``benchmarks/references.py``) are checked for independence (no
import of our package), for the official architectures' sizes, and for reading the same hyperparameters as the
module from the config file.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import math
import re
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


@pytest.fixture(scope="module")
def references(quality):
    return quality.references


def table_line(markdown: str, row: str) -> str:
    """The row's line of the results table (the first table; the targets and budgets follow under "## Targets")."""
    (line,) = [x for x in markdown.split("## Targets")[0].splitlines() if x.startswith(f"| {row} |")]
    return line


def png_shape(path: Path) -> tuple[int, ...]:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    return tuple(decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8)).shape)


def test_tiny_run_reports_every_run_mean_std_targets_grids_and_resumes(quality, tmp_path, capsys):
    out = tmp_path / "q"
    argv = ["--tiny", "--models", "dcgan", "dcgan_reference", "cgan", "cgan_reference", "--seeds", "0", "1", "--out",
            str(out), "--device", "cpu", "--raw-generator-fid"]  # fmt: skip
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
        (row, seed) for row in ("dcgan", "dcgan_reference", "cgan", "cgan_reference") for seed in (0, 1)
    )
    for r in runs:
        assert r["generator_steps"] == 3 and r["train_seconds"] > 0 and r["eval_seconds"] > 0
        m = r["metrics"]
        assert m["num_real"] == m["num_fake"] == 64
        assert all(math.isfinite(m[k]) for k in ("fid", "kid_mean", "is_mean", "precision", "recall"))
        assert 1.0 <= m["is_mean"] <= 10.0
        # the diagnostic FID of the trained G (our modules sample from their EMA G; the references have none)
        assert ("fid_raw_g" in m) == (not r["row"].endswith("_reference"))
        assert r["row"].endswith("_reference") or math.isfinite(m["fid_raw_g"])
    for r in (r for r in runs if r["row"] == "dcgan_reference"):  # evaluated at 70% of the budget too (step 2 of 3)
        assert r["metrics"]["fid_curve"] == {"2": r["metrics"]["fid_70"], "3": r["metrics"]["fid"]}
        assert math.isfinite(r["metrics"]["fid_70"]) and r["metrics"]["fid_70"] != r["metrics"]["fid"]
        assert r["train_cpu_seconds"] > 0
    for r in (r for r in runs if r["row"] in ("cgan", "cgan_reference")):  # the same class-balanced protocol
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
    for row in ("dcgan", "dcgan_reference", "cgan", "cgan_reference"):
        assert table_line(md, row) in stdout  # the same table is printed
        assert f"![{row}](grids/{row}.png)" in md
    for row in ("dcgan", "cgan"):  # each grid next to its reference's
        assert f"| {row} | ![{row}](grids/{row}.png) | ![{row}_reference](grids/{row}_reference.png) |" in md
    fid = data["aggregates"]["dcgan"]["metrics"]["fid"]
    assert f"{fid['mean']:.2f} ± {fid['std']:.2f}" in table_line(md, "dcgan")
    assert table_line(md, "dcgan").endswith(quality.target_cell(quality.ROWS["dcgan"], data["aggregates"]) + " |")
    assert "FID" in table_line(md, "dcgan").rsplit("|", 2)[1]
    cgan_cell = table_line(md, "cgan").rsplit("|", 2)[1].strip()
    assert cgan_cell == quality.target_cell(quality.ROWS["cgan"], data["aggregates"])
    assert re.fullmatch(r"(met|missed [1-3] of 3) \(FID .+ \(ref .+; class_accuracy .+ class_accuracy_real .+\)\)",
                        cgan_cell)  # fmt: skip
    assert table_line(md, "dcgan_reference").endswith("| reference |")
    agg_ref = data["aggregates"]["dcgan_reference"]["metrics"]
    plateau = quality.plateau_cell(quality.ROWS["dcgan_reference"], data["aggregates"]["dcgan_reference"])
    assert plateau.startswith(f"{agg_ref['fid_70']['mean']:.2f} ± {agg_ref['fid_70']['std']:.2f} → ")
    assert f"| {plateau} |" in table_line(md, "dcgan_reference")
    assert "## Targets" in md and "| dcgan | FID ≤ 8 |" in md
    assert "FID of raw G" in table_line(md, "dcgan") and "FID of raw G" not in table_line(md, "dcgan_reference")

    # grids: 8 x 8 samples of 28 px with 2 px padding; CGAN one row per class
    assert png_shape(out / "grids" / "dcgan.png") == (3, 242, 242)
    assert png_shape(out / "grids" / "dcgan_reference.png") == (3, 242, 242)
    assert png_shape(out / "grids" / "cgan.png") == (3, 302, 242)
    assert png_shape(out / "grids" / "cgan_reference.png") == (3, 302, 242)

    # --resume keeps the finished runs and adds only the missing one
    before = {(r["row"], r["seed"]): r for r in runs}
    quality.main(["--tiny", "--models", "dcgan", "--seeds", "0", "1", "2", "--out", str(out), "--device", "cpu",
                  "--resume"])  # fmt: skip
    resumed = json.loads((out / "quality.json").read_text())
    assert len(resumed["runs"]) == 9
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

    def mstd(**values):  # (mean, std) per metric
        return {"metrics": {k: {"mean": m, "std": sd, "n": 3} for k, (m, sd) in values.items()}}

    aggs = {"dcgan": metrics(fid=41.2), "dcgan_reference": metrics(fid=38.0), "wgan": metrics(fid=38.0),
            "wgan_reference": mstd(fid=(36.0, 2.5)), "sngan": metrics(fid=30.0),
            "sngan_reference": mstd(fid=(25.0, 1.0))}  # fmt: skip
    # FID ≤ ref mean + std (a one-seed std counts as 0) and ≤ 1.10 × ref mean; dcgan also FID ≤ 8
    assert quality.target_cell(rows["dcgan"], aggs) == (
        "missed 2 of 3 (FID 41.20 > 38.00 (ref 38.00 + 0.00); FID 41.20 ≤ 41.80 (1.10 × ref 38.00); FID 41.20 > 8.00)"
    )
    assert quality.target_cell(rows["wgan"], aggs) == (
        "met (FID 38.00 ≤ 38.50 (ref 36.00 + 2.50); FID 38.00 ≤ 39.60 (1.10 × ref 36.00))"
    )
    assert quality.target_cell(rows["sngan"], aggs) == (
        "missed 2 of 2 (FID 30.00 > 26.00 (ref 25.00 + 1.00); FID 30.00 > 27.50 (1.10 × ref 25.00))"
    )
    assert quality.target_cell(rows["gan"], {"gan": metrics(fid=10.0)}) == (
        "not judged (FID ≤ ref mean + std: gan_reference not run; FID ≤ 1.10 × ref mean: gan_reference not run)"
    )
    assert quality.target_cell(rows["dcgan_reference"], aggs) == "reference"
    cgan = {"cgan_reference": metrics(fid=21.0)}
    assert quality.target_cell(rows["cgan"], {**cgan, "cgan": metrics(fid=20.0, class_accuracy=0.961,
                                                                      class_accuracy_real=0.88)}) == (
        "met (FID 20.00 ≤ 21.00 (ref 21.00 + 0.00); FID 20.00 ≤ 23.10 (1.10 × ref 21.00); "
        "class_accuracy 96.1% ≥ 79.2% (0.9 × class_accuracy_real 88.0%))"
    )  # fmt: skip
    assert quality.target_cell(rows["cgan"], {**cgan, "cgan": metrics(fid=20.0, class_accuracy=0.712,
                                                                      class_accuracy_real=0.88)}) == (
        "missed 1 of 3 (FID 20.00 ≤ 21.00 (ref 21.00 + 0.00); FID 20.00 ≤ 23.10 (1.10 × ref 21.00); "
        "class_accuracy 71.2% < 79.2% (0.9 × class_accuracy_real 88.0%))"
    )  # fmt: skip
    assert quality.target_cell(rows["cyclegan"], {"cyclegan": metrics(a2b_target_rate=0.95, b2a_target_rate=0.85)}) == (
        "missed 1 of 2 (a2b_target_rate 95.0% ≥ 90.0%; b2a_target_rate 85.0% < 90.0%)"
    )
    assert quality.target_cell(rows["stargan"], {"stargan": metrics(colour_accuracy=0.96, inverted_accuracy=0.9,
                                                                     l1_to_truth=0.2, l1_identity=0.5)}) == (
        "met (colour_accuracy 96.0% ≥ 95.0%; inverted_accuracy 90.0% ≥ 90.0%; l1_to_truth 0.200 < 0.500 "
        "(1 × l1_identity 0.500))"
    )  # fmt: skip
    assert quality.target_cell(rows["stargan"], {"stargan": metrics(colour_accuracy=0.94, inverted_accuracy=0.9,
                                                                     l1_to_truth=0.5, l1_identity=0.5)}) == (
        "missed 2 of 3 (colour_accuracy 94.0% < 95.0%; inverted_accuracy 90.0% ≥ 90.0%; l1_to_truth 0.500 ≥ 0.500 "
        "(1 × l1_identity 0.500))"
    )  # fmt: skip
    pix2pix = metrics(classifier_acc_outputs=0.85, classifier_acc_real=0.9, l1=0.2, l1_identity=0.5)
    assert quality.target_cell(rows["pix2pix"], {"pix2pix": pix2pix}) == (
        "met (classifier_acc_outputs 85.0% ≥ 81.0% (0.9 × classifier_acc_real 90.0%); l1 0.200 ≤ 0.250 "
        "(0.5 × l1_identity 0.500))"
    )  # fmt: skip
    assert quality.target_cell(rows["pix2pix"], {}) == (
        "not judged (class acc of outputs ≥ 90% of real: no classifier_acc_outputs; L1 to truth ≤ ½ identity's: no l1)"
    )

    # the plateau column: FID at 70% → at 100% of the budget, flat within 10%
    ref_row = rows["dcgan_reference"]
    assert quality.plateau_cell(ref_row, mstd(fid_70=(10.0, 1.0), fid=(9.5, 0.5))) == (
        "10.00 ± 1.00 → 9.50 ± 0.50 (-5.0%, flat)"
    )
    assert quality.plateau_cell(ref_row, mstd(fid_70=(10.0, 1.0), fid=(8.0, 0.5))) == (
        "10.00 ± 1.00 → 8.00 ± 0.50 (-20.0%, still moving)"
    )
    assert quality.plateau_cell(ref_row, mstd(fid=(8.0, 0.5))) == "—"
    assert quality.plateau_cell(rows["dcgan"], mstd(fid_70=(1.0, 0.0), fid=(1.0, 0.0))) == ""


@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "dcgan", "biggan"], "argument --models: invalid choice: 'biggan'"),
    (["--quick", "--tiny"], "argument --tiny: not allowed with argument --quick"),
    (["--seeds", "0", "0"], "--seeds repeats a seed: [0, 0]"),
    (["--eval-samples", "1"], "--eval-samples must be at least 2"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--curve", "100", "0"], "--curve steps must be at least 1, got [100, 0]"),
    (["--data-dir", "/nonexistent/fashion"], "--data-dir /nonexistent/fashion is not a folder"),
    (["--preset", "cpu", "--quick"], "argument --quick: not allowed with argument --preset"),
    (["--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--jobs", "2", "--merge", "a.json"], "--jobs trains runs; --merge only joins finished ones"),
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
        assert re.fullmatch(r"(met|missed [1-3] of [23]) \(.+\)", cell), cell
        _, h, w = png_shape(out / "grids" / f"{row}.png")  # rows of input | output | target (| ...), 32 px items
        assert (h - 2) % 34 == 0 and (w - 2) % 34 == 0 and h >= 8 * 34 + 2 and w >= 3 * 34 + 2


# ------------------------------------------------------------------------------------------------ the references
FORBIDDEN = ("gan_modules",)  # the networks, variants, losses, penalties and base loop all live there


def imported_modules(source: str) -> set[str]:
    """Every module an ``import``/``from ... import`` statement of ``source`` names (anywhere in the file)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
            names |= {f"{node.module}.{alias.name}" for alias in node.names if node.module}
    return names


def test_references_import_nothing_of_our_package():
    source = (ROOT / "benchmarks" / "references.py").read_text()
    bad = sorted(n for n in imported_modules(source) if n.split(".")[0] in FORBIDDEN or n.startswith("."))
    assert bad == [], f"benchmarks/references.py imports {bad}: a reference must not share code with our modules"
    assert "__import__" not in source and "importlib" not in source  # no import by another route
    # the scan itself finds imports of our networks and variants, at any depth
    planted = "import torch\ndef f():\n    from gan_modules.nets import DCGANGenerator\nimport gan_modules.wgan_gp\n"
    assert {"gan_modules.nets", "gan_modules.nets.DCGANGenerator", "gan_modules.wgan_gp"} <= imported_modules(planted)


def test_reference_registry_covers_every_image_gan_row(quality, references):
    assert set(references.REFERENCES) == {"gan", "dcgan", "cgan", "wgan", "wgan_gp", "sngan"}
    for name in references.REFERENCES:
        module_row, ref_row = quality.ROWS[name], quality.ROWS[f"{name}_reference"]
        assert (ref_row.kind, ref_row.reference_of, ref_row.config) == ("reference", name, module_row.config)
        assert module_row.reference == ref_row.name
        assert [t.of for t in module_row.targets[:2]] == ["ref+std", "ref"]
        assert module_row.targets[1].factor == pytest.approx(1.10, abs=1e-12)


def test_limited_data_rows_train_on_1000_images_and_judge_augmentation_against_no_augmentation(quality):
    cpu = quality.PRESETS["cpu"].overrides
    for name in ("dcgan_1k", "dcgan_1k_diffaugment", "dcgan_1k_ada"):
        assert cpu[name]["data.init_args.limit_train_images"] == 1000 and quality.ROWS[name].reference is None
        same = {k: v for k, v in cpu[name].items() if "augment" not in k and "ada" not in k and "limit" not in k}
        # same nets and batch as the full-data dcgan row; the budget of RESULTS.md's limited-data section (3,000 steps),
        # which the full-data row outgrew when its FID <= 8 target needed 12,000
        assert same == {**cpu["dcgan"], quality.STEPS: 3000}
    assert "model.init_args.augment" not in cpu["dcgan_1k"] and cpu["dcgan_1k_ada"]["model.init_args.ada"] is True
    row = quality.ROWS["dcgan_1k_ada"]

    def fid(mean):
        return {"metrics": {"fid": {"mean": mean, "std": 1.0, "n": 3}}}

    assert quality.target_cell(row, {"dcgan_1k": fid(50.0), "dcgan_1k_ada": fid(39.0)}) == (
        "met (FID 39.00 ≤ 40.00 (0.8 × dcgan_1k 50.00))")
    assert quality.target_cell(row, {"dcgan_1k": fid(50.0), "dcgan_1k_ada": fid(41.0)}).startswith("missed")
    assert quality.judge(row, row.targets[0], {"dcgan_1k_ada": fid(41.0)}) == (
        None, "FID ≤ 0.8 × no augmentation: dcgan_1k not run")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_reference_dcgan_nets_are_the_official_64px_ones(references):
    """pytorch/examples dcgan/main.py at its defaults (nz 100, ngf = ndf = 64, nc 3, 64 px): G has 3,576,704 and D
    2,765,568 parameters (no conv biases; BatchNorm weight and bias per channel)."""
    s = references.Settings(image_size=64, channels=3, latent_dim=100, ngf=64, ndf=64)
    pair = references.DCGANPair(s)
    assert n_params(pair.g) == 3_576_704 and n_params(pair.d) == 2_765_568
    convs = [m for m in pair.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(convs) == 10 and all(m.bias is None for m in convs)
    g_std = torch.cat([m.weight.flatten() for m in pair.g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]).std()
    assert g_std.item() == pytest.approx(0.02, rel=0.02)  # weights_init: N(0, 0.02)


@pytest.mark.parametrize("name", ["gan", "dcgan", "cgan", "wgan", "wgan_gp", "sngan"])
@pytest.mark.parametrize("size", [28, 32])
def test_reference_nets_map_noise_to_images_and_images_to_one_logit(references, name, size):
    s = references.Settings(image_size=size, channels=1, num_classes=10, latent_dim=12, ngf=4, ndf=4,
                            g_hidden=(16, 16), d_hidden=(16, 8), d_norm="layer" if name == "wgan_gp" else "batch")
    torch.manual_seed(0)
    pair = references.REFERENCES[name].build(s)
    y = torch.arange(6) % 10
    images = pair.generate(torch.randn(6, 12), y)
    assert images.shape == (6, 1, size, size) and images.abs().max() <= 1.0
    assert pair.discriminate(images, y).shape == (6,)
    assert n_params(pair.g) + n_params(pair.d) == n_params(pair)  # G and D split the parameters


def test_reference_layernorm_is_tflibs_and_sngan_has_spectral_norm_everywhere_in_d(references):
    torch.manual_seed(0)
    ln = references.LayerNormCHW(5)
    with torch.no_grad():
        ln.scale.copy_(torch.rand(5) + 0.5)
        ln.offset.copy_(torch.randn(5))
    x = torch.randn(4, 5, 3, 3) * 3 + 1
    expected = torch.nn.functional.group_norm(x, 1, ln.scale, ln.offset, eps=1e-5)  # normalize over (C, H, W)
    torch.testing.assert_close(ln(x), expected, rtol=1e-5, atol=1e-5)
    d = references.SNGANDiscriminator(references.Settings(image_size=32, channels=3, ndf=8))
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 8  # Table 3: 7 convs and the dense layer
    assert all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)


@pytest.mark.parametrize("name", ["gan", "dcgan", "cgan", "wgan", "wgan_gp", "sngan"])
def test_reference_settings_from_the_config_file_equal_the_modules_hyperparameters(quality, name):
    """The reference reads the YAML itself (not through our CLI); with the same preset it must land on the values
    the module was built with."""
    row, overrides = quality.ROWS[name], quality.CPU[name]
    model, dm = quality.build(row, overrides, 0, quality.CACHE_DIR)
    config = quality.config_with_overrides(row, overrides)
    s = quality.reference_settings(name, config, quality.datamodule_from_config(config, 0))
    hp = model.hparams
    assert (s.image_size, s.channels, s.latent_dim) == (hp.image_size, hp.channels, hp.latent_dim)
    assert quality.datamodule_from_config(config, 0).batch_size == dm.batch_size
    assert config["model"]["init_args"]["max_generator_steps"] == hp.max_generator_steps
    if name == "gan":
        assert (list(s.g_hidden), list(s.d_hidden), s.d_dropout) == (list(hp.g_hidden), list(hp.d_hidden),
                                                                      hp.d_dropout)  # fmt: skip
    else:
        assert (s.ngf, s.ndf) == (hp.ngf, hp.ndf)
    for key in ("n_critic", "weight_clip", "penalty_weight", "g_norm", "d_norm", "warmup_critic_steps",
                "warmup_generator_steps", "critic_boost_every", "n_power_iterations", "num_classes"):
        if key in hp and hp[key] is not None:
            assert getattr(s, key) == hp[key], key
    for index, spec in enumerate((s.optimizer_g, s.optimizer_d)):
        opt = model._optimizer_factories[index]
        if opt is None:  # the config keeps the variant's paper default
            options = dict(model.default_optimizer)
            cls, keywords = getattr(torch.optim, options.pop("name")), options
        else:
            cls = next(a for a in opt.args if isinstance(a, type)) if opt.args else opt.func
            keywords = opt.keywords
        assert spec[0] == cls.__name__
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
        for k, v in keywords.items():  # what the reference sets is the module's; the rest is torch's default
            mine = spec[1].get(k, defaults[k])
            assert (tuple(mine) if isinstance(mine, (list, tuple)) else mine) == (
                tuple(v) if isinstance(v, (list, tuple)) else v
            ), k


def test_reference_settings_refuse_a_config_the_reference_does_not_implement(quality):
    config = quality.config_with_overrides(quality.ROWS["dcgan"], {"model.init_args.loss": "hinge"})
    dm = quality.datamodule_from_config(config, 0)
    with pytest.raises(SystemExit, match=r"dcgan_reference implements loss='non_saturating', but the config has "
                                         r"loss='hinge'"):  # fmt: skip
        quality.reference_settings("dcgan", config, dm)


def test_reference_evaluation_inputs_are_the_modules(quality):
    """The same z (and classes) for a module and its reference: ``predict_step``'s per-image seeds and cycling
    classes for FID, ``class_inputs`` for the class accuracy."""
    model, _ = quality.build(quality.ROWS["cgan"], quality.TINY["cgan"], 0, quality.CACHE_DIR)
    model.hparams.sample_seed = quality.EVAL_SEED
    z = quality.eval_noise(7, model.hparams.latent_dim)
    expected = torch.cat([model.sample_inputs(1, seed=quality.EVAL_SEED + i)["z"] for i in range(7)])
    torch.testing.assert_close(z, expected, rtol=0, atol=0)
    assert quality.cycling_labels(13, 10).tolist() == [*range(10), 0, 1, 2]
    zb, yb = quality.class_balanced_inputs(3, 10, model.hparams.latent_dim, quality.EVAL_SEED)
    inputs = model.class_inputs(3, seed=quality.EVAL_SEED)
    torch.testing.assert_close(zb, inputs["z"], rtol=0, atol=0)
    assert yb.tolist() == inputs["y"].tolist()


def test_merge_joins_parallel_runs_into_one_report(quality, tmp_path):
    parts = []
    for seed in (0, 1):
        out = tmp_path / f"part{seed}"
        quality.main(["--tiny", "--models", "dcgan_reference", "--seeds", str(seed), "--out", str(out),
                      "--device", "cpu"])  # fmt: skip
        parts.append(out / "quality.json")
    merged = quality.main(["--merge", *map(str, parts), "--out", str(tmp_path / "all")])
    assert sorted((r["row"], r["seed"]) for r in merged["runs"]) == [("dcgan_reference", 0), ("dcgan_reference", 1)]
    fids = [json.loads(p.read_text())["runs"][0]["metrics"]["fid"] for p in parts]
    agg = merged["aggregates"]["dcgan_reference"]["metrics"]["fid"]
    assert agg["mean"] == pytest.approx(np.mean(fids)) and agg["std"] == pytest.approx(np.std(fids, ddof=1))
    assert (tmp_path / "all" / "grids" / "dcgan_reference.png").read_bytes() == (
        tmp_path / "part0" / "grids" / "dcgan_reference.png"
    ).read_bytes()
    assert "| dcgan_reference |" in (tmp_path / "all" / "RESULTS.md").read_text()
    later = json.loads(parts[1].read_text())["settings"]  # a row's budget and overrides come from its newest part
    assert merged["settings"]["overrides"] == later["overrides"]
    assert merged["settings"]["budgets"] == later["budgets"]
    # a run again (same row and seed) in a later part replaces the earlier run, and its grid replaces the earlier grid
    again = tmp_path / "again"
    quality.main(["--tiny", "--models", "dcgan_reference", "--seeds", "0", "--out", str(again), "--device", "cpu"])
    (again / "grids" / "dcgan_reference.png").write_bytes((tmp_path / "part1" / "grids" / "dcgan_reference.png").read_bytes())
    rerun = json.loads((again / "quality.json").read_text())
    rerun["runs"][0]["metrics"]["fid"] = 123.0
    (again / "quality.json").write_text(json.dumps(rerun))
    merged = quality.main(["--merge", *map(str, parts), str(again / "quality.json"), "--out", str(tmp_path / "all2")])
    assert [r["metrics"]["fid"] for r in merged["runs"] if r["seed"] == 0] == [123.0]
    assert (tmp_path / "all2" / "grids" / "dcgan_reference.png").read_bytes() == (
        again / "grids" / "dcgan_reference.png"
    ).read_bytes()


def test_cost_hint_scales_the_shipped_cpu_seconds_per_step_to_the_budget_being_run(quality, tmp_path, monkeypatch):
    (tmp_path / "benchmarks").mkdir()
    runs = [{"row": "dcgan", "seed": 0, "generator_steps": 3000, "train_cpu_seconds": 300.0},
            {"row": "dcgan", "seed": 1, "generator_steps": 3000, "train_cpu_seconds": 330.0},
            {"row": "dcgan", "seed": 2, "generator_steps": 3000, "train_cpu_seconds": 270.0},
            {"row": "dcgan_reference", "seed": 0, "generator_steps": 3000, "train_seconds": 150.0}]  # fmt: skip
    shipped = {"settings": {"preset": "cpu"}, "runs": runs}
    (tmp_path / "benchmarks" / "quality.json").write_text(json.dumps(shipped))
    monkeypatch.setattr(quality, "ROOT", tmp_path)
    steps = quality.CPU["dcgan"][quality.STEPS]
    hint = quality.cost_hint("cpu")  # median 0.1 s per step (module), 0.05 (reference: its module row's budget)
    assert hint["dcgan"] == pytest.approx(0.1 * steps) and hint["dcgan_reference"] == pytest.approx(0.05 * steps)
    assert quality.cost_hint("cpu", 100) == pytest.approx({"dcgan": 10.0, "dcgan_reference": 5.0})
    assert quality.cost_hint("quick") == {}  # the shipped table was made with another preset


def test_jobs_trains_each_run_in_its_own_process_merges_resumes_and_reports_a_failed_child(quality, tmp_path, capsys):
    out = tmp_path / "par"
    argv = ["--tiny", "--jobs", "2", "--models", "dcgan_reference", "--seeds", "0", "1", "--out", str(out),
            "--device", "cpu"]  # fmt: skip
    report = quality.main(argv)
    assert sorted((r["row"], r["seed"]) for r in report["runs"]) == [("dcgan_reference", 0), ("dcgan_reference", 1)]
    for seed in (0, 1):  # one process per run, each with its own report and log
        part = out / "parts" / f"dcgan_reference-seed{seed}"
        (run,) = json.loads((part / "quality.json").read_text())["runs"]
        assert (run["row"], run["seed"]) == ("dcgan_reference", seed)
        assert "dcgan_reference" in (part / "log.txt").read_text()
    merged = json.loads((out / "quality.json").read_text())
    assert merged["settings"]["command"] == "python benchmarks/quality.py " + " ".join(argv)
    assert (merged["settings"]["jobs"], merged["settings"]["seeds"]) == (2, [0, 1])
    fids = [r["metrics"]["fid"] for r in merged["runs"]]
    assert merged["aggregates"]["dcgan_reference"]["metrics"]["fid"]["std"] == pytest.approx(np.std(fids, ddof=1))
    assert (out / "grids" / "dcgan_reference.png").read_bytes() == (
        out / "parts" / "dcgan_reference-seed0" / "grids" / "dcgan_reference.png").read_bytes()
    assert "Command: `python benchmarks/quality.py --tiny --jobs 2" in (out / "RESULTS.md").read_text()
    printed = capsys.readouterr().out
    assert "2 runs to train (0 already done)" in printed
    assert re.search(r"\[2/2\] dcgan_reference seed [01]: done in \d+ s", printed)

    again = quality.main([*argv, "--resume"])  # nothing left to train: the finished parts are kept
    assert "0 runs to train (2 already done)" in capsys.readouterr().out
    assert [r["metrics"]["fid"] for r in again["runs"]] == fids

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(SystemExit) as exit_info:  # a child that fails: its log is kept, the command fails
        quality.main(["--tiny", "--jobs", "2", "--models", "stargan", "--seeds", "0", "--out", str(tmp_path / "bad"),
                      "--device", "cpu", "--cache-dir", str(not_a_folder)])  # fmt: skip
    log = tmp_path / "bad" / "parts" / "stargan-seed0" / "log.txt"
    assert str(exit_info.value) == f"quality.py --jobs: 1 of 1 runs failed (stargan seed 0); their logs are in {log.parents[1]}"
    assert "FAILED (exit 1)" in capsys.readouterr().out and "Error" in log.read_text()
