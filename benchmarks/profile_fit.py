"""Where ``gan-modules fit`` spends its time beyond the plain loop: wall-clock instrumentation of the real fit path.

Runs, in this one process and alternating (ours, plain, ours, plain, ...), the CLI's ``fit`` (``gan_modules.cli.main``,
the same code as the console script) and the plain script of ``benchmarks/plain_dcgan.py`` with the settings that
``end_to_end.py`` derives from the config. During our fit, selected functions of Lightning, of our module, callbacks
and datamodule are wrapped with a ``perf_counter`` pair (about a microsecond per call, ~100 calls per step: far below
the noise), so every item is the inclusive wall time of real calls on the real path, not a sampling estimate or a
cProfile figure inflated by tracing. ``--cprofile PATH`` additionally writes a cProfile of the first ours run
(``python -m pstats PATH``) for a finer look at Lightning's loop.

    OMP_NUM_THREADS=1 python benchmarks/profile_fit.py                 # quickstart config, 300 steps, 2 pairs
    python benchmarks/profile_fit.py --steps 100 --repeats 1 -- --data.init_args.batch_size 64

Prints the per-step items (ms per generator step, mean over the ours runs) and the attribution of the gap to the plain
script, and writes them with ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import end_to_end as e2e
import plain_dcgan

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
STATE = {"phase": "", "val": False}
_INHERITED = object()  # marks a wrapped attribute that the owner inherited (restored by deleting the wrapper)
_ORIGINALS: list[tuple[Any, str, Any]] = []  # (owner, name, original) of every wrapped attribute, for uninstrument()


def _wrap(owner: Any, name: str, key: str | None = None, *, by_arg: bool = False) -> None:
    """Replaces ``owner.name`` by a timed wrapper; ``key`` (default ``name``) gets the inclusive seconds and calls;
    inside a validation run the key is prefixed ``val/``; ``by_arg`` appends the hook name (2nd argument)."""
    fn = getattr(owner, name, None)
    if fn is None or getattr(fn, "_timed", False):
        return
    base = key or name

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        k = base
        if by_arg and len(args) > 1:
            k = f"{base}:{args[1]}"
        if base == "fake_images":
            k = f"fake_images[{STATE['phase']}]"
        if STATE["val"] and not base.startswith("val_run"):
            k = "val/" + k
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[k] += time.perf_counter() - t
            CALLS[k] += 1

    timed._timed = True
    _ORIGINALS.append((owner, name, vars(owner).get(name, _INHERITED)))
    setattr(owner, name, timed)


def _phase(owner: Any, name: str, phase: str) -> None:
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        STATE["phase"] = phase
        try:
            return fn(*args, **kwargs)
        finally:
            STATE["phase"] = ""

    _ORIGINALS.append((owner, name, vars(owner).get(name, _INHERITED)))
    setattr(owner, name, run)


def _val(owner: Any, name: str) -> None:
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def run(self, *args, **kwargs):
        sanity = bool(getattr(self.trainer, "sanity_checking", False))
        key = "val_run[sanity]" if sanity else "val_run"
        STATE["val"] = True
        t = time.perf_counter()
        try:
            return fn(self, *args, **kwargs)
        finally:
            STATE["val"] = False
            TIMES[key] += time.perf_counter() - t
            CALLS[key] += 1

    _ORIGINALS.append((owner, name, vars(owner).get(name, _INHERITED)))
    setattr(owner, name, run)


def instrument() -> None:
    """Wraps the functions whose time is attributed (class attributes, before anything is instantiated)."""
    from lightning.pytorch.callbacks import ModelSummary
    from lightning.pytorch.core.module import LightningModule
    from lightning.pytorch.core.optimizer import LightningOptimizer
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.loops import evaluation_loop, fetchers, training_epoch_loop
    from lightning.pytorch.strategies.strategy import Strategy
    from lightning.pytorch.trainer import call
    from lightning.pytorch.trainer.connectors.logger_connector.logger_connector import _LoggerConnector
    from torch.utils.tensorboard import SummaryWriter

    import datamodules.base as dm_base
    from gan_modules.base import AdversarialModule
    from gan_modules.callbacks import GANCheckpoint, GenerativeMetrics, SampleGrid
    from gan_modules.callbacks.progress import GANProgressBar
    from gan_modules.guard import NonFiniteGuard
    from gan_modules.image_gan import ImageGAN
    from gan_modules.nets.dcgan import DCGANGenerator

    _val(evaluation_loop._EvaluationLoop, "run")
    _wrap(training_epoch_loop._TrainingEpochLoop, "advance", "loop.advance")
    _wrap(training_epoch_loop._TrainingEpochLoop, "on_advance_end", "loop.on_advance_end")
    _wrap(fetchers._PrefetchDataFetcher, "__next__", "data.fetch")
    _wrap(dm_base.TensorImageDataset, "__getitems__", "data.getitems")
    _wrap(dm_base, "fit_batch", "data.fit_batch")
    _wrap(Strategy, "batch_to_device", "data.batch_to_device")
    _wrap(call, "_call_callback_hooks", "hooks.callbacks", by_arg=True)
    _wrap(call, "_call_lightning_module_hook", "hooks.module", by_arg=True)
    _wrap(_LoggerConnector, "on_batch_start", "log.connector.on_batch_start")
    _wrap(_LoggerConnector, "on_batch_end", "log.connector.on_batch_end")
    _wrap(_LoggerConnector, "update_train_step_metrics", "log.connector.update_train_step_metrics")
    _wrap(TensorBoardLogger, "log_metrics", "log.tensorboard.log_metrics")
    _wrap(SummaryWriter, "add_image", "grid.tensorboard.add_image")
    _wrap(LightningModule, "log", "log.module.log")
    _wrap(AdversarialModule, "_frozen", "toggle_optimizer")  # the loop freezes the other net (no Lightning toggle)
    _wrap(LightningModule, "manual_backward", "manual_backward")
    _wrap(LightningModule, "optimizers", "module.optimizers")
    _wrap(LightningOptimizer, "step", "optimizer.lightning_step")
    _wrap(LightningOptimizer, "zero_grad", "optimizer.zero_grad")
    _wrap(torch.optim.Adam, "step", "optimizer.adam_step")
    _wrap(torch.autograd, "backward", "autograd.backward")
    _wrap(AdversarialModule, "training_step", "training_step")
    _wrap(AdversarialModule, "_should_log_step", "log.should_log_step")
    _wrap(NonFiniteGuard, "record", "guard.nonfinite")
    _wrap(AdversarialModule, "update_ema", "ema.update")
    _wrap(DCGANGenerator, "forward", "fake_images")  # keyed by phase: [D] = a G forward inside the D step
    _wrap(ImageGAN, "make_context", "make_context")
    _wrap(ImageGAN, "discriminate", "discriminate")
    _wrap(AdversarialModule, "check_batch", "check_batch")
    _phase(AdversarialModule, "_discriminator_update", "D")
    _phase(AdversarialModule, "_generator_update", "G")
    _wrap(AdversarialModule, "_discriminator_update", "update.D")
    _wrap(AdversarialModule, "_generator_update", "update.G")
    _wrap(GANProgressBar, "on_train_batch_end", "progress_bar.on_train_batch_end")  # the CLI's bar
    _wrap(GANProgressBar, "on_train_batch_start", "progress_bar.on_train_batch_start")
    _wrap(ModelSummary, "on_fit_start", "model_summary")
    _wrap(SampleGrid, "on_train_batch_end", "grid.on_train_batch_end")
    _wrap(SampleGrid, "write", "grid.write")
    _wrap(SampleGrid, "on_train_end", "grid.on_train_end")
    _wrap(GANCheckpoint, "on_train_end", "checkpoint.on_train_end")
    _wrap(GANCheckpoint, "on_train_batch_end", "checkpoint.on_train_batch_end")
    _wrap(GANCheckpoint, "write_checkpoint", "checkpoint.save")
    _wrap(GenerativeMetrics, "on_train_batch_end", "metrics.on_train_batch_end")
    _wrap(plain_dcgan.PlainDCGAN, "train_step", "plain.train_step")
    _wrap(plain_dcgan.PlainDCGAN, "update_ema", "plain.update_ema")
    _wrap(plain_dcgan, "save_grid", "plain.save_grid")
    _wrap(plain_dcgan, "save_checkpoint", "plain.save_checkpoint")


def uninstrument() -> None:
    """Puts every wrapped attribute back (in reverse order, so that doubly wrapped ones end as they began)."""
    while _ORIGINALS:
        owner, name, original = _ORIGINALS.pop()
        if original is _INHERITED:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


def run_ours(config: Path, overrides: list[str], workdir: Path, profile_path: Path | None) -> dict[str, Any]:
    from gan_modules.cli import main as cli_main

    workdir.mkdir(parents=True, exist_ok=True)
    clock = workdir / "clock.json"
    os.environ[e2e.CLOCK_ENV] = str(clock)
    TIMES.clear()
    CALLS.clear()
    argv, sys.argv = sys.argv, sys.argv[:1]
    cwd = os.getcwd()
    os.chdir(workdir)
    profiler = cProfile.Profile() if profile_path else None
    try:
        with open(workdir / "output.log", "w") as log, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
            if profiler:
                profiler.enable()
            cli_main(["fit", "--config", str(config), *overrides, "--trainer.callbacks+=end_to_end.StepClock"])
            if profiler:
                profiler.disable()
    finally:
        os.chdir(cwd)
        sys.argv = argv
    if profiler:
        profiler.dump_stats(str(profile_path))
    c = json.loads(clock.read_text())
    return {"clock": c, "times": dict(TIMES), "calls": dict(CALLS)}


def run_plain(settings: dict[str, Any], workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    clock = workdir / "clock.json"
    TIMES.clear()
    CALLS.clear()
    with open(workdir / "output.log", "w") as log, contextlib.redirect_stdout(log):
        plain_dcgan.main(e2e.plain_command(settings, workdir, clock)[2:])
    c = json.loads(clock.read_text())
    return {"clock": c, "times": dict(TIMES), "calls": dict(CALLS)}


def per_step_ms(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean over runs of each key's seconds per generator step, in ms; ``_total`` is the clock's step time."""
    keys = sorted({k for r in runs for k in r["times"]})
    out = {}
    for k in keys:
        out[k] = statistics.mean(1000 * r["times"].get(k, 0.0) / r["clock"]["generator_steps"] for r in runs)
    out["_total"] = statistics.mean(
        1000 * (r["clock"]["t_done"] - r["clock"]["t_first_step_start"]) / r["clock"]["generator_steps"] for r in runs)
    return out


