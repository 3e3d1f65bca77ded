"""Sample quality of every model against plain-PyTorch reference loops, over seeds, on offline real data.

    python benchmarks/quality.py                      # GPU: each config's own budget, 3 seeds, 10,000 eval samples
    python benchmarks/quality.py --quick              # CPU: the reduced budgets of QUICK below, 5,000 eval samples
    python benchmarks/quality.py --quick --resume     # continue a killed run (skips the runs in OUT/quality.json)
    python benchmarks/quality.py --tiny --out /tmp/q  # seconds per row: a smoke test of the whole pipeline
    python benchmarks/quality.py --quick --raw-generator-fid  # also the FID of each module's trained G (no EMA)

Each of the nine models is built from its config (``configs/*.yaml``, through the project's ``GANCLI``, so the
config is the source of every hyperparameter; a preset only changes the run length in generator steps and, for CPU
runs, widths and batch sizes) and trained on offline data: Fashion-MNIST from Debian's ``dataset-fashion-mnist``,
the embedded MNIST, and the offline translation tasks. Three plain-PyTorch loops written below (no Lightning, no
``AdversarialModule``) train the same DCGAN nets as references on the same data tensors, in the same order, for the
same number of generator steps: ``dcgan_reference`` (Fashion-MNIST) and ``dcgan_reference_mnist`` (embedded MNIST,
the MLP GAN's comparison) with DCGAN's non-saturating loss, and ``wgan_gp_reference`` with an inline gradient
penalty.

Measurements (held-out data only):

- unconditional rows and references: FID, KID, IS and precision/recall on the features of the shipped domain
  classifier (``fashion_mnist_classifier`` / ``mnist_classifier``), generated images vs the datamodule's test split
  (as many real images as generated ones; image ``i`` is drawn from noise seed ``EVAL_SEED + i``, the path of
  ``gan-modules predict``; our modules sample from their EMA generator in eval mode).
- cgan: the same metrics on class-balanced samples, and the class accuracy of equal numbers of samples per class
  (the shipped classifier's prediction vs the requested class), next to the classifier's accuracy on real test
  images (its ceiling).
- pix2pix / cyclegan / stargan: ``benchmarks/translation_quality.py``'s scores (classifier accuracy of outputs and
  L1 to the truth; target-class rates both ways; colour/inversion accuracy and L1 to the rendered truth).

Targets (judged on the mean over seeds; a missed target is reported, never tuned away): every unconditional model's
FID at most its reference's at equal budget; CGAN class accuracy >= 95%; translated-class accuracy >= 90%.

Writes ``OUT/quality.json`` (settings, every run, aggregates) and ``OUT/RESULTS.md`` (the table with mean ± std over
seeds and a target cell per row, the command, hardware, budgets, wall time) after every run, so a killed run keeps
what it finished, and a sample grid per row to ``OUT/grids/<row>.png`` after its first seed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader
from torchvision.utils import make_grid, save_image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datamodules import ImageDataModule
from datamodules.base import collate
from gan_modules.base import AdversarialModule
from gan_modules.cli import GANCLI
from gan_modules.metrics import GenerativeMetricSuite, get_feature_extractor
from gan_modules.nets import DCGANDiscriminator, DCGANGenerator
from gan_modules.sample import generate_images
from gan_modules.translation import inference_mode


def _load_translation_quality():
    spec = importlib.util.spec_from_file_location(
        "bench_translation_quality", Path(__file__).with_name("translation_quality.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


translation = _load_translation_quality()  # classifier, pix2pix_scores, cyclegan_scores, stargan_scores

#: noise of generated image ``i`` comes from seed ``EVAL_SEED + i`` (the same z for a module and its reference).
EVAL_SEED = 1_000_000
#: mode of the references' BatchNorm layers when they sample: ``eval`` (running statistics) is what
#: ``AdversarialModule.generate`` uses; ``train`` normalizes with the statistics of each generated batch.
REFERENCE_SAMPLING_MODE = "eval"
#: images per forward pass in evaluation.
EVAL_BATCH = 500
#: where the MNIST-colours task (StarGAN) is rendered once.
CACHE_DIR = ROOT / "runs" / "benchmarks"


# ------------------------------------------------------------------------------------------------------ the rows
class Row(NamedTuple):
    """One line of the table.

    Attributes:
        name: row name (``--models``).
        kind: ``generative``, ``conditional``, ``pix2pix``, ``cyclegan``, ``stargan`` or ``reference``.
        config: ``configs/<config>.yaml`` of a module row.
        extractor: feature extractor of FID/KID/IS (generative, conditional and reference rows).
        compare_to: the reference row whose mean FID this row's mean FID must not exceed.
        thresholds: ``(metric, minimum, label, ceiling metric or None)``: targets on task metrics.
        algorithm: reference rows: ``dcgan`` or ``wgan_gp``.
        nets_from: reference rows: the row whose config (and preset widths) give the nets and the optimizer.
        data_from: reference rows: the row whose datamodule, batch size and generator-step budget it shares.
    """

    name: str
    kind: str
    config: str | None = None
    extractor: str | None = None
    compare_to: str | None = None
    thresholds: tuple[tuple[str, float, str, str | None], ...] = ()
    algorithm: str | None = None
    nets_from: str | None = None
    data_from: str | None = None


FASHION, MNIST = "fashion_mnist_classifier", "mnist_classifier"
ROWS: dict[str, Row] = {r.name: r for r in [
    Row("gan", "generative", "gan_mnist", MNIST, compare_to="dcgan_reference_mnist"),
    Row("dcgan", "generative", "dcgan_fashion_mnist", FASHION, compare_to="dcgan_reference"),
    Row("cgan", "conditional", "cgan_fashion_mnist", FASHION,
        thresholds=(("class_accuracy", 0.95, "class acc", "class_accuracy_real"),)),
    Row("wgan", "generative", "wgan_fashion_mnist", FASHION, compare_to="dcgan_reference"),
    Row("wgan_gp", "generative", "wgan_gp_fashion_mnist", FASHION, compare_to="wgan_gp_reference"),
    Row("sngan", "generative", "sngan_fashion_mnist", FASHION, compare_to="dcgan_reference"),
    Row("pix2pix", "pix2pix", "pix2pix_fashion_edges",
        thresholds=(("classifier_acc_outputs", 0.90, "class acc of outputs", "classifier_acc_real"),)),
    Row("cyclegan", "cyclegan", "cyclegan_fashion_sneaker_boot",
        thresholds=(("a2b_target_rate", 0.90, "sneaker→boot", None), ("b2a_target_rate", 0.90, "boot→sneaker", None))),
    Row("stargan", "stargan", "stargan_mnist_colors", thresholds=(("colour_accuracy", 0.90, "colour acc", None),)),
    Row("dcgan_reference", "reference", extractor=FASHION, algorithm="dcgan", nets_from="dcgan", data_from="dcgan"),
    Row("dcgan_reference_mnist", "reference", extractor=MNIST, algorithm="dcgan", nets_from="dcgan", data_from="gan"),
    Row("wgan_gp_reference", "reference", extractor=FASHION, algorithm="wgan_gp", nets_from="wgan_gp",
        data_from="wgan_gp"),
]}  # fmt: skip

# ---------------------------------------------------------------------------------------------------- budgets
# Per module row: CLI overrides (dotted keys after ``--``). ``model.init_args.max_generator_steps`` is the budget in
# generator steps; rows not listed, or without it, keep their config's values. Reference rows follow their
# ``nets_from`` row's widths and their ``data_from`` row's batch size and budget, so they never differ from the
# module they are compared with.
STEPS, NGF, NDF, BATCH = ("model.init_args.max_generator_steps", "model.init_args.ngf", "model.init_args.ndf",
                          "data.init_args.batch_size")  # fmt: skip

#: GPU: every config as it is (its own max_generator_steps, widths and batch size).
FULL: dict[str, dict[str, Any]] = {}

#: CPU (``--quick``): all 12 rows x 3 seeds, training and evaluation, in about 45 minutes on 2 cores with 2 threads.
#: Measured there, in s per generator step at these widths (batch 64 unless said): gan 0.10, DCGAN nets 0.06 (cgan
#: 0.075; a WGAN critic step 0.031, and WGAN's first 25 generator steps take 100 critic steps each), wgan_gp 0.32,
#: sngan 0.86, pix2pix 0.22 (batch 16), cyclegan 0.50 (batch 8), stargan 0.70 (batch 16); evaluation of 5,000
#: samples ~10 s. The Fashion-MNIST DCGAN-family nets run at width 16 (the configs' 64 would take ~10x longer),
#: pix2pix at 32; the MLP GAN keeps its config's widths. Scores after so few steps rank the implementations at an
#: equal budget; they are not the models' converged quality (the full preset is).
QUICK: dict[str, dict[str, Any]] = {
    "gan": {STEPS: 1000},
    "dcgan": {STEPS: 800, NGF: 16, NDF: 16, BATCH: 64},
    "cgan": {STEPS: 800, NGF: 16, NDF: 16},
    "wgan": {STEPS: 300, NGF: 16, NDF: 16},
    "wgan_gp": {STEPS: 150, NGF: 16, NDF: 16},
    "sngan": {STEPS: 100, NGF: 16, NDF: 16},
    "pix2pix": {STEPS: 300, NGF: 32, NDF: 32},
    "cyclegan": {STEPS: 150, NGF: 16, NDF: 16},
    "stargan": {STEPS: 100, NGF: 16, NDF: 16},
}

_TINY_DCGAN = {STEPS: 3, NGF: 4, NDF: 4, BATCH: 8}
#: seconds per row (``--tiny``): a handful of steps of tiny nets, for tests of this script.
TINY: dict[str, dict[str, Any]] = {
    "gan": {STEPS: 3, BATCH: 8, "model.init_args.g_hidden": [16, 16], "model.init_args.d_hidden": [16, 16]},
    "dcgan": _TINY_DCGAN,
    "cgan": _TINY_DCGAN,
    "wgan": {**_TINY_DCGAN, "model.init_args.warmup_critic_steps": 2},
    "wgan_gp": {**_TINY_DCGAN, "model.init_args.n_critic": 2},
    "sngan": {**_TINY_DCGAN, "model.init_args.n_critic": 2},
    "pix2pix": {**_TINY_DCGAN, "data.init_args.max_test": 32},
    "cyclegan": {**_TINY_DCGAN, "model.init_args.n_residual_blocks": 1, "data.init_args.max_test": 16},
    "stargan": {
        **_TINY_DCGAN,
        "model.init_args.n_residual_blocks": 1,
        "model.init_args.repeat_num": 1,
        "model.init_args.n_critic": 2,
        "data.init_args.num_test": 8,
    },
}
PRESETS = {"full": (FULL, 10000), "quick": (QUICK, 5000), "tiny": (TINY, 64)}  # overrides, eval samples


# ------------------------------------------------------------------------------------------------- building
def cli_args(row: Row, overrides: dict[str, Any], seed: int, cache_dir: Path) -> list[str]:
    """``GANCLI`` arguments of a module row: its config, the seed (weights and data order) and the preset."""
    args = ["--config", str(ROOT / "configs" / f"{row.config}.yaml"), "--seed_everything", str(seed),
            "--data.init_args.seed", str(seed), "--trainer.logger", "false"]  # fmt: skip
    if row.kind == "stargan":  # the rendered task is written once; keep it out of the working directory
        args += ["--data.init_args.cache_dir", str(cache_dir / "mnist_colors")]
    for key, value in overrides.items():
        args.append(f"--{key}={json.dumps(value) if isinstance(value, (list, dict)) else value}")
    return args


def build(row: Row, overrides: dict[str, Any], seed: int, cache_dir: Path) -> tuple[AdversarialModule, Any]:
    """The model and datamodule of a module row, exactly as ``gan-modules fit --config`` would build them."""
    cli = GANCLI(
        AdversarialModule,
        ImageDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        run=False,
        args=cli_args(row, overrides, seed, cache_dir),
    )
    return cli.model, cli.datamodule


def adam_options(model: AdversarialModule, index: int) -> dict[str, Any]:
    """lr and betas of the config's G (0) or D (1) optimizer, which must be Adam (the references use Adam)."""
    factory = model._optimizer_factories[index]
    if factory is None:
        options = dict(model.default_optimizer)
        name = options.pop("name")
    else:
        cls = next((a for a in getattr(factory, "args", ()) if isinstance(a, type)), getattr(factory, "func", None))
        name, options = getattr(cls, "__name__", str(cls)), dict(getattr(factory, "keywords", {}))
    if name != "Adam":
        raise SystemExit(f"quality.py: the reference loops use Adam, but the config's optimizer is {name}")
    return {"lr": float(options.get("lr", 1e-3)), "betas": tuple(options.get("betas", (0.9, 0.999)))}


