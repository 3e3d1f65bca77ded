"""End-to-end speed of ``gan-modules fit`` against a plain PyTorch script doing the same user-visible job.

- ``ours``: the installed ``gan-modules`` console script (``python -m gan_modules.cli`` where there is none) as a
  subprocess with a config (default ``configs/dcgan_mnist.yaml``, the README's quickstart): datamodule and loader,
  callbacks, logger, EMA, non-finite guard, validation, sample grids and checkpoints, all at the config's settings.
  One callback is added (``StepClock``: a wall-clock reading per batch, nothing else) to log when step 0 started and
  when the fit ended.
- ``plain``: ``benchmarks/plain_dcgan.py`` as a subprocess: the same embedded MNIST digits and split at the same size,
  the same number of generator steps, batch size, widths, optimizer and EMA, sample grids from the EMA generator at
  the same cadence with the same file names, a checkpoint at the same cadence (generator steps and/or seconds) and at
  the end, losses printed at the logging interval; the best-practice loop (one G forward per iteration, data
  converted once and sliced by ``randperm``).

The plain side's settings are read at run time from the config as the CLI resolves it (``--print_config``, with
the preset's and your overrides), so a changed config changes both sides. Runs alternate (ours, plain, ours, plain,
...). Time per generator step is ``(end of fit - start of step 0) / steps`` from each process's own clock: it includes
everything the run does after step 0 (validation, grids, logging, checkpoints, the final grid and checkpoint) and
excludes interpreter start-up, imports, config parsing, data setup and Lightning's sanity check, which are reported
separately as ``startup_s`` (spawn to step 0). ``ratio`` = ours it/s / plain it/s (median over adjacent pairs).

    python benchmarks/end_to_end.py                     # CPU, quickstart config, 300 steps, 2 pairs
    python benchmarks/end_to_end.py --quick             # a tiny smoke run (tests)
    python benchmarks/end_to_end.py --gpu               # DCGAN-64: 64 px, width 64, batch 128, 1000 steps, on CUDA
    python benchmarks/end_to_end.py -- --data.init_args.image_size 32 --data.init_args.resize_mode pad

Everything after ``--`` is passed to ``gan-modules fit`` and read back for the plain side. The last line is
``ratio=<ours/plain>``; ``--json PATH`` writes the settings, every run and the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CLOCK_ENV = "GAN_MODULES_BENCH_CLOCK"
PRESETS = {
    "cpu": {"steps": 300, "repeats": 2, "overrides": []},
    "quick": {"steps": 12, "repeats": 1, "overrides": [
        "--model.init_args.ngf", "4", "--model.init_args.ndf", "4", "--data.init_args.batch_size", "16",
        "--sample_grid.every_n_generator_steps", "4", "--sample_grid.num_samples", "16",
        "--checkpoint.every_n_generator_steps", "6", "--trainer.log_every_n_steps", "3",
        "--data.init_args.eval_batch_size", "500", "--trainer.accelerator", "cpu"]},
    "gpu": {"steps": 1000, "repeats": 2, "overrides": [
        "--data.init_args.image_size", "64", "--data.init_args.resize_mode", "resize", "--model.init_args.ngf", "64",
        "--model.init_args.ndf", "64", "--data.init_args.batch_size", "128", "--trainer.accelerator", "gpu"]},
}


class StepClock(L.Callback):
    """Writes wall-clock times (``time.time()``) of the first batch's start, the last batch's end and the end of
    ``fit`` (after the final grid and checkpoint) to the JSON file named by ``$GAN_MODULES_BENCH_CLOCK``."""

    def __init__(self):
        self.path = os.environ.get(CLOCK_ENV)
        self.first: float | None = None
        self.last: float | None = None
        self.first_step = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.first is None:
            self.first = time.time()
            self.first_step = getattr(pl_module, "generator_steps", 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.last = time.time()

    def on_fit_end(self, trainer, pl_module):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        done = time.time()
        if self.path:
            steps = getattr(pl_module, "generator_steps", 0) - self.first_step
            Path(self.path).write_text(json.dumps({
                "side": "ours", "t_first_step_start": self.first, "t_last_step_end": self.last, "t_done": done,
                "generator_steps": steps, "threads": torch.get_num_threads()}))


# ---------------------------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    preset = p.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="tiny nets, 12 steps, 1 pair (tests; ~30 s)")
    preset.add_argument("--gpu", action="store_true", help="DCGAN-64 on CUDA: 64 px, width 64, batch 128")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "dcgan_mnist.yaml")
    p.add_argument("--steps", type=int, default=None,
                   help="generator steps per run (default: cpu 300, gpu 1000, quick 12); 0: the config's own")
    p.add_argument("--repeats", type=int, default=None, help="(ours, plain) pairs (default 2; quick 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS/MKL_NUM_THREADS of both processes (default: inherited)")
    p.add_argument("--keep", type=Path, default=None, help="keep the run folders here (default: a deleted temp dir)")
    p.add_argument("--json", type=Path, default=None, help="write settings, runs and summary here")
    args = p.parse_args(argv)
    args.preset = "quick" if args.quick else "gpu" if args.gpu else "cpu"
    chosen = PRESETS[args.preset]
    args.steps = chosen["steps"] if args.steps is None else args.steps
    args.repeats = chosen["repeats"] if args.repeats is None else args.repeats
    if args.steps < 0 or args.repeats < 1:
        p.error("--steps must be >= 0 and --repeats >= 1")
    if not args.config.is_file():
        p.error(f"config {args.config} not found")
    if args.gpu and not torch.cuda.is_available():
        p.error("--gpu needs a CUDA device; run without --gpu on a CPU")
    args.overrides = list(chosen["overrides"]) + (
        ["--model.init_args.max_generator_steps", str(args.steps)] if args.steps else []) + extra
    return args


def resolved_config(config: Path, overrides: list[str]) -> dict[str, Any]:
    """The fit config as ``gan-modules`` resolves it (defaults, config file, overrides), via ``--print_config``."""
    import yaml

    from gan_modules.cli import main as cli_main

    out = io.StringIO()
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when it is given args next to a command line
    with contextlib.redirect_stdout(out):
        try:
            cli_main(["fit", "--config", str(config), *overrides, "--print_config"])
        except SystemExit as err:
            if err.code not in (0, None):
                raise SystemExit(f"gan-modules could not resolve {config} with {overrides}") from None
        finally:
            sys.argv = argv
    return yaml.safe_load(out.getvalue())


def plain_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The plain script's arguments from the resolved config; refuses what the plain script does not do."""
    model, data = cfg["model"], cfg["data"]
    mi, di, trainer = model.get("init_args") or {}, data.get("init_args") or {}, cfg.get("trainer") or {}
    problems = []
    if model["class_path"].rpartition(".")[2] != "DCGAN":
        problems.append(f"model {model['class_path']} (the plain script is a DCGAN)")
    if data["class_path"].rpartition(".")[2] != "EmbeddedMNISTDataModule":
        problems.append(f"data {data['class_path']} (the plain script reads the embedded MNIST)")
    if mi.get("loss", "non_saturating") != "non_saturating" or mi.get("n_critic", 1) != 1:
        problems.append("loss other than non_saturating or n_critic != 1")
    if mi.get("penalty") or mi.get("weight_clip") or mi.get("lr_scheduler_g") or mi.get("lr_scheduler_d"):
        problems.append("penalties, weight clipping or LR schedulers")
    if mi.get("g_norm", "batch") != "batch" or mi.get("d_norm", "batch") != "batch":
        problems.append("norms other than batch")
    opts = [mi.get("optimizer_g"), mi.get("optimizer_d")]
    if any(o is not None and o["class_path"].rpartition(".")[2] != "Adam" for o in opts):
        problems.append("optimizers other than Adam")
    opt_args = [(o or {}).get("init_args") or {} for o in opts]
    if opt_args[0] != opt_args[1]:
        problems.append("different G and D optimizer settings")
    if not mi.get("max_generator_steps"):
        problems.append("no model.init_args.max_generator_steps")
    if problems:
        raise SystemExit("end_to_end.py: the plain script cannot mirror " + "; ".join(problems))
    opt = opt_args[0]
    grid = cfg.get("sample_grid") or {}
    ckpt = cfg.get("checkpoint") or {}
    accelerator = trainer.get("accelerator", "auto")
    device = "cuda" if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()) else "cpu"
    return {
        "device": device, "precision": str(trainer.get("precision") or "32-true"),
        "steps": int(mi["max_generator_steps"]), "image_size": int(di.get("image_size") or 28),
        "channels": int(di.get("channels") or 1), "resize_mode": di.get("resize_mode", "resize"),
        "val_fraction": float(di.get("val_fraction", 0.1)), "split_seed": int(di.get("split_seed", 0)),
        "batch_size": int(di.get("batch_size", 128)), "drop_last": int(bool(di.get("drop_last", True))),
        "ngf": int(mi.get("ngf", 64)), "ndf": int(mi.get("ndf", 64)), "nz": int(mi.get("latent_dim", 100)),
        "lr": float(opt.get("lr", 2e-4)), "betas": [float(b) for b in opt.get("betas", (0.5, 0.999))],
        "ema_decay": mi.get("ema_decay"), "seed": int(cfg.get("seed_everything") or 0),
        "sample_seed": int(mi.get("sample_seed", 0)),
        "grid_every": int(grid.get("every_n_generator_steps") or 0), "grid_samples": int(grid.get("num_samples", 64)),
        "ckpt_every_steps": int(ckpt.get("every_n_generator_steps") or 0),
        "ckpt_every_seconds": float(ckpt.get("every_n_seconds") or 0),
        "log_every": int(trainer.get("log_every_n_steps") or 50),
    }