def attribute(ours: dict[str, float], plain: dict[str, float]) -> list[tuple[str, float, str]]:
    """The gap items, each ``(item, ms per step, how it is measured)``; sub-items start with two spaces and are not
    summed. What no item explains is the residual (compute differences, epoch boundaries, noise)."""

    def g(*keys: str) -> float:
        return sum(ours.get(k, 0.0) for k in keys)

    def cb(hook: str) -> float:
        return ours.get(f"hooks.callbacks:{hook}", 0.0)

    def mod(hook: str) -> float:
        return ours.get(f"hooks.module:{hook}", 0.0)

    pbar = g("progress_bar.on_train_batch_end", "progress_bar.on_train_batch_start")
    per_batch_cbs = cb("on_train_batch_start") + cb("on_train_batch_end")
    periodic_grids = g("grid.write") - g("grid.on_train_end")  # written from on_train_batch_end
    periodic_ckpts = g("checkpoint.save") - g("checkpoint.on_train_end")
    logging = g("log.module.log", "log.should_log_step", "log.connector.on_batch_start", "log.connector.on_batch_end",
                "log.connector.update_train_step_metrics")
    plain_grid, plain_ckpt = plain.get("plain.save_grid", 0.0), plain.get("plain.save_checkpoint", 0.0)
    plain_other = plain["_total"] - plain.get("plain.train_step", 0.0) - plain_grid - plain_ckpt
    data = g("data.fetch")
    # Lightning's own per-batch bookkeeping: the loop's advance + on_advance_end minus everything timed inside them
    inside = (data + g("data.batch_to_device", "training_step", "val_run") + per_batch_cbs
              + mod("on_train_batch_start") + mod("on_train_batch_end") + logging - g("log.module.log",
                                                                                      "log.should_log_step"))
    loop = g("loop.advance", "loop.on_advance_end") - inside
    return [
        ("G forward inside the D step (0 when the iteration's generated batch is reused, as plain)",
         g("fake_images[D]"), "DCGANGenerator.forward inside _discriminator_update"),
        ("validation loop (every epoch and at the end)", g("val_run"),
         "_EvaluationLoop.run, sanity check excluded"),
        ("progress bar (TQDM refresh + postfix every batch)", pbar, "TQDMProgressBar.on_train_batch_start/end"),
        ("data: loader + fetcher, minus the plain loop's randperm slicing", data - plain_other,
         "_PrefetchDataFetcher.__next__ minus (plain step time - train_step - grids - checkpoints)"),
        ("  of which TensorImageDataset.__getitems__ (index + fit_batch)", g("data.getitems"), "__getitems__"),
        ("  of which fit_batch (uint8 -> float, every batch)", g("data.fit_batch"), "datamodules.base.fit_batch"),
        ("batch_to_device", g("data.batch_to_device"), "Strategy.batch_to_device"),
        ("Lightning loop bookkeeping per batch", loop,
         "_TrainingEpochLoop.advance + on_advance_end minus every item timed inside them"),
        ("freezing the other network (requires_grad_)", g("toggle_optimizer"),
         "AdversarialModule._frozen (plain: D.requires_grad_ twice)"),
        ("non-finite guard bookkeeping (the check itself runs inside _optimize)", g("guard.nonfinite"),
         "NonFiniteGuard.record"),
        ("LightningOptimizer.step wrapper (closure, hooks, precision plugin)",
         g("optimizer.lightning_step") - g("optimizer.adam_step"), "LightningOptimizer.step minus Adam.step"),
        ("manual_backward wrapper (strategy, precision, hooks)", g("manual_backward") - g("autograd.backward"),
         "manual_backward minus torch.autograd.backward"),
        ("training scalars: self.log, _should_log_step, logger connector, TensorBoard", logging,
         "LightningModule.log + _LoggerConnector per-batch hooks"),
        ("  of which TensorBoardLogger.log_metrics", g("log.tensorboard.log_metrics"), "TensorBoardLogger.log_metrics"),
        ("sample grids (ours minus plain: same count)", g("grid.write") - plain_grid,
         "SampleGrid.write minus plain save_grid"),
        ("  of which TensorBoard add_image", g("grid.tensorboard.add_image"), "SummaryWriter.add_image"),
        ("checkpoints (ours minus plain: same cadence)", g("checkpoint.save") - plain_ckpt,
         "GANCheckpoint._save_checkpoint minus plain save_checkpoint"),
        ("other callback hooks per batch (SampleGrid/GANCheckpoint/metrics checks, clock)",
         per_batch_cbs - pbar - periodic_grids - periodic_ckpts,
         "on_train_batch_start/end of every callback minus progress bar, grid and checkpoint writes"),
        ("EMA update (ours minus plain: same math)", g("ema.update") - plain.get("plain.update_ema", 0.0),
         "update_ema minus plain update_ema"),
    ]


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "dcgan_mnist.yaml")
    p.add_argument("--quick", action="store_true", help="end_to_end.py's tiny preset (tests)")
    p.add_argument("--steps", type=int, default=None, help="generator steps per run (default 300; quick 12)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cprofile", type=Path, default=None, help="write a cProfile of the first ours run here")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    steps = args.steps or (e2e.PRESETS["quick"]["steps"] if args.quick else 300)
    overrides = [*(e2e.PRESETS["quick"]["overrides"] if args.quick else []),
                 "--model.init_args.max_generator_steps", str(steps), *extra]
    cfg = e2e.resolved_config(args.config, overrides)
    settings = e2e.plain_settings(cfg)
    instrument()
    try:
        return _profile(args, overrides, settings)
    finally:
        uninstrument()