def budget_of(model: AdversarialModule, dm: Any) -> dict[str, Any]:
    hp = model.hparams
    widths = {k: (list(hp[k]) if isinstance(hp[k], (list, tuple)) else hp[k])
              for k in ("ngf", "ndf", "g_hidden", "d_hidden") if k in hp}  # fmt: skip
    return {"generator_steps": hp.max_generator_steps, "batch_size": dm.batch_size, **widths}


# -------------------------------------------------------------------------------------------------- training
def quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*LightningCLI's args parameter is intended.*")  # args= and sys.argv
    warnings.filterwarnings("ignore", ".*will save all extracted features in buffer.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def train_module(model: AdversarialModule, dm: Any, device: torch.device) -> float:
    """Fits with a quiet Trainer (no logger, checkpoints or validation); returns the wall time in seconds."""
    with tempfile.TemporaryDirectory(prefix="quality_") as tmp:
        trainer = L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_epochs=-1,
                            precision="32-true", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                            default_root_dir=tmp)  # fmt: skip
        start = time.perf_counter()
        trainer.fit(model, dm)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def epochs(loader: DataLoader):
    """Batches of ``loader`` epoch after epoch, calling ``sampler.set_epoch`` as Lightning does (same order)."""
    epoch = 0
    while True:
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def train_dcgan_reference(
    g: torch.nn.Module,
    d: torch.nn.Module,
    loader: DataLoader,
    steps: int,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    latent_dim: int,
    device: torch.device,
) -> int:
    """DCGAN (Radford et al. 2016) in plain PyTorch: per batch one D step on BCE(D(x), 1) + BCE(D(G(z)), 0), then one
    G step on BCE(D(G(z')), 1) with fresh noise (non-saturating). Returns the generator steps done."""
    done = 0
    for batch in epochs(loader):
        real = batch["image"].to(device, non_blocking=True)
        n = real.shape[0]
        with torch.no_grad():
            fake = g(torch.randn(n, latent_dim, device=device))  # G in train mode: its BatchNorm statistics update
        d_real, d_fake = d(real), d(fake)
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))  # fmt: skip
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        d_gen = d(g(torch.randn(n, latent_dim, device=device)))
        loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))  # -log σ(D(G(z)))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()  # also fills D's gradients, which the next zero_grad of opt_d discards
        opt_g.step()
        done += 1
        if done >= steps:
            return done
    return done


