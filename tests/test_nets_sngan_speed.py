"""``benchmarks/sngan_speed.py`` runs end to end in its ``--quick`` mode: every row is timed, the JSON holds the
settings, timings and ratios, and the last printed line is ``ratio=``. The value of the ratio is not checked (a
2-core box shared by other jobs cannot time anything); the acceptance run is the command in the script's docstring.
The script is imported and its ``main(argv)`` called in-process, as ``tests/test_benchmarks.py`` does."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("bench_sngan_speed", ROOT / "benchmarks" / "sngan_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_mode_times_every_row_and_writes_json(tmp_path, capsys):
    out = tmp_path / "speed.json"
    result = load_script().main(["--quick", "--json", str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("ratio=")
    ratio = float(lines[-1].removeprefix("ratio="))
    assert math.isfinite(ratio) and ratio > 0
    data = json.loads(out.read_text())
    assert data["ratios"] == result["ratios"]
    expected_rows = {f"{arch}/{name}" for arch in ("cnn", "resnet")
                     for name in ("wgan_gp", "sngan", "sngan_no_sn", "sngan_cached", "sngan_concat")}
    expected_rows |= {"defaults/defaults_wgan_gp_dcgan", "defaults/defaults_sngan_cnn", "defaults/defaults_sngan_cnn_ndis1"}
    assert set(data["times_s"]) == expected_rows
    assert all(len(v) == 1 and v[0] > 0 for v in data["times_s"].values())  # --quick: one repeat of one step
    assert data["ratios"]["cnn/wgan_gp"] == 1.0 and data["ratios"]["defaults/defaults_wgan_gp_dcgan"] == 1.0
    assert ratio == round(data["ratios"]["cnn/sngan"], 4)
    assert data["settings"]["width"] == 4 and data["settings"]["batch_size"] == 4


def test_the_benchmark_steps_do_what_their_rows_say():
    """One D step of each SNGAN row gives the same hinge loss and gradients on the same weights and batch: the
    cached and concatenated variants only reorganize the computation (the power iteration runs once instead of
    twice, so they start from the same u, v as the first forward of the separate row)."""
    bench = load_script()
    grads, losses = {}, {}
    for d_forward in ("separate", "cached", "concat"):
        case = bench.Case("sngan", "cnn", "cnn", True, "hinge", d_forward)
        runner = bench.Runner(case, width=4, batch=3, image_size=32, device=torch.device("cpu"), seed=0)
        fake = runner.g(torch.randn(3, bench.LATENT, generator=torch.Generator().manual_seed(1))).detach()
        runner.d.eval()  # no power-iteration update: every row sees the same W/σ
        ctx = parametrize.cached() if d_forward == "cached" else torch.enable_grad()
        with ctx:
            d_real, d_fake = runner._d_logits(runner.real, fake)
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            loss.backward()
        losses[d_forward] = loss.item()
        grads[d_forward] = [p.grad.clone() for p in runner.d.parameters()]
    for name in ("cached", "concat"):
        assert math.isclose(losses[name], losses["separate"], rel_tol=1e-5)
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(grads[name], grads["separate"]))
