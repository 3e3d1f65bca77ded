"""The speed benchmarks run end to end in tiny modes and report what they claim; the plain reference is what it says.

Values of the ratios are not checked (a 2-core box shared by other jobs cannot time anything); the acceptance runs
are ``python benchmarks/throughput.py --device cpu --quick`` and ``python benchmarks/end_to_end.py``. The scripts are
imported and their ``main(argv)`` called in-process (a subprocess import of torch + Lightning alone costs more than
the tiny runs); ``end_to_end.py`` itself starts both training processes as subprocesses.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from plain_dcgan import PlainDCGAN, make_discriminator, make_generator  # noqa: E402

from gan_modules.nets import DCGANDiscriminator, DCGANGenerator  # noqa: E402


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


# --- the plain reference ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [28, 32, 64])
def test_plain_nets_have_our_nets_shapes_and_init(size):
    """Written independently, but the same layers, biases and parameter shapes as gan_modules.nets (same FLOPs)."""
    torch.manual_seed(0)
    plain = [make_generator(100, 8, 3, size), make_discriminator(3, 8, size)]
    ours = [DCGANGenerator(100, 3, size, 8), DCGANDiscriminator(3, size, 8)]
    for p_net, o_net in zip(plain, ours):
        assert [tuple(p.shape) for p in p_net.parameters()] == [tuple(p.shape) for p in o_net.parameters()]
        assert [tuple(b.shape) for b in p_net.buffers()] == [tuple(b.shape) for b in o_net.buffers()]
    convs = torch.cat([m.weight.flatten() for net in plain for m in net.modules()
                       if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert convs.std().item() == pytest.approx(0.02, rel=0.05)  # N(0, 0.02), DCGAN §4
    assert convs.mean().item() == pytest.approx(0.0, abs=1e-3)
    z = torch.randn(2, 100, 1, 1)
    assert tuple(plain[0](z).shape) == (2, 3, size, size)
    assert tuple(plain[1](plain[0](z)).shape) == (2, 1, 1, 1)


@pytest.mark.parametrize(("mirrored", "g_forwards"), [(False, 1), (True, 2)])
def test_plain_loop_runs_one_generator_forward_per_step_and_the_mirrored_loop_two(mirrored, g_forwards):
    torch.manual_seed(0)
    loop = PlainDCGAN(32, 1, 4, 4, nz=8, mirrored=mirrored)
    calls = {"g": 0, "d": 0}
    loop.g.register_forward_hook(lambda *_: calls.__setitem__("g", calls["g"] + 1))
    loop.d.register_forward_hook(lambda *_: calls.__setitem__("d", calls["d"] + 1))
    before = [p.detach().clone() for p in (*loop.g.parameters(), *loop.d.parameters())]
    ema_before = [p.detach().clone() for p in loop.ema.parameters()]
    for _ in range(3):
        loop.train_step(torch.rand(8, 1, 32, 32) * 2 - 1)
    assert calls == {"g": 3 * g_forwards, "d": 9}
    after = [*loop.g.parameters(), *loop.d.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # both networks were updated
    assert loop.step_count == 3 and all(torch.isfinite(x) for x in loop.last_losses)
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, loop.ema.parameters()))


def test_plain_loop_freezes_discriminator_during_generator_backward():
    """D's weights get no gradient from the G step (best practice): after a step D's grads are the D step's."""
    torch.manual_seed(0)
    loop = PlainDCGAN(32, 1, 4, 4, nz=8, ema_decay=None)
    real = torch.rand(8, 1, 32, 32) * 2 - 1
    grads = {}
    original = loop._update

    def spy(loss, opt):
        original(loss, opt)
        grads[opt is loop.opt_d] = [p.grad.clone() for p in loop.d.parameters()]

    loop._update = spy
    loop.train_step(real)
    assert all(torch.equal(a, b) for a, b in zip(grads[True], grads[False]))
    assert all(p.requires_grad for p in loop.d.parameters())  # unfrozen again