def train_wgan_gp_reference(
    g: torch.nn.Module,
    d: torch.nn.Module,
    loader: DataLoader,
    steps: int,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    latent_dim: int,
    device: torch.device,
    n_critic: int,
    lam: float,
) -> int:
    """WGAN-GP (Gulrajani et al. 2017, Algorithm 1) in plain PyTorch: per batch one critic step on
    D(G(z)) - D(x) + λ(‖∇D(x̂)‖₂ - 1)² with x̂ = εx + (1 - ε)G(z), one ε per sample; a G step on -D(G(z')) after
    every ``n_critic`` critic steps. Returns the generator steps done."""
    done = critic = 0
    for batch in epochs(loader):
        real = batch["image"].to(device, non_blocking=True)
        n = real.shape[0]
        with torch.no_grad():
            fake = g(torch.randn(n, latent_dim, device=device))
        eps = torch.rand(n, 1, 1, 1, device=device)  # one interpolation weight per sample
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
        penalty = (grad.flatten(1).norm(2, dim=1) - 1).square().mean()
        loss_d = d(fake).mean() - d(real).mean() + lam * penalty
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        critic += 1
        if critic < n_critic:
            continue
        critic = 0
        loss_g = -d(g(torch.randn(n, latent_dim, device=device))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        done += 1
        if done >= steps:
            return done
    return done


class Reference(NamedTuple):
    """A trained reference: its raw generator and what sampling needs."""

    generator: torch.nn.Module
    latent_dim: int
    generator_steps: int
    train_seconds: float
    budget: dict[str, Any]


def train_reference(
    row: Row, presets: dict[str, dict[str, Any]], seed: int, cache_dir: Path, device: torch.device
) -> tuple[Reference, Any]:
    """Builds the ``nets_from`` row's model (for its hyperparameters) and the ``data_from`` row's datamodule, then
    trains the same nets with the plain loop; the data order is the module's (same sampler, same seed)."""
    nets_model, _ = build(ROWS[row.nets_from], presets.get(row.nets_from, {}), seed, cache_dir)
    data_model, dm = build(ROWS[row.data_from], presets.get(row.data_from, {}), seed, cache_dir)
    hp, steps = nets_model.hparams, data_model.hparams.max_generator_steps
    if row.algorithm == "dcgan" and (hp.loss != "non_saturating" or hp.n_critic != 1):
        raise SystemExit(
            f"quality.py: {row.name} reproduces DCGAN (non_saturating, n_critic 1), but the "
            f"{row.nets_from} config has loss {hp.loss} and n_critic {hp.n_critic}"
        )
    if row.algorithm == "wgan_gp" and (hp.loss != "wasserstein" or hp.penalty != "gradient_penalty"):
        raise SystemExit(
            f"quality.py: {row.name} reproduces WGAN-GP, but the {row.nets_from} config has loss "
            f"{hp.loss} and penalty {hp.penalty}"
        )
    torch.manual_seed(seed)
    g = DCGANGenerator(hp.latent_dim, dm.channels, dm.image_size, hp.ngf, hp.g_norm).to(device)
    d = DCGANDiscriminator(dm.channels, dm.image_size, hp.ndf, hp.d_norm).to(device)
    opt_g = torch.optim.Adam(g.parameters(), **adam_options(nets_model, 0))
    opt_d = torch.optim.Adam(d.parameters(), **adam_options(nets_model, 1))
    dm.setup("fit")
    loader = dm.train_dataloader()
    g.train()
    d.train()
    start = time.perf_counter()
    if row.algorithm == "dcgan":
        done = train_dcgan_reference(g, d, loader, steps, opt_g, opt_d, hp.latent_dim, device)
    else:
        done = train_wgan_gp_reference(
            g, d, loader, steps, opt_g, opt_d, hp.latent_dim, device, hp.n_critic, hp.penalty_weight
        )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    budget = {"generator_steps": steps, "batch_size": dm.batch_size, "ngf": hp.ngf, "ndf": hp.ndf,
              "g_norm": hp.g_norm, "d_norm": hp.d_norm, **adam_options(nets_model, 0)}  # fmt: skip
    budget["betas"] = list(budget["betas"])
    return Reference(g, hp.latent_dim, done, seconds, budget), dm


# ------------------------------------------------------------------------------------------------ evaluation
def eval_noise(n: int, latent_dim: int) -> Tensor:
    """z of image ``i`` from seed ``EVAL_SEED + i``, as ``AdversarialModule.predict_step`` draws it."""
    return torch.cat([torch.randn(1, latent_dim, generator=torch.Generator().manual_seed(EVAL_SEED + i))
                      for i in range(n)])  # fmt: skip


@torch.no_grad()
def reference_images(ref: Reference, n: int, device: torch.device, mode: str) -> Tensor:
    z = eval_noise(n, ref.latent_dim)
    with inference_mode(ref.generator, mode) as g:  # buffers restored afterwards in "train" mode
        return torch.cat([g(b.to(device)).float().clamp(-1, 1).cpu() for b in z.split(EVAL_BATCH)])


def real_test_images(dm: Any, n: int) -> tuple[Tensor, Tensor | None]:
    """The first ``n`` images (and labels) of the datamodule's test split."""
    loader = DataLoader(dm.dataset("test"), batch_size=EVAL_BATCH, shuffle=False, collate_fn=collate)
    images, labels, seen = [], [], 0
    for batch in loader:
        images.append(batch["image"])
        if "label" in batch:
            labels.append(batch["label"])
        seen += len(batch["image"])
        if seen >= n:
            break
    return torch.cat(images)[:n], (torch.cat(labels)[:n] if labels else None)


def finite(value: Any) -> Any:
    """JSON-safe numbers: inf/NaN (FID of too few samples) become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@torch.no_grad()
def generative_scores(extractor: Any, real: Tensor, fake: Tensor, device: torch.device) -> dict[str, Any]:
    suite = GenerativeMetricSuite(extractor).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for b in images.split(EVAL_BATCH):
            suite.update(b.to(device), real=is_real)
    scores = suite.compute()
    suite.extractor.cpu()
    return {k: finite(v) for k, v in scores.items()}


@torch.no_grad()
def classify(extractor: Any, images: Tensor, device: torch.device) -> Tensor:
    return torch.cat([extractor(b.to(device))[1].argmax(1).cpu() for b in images.split(EVAL_BATCH)])


@torch.no_grad()
def conditional_scores(
    model: Any, extractor: Any, real: Tensor, real_labels: Tensor, n: int, device: torch.device
) -> dict[str, Any]:
    """Class accuracy of ``n // K`` samples of every class K (the classifier's class vs the requested one) and the
    classifier's accuracy on the real test images."""
    k = model.hparams.num_classes
    inputs = model.class_inputs(max(1, n // k), seed=EVAL_SEED)
    chunks = zip(*(v.split(EVAL_BATCH) for v in inputs.values()))
    images = torch.cat([model.generate(dict(zip(inputs, c))).cpu() for c in chunks])
    predicted, requested = classify(extractor.to(device), images, device), inputs["y"].cpu()
    real_hits = classify(extractor, real, device).eq(real_labels)
    extractor.cpu()
    hits = predicted.eq(requested).float()
    return {"class_accuracy": hits.mean().item(), "class_accuracy_real": real_hits.float().mean().item(),
            "per_class_accuracy": [hits[requested == c].mean().item() for c in range(k)],
            "class_accuracy_samples": len(hits)}  # fmt: skip


@contextlib.contextmanager
def raw_generator(model: AdversarialModule):
    """Inside, the model samples from its trained G instead of the EMA copy (same inputs, same code path)."""
    ema, model.generator_ema = model.generator_ema, None
    try:
        yield model
    finally:
        model.generator_ema = ema


def save_grid(images: Tensor, nrow: int, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid((images.detach().float().cpu() + 1) / 2, nrow=nrow, padding=2, pad_value=1.0), path)


# ------------------------------------------------------------------------------------------------ one run
class Evaluator:
    """Loads the feature extractors and the translation ruler once, on first use."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir
        self._extractors: dict[str, Any] = {}
        self._ruler: Any = None

    def extractor(self, name: str) -> Any:
        if name not in self._extractors:
            self._extractors[name] = get_feature_extractor(name)
        return self._extractors[name]

    def ruler(self) -> Any:
        if self._ruler is None:
            self._ruler = translation.classifier()
        return self._ruler


def run_one(
    row: Row,
    presets: dict[str, dict[str, Any]],
    seed: int,
    n_eval: int,
    device: torch.device,
    evaluator: Evaluator,
    grid: Path | None,
    reference_mode: str,
    raw_generator_fid: bool = False,
) -> dict[str, Any]:
    """Trains and evaluates one (row, seed); writes the grid to ``grid`` when given. With ``raw_generator_fid``, a
    module with an EMA generator also gets ``fid_raw_g``: the FID of its trained G on the same noise (a diagnostic;
    the targets use the EMA samples, the module's own sampling path)."""
    if row.kind == "reference":
        ref, dm = train_reference(row, presets, seed, evaluator.cache_dir, device)
        train_seconds, steps, budget = ref.train_seconds, ref.generator_steps, ref.budget
    else:
        model, dm = build(row, presets.get(row.name, {}), seed, evaluator.cache_dir)
        budget = budget_of(model, dm)
        train_seconds = train_module(model, dm, device)
        steps = model.generator_steps
        model = model.to(device).eval()
    start = time.perf_counter()
    if row.kind in ("generative", "conditional", "reference"):
        real, labels = real_test_images(dm, n_eval)
        n = len(real)  # the embedded MNIST holds out only 1,000 digits
        if row.kind == "reference":
            fake = reference_images(ref, n, device, reference_mode)
            if grid is not None:
                save_grid(reference_images(ref, 64, device, reference_mode), 8, grid)
        else:
            if grid is not None:
                images, nrow = model.sample_grid(80 if row.kind == "conditional" else 64)
                save_grid(images, nrow, grid)
            fake = generate_images(model, n, seed=EVAL_SEED, batch_size=EVAL_BATCH)
        extractor = evaluator.extractor(row.extractor)
        metrics = generative_scores(extractor, real, fake, device)
        if row.kind == "conditional":
            metrics.update(conditional_scores(model, extractor, real, labels, n, device))
        if raw_generator_fid and row.kind != "reference" and model.generator_ema is not None:
            with raw_generator(model):
                raw = generate_images(model, n, seed=EVAL_SEED, batch_size=EVAL_BATCH)
            metrics["fid_raw_g"] = generative_scores(extractor, real, raw, device)["fid"]
    else:
        model = model.cpu()  # translation_quality's scores run on CPU tensors
        if grid is not None:
            images, nrow = model.sample_grid()
            save_grid(images, nrow, grid)
        if row.kind == "pix2pix":
            metrics = translation.pix2pix_scores(model, dm, evaluator.ruler())
        elif row.kind == "cyclegan":
            metrics = translation.cyclegan_scores(model, dm, evaluator.ruler())
        else:
            metrics = translation.stargan_scores(model, dm)
    return {"row": row.name, "seed": seed, "generator_steps": steps, "budget": budget,
            "train_seconds": round(train_seconds, 2), "eval_seconds": round(time.perf_counter() - start, 2),
            "metrics": {k: finite(v) for k, v in metrics.items()}}  # fmt: skip


# ------------------------------------------------------------------------------------------------ aggregation
def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof 1; None with one value) of the finite values."""
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per row: mean ± std over its seeds of every scalar metric, the generator steps and the wall times."""
    out: dict[str, dict[str, Any]] = {}
    for name in ROWS:
        mine = [r for r in runs if r["row"] == name]
        if not mine:
            continue
        keys = [k for k in dict.fromkeys(k for r in mine for k in r["metrics"])  # every run's keys, in order
                if all(isinstance(r["metrics"].get(k), (int, float, type(None))) for r in mine)]  # fmt: skip
        out[name] = {
            "seeds": [r["seed"] for r in mine],
            "metrics": {k: mean_std([r["metrics"].get(k) for r in mine]) for k in keys},
            **{k: mean_std([r[k] for r in mine]) for k in ("generator_steps", "train_seconds", "eval_seconds")},
        }
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def target_cell(row: Row, aggregates: dict[str, dict[str, Any]]) -> str:
    """``met (...)`` / ``missed (...)`` for the row's target on the means over seeds, or why it is not judged."""
    if row.kind == "reference":
        return "reference"
    mine = aggregates.get(row.name, {}).get("metrics", {})
    if row.compare_to:
        fid = mine.get("fid", {}).get("mean")
        ref = aggregates.get(row.compare_to, {}).get("metrics", {}).get("fid", {}).get("mean")
        if fid is None:
            return "not judged (no finite FID)"
        if ref is None:
            return f"not judged ({row.compare_to} not run)"
        return f"met (FID {fid:.2f} ≤ ref {ref:.2f})" if fid <= ref else f"missed (FID {fid:.2f} > ref {ref:.2f})"
    parts, ok = [], True
    for metric, minimum, label, ceiling in row.thresholds:
        value = mine.get(metric, {}).get("mean")
        if value is None:
            return f"not judged (no {label})"
        met = value >= minimum
        ok &= met
        text = f"{label} {_pct(value)} {'≥' if met else '<'} {_pct(minimum)}"
        real = mine.get(ceiling, {}).get("mean") if ceiling else None
        if not met and real is not None:
            text += f"; real images: {_pct(real)}"
        parts.append(text)
    return f"{'met' if ok else 'missed'} ({', '.join(parts)})"


def fmt(agg: dict[str, Any] | None, digits: int = 2, percent: bool = False) -> str:
    """``mean ± std`` (``± n/a`` for one seed), ``—`` when there is no value."""
    if not agg or agg.get("mean") is None:
        return "—"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    std = "n/a" if agg.get("std") is None else f"{scale * agg['std']:.{digits}f}{unit}"
    return f"{scale * agg['mean']:.{digits}f}{unit} ± {std}"


#: the task-metric column: (metric, label, percent) per row kind.
TASK_METRICS = {
    "generative": [("precision", "precision", False), ("recall", "recall", False),
                   ("fid_raw_g", "FID of raw G", False)],
    "reference": [("precision", "precision", False), ("recall", "recall", False)],
    "conditional": [("class_accuracy", "class acc", True), ("class_accuracy_real", "classifier on real", True),
                    ("fid_raw_g", "FID of raw G", False)],
    "pix2pix": [("classifier_acc_outputs", "class acc of outputs", True),
                ("classifier_acc_real", "classifier on real", True), ("l1", "L1 to truth", False),
                ("l1_identity", "L1 identity", False)],
    "cyclegan": [("a2b_target_rate", "sneaker→boot", True), ("b2a_target_rate", "boot→sneaker", True),
                 ("cycle_l1_a", "cycle L1 A", False), ("cycle_l1_b", "cycle L1 B", False)],
    "stargan": [("colour_accuracy", "colour acc", True), ("inverted_accuracy", "inverted acc", True),
                ("l1_to_truth", "L1 to truth", False), ("l1_identity", "L1 identity", False)],
}  # fmt: skip


def table(aggregates: dict[str, dict[str, Any]]) -> str:
    lines = ["| row | config / data | G steps | FID ↓ | KID ↓ | IS ↑ | other metrics | train s | eval s | target |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in ROWS.values():
        agg = aggregates.get(row.name)
        if agg is None:
            continue
        m = agg["metrics"]
        source = (
            f"`{row.config}`"
            if row.config
            else f"plain PyTorch, nets of `{ROWS[row.nets_from].config}`, data of `{ROWS[row.data_from].config}`"
        )
        other = "; ".join(f"{label} {fmt(m.get(k), 1 if pct else 3, pct)}" for k, label, pct in TASK_METRICS[row.kind]
                          if k in m)  # fmt: skip
        steps = agg["generator_steps"]["mean"]
        lines.append(
            f"| {row.name} | {source} | {steps:.0f} | {fmt(m.get('fid'))} | {fmt(m.get('kid_mean'), 4)} | "
            f"{fmt(m.get('is_mean'))} | {other} | {fmt(agg['train_seconds'], 0)} | "
            f"{fmt(agg['eval_seconds'], 0)} | {target_cell(row, aggregates)} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ reports
def hardware() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__, "lightning": L.__version__}  # fmt: skip


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


HOW_TO_READ = (
    "Mean ± sample std over seeds (n/a: one seed). FID/KID/IS and precision/recall on the features of the shipped "
    "domain classifier (`fashion_mnist_classifier`, `mnist_classifier`) against the test split; translation rows use "
    "`benchmarks/translation_quality.py`'s scores (classes judged by the same shipped classifier). Targets are judged "
    "on the means: FID ≤ the reference's at equal budget (dcgan, wgan, sngan vs dcgan_reference; wgan_gp vs "
    "wgan_gp_reference; gan vs dcgan_reference_mnist), CGAN class accuracy ≥ 95%, translated-class accuracy ≥ 90%."
)


def results_markdown(report: dict[str, Any], out: Path) -> str:
    s, hw = report["settings"], report["settings"]["hardware"]
    device = f"{s['device']} ({hw['gpu']})" if hw["gpu"] and s["device"] == "cuda" else s["device"]
    budget_lines = ["| row | config | generator steps | batch | nets / options | overrides of the config |",
                    "|---|---|---|---|---|---|"]  # fmt: skip
    for name, b in sorted(s["budgets"].items(), key=lambda item: list(ROWS).index(item[0])):
        widths = ", ".join(f"{k} {v}" for k, v in b.items() if k not in ("generator_steps", "batch_size"))
        over = ", ".join(f"`{k}={v}`" for k, v in s["overrides"].get(name, {}).items()) or "none"
        cfg = ROWS[name].config or f"plain loop: nets of {ROWS[name].nets_from}, data of {ROWS[name].data_from}"
        budget_lines.append(f"| {name} | {cfg} | {b['generator_steps']} | {b['batch_size']} | {widths} | {over} |")
    grids = [
        f"**{name}**\n\n![{name}](grids/{name}.png)\n" for name in ROWS if (out / "grids" / f"{name}.png").exists()
    ]
    capped = ""
    if s["eval_samples"] > 1000 and any(ROWS[r].extractor == MNIST for r in s["budgets"]):
        capped = " (the embedded MNIST holds out only 1,000 digits, so its rows use 1,000)"
    hardware_line = (
        f"Hardware: {hw['cpu']} ({hw['cpu_cores']} cores, torch threads: {hw['torch_threads']}), device {device}; "
        f"torch {hw['torch']}, Lightning {hw['lightning']}, Python {hw['python']}."
    )
    done = {(r["row"], r["seed"]) for r in report["runs"]}
    planned = [(r, sd) for r in s["models"] for sd in s["seeds"]]
    missing = [f"{r} seed {sd}" for r, sd in planned if (r, sd) not in done]
    return "\n".join(
        [
            "# Sample quality: our modules vs plain PyTorch references",
            "",
            f"Command: `{s['command']}`" + "".join(f", resumed with `{c}`" for c in s.get("resumed_with", [])),
            "",
            hardware_line,
            "",
            f"Preset `{s['preset']}`, seeds {', '.join(map(str, s['seeds']))}, {s['eval_samples']} evaluation samples"
            f"{capped}; references sample in BatchNorm "
            f"`{s['reference_sampling_mode']}` mode from their raw G, our modules from their EMA G in eval mode"
            + (
                ' ("FID of raw G": their trained G on the same noise, a diagnostic). '
                if s.get("raw_generator_fid")
                else ". "
            )
            + f"Total wall time {s['elapsed_seconds'] / 60:.1f} min for {len(report['runs'])} runs"
            + (f" (not finished: {', '.join(missing)})." if missing else "."),
            "",
            HOW_TO_READ,
            "",
            table(report["aggregates"]),
            "",
            "## Budgets",
            "",
            *budget_lines,
            "",
            "## Sample grids (first seed)",
            "",
            *grids,
            "## How to reproduce",
            "",
            "```",
            "python benchmarks/quality.py             # GPU, each config's own budget, 3 seeds",
            "python benchmarks/quality.py --quick     # CPU budgets above, 3 seeds (--resume continues a killed run)",
            "python benchmarks/quality.py --tiny --out /tmp/quality   # smoke test, seconds per row",
            "```",
            "",
            "Per-run numbers (every metric, wall times, budgets) are in `quality.json` next to this file.",
            "",
        ]
    )


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="quality.py", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="CPU budgets (QUICK), 5,000 evaluation samples")
    mode.add_argument("--tiny", action="store_true", help="a few steps of tiny nets: a smoke test")
    p.add_argument(
        "--models",
        nargs="+",
        choices=list(ROWS),
        default=list(ROWS),
        metavar="ROW",
        help=f"rows to run (default all): {', '.join(ROWS)}",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="RESULTS.md, quality.json, grids/")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--eval-samples", type=int, default=None, help="generated (and real) images per evaluation")
    p.add_argument("--steps", type=int, default=None, help="override every row's generator steps (timing runs)")
    p.add_argument(
        "--reference-sampling-mode",
        choices=["eval", "train"],
        default=REFERENCE_SAMPLING_MODE,
        help="BatchNorm mode of the references' G when sampling (default: as our generate)",
    )
    p.add_argument(
        "--raw-generator-fid",
        action="store_true",
        help="also the FID of each module's trained G next to its EMA G (one more evaluation per run)",
    )
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="where the MNIST-colours task is rendered once")
    p.add_argument("--resume", action="store_true", help="keep OUT/quality.json's runs and skip them")
    args = p.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds repeats a seed: {args.seeds}")
    if args.eval_samples is not None and args.eval_samples < 2:
        p.error(f"--eval-samples must be at least 2 (FID needs two samples a side), got {args.eval_samples}")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be at least 1, got {args.steps}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda, but CUDA is not available here; use --device cpu (with --quick)")
    args.preset = "tiny" if args.tiny else "quick" if args.quick else "full"
    args.models = list(dict.fromkeys(args.models))
    args.parser = p
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    quiet()
    argv = sys.argv[1:] if argv is None else argv
    overrides_all, default_eval = PRESETS[args.preset]
    presets = {name: dict(overrides_all.get(name, {})) for name in ROWS if ROWS[name].kind != "reference"}
    if args.steps is not None:
        for o in presets.values():
            o[STEPS] = args.steps
    n_eval = args.eval_samples or default_eval
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")  # fmt: skip
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "quality.json"
    settings = {"command": shlex.join(["python", "benchmarks/quality.py", *argv]), "preset": args.preset,
                "models": args.models, "seeds": args.seeds, "eval_samples": n_eval, "steps_override": args.steps,
                "device": device.type, "reference_sampling_mode": args.reference_sampling_mode,
                "raw_generator_fid": args.raw_generator_fid, "eval_seed": EVAL_SEED, "hardware": hardware(),
                "elapsed_seconds": 0.0, "overrides": {k: v for k, v in presets.items() if v},
                "budgets": {}}  # fmt: skip
    runs: list[dict[str, Any]] = []
    if args.resume and json_path.exists():
        old = json.loads(json_path.read_text())
        o = old["settings"]
        same = (o["preset"], o["eval_samples"], o.get("steps_override")) == (args.preset, n_eval, args.steps)
        if not same:
            args.parser.error(f"--resume: {json_path} was written with preset {o['preset']}, {o['eval_samples']} "
                              f"eval samples and --steps {o.get('steps_override')}; use the same options or "
                              "another --out")  # fmt: skip
        runs = old["runs"]
        settings["resumed_with"] = [*o.get("resumed_with", []), settings["command"]]
        settings["command"] = o["command"]
        settings["elapsed_seconds"] = o.get("elapsed_seconds", 0.0)
        settings["budgets"] = o.get("budgets", {})
        settings["models"] = list(dict.fromkeys(o["models"] + args.models))
        settings["seeds"] = sorted(set(o["seeds"]) | set(args.seeds))
    report = {"settings": settings, "runs": runs, "aggregates": aggregate(runs)}
    evaluator = Evaluator(args.cache_dir)
    session_start, previous = time.perf_counter(), settings["elapsed_seconds"]

    def save() -> None:
        settings["elapsed_seconds"] = round(previous + time.perf_counter() - session_start, 1)
        report["aggregates"] = aggregate(runs)
        write_atomic(json_path, json.dumps(report, indent=1) + "\n")
        write_atomic(out / "RESULTS.md", results_markdown(report, out))

    done = {(r["row"], r["seed"]) for r in runs}
    for seed in args.seeds:  # seed-major: a killed run still has every row's first seed
        for name in args.models:
            if (name, seed) in done:
                continue
            grid = out / "grids" / f"{name}.png" if seed == args.seeds[0] else None
            result = run_one(
                ROWS[name],
                presets,
                seed,
                n_eval,
                device,
                evaluator,
                grid,
                args.reference_sampling_mode,
                args.raw_generator_fid,
            )
            runs.append(result)
            settings["budgets"][name] = result["budget"]
            save()
            m = result["metrics"]
            shown = {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}
            print(
                json.dumps(
                    {
                        "row": name,
                        "seed": seed,
                        "train_s": result["train_seconds"],
                        "eval_s": result["eval_seconds"],
                        **shown,
                    }
                ),
                flush=True,
            )
    save()
    print(table(report["aggregates"]), flush=True)
    return report


if __name__ == "__main__":
    main()