def plain_command(s: dict[str, Any], out: Path, clock: Path) -> list[str]:
    cmd = [sys.executable, str(HERE / "plain_dcgan.py"), "--data-file", str(ROOT / "datamodules" / "data" /
                                                                           "mnist10k.npz"),
           "--out", str(out), "--clock", str(clock)]
    for key, value in s.items():
        if key == "ema_decay" and value is None:
            continue
        flag = "--" + key.replace("_", "-")
        cmd += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return cmd


def ours_command(config: Path, overrides: list[str]) -> list[str]:
    script = Path(sys.executable).parent / "gan-modules"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "gan_modules.cli"]
    return [*head, "fit", "--config", str(config), *overrides, "--trainer.callbacks+=end_to_end.StepClock"]


def run_side(side: str, cmd: list[str], workdir: Path, clock: Path, threads: int | None) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    env[CLOCK_ENV] = str(clock)
    env.setdefault("WANDB_MODE", "disabled")
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "output.log"
    with open(log, "w") as fh:
        t_spawn = time.time()
        proc = subprocess.run(cmd, check=False, cwd=workdir, env=env, stdout=fh, stderr=subprocess.STDOUT)
        t_exit = time.time()
    # success = the clock was written at the end of fit. (The exit status is recorded, not required: the gan-modules
    # console script of today exits 1 after a successful fit, because main() returns the GANCLI object.)
    if not clock.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise SystemExit(f"{side} run failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    c = json.loads(clock.read_text())
    steps = int(c["generator_steps"])
    run_s = c["t_done"] - c["t_first_step_start"]
    pngs = sorted(p.name for p in workdir.rglob("samples/*.png"))
    ckpts = sorted(p.name for p in workdir.rglob("checkpoints/*") if p.is_file())
    return {"side": side, "generator_steps": steps, "startup_s": c["t_first_step_start"] - t_spawn,
            "loop_s": c["t_last_step_end"] - c["t_first_step_start"], "finish_s": c["t_done"] - c["t_last_step_end"],
            "run_s": run_s, "exit_s": t_exit - c["t_done"], "total_s": t_exit - t_spawn,
            "s_per_step": run_s / max(steps, 1), "it_s": steps / run_s if run_s > 0 else float("nan"),
            "threads": c.get("threads"), "returncode": proc.returncode, "grids": pngs, "checkpoints": ckpts}


def main(argv=None) -> dict:
    args = parse_args(argv)
    load_before = os.getloadavg()
    cfg = resolved_config(args.config, args.overrides)
    plain = plain_settings(cfg)
    print(f"end-to-end: {args.config.name} ({args.preset} preset) {plain['steps']} generator steps, batch "
          f"{plain['batch_size']}, {plain['channels']}x{plain['image_size']}px, ngf {plain['ngf']} ndf {plain['ndf']}, "
          f"{plain['precision']} on {plain['device']}, grids every {plain['grid_every']}, checkpoints every "
          f"{plain['ckpt_every_steps'] or '-'} steps / {plain['ckpt_every_seconds'] or '-'} s; {args.repeats} "
          f"pair(s); load average {load_before[0]:.2f}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="gan_modules_e2e_")) if args.keep is None else args.keep
    runs: list[dict[str, Any]] = []
    try:
        for r in range(args.repeats):
            for side in ("ours", "plain"):
                workdir = base / f"{side}_{r}"
                clock = workdir / "clock.json"
                cmd = (ours_command(args.config.resolve(), args.overrides) if side == "ours"
                       else plain_command(plain, workdir, clock))
                res = run_side(side, cmd, workdir, clock, args.threads)
                res["repeat"] = r
                runs.append(res)
                print(f"  {side:5s} repeat {r + 1}/{args.repeats}: {res['it_s']:.2f} it/s ({res['generator_steps']} "
                      f"steps in {res['run_s']:.1f} s), start-up {res['startup_s']:.1f} s, total {res['total_s']:.1f} s",
                      flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    ours = [x for x in runs if x["side"] == "ours"]
    plains = [x for x in runs if x["side"] == "plain"]
    ratios = [o["it_s"] / p["it_s"] for o, p in zip(ours, plains)]
    total_ratios = [p["total_s"] / o["total_s"] for o, p in zip(ours, plains)]
    summary = {
        "ours_it_s": statistics.median(x["it_s"] for x in ours),
        "plain_it_s": statistics.median(x["it_s"] for x in plains),
        "ours_ms_per_step": 1000 * statistics.median(x["s_per_step"] for x in ours),
        "plain_ms_per_step": 1000 * statistics.median(x["s_per_step"] for x in plains),
        "ours_startup_s": statistics.median(x["startup_s"] for x in ours),
        "plain_startup_s": statistics.median(x["startup_s"] for x in plains),
        "ours_total_s": statistics.median(x["total_s"] for x in ours),
        "plain_total_s": statistics.median(x["total_s"] for x in plains),
        "ratios": ratios, "ratio": statistics.median(ratios),
        "total_ratios": total_ratios, "total_ratio": statistics.median(total_ratios),
    }
    load_after = os.getloadavg()
    print()
    print("| | it/s (step 0 to end of fit) | ms per generator step | start-up s (spawn to step 0) | total s |")
    print("|---|---|---|---|---|")
    for side in ("ours", "plain"):
        print(f"| {side} | {summary[f'{side}_it_s']:.2f} | {summary[f'{side}_ms_per_step']:.1f} | "
              f"{summary[f'{side}_startup_s']:.1f} | {summary[f'{side}_total_s']:.1f} |")
    print(f"| ours/plain | {summary['ratio']:.3f} | | | {summary['total_ratio']:.3f} (plain total / ours total) |")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)")
    settings = {"preset": args.preset, "config": str(args.config), "overrides": args.overrides, "plain": plain,
                "repeats": args.repeats, "threads": args.threads, "load_before": load_before, "load_after": load_after,
                "cpu_count": os.cpu_count(), "torch": torch.__version__, "lightning": L.__version__,
                "python": platform.python_version(), "machine": platform.processor() or platform.machine()}
    out = {"settings": settings, "runs": runs, "summary": summary, "ratio": summary["ratio"]}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    print(f"ratio={summary['ratio']:.3f}")
    return out


if __name__ == "__main__":
    main()