# --- throughput.py ----------------------------------------------------------------------------------------------------
def test_throughput_benchmark_tiny_reports_three_loops_per_mode_and_batch(tmp_path, capsys):
    out = tmp_path / "tp.json"
    script("throughput").main(["--device", "cpu", "--tiny", "--modes", "fp32", "bf16-cl-fused", "--batch-sizes", "4",
                               "8", "--json", str(out)])
    stdout = capsys.readouterr().out
    ratio = last_ratio(stdout)
    data = json.loads(out.read_text())
    assert data["settings"]["device"] == "cpu" and data["settings"]["modes"] == ["fp32", "bf16-cl-fused"]
    rows = {(r["mode"], r["batch_size"]): r for r in data["results"]}
    assert sorted(rows) == [("bf16-cl-fused", 4), ("bf16-cl-fused", 8), ("fp32", 4), ("fp32", 8)]
    assert rows[("bf16-cl-fused", 8)]["precision"] == "bf16-mixed" and rows[("bf16-cl-fused", 8)]["channels_last"]
    assert rows[("bf16-cl-fused", 8)]["fused"] and not rows[("fp32", 8)]["fused"]
    for r in rows.values():
        for side in ("ours", "plain", "mirrored"):
            assert len(r[f"{side}_img_s"]) == 2 and all(math.isfinite(v) and v > 0 for v in r[f"{side}_img_s"])
        assert r["ratios"] == pytest.approx([o / p for o, p in zip(r["ours_img_s"], r["plain_img_s"])])
        assert r["ratio_vs_mirrored"] > 0 and r["plain_over_mirrored"] > 0
        assert f"| {r['mode']} | {r['batch_size']} | " in stdout
    assert data["ratio"] == pytest.approx(min(r["ratio"] for r in rows.values()))
    assert data["ratio"] == pytest.approx(ratio, abs=1e-3)


def test_throughput_benchmark_refuses_fp16_on_cpu(capsys):
    with pytest.raises(SystemExit) as exit_info:
        script("throughput").parse_args(["--device", "cpu", "--modes", "fp16", "--tiny"])
    assert exit_info.value.code == 2
    assert "mode fp16 needs CUDA" in capsys.readouterr().err.strip().splitlines()[-1]


def test_throughput_benchmark_refuses_batch_of_one(capsys):
    with pytest.raises(SystemExit) as exit_info:
        script("throughput").parse_args(["--device", "cpu", "--tiny", "--batch-sizes", "1"])
    assert exit_info.value.code == 2
    assert "--batch-sizes must be >= 2" in capsys.readouterr().err.strip().splitlines()[-1]


# --- end_to_end.py ----------------------------------------------------------------------------------------------------
def test_end_to_end_benchmark_quick_runs_both_jobs_alike(tmp_path, capsys):
    out = tmp_path / "e2e.json"
    data = script("end_to_end").main(["--quick", "--keep", str(tmp_path / "runs"), "--json", str(out)])
    stdout = capsys.readouterr().out
    ratio = last_ratio(stdout)
    assert json.loads(out.read_text()) == json.loads(json.dumps(data))
    plain = data["settings"]["plain"]
    assert plain["steps"] == 12 and plain["ngf"] == 4 and plain["grid_every"] == 4 and plain["ckpt_every_steps"] == 6
    ours, theirs = ([r for r in data["runs"] if r["side"] == side] for side in ("ours", "plain"))
    assert len(ours) == len(theirs) == 1
    for run in ours + theirs:
        assert run["generator_steps"] == 12  # both did the same number of generator steps
        assert run["grids"] == ["final.png", "step_0000004.png", "step_0000008.png", "step_0000012.png"]
        assert len(run["checkpoints"]) == 1  # last.ckpt / last.pt, rewritten at the cadence and at the end
        assert 0 < run["startup_s"] < run["total_s"] and run["run_s"] > 0
        assert run["s_per_step"] == pytest.approx(run["run_s"] / 12)
    assert data["summary"]["ratio"] == pytest.approx(ours[0]["it_s"] / theirs[0]["it_s"])
    assert data["ratio"] == pytest.approx(ratio, abs=1e-3)
    assert "| ours/plain |" in stdout


def test_end_to_end_benchmark_refuses_a_config_the_plain_script_cannot_mirror():
    e2e = script("end_to_end")
    cfg = e2e.resolved_config(ROOT / "configs" / "wgan_gp_mnist.yaml", [])
    with pytest.raises(SystemExit) as exit_info:
        e2e.plain_settings(cfg)
    message = str(exit_info.value)
    assert message.startswith("end_to_end.py: the plain script cannot mirror model gan_modules.WGANGP")
    assert "\n" not in message


def test_data_pipeline_benchmark_tiny_writes_both_numbers_and_ratio(tmp_path, capsys):
    out = tmp_path / "dp.json"
    script("data_pipeline").main(["--device", "cpu", "--tiny", "--json", str(out)])
    ratio = last_ratio(capsys.readouterr().out)
    data = json.loads(out.read_text())
    assert len(data["jpeg_img_s"]) == len(data["cache_img_s"]) == 1
    assert data["jpeg_img_s"][0] > 0 and data["cache_img_s"][0] > 0 and data["cache_build_s"] >= 0
    assert data["ratio"] == pytest.approx(ratio, abs=1e-3)
    assert not list(Path(tempfile.gettempdir()).glob("gan_modules_jpegs_*")), "generated JPEGs were left behind"


