"""Trains the shipped feature classifiers (``gan_modules/metrics/weights/*.pt``) for FID/KID/IS on 28x28 data.

Usage (about 5 minutes for MNIST, 15 for Fashion-MNIST on 2 shared CPU cores)::

    python -m gan_modules.metrics.train_classifier --dataset mnist
    python -m gan_modules.metrics.train_classifier --dataset fashion_mnist

Splits are the datamodules' own, so the stated accuracy is on images the classifier never saw:

* ``mnist``: the embedded 10k digits, trained on the 9,000-image train split of ``EmbeddedMNISTDataModule``
  (``split_seed=0``), tested on its 1,000 held-out val/test images — the real images that ``validate`` compares
  generated digits with.
* ``fashion_mnist``: the official 60,000 train / 10,000 test images (``FashionMNISTDataModule``).

The weights are stored in fp16 (half the size; the stated accuracy is measured after the round trip) together
with the architecture, the accuracy and the protocol, and the script prints the README row to paste.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .classifier import DomainClassifier

WEIGHTS_DIR = Path(__file__).parent / "weights"

#: dataset name -> (datamodule class name, datamodule kwargs, train split, held-out split, class names)
DATASETS = {
    "mnist": ("EmbeddedMNISTDataModule", {}, "train", "test", [str(i) for i in range(10)]),
    "fashion_mnist": (
        "FashionMNISTDataModule",
        {"val_fraction": 0.0},
        "train",
        "test",
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    ),
}


def load_split(dataset: str, split: str) -> tuple[Tensor, Tensor]:
    """Images ``(N, 1, 28, 28)`` float in [-1, 1] and labels ``(N,)`` of a split, as the datamodule splits them.

    ``split`` is ``"train"`` or ``"test"`` (the held-out images the stated accuracy is measured on).
    """
    import datamodules

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    cls_name, kwargs, train_split, test_split, _ = DATASETS[dataset]
    dm = getattr(datamodules, cls_name)(**kwargs)
    images, labels = dm.load_arrays()[train_split if split == "train" else test_split]
    return images.float().div(127.5).sub(1.0), labels.long()


def random_affine(x: Tensor, generator: torch.Generator) -> Tensor:
    """Per-image rotation (±10°), scale (0.9-1.1) and shift (±2 px): robustness to imperfect generated digits."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 / 14)  # 2 px in [-1, 1] coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # background stays -1


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``images`` in [-1, 1]."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        correct += (model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum().item()
    return correct / len(images)


def train(dataset: str, epochs: int, batch_size: int = 128, lr: float = 3e-3, seed: int = 0, width: int = 16,
          feature_dim: int = 128, label_smoothing: float = 0.0, log=print,
          ) -> tuple[DomainClassifier, dict]:  # fmt: skip
    """Trains a ``DomainClassifier`` with AdamW + one-cycle LR and returns it with its metadata.

    No label smoothing by default: it caps the confidence of p(y|x) and so the Inception Score (with 0.05 on 10
    classes, real MNIST digits scored 6.8 instead of about 9.9).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = load_split(dataset, "train")
    x_test, y_test = load_split(dataset, "test")
    model = DomainClassifier(num_classes=10, width=width, feature_dim=feature_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps_per_epoch = len(x_train) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            logits = model(random_affine(x_train[idx], gen))
            loss = F.cross_entropy(logits, y_train[idx], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        log(f"epoch {epoch + 1}/{epochs}: loss {total / steps_per_epoch:.4f}, held-out accuracy "
            f"{accuracy(model, x_test, y_test):.4f} ({time.perf_counter() - start:.0f} s)")  # fmt: skip
    model.half().float()  # the accuracy we state is the one of the fp16 weights we ship
    meta = {
        "dataset": dataset,
        "architecture": {"num_classes": 10, "width": width, "feature_dim": feature_dim},
        "class_names": DATASETS[dataset][4],
        "test_accuracy": accuracy(model, x_test, y_test),
        "train_size": len(x_train),
        "test_size": len(x_test),
        "epochs": epochs,
        "label_smoothing": label_smoothing,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - start),
    }
    return model, meta


def save(model: DomainClassifier, meta: dict, path: Path) -> None:
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, **meta}, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--epochs", type=int, default=None, help="default: 12 (mnist), 3 (fashion_mnist)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--out", type=Path, default=None, help="default: gan_modules/metrics/weights/<name>.pt")
    args = parser.parse_args(argv)
    epochs = args.epochs or {"mnist": 12, "fashion_mnist": 3}[args.dataset]
    model, meta = train(args.dataset, epochs, args.batch_size, args.lr, args.seed, label_smoothing=args.label_smoothing)
    out = args.out or WEIGHTS_DIR / f"{args.dataset}_classifier.pt"
    save(model, meta, out)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    print(f"| `{args.dataset}_classifier` | {meta['train_size']:,} | {meta['test_size']:,} | "
          f"{100 * meta['test_accuracy']:.2f} % | {epochs} | {meta['train_seconds']} s |")  # fmt: skip


if __name__ == "__main__":
    main()