def _profile(args: argparse.Namespace, overrides: list[str], settings: dict[str, Any]) -> dict:
    load_before = os.getloadavg()
    print(f"profile: {args.config.name} {overrides}, {args.repeats} pair(s), torch threads {torch.get_num_threads()}, "
          f"load average {load_before[0]:.2f}", flush=True)
    ours_runs, plain_runs = [], []
    with tempfile.TemporaryDirectory(prefix="gan_modules_profile_") as tmp:
        for r in range(args.repeats):
            ours_runs.append(run_ours(args.config.resolve(), overrides, Path(tmp) / f"ours_{r}",
                                      args.cprofile if r == 0 else None))
            plain_runs.append(run_plain(settings, Path(tmp) / f"plain_{r}"))
            o, q = ours_runs[-1]["clock"], plain_runs[-1]["clock"]
            print(f"  pair {r + 1}: ours {1000 * (o['t_done'] - o['t_first_step_start']) / o['generator_steps']:.1f} "
                  f"ms/step, plain {1000 * (q['t_done'] - q['t_first_step_start']) / q['generator_steps']:.1f} "
                  f"ms/step", flush=True)
    ours, plain = per_step_ms(ours_runs), per_step_ms(plain_runs)
    gap = ours["_total"] - plain["_total"]
    print(f"\nours {ours['_total']:.1f} ms/step, plain {plain['_total']:.1f} ms/step, gap {gap:.1f} ms/step "
          f"(ours/plain speed {plain['_total'] / ours['_total']:.3f})\n")
    items = attribute(ours, plain)
    print("| item | ms per step | share of gap | measured as |")
    print("|---|---|---|---|")
    for name, ms, how in items:
        print(f"| {name} | {ms:.2f} | {100 * ms / gap:.1f}% | {how} |")
    explained = sum(ms for name, ms, _ in items if not name.startswith("  "))
    print(f"| residual (Lightning loop per batch, compute differences, noise) | {gap - explained:.2f} | "
          f"{100 * (gap - explained) / gap:.1f}% | gap minus the items |")
    print("\nall instrumented keys (ms per generator step, inclusive):")
    for k, v in sorted(ours.items(), key=lambda kv: -kv[1]):
        calls = statistics.mean(r["calls"].get(k, 0) for r in ours_runs) if k != "_total" else 0
        print(f"  ours  {k:55s} {v:9.3f}   calls/run {calls:.0f}")
    for k, v in sorted(plain.items(), key=lambda kv: -kv[1]):
        print(f"  plain {k:55s} {v:9.3f}")
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)")
    out = {"overrides": overrides, "plain_settings": settings, "ours_ms": ours, "plain_ms": plain, "gap_ms": gap,
           "items": [{"item": n.strip(), "ms_per_step": ms, "share_of_gap": ms / gap, "measured_as": h}
                     for n, ms, h in items],
           "residual_ms": gap - explained, "load_before": load_before, "load_after": load_after,
           "threads": torch.get_num_threads(),
           "ours_runs": ours_runs, "plain_runs": plain_runs}
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