# --- profile_fit.py ---------------------------------------------------------------------------------------------------
def test_profile_fit_attribution_follows_its_definitions():
    ours = {"_total": 200.0, "fake_images[D]": 20.0, "val_run": 9.0, "progress_bar.on_train_batch_end": 2.0,
            "data.fetch": 7.0, "data.getitems": 5.0, "data.fit_batch": 1.0, "data.batch_to_device": 0.5,
            "toggle_optimizer": 0.75, "untoggle_optimizer": 0.25, "guard.nonfinite": 1.5,
            "optimizer.lightning_step": 12.0, "optimizer.adam_step": 11.0, "manual_backward": 50.0,
            "autograd.backward": 48.0, "log.module.log": 0.5, "log.should_log_step": 0.125,
            "log.connector.on_batch_end": 0.375, "grid.write": 6.0, "grid.on_train_end": 2.0,
            "checkpoint.save": 3.0, "checkpoint.on_train_end": 3.0, "ema.update": 1.0,
            "hooks.callbacks:on_train_batch_start": 0.5, "hooks.callbacks:on_train_batch_end": 7.0,
            "training_step": 150.0, "loop.advance": 170.0, "loop.on_advance_end": 10.0}
    plain = {"_total": 150.0, "plain.train_step": 140.0, "plain.save_grid": 4.0, "plain.save_checkpoint": 2.0,
             "plain.update_ema": 0.5}
    items = {name.strip(): ms for name, ms, _ in script("profile_fit").attribute(ours, plain)}
    assert items["G forward inside the D step (0 when the iteration's generated batch is reused, as plain)"] == \
        pytest.approx(20.0)
    assert items["data: loader + fetcher, minus the plain loop's randperm slicing"] == pytest.approx(7.0 - 4.0)
    assert items["freezing the other network (requires_grad_)"] == pytest.approx(0.75)
    assert items["LightningOptimizer.step wrapper (closure, hooks, precision plugin)"] == pytest.approx(1.0)
    assert items["manual_backward wrapper (strategy, precision, hooks)"] == pytest.approx(2.0)
    assert items["training scalars: self.log, _should_log_step, logger connector, TensorBoard"] == pytest.approx(1.0)
    assert items["sample grids (ours minus plain: same count)"] == pytest.approx(2.0)
    assert items["checkpoints (ours minus plain: same cadence)"] == pytest.approx(1.0)
    # per-batch callbacks 7.5 minus progress bar 2, periodic grids 6 - 2 = 4, periodic checkpoints 3 - 3 = 0
    assert items["other callback hooks per batch (SampleGrid/GANCheckpoint/metrics checks, clock)"] == pytest.approx(1.5)
    assert items["EMA update (ours minus plain: same math)"] == pytest.approx(0.5)
    # advance + on_advance_end 180 minus fetch 7, batch_to_device 0.5, training_step 150, val 9, callbacks 7.5,
    # connector 0.375
    assert items["Lightning loop bookkeeping per batch"] == pytest.approx(180.0 - 7.0 - 0.5 - 150.0 - 9.0 - 7.5 - 0.375)


def test_profile_fit_quick_times_every_call_on_the_real_path_and_unwraps(capsys):
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.core.module import LightningModule

    import datamodules.base

    wrapped = [(LightningModule, "log"), (torch.autograd, "backward"), (torch.optim.Adam, "step"),
               (TQDMProgressBar, "on_train_batch_end"), (datamodules.base, "fit_batch")]
    before = [getattr(owner, name) for owner, name in wrapped]
    out = script("profile_fit").main(["--quick", "--repeats", "1"])
    assert [getattr(owner, name) for owner, name in wrapped] == before  # every wrapper removed
    from gan_modules.callbacks.progress import GANProgressBar

    assert "on_train_batch_start" not in vars(GANProgressBar)  # an inherited hook is inherited again
    calls = out["ours_runs"][0]["calls"]
    steps = out["plain_settings"]["steps"]
    assert steps == 12 and out["ours_runs"][0]["clock"]["generator_steps"] == 12
    assert out["plain_runs"][0]["clock"]["generator_steps"] == 12
    # one G forward per iteration, in make_context (outside both updates), none inside the D or G step
    # (grids and the EMA's standing statistics add G forwards outside the updates too)
    assert calls["fake_images[]"] >= steps and "fake_images[D]" not in calls and "fake_images[G]" not in calls
    for key in ("make_context", "ema.update", "training_step", "progress_bar.on_train_batch_end"):
        assert calls[key] == steps, key
    for key in ("toggle_optimizer", "guard.nonfinite", "optimizer.adam_step"):
        assert calls[key] == 2 * steps, key
    assert out["plain_runs"][0]["calls"]["plain.train_step"] == steps
    assert out["gap_ms"] == pytest.approx(out["ours_ms"]["_total"] - out["plain_ms"]["_total"])
    summed = sum(i["ms_per_step"] for i in out["items"] if not i["item"].startswith("of which"))
    assert out["residual_ms"] == pytest.approx(out["gap_ms"] - summed)
    assert "| G forward inside the D step" in capsys.readouterr().out
