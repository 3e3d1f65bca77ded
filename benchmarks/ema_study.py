"""Does sampling from an EMA of G help, and how should its BatchNorm statistics be set? Measured, not assumed.

One training run per (config, seed) carries several EMA copies of G side by side (an EMA is a pure function of G's
trajectory, so they need no runs of their own) and, at each budget, scores on held-out images (FID with the shipped
classifier, the protocol of ``benchmarks/quality.py``):

- ``raw``: the trained G in eval mode (its own running statistics);
- ``ema_copied``: the EMA weights with BatchNorm running statistics copied from the live G (the scheme before issue
  13: weights and statistics that never met);
- ``ema``: the same EMA with its own statistics recomputed from its forward passes (``gan_modules.ema``, the default);
- further EMA schedules (``decay@start``), each with its own statistics.

Usage::

    python benchmarks/ema_study.py --config dcgan_fashion_mnist --budgets 1000 2000 3000 --seeds 0 1 2 \\
        --set ngf=16 ndf=16 --batch-size 64 --json benchmarks/ema_study.json

Prints a table (mean ± std over seeds) and writes JSON. ``--tiny`` is the smoke test used by the suite.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datamodules import DATAMODULES
from datamodules.base import collate
from gan_modules.ema import EMA, recompute_batchnorm_statistics
from gan_modules.metrics.extractors import auto_feature_extractor, feature_extractor_for
from gan_modules.metrics.generative import GenerativeMetricSuite
from gan_modules.registry import MODELS

#: EMA schedules carried side by side: name -> (decay, start as a fraction of the last budget)
SCHEDULES = {"ema": (0.999, 0.0), "ema@0.5": (0.999, 0.5), "ema_0.9999": (0.9999, 0.0), "ema_0.99": (0.99, 0.0)}


def parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def build(config: str, seed: int, overrides: dict[str, Any], batch_size: int | None):
    cfg = yaml.safe_load((ROOT / "configs" / f"{config}.yaml").read_text())
    data_cfg = cfg["data"]
    dm_cls = DATAMODULES[data_cfg["class_path"].rpartition(".")[2]]
    dm_args = dict(data_cfg.get("init_args") or {})
    if batch_size:
        dm_args["batch_size"] = batch_size
    dm = dm_cls(**dm_args, seed=seed)
    model_cfg = cfg["model"]
    cls = MODELS[model_cfg["class_path"].rpartition(".")[2]]
    args = {k: v for k, v in (model_cfg.get("init_args") or {}).items() if not k.startswith(("optimizer", "lr_sched"))}
    args.update(overrides)
    args.update(image_size=dm.image_size, channels=dm.channels, num_classes=dm.num_classes)
    torch.manual_seed(seed)
    return cls(**args), dm


class Study(L.Callback):
    """Keeps the EMA copies and scores every generator at each budget."""

    def __init__(self, budgets: list[int], suite: GenerativeMetricSuite, real: torch.Tensor, num_samples: int):
        self.budgets, self.suite, self.real, self.num_samples = sorted(budgets), suite, real, num_samples
        self.copies: dict[str, tuple[EMA, torch.nn.Module]] = {}
        self.results: dict[int, dict[str, float]] = {}
        self._last = 0

    def on_train_start(self, trainer, pl_module) -> None:
        last = self.budgets[-1]
        for name, (decay, start) in SCHEDULES.items():
            self.copies[name] = (EMA(decay, int(start * last)),
                                 copy.deepcopy(pl_module.generator).requires_grad_(False))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = pl_module.generator_steps
        if step == self._last:
            return  # a D-only batch
        self._last = step
        for ema, net in self.copies.values():
            ema.update(net, pl_module.generator, step - 1)
        if step in self.budgets:
            self.results[step] = self.score(pl_module)

    @torch.no_grad()
    def fid(self, pl_module, net: torch.nn.Module) -> float:
        self.suite.reset()
        self.suite.update(self.real, real=True)
        was = net.training
        net.eval()
        for start in range(0, self.num_samples, 500):
            n = min(500, self.num_samples - start)
            inputs = pl_module.generator_inputs(pl_module.seeded_noise(n, seed=10_000 + start),
                                                (torch.arange(start, start + n) % pl_module.hparams.num_classes)
                                                if pl_module.conditional else None)
            self.suite.update(net(**inputs).float().clamp(-1, 1), real=False)
        net.train(was)
        return float(self.suite.compute()["fid"])

    def score(self, pl_module) -> dict[str, float]:
        out = {"raw": self.fid(pl_module, pl_module.generator)}
        for name, (_, net) in self.copies.items():
            if name == "ema":
                out["ema_copied"] = self.fid(pl_module, net)  # live G's statistics, copied every update
            standing = copy.deepcopy(net)
            recompute_batchnorm_statistics(standing, pl_module.standing_inputs())
            out[name] = self.fid(pl_module, standing)
        return out


def run(config: str, seed: int, budgets: list[int], overrides: dict[str, Any], batch_size: int | None,
        num_samples: int, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    L.seed_everything(seed, verbose=False)
    model, dm = build(config, seed, {**overrides, "max_generator_steps": max(budgets), "ema_decay": None}, batch_size)
    dm.setup()
    extractor = feature_extractor_for(auto_feature_extractor(dm), dm)
    suite = GenerativeMetricSuite(extractor, kid_subsets=10, kid_subset_size=100, precision_recall_k=0)
    real = next(iter(dm.test_dataloader().__class__(dm.dataset("test"), batch_size=num_samples, shuffle=False,
                                                    collate_fn=collate)))["image"]
    study = Study(budgets, suite, real, num_samples)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=-1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[study])
    start = time.monotonic()
    trainer.fit(model, datamodule=dm)
    return {"config": config, "seed": seed, "seconds": time.monotonic() - start, "fid": study.results}


def table(runs: list[dict[str, Any]]) -> str:
    names = ["raw", "ema_copied", *SCHEDULES]
    lines = ["| config | budget | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    by = {}
    for r in runs:
        for budget, scores in r["fid"].items():
            by.setdefault((r["config"], int(budget)), []).append(scores)
    for (config, budget), rows in sorted(by.items()):
        cells = []
        for n in names:
            values = [row[n] for row in rows if n in row]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.2f} ± {sd:.2f}" if values else "-")
        lines.append(f"| {config} | {budget} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="dcgan_fashion_mnist")
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 2000, 3000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], help="model overrides key=value (YAML values)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--num-samples", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--tiny", action="store_true", help="smoke test: width 4, budgets 2 and 4, 64 samples")
    args = parser.parse_args(argv)
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.tiny:
        args.config, args.budgets, args.seeds, args.num_samples = "dcgan_mnist", [2, 4], [0], 64
        overrides.update(ngf=4, ndf=4, latent_dim=8, standing_batches=2, standing_batch_size=16)
        args.batch_size = 16
    runs = []
    for seed in args.seeds:
        runs.append(run(args.config, seed, args.budgets, overrides, args.batch_size, args.num_samples, args.threads))
        print(f"{args.config} seed {seed}: {runs[-1]['seconds']:.0f} s {runs[-1]['fid']}", flush=True)
    result = {"config": args.config, "overrides": overrides, "batch_size": args.batch_size, "runs": runs,
              "schedules": {k: {"decay": d, "start_fraction": s} for k, (d, s) in SCHEDULES.items()}}
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
