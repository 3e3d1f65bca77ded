"""Translation quality on the offline tasks after a short CPU budget (no network, no GPU needed).

    python benchmarks/translation_quality.py pix2pix  --steps 1500 --minutes 5
    python benchmarks/translation_quality.py cyclegan --task classes --steps 1500 --minutes 5
    python benchmarks/translation_quality.py cyclegan --task tint --steps 1500 --minutes 5
    python benchmarks/translation_quality.py stargan  --steps 1000 --minutes 5

Each run trains the variant on its offline task for ``--steps`` generator steps or ``--minutes`` of wall time
(whichever comes first) and prints one JSON line of measurements on held-out images:

- pix2pix (Sobel edges → Fashion-MNIST item): L1 and PSNR to the true item vs the identity baseline (the edge map
  itself), and the accuracy of the shipped Fashion-MNIST classifier on the outputs vs on the real items.
- cyclegan ``classes`` (sneaker ↔ ankle boot): the rate of translated images that the classifier assigns to the
  target class, per direction, and cycle L1; ``tint`` (gray ↔ red tint): L1 to the hidden true translation vs identity.
- stargan (MNIST colours + Inverted): colour accuracy (dominant channel of the output = target colour), inversion
  accuracy, and L1 to the rendered ground truth, over every test image × every colour target.

The functions are importable (``classifier``, ``pix2pix_scores``, ``cyclegan_scores``, ``stargan_scores``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules import FashionEdgesDataModule, FashionUnpairedDataModule, MNISTColorsDataModule
from datamodules.mnist import load_embedded_mnist
from datamodules.offline_tasks import render_colored_digit
from datamodules.transforms import to_unit_range
from gan_modules import CycleGAN, Pix2Pix, StarGAN
from gan_modules.metrics import get_feature_extractor
from gan_modules.metrics.extractors import crop_padding


# ------------------------------------------------------------------------------------------------ the ruler
class ShippedRuler(nn.Module):
    """The shipped ``fashion_mnist_classifier`` (its held-out accuracy is stated in gan_modules/metrics/weights/
    README.md) on the offline tasks' images: the tasks pad 28 px items to 32 px with a 2 px black border
    (``fit_square(..., "pad")``), so the border is cropped off and the classifier sees exactly the layout it was trained on."""

    def __init__(self):
        super().__init__()
        self.extractor = get_feature_extractor("fashion_mnist_classifier")

    def forward(self, x: Tensor) -> Tensor:  # (N, 1, 32 or 28, same) in [-1, 1] -> (N, 10) logits
        return self.extractor(crop_padding(x, (2, 28)) if x.shape[-1] == 32 else x)[1]


def classifier() -> ShippedRuler:
    """The ruler of every translation score (one classifier for all benchmarks, trained by the repo's script)."""
    return ShippedRuler().eval()


@torch.no_grad()
def predict_classes(net: nn.Module, images: Tensor) -> Tensor:
    return torch.cat([net(b).argmax(1) for b in images.split(500)])


# ------------------------------------------------------------------------------------------------ scores
@torch.no_grad()
def pix2pix_scores(model: Pix2Pix, dm: FashionEdgesDataModule, ruler: nn.Module) -> dict[str, float]:
    test = dm.dataset("test")
    batch = test.__getitems__(list(range(len(test))))
    x, y = batch["source"], batch["target"]
    out = torch.cat([model.run_generator(b) for b in x.split(250)])
    mse = (out - y).square().flatten(1).mean(1)
    return {"l1": F.l1_loss(out, y).item(), "l1_identity": F.l1_loss(x, y).item(),
            "psnr": (10 * torch.log10(4 / mse.clamp_min(1e-10))).mean().item(),
            "classifier_acc_outputs": predict_classes(ruler, out).eq(batch["label"]).float().mean().item(),
            "classifier_acc_real": predict_classes(ruler, y).eq(batch["label"]).float().mean().item(),
            "n_test": len(x)}


@torch.no_grad()
def cyclegan_scores(model: CycleGAN, dm: FashionUnpairedDataModule, ruler: nn.Module | None) -> dict[str, float]:
    images = dm.images["test"]
    a, b = to_unit_range(images["a"]), to_unit_range(images["b"])
    fake_b, fake_a = model.translate(a, "a2b"), model.translate(b, "b2a")
    scores = {"cycle_l1_a": F.l1_loss(model.translate(fake_b, "b2a"), a).item(),
              "cycle_l1_b": F.l1_loss(model.translate(fake_a, "a2b"), b).item(), "n_test_a": len(a), "n_test_b": len(b)}
    if dm.task == "classes":
        scores.update({
            "a2b_target_rate": predict_classes(ruler, fake_b).eq(dm.class_b).float().mean().item(),
            "b2a_target_rate": predict_classes(ruler, fake_a).eq(dm.class_a).float().mean().item(),
            "a2b_target_rate_identity": predict_classes(ruler, a).eq(dm.class_b).float().mean().item(),
            "b2a_target_rate_identity": predict_classes(ruler, b).eq(dm.class_a).float().mean().item()})
    else:
        ta, tb = to_unit_range(images["a_target"]), to_unit_range(images["b_target"])
        scores.update({"l1_a2b": F.l1_loss(fake_b, ta).item(), "l1_a2b_identity": F.l1_loss(a, ta).item(),
                       "l1_b2a": F.l1_loss(fake_a, tb).item(), "l1_b2a_identity": F.l1_loss(b, tb).item()})
    return scores


@torch.no_grad()
def stargan_scores(model: StarGAN, dm: MNISTColorsDataModule) -> dict[str, float]:
    """Every test image to each colour (keeping its Inverted bit) and to its flipped Inverted bit."""
    test = dm.dataset("test")
    items = [test[i] for i in range(len(test))]
    x = torch.stack([it["image"] for it in items])
    label = torch.stack([it["label"] for it in items])
    digits, _ = load_embedded_mnist()
    keys = [int(it["name"][:5]) for it in items]
    colour_hits, inv_hits, l1s = [], [], []
    for k, target in enumerate(model.all_targets(label)):
        out = model.translate(x, target)
        colour = target[:, :3].argmax(1)
        inverted = target[:, 3] > 0.5
        unit = (out + 1) / 2  # (N, 3, H, W) in [0, 1]
        dominant = unit.flatten(2).mean(2).argmax(1)
        bright = unit.flatten(2).mean(2).amax(1) > 0.5  # a coloured background is bright on average
        truth = torch.stack([to_unit_range(render_colored_digit(torch.from_numpy(digits[key]), int(c), bool(i)))
                             for key, c, i in zip(keys, colour.tolist(), inverted.tolist())])
        if k < 3:
            colour_hits.append(dominant.eq(colour).float())
        inv_hits.append(bright.eq(inverted).float())
        l1s.append((out - truth).abs().flatten(1).mean(1))
    identity_l1 = torch.stack([(x - torch.stack([to_unit_range(render_colored_digit(
        torch.from_numpy(digits[key]), int(c), bool(i))) for key, c, i in
        zip(keys, t[:, :3].argmax(1).tolist(), (t[:, 3] > 0.5).tolist())])).abs().flatten(1).mean(1)
        for t in model.all_targets(label)]).mean().item()
    return {"colour_accuracy": torch.cat(colour_hits).mean().item(), "inverted_accuracy": torch.cat(inv_hits).mean().item(),
            "l1_to_truth": torch.cat(l1s).mean().item(), "l1_identity": identity_l1, "n_test": len(x)}


# ------------------------------------------------------------------------------------------------ training
class WallClock(L.Callback):
    """Stops training after ``minutes`` of wall time."""

    def __init__(self, minutes: float):
        self.deadline = time.monotonic() + 60 * minutes

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if time.monotonic() > self.deadline:
            trainer.should_stop = True


def fit(model: L.LightningModule, dm: L.LightningDataModule, minutes: float, out: Path) -> float:
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=-1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[WallClock(minutes)], default_root_dir=out)
    start = time.monotonic()
    trainer.fit(model, dm)
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", choices=["pix2pix", "cyclegan", "stargan"])
    p.add_argument("--task", default="classes", choices=["classes", "tint"], help="CycleGAN task")
    p.add_argument("--steps", type=int, default=1500, help="generator steps")
    p.add_argument("--minutes", type=float, default=5.0, help="wall-time budget of the training")
    p.add_argument("--width", type=int, default=32, help="ngf = ndf")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/benchmarks")
    args = p.parse_args(argv)
    L.seed_everything(args.seed, verbose=False)
    out = Path(args.out)
    common = dict(max_generator_steps=args.steps, ngf=args.width, ndf=args.width, image_size=32)
    if args.model == "pix2pix":
        ruler = classifier()
        dm = FashionEdgesDataModule(batch_size=args.batch_size, max_test=1000, seed=args.seed)
        model = Pix2Pix(channels=1, **common)
        seconds = fit(model, dm, args.minutes, out)
        scores = pix2pix_scores(model, dm, ruler)
    elif args.model == "cyclegan":
        ruler = classifier() if args.task == "classes" else None
        dm = FashionUnpairedDataModule(task=args.task, batch_size=args.batch_size, max_test=500, seed=args.seed)
        model = CycleGAN(channels=dm.channels, n_residual_blocks=6, **common)
        seconds = fit(model, dm, args.minutes, out)
        scores = cyclegan_scores(model, dm, ruler)
    else:
        dm = MNISTColorsDataModule(cache_dir=str(out / "mnist_colors"), num_images=4000, num_test=500,
                                   batch_size=args.batch_size, seed=args.seed)
        model = StarGAN(channels=3, num_classes=dm.num_classes, label_type="multi_label", **common)
        seconds = fit(model, dm, args.minutes, out)
        scores = stargan_scores(model, dm)
    result = {"model": args.model, "task": args.task if args.model == "cyclegan" else None,
              "generator_steps": model.generator_steps, "batch_size": args.batch_size, "width": args.width,
              "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(), "seed": args.seed,
              **{k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
