"""FID, KID, IS and precision/recall of generated samples in ``validate`` / ``test`` and, optionally, during fit.

Real images come from the datamodule's val (or test) split; each real batch is matched by as many generated
images, drawn from ``pl_module.evaluation_inputs(batch)`` (noise for unconditional models, the batch's labels for
conditional ones) through ``pl_module.generate`` (the EMA generator in eval mode). The generated noise is seeded
per batch, so two ``validate`` runs of one checkpoint give the same numbers, and the training RNG is untouched.

Every number is reported with its protocol: logged as ``<stage>/fid``, ``<stage>/kid_mean``, ... next to
``<stage>/fid_num_samples``, printed as one line, and written with the full protocol (extractor, feature size,
sample counts, split, KID subsets, generator step) to ``<run dir>/metrics/<stage>_step_<generator step>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from ..errors import ConfigError
from ..metrics.extractors import auto_feature_extractor, feature_extractor_for
from ..metrics.generative import GenerativeMetricSuite
from .samples import RunDirectoryCallback, run_dir

#: metrics logged under ``<stage>/<name>``.
LOGGED = ("fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall", "confident_rate",
          "class_balance_min")


def slice_batch(batch: dict[str, Any], n: int) -> dict[str, Any]:
    return {k: v[:n] if isinstance(v, (Tensor, list, tuple)) else v for k, v in batch.items()}


class GenerativeMetrics(RunDirectoryCallback):
    """Sample-quality metrics of a GAN against real held-out images (see the module docstring).

    Args:
        feature_extractor: ``auto`` (the datamodule's ``feature_extractor_hint``, else the shipped classifier for
            MNIST / Fashion-MNIST datamodules, else ``inception``), ``mnist_classifier``,
            ``fashion_mnist_classifier`` or ``inception``.
        num_samples: real images used (the whole split when it is smaller) and as many generated ones; 0 turns the
            metrics off. Across DDP ranks the budget is split evenly (every rank scores the same number of images,
            rounding down) and the states are synced.
        every_n_generator_steps: also compute them during fit on the val split every this many generator steps and
            at the end of training (0: only in ``validate`` / ``test``).
        kid_subsets: random subsets KID averages over.
        kid_subset_size: samples per KID subset (capped at the number of samples).
        is_splits: splits for the Inception Score's mean and std.
        precision_recall_k: k of the k-NN manifolds of precision/recall (0: off).
        seed: seed of the generated samples' noise.
        inception_weights: path of the Inception weights file (default: torch hub cache).
        allow_download: let an explicitly chosen ``inception`` download its weights when missing (``auto`` never
            downloads: it skips the metrics with one line saying where to put the file).
        raw_generator: for a model with an EMA generator, also measure the raw (trained, not averaged) generator on
            the same noise and real images, logged as ``<stage>/<metric>_raw`` (``<stage>/fid`` is the EMA's, the
            sampling path ``predict``/``sample``/export use).
    """

    def __init__(
        self,
        feature_extractor: str = "auto",
        num_samples: int = 10000,
        every_n_generator_steps: int = 0,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        precision_recall_k: int = 3,
        seed: int = 0,
        inception_weights: str | None = None,
        allow_download: bool = True,
        raw_generator: bool = True,
    ):
        for name, value in (("num_samples", num_samples), ("every_n_generator_steps", every_n_generator_steps),
                            ("precision_recall_k", precision_recall_k)):  # fmt: skip
            if value < 0:
                raise ConfigError(f"metrics.{name} must be >= 0, got {value}")
        for name, value in (("kid_subsets", kid_subsets), ("kid_subset_size", kid_subset_size),
                            ("is_splits", is_splits)):  # fmt: skip
            if value < 1:
                raise ConfigError(f"metrics.{name} must be >= 1, got {value}")
        self.feature_extractor = feature_extractor
        self.num_samples = num_samples
        self.every = every_n_generator_steps
        self.suite_kwargs = dict(kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, is_splits=is_splits,
                                 precision_recall_k=precision_recall_k)  # fmt: skip
        self.seed = seed
        self.extractor_kwargs = {"weights_path": inception_weights, "allow_download": allow_download}
        self.suite: GenerativeMetricSuite | None = None
        self.raw_generator = raw_generator
        self.raw_suite: GenerativeMetricSuite | None = None
        self.last_results: dict[str, Any] | None = None
        self._disabled_reason: str | None = None
        self._budget = self._seen = 0
        self._last_step = -1
        self._active = False

    # ------------------------------------------------------------------------------------------------------------
    def extractor_name(self, trainer: L.Trainer) -> str:
        name = self.feature_extractor
        return auto_feature_extractor(trainer.datamodule) if name == "auto" else name

    def _get_suite(self, trainer: L.Trainer, pl_module: Any) -> GenerativeMetricSuite | None:
        """The suite on the module's device, built on first use (so runs without images never load a network)."""
        if self._disabled_reason:
            return None
        if self.suite is None:
            name = self.extractor_name(trainer)
            auto = self.feature_extractor == "auto"
            # an automatically chosen Inception never downloads: no surprise network use from a default
            kwargs = {**self.extractor_kwargs, "allow_download": self.extractor_kwargs["allow_download"] and not auto}
            try:
                extractor = feature_extractor_for(name, trainer.datamodule, **kwargs)
            except ConfigError as err:
                if not auto:
                    raise
                self._disabled_reason = str(err)  # auto-chosen Inception offline: say why, do not fail validate
                rank_zero_warn(f"FID/KID/IS skipped: {err}; or choose --metrics.feature_extractor inception to "
                               "download it")  # fmt: skip
                return None
            self.suite = GenerativeMetricSuite(extractor, **self.suite_kwargs)
            self.raw_suite = GenerativeMetricSuite(extractor, **self.suite_kwargs)  # shares the extractor
        return self.suite.to(pl_module.device)

    def _compares_raw(self, pl_module: Any) -> bool:
        return self.raw_generator and getattr(pl_module, "generator_ema", None) is not None

    def _start(self, trainer: L.Trainer, pl_module: Any) -> bool:
        if self.num_samples == 0 or self._disabled_reason:
            return False
        if self._get_suite(trainer, pl_module) is None:  # built on every rank: compute() syncs over all of them
            return False
        self.suite.reset()
        self.raw_suite.reset()
        # the same number of samples on every rank: torchmetrics' sync of concatenated states (KID, IS, precision /
        # recall) breaks on unequal shards (gloo aborts with "Received data size doesn't match expected size")
        self._budget = self.num_samples // trainer.world_size
        self._seen = 0
        self._active = True
        return True

    @torch.no_grad()
    def _update(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if not self._active or self._seen >= self._budget:
            return
        real = batch.get("image") if isinstance(batch, dict) else None
        if real is None:
            self._active = False
            rank_zero_warn("FID/KID/IS skipped: the batches have no 'image' entry to compare generated images with")
            return
        suite = self._get_suite(trainer, pl_module)
        if suite is None:
            self._active = False
            return
        n = min(self._budget - self._seen, len(real))
        batch = slice_batch(batch, n)
        device = pl_module.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
            torch.manual_seed(self.seed + 100_003 * trainer.global_rank + batch_idx)
            inputs = pl_module.evaluation_inputs(batch)
            fake = pl_module.generate(inputs)
            raw = pl_module.generate(inputs, use_ema=False) if self._compares_raw(pl_module) else None
        suite.update(batch["image"].float(), real=True)
        suite.update(fake, real=False)
        if raw is not None:
            raw_suite = self.raw_suite.to(device)
            raw_suite.update(batch["image"].float(), real=True)
            raw_suite.update(raw, real=False)
        self._seen += n

    def _finish(self, trainer: L.Trainer, pl_module: Any, stage: str, log_now: bool) -> dict[str, Any] | None:
        if not self._active or self.suite is None:
            self._active = False
            return None
        self._active = False
        try:
            results = self.suite.compute()
            if self._compares_raw(pl_module):
                raw = self.raw_suite.compute()
                results.update({f"{k}_raw": raw[k] for k in LOGGED if k in raw})
        except ValueError as err:
            rank_zero_warn(f"FID/KID/IS skipped: {err}")
            return None
        step = int(getattr(pl_module, "generator_steps", 0))
        protocol = {
            **self.suite.settings,
            "num_real": results["num_real"],
            "num_generated": results["num_fake"],
            "kid_subset_size": results["kid_subset_size"],
            "real_split": stage,
            "datamodule": type(trainer.datamodule).__name__ if trainer.datamodule is not None else None,
            "generator": "ema" if getattr(pl_module, "generator_ema", None) is not None else "generator",
            "seed": self.seed,
            "generator_steps": step,
        }
        metrics = {f"{stage}/{k}": float(results[k]) for k in (*LOGGED, *(f"{k}_raw" for k in LOGGED)) if k in results}
        metrics[f"{stage}/fid_num_samples"] = float(results["num_fake"])
        if log_now:  # inside a validate/test epoch: Lightning's logging (progress table, checkpoint monitors)
            for key, value in metrics.items():
                pl_module.log(key, value, on_epoch=True, sync_dist=False)  # already synced by torchmetrics
        elif trainer.is_global_zero:  # during fit: straight to the loggers, keyed by generator step
            for logger in trainer.loggers:
                logger.log_metrics({**metrics, "generator_step": float(step)}, step=step)
        self.last_results = {"stage": stage, "results": results, "protocol": protocol}
        if trainer.is_global_zero:
            path = self._write_json(trainer, stage, step)
            rank_zero_info(self.summary(stage, results, protocol) + f"; written to {path}")
        return self.last_results

    def _write_json(self, trainer: L.Trainer, stage: str, step: int) -> Path:
        out = run_dir(trainer) / "metrics" / f"{stage}_step_{step:07d}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.last_results, indent=2) + "\n")
        return out

    @staticmethod
    def summary(stage: str, results: dict[str, Any], protocol: dict[str, Any]) -> str:
        parts = [f"FID {results['fid']:.3f}", f"KID {results['kid_mean']:.5f} ± {results['kid_std']:.5f}"]
        if "is_mean" in results:
            parts.append(f"IS {results['is_mean']:.3f} ± {results['is_std']:.3f}")
        if "precision" in results:
            parts.append(f"precision {results['precision']:.3f} recall {results['recall']:.3f}")
        if "confident_rate" in results:
            parts.append(f"confident {100 * results['confident_rate']:.1f}% smallest class "
                         f"{100 * results['class_balance_min']:.1f}%")
        if "fid_raw" in results:
            parts.append(f"raw generator (no EMA): FID {results['fid_raw']:.3f}")
        return (
            f"{stage} {', '.join(parts)} ({protocol['num_real']} real {stage} images vs {protocol['num_generated']} "
            f"generated by the {protocol['generator']} at generator step {protocol['generator_steps']}; features: "
            f"{protocol['feature_extractor']} ({protocol['feature_dim']}-d); KID {protocol['kid_subsets']} subsets of "
            f"{protocol['kid_subset_size']})"
        )

    # ------------------------------------------------------------------------------------------------------------
    # validate / test: real images from the loop's own (DDP-sharded) batches
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == "validate" and not trainer.sanity_checking:
            self._start(trainer, pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._active and dataloader_idx == 0 and trainer.state.fn == "validate":
            self._update(trainer, pl_module, batch, batch_idx)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "validate":
            self._finish(trainer, pl_module, "val", log_now=True)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(trainer, pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self._active and dataloader_idx == 0:
            self._update(trainer, pl_module, batch, batch_idx)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module, "test", log_now=True)

    # ------------------------------------------------------------------------------------------------------------
    # fit: every N generator steps, on the datamodule's val split (batches sharded over ranks by index)
    def evaluate_during_fit(self, trainer: L.Trainer, pl_module: Any) -> dict[str, Any] | None:
        self._last_step = pl_module.generator_steps
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "val_dataloader"):
            rank_zero_warn("FID/KID/IS during fit need a datamodule with a val split; skipped")
            self.every = 0
            return None
        if not self._start(trainer, pl_module):
            return None
        world, rank = trainer.world_size, trainer.global_rank
        loader = datamodule.val_dataloader()
        if world > 1:  # batches are dealt round-robin: cap every rank at what the least-served rank gets
            size, total = loader.batch_size, len(loader.dataset)
            shares = [sum(min(size, total - i * size) for i in range(r, len(loader), world)) for r in range(world)]
            self._budget = min(self._budget, min(shares))
        for i, batch in enumerate(loader):
            if self._seen >= self._budget or not self._active:
                break
            if i % world == rank:
                self._update(trainer, pl_module, trainer.strategy.batch_to_device(batch), i)
        return self._finish(trainer, pl_module, "val", log_now=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = getattr(pl_module, "generator_steps", 0)
        if self.every and step > 0 and step % self.every == 0 and step != self._last_step:
            self.evaluate_during_fit(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.every and getattr(pl_module, "generator_steps", 0) != self._last_step:
            self.evaluate_during_fit(trainer, pl_module)
