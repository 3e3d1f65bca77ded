"""Gaussian Parzen-window log-likelihood (Breuleux, Bengio & Vincent 2011; as reported by Goodfellow et al. 2014).

A Gaussian kernel density with isotropic width σ is fitted on generated samples ``c_1..c_M``; the test data's
mean log-likelihood under it is reported in nats::

    log p(x) = logsumexp_j(-||x - c_j||² / (2σ²)) - log M - (D/2) log(2πσ²)

σ is chosen by grid search on a validation set (Goodfellow et al.'s ``parzen_ll.py``: 10 values in
``logspace(-1, 0)`` for MNIST pixels in [0, 1]). The estimate is known to be high-variance and biased in high
dimension (Theis et al. 2016): compare numbers only under the same protocol (pixel scale, number of samples, σ
grid), which ``parzen_evaluate`` returns next to the result.

Script::

    python -m gan_modules.metrics.parzen CKPT [--num-samples 10000] [--sigmas 0.1 0.12 ...]
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .extractors import crop_padding

#: Goodfellow et al. 2014's σ grid for MNIST (``numpy.logspace(-1, 0, 10)``).
DEFAULT_SIGMAS: tuple[float, ...] = tuple(float(s) for s in torch.logspace(-1, 0, 10, dtype=torch.float64))


def parzen_log_likelihood(x: Tensor, centers: Tensor, sigma: float, batch_size: int = 256) -> Tensor:
    """Log-density ``(N,)`` in nats of each row of ``x (N, D)`` under the Gaussian Parzen window on
    ``centers (M, D)`` with width ``sigma``; computed in float64, ``batch_size`` rows of ``x`` at a time."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if x.dim() != 2 or centers.dim() != 2 or x.shape[1] != centers.shape[1]:
        raise ValueError(f"x and centers must be (N, D) and (M, D), got {tuple(x.shape)} and {tuple(centers.shape)}")
    centers = centers.double()
    m, d = centers.shape
    log_norm = math.log(m) + 0.5 * d * math.log(2 * math.pi * sigma**2)
    out = []
    for chunk in x.double().split(batch_size):
        sq = torch.cdist(chunk, centers).square()  # (B, M) squared distances
        out.append(torch.logsumexp(-sq / (2 * sigma**2), dim=1) - log_norm)
    return torch.cat(out)


def select_sigma(validation: Tensor, centers: Tensor, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                 batch_size: int = 256) -> tuple[float, dict[float, float]]:  # fmt: skip
    """The σ of ``sigmas`` with the highest mean validation log-likelihood, and every σ's score."""
    scores = {float(s): parzen_log_likelihood(validation, centers, s, batch_size).mean().item() for s in sigmas}
    return max(scores, key=scores.get), scores


def parzen_evaluate(centers: Tensor, validation: Tensor, test: Tensor, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                    batch_size: int = 256) -> dict[str, Any]:  # fmt: skip
    """σ chosen on ``validation``, then the mean test log-likelihood and its standard error, with the protocol.

    All inputs are flattened to ``(N, D)``; pass pixels in [0, 1] to compare with the literature.
    """
    centers, validation, test = (t.flatten(1) for t in (centers, validation, test))
    sigma, scores = select_sigma(validation, centers, sigmas, batch_size)
    ll = parzen_log_likelihood(test, centers, sigma, batch_size)
    return {
        "log_likelihood": ll.mean().item(),
        "std_error": (ll.std() / math.sqrt(len(ll))).item() if len(ll) > 1 else float("nan"),
        "sigma": sigma,
        "validation_scores": scores,
        "num_centers": len(centers),
        "num_validation": len(validation),
        "num_test": len(test),
        "dim": centers.shape[1],
    }


def as_mnist_28(images: Tensor) -> Tensor:
    """Generated digits as the protocol's 1x28x28: 28 px as they are; 32 px (a model trained on the classic padded
    MNIST, ``resize_mode: pad``, which adds 2 background pixels on each side) with that border cropped off.

    Raises:
        ValueError: any other shape, naming it.
    """
    shape = tuple(images.shape[1:])
    if shape == (1, 28, 28):
        return images
    if shape == (1, 32, 32):
        return crop_padding(images, (2, 28))
    raise ValueError(f"the checkpoint generates {shape} images; this protocol needs 1x28x28 (or padded 1x32x32)")


def mnist_protocol_splits(num_validation: int = 1000) -> dict[str, Tensor]:
    """The embedded MNIST split as ``parzen`` uses it, pixels in [0, 1], shape (N, 784): ``test`` = the 1,000
    held-out digits, ``validation`` = the last ``num_validation`` train digits (for σ), ``train`` = the rest."""
    from datamodules import EmbeddedMNISTDataModule

    arrays = EmbeddedMNISTDataModule().load_arrays()
    train = arrays["train"][0].flatten(1).double() / 255
    return {
        "train": train[:-num_validation],
        "validation": train[-num_validation:],
        "test": arrays["test"][0].flatten(1).double() / 255,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m gan_modules.metrics.parzen",
        description="Parzen-window log-likelihood (nats) of a checkpoint's samples on the embedded MNIST held-out "
        "digits, next to the same estimate with real train digits as the kernel centres.",
    )
    parser.add_argument("checkpoint", nargs="?", help="a gan_modules checkpoint (omit to evaluate only real digits)")
    parser.add_argument("--num-samples", type=int, default=8000, help="kernel centres (generated and real)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(DEFAULT_SIGMAS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    splits = mnist_protocol_splits()
    n = args.num_samples
    if not 1 <= n <= len(splits["train"]):
        parser.error(f"--num-samples must be in 1..{len(splits['train'])} (the real train digits left), got {n}")
    report: dict[str, Any] = {
        "protocol": "embedded MNIST, pixels in [0, 1], D=784; sigma chosen on the last 1,000 train digits from "
        f"{len(args.sigmas)} values; test = the 1,000 held-out digits; {n} kernel centres",
        "real_train_digits": parzen_evaluate(splits["train"][:n], splits["validation"], splits["test"], args.sigmas,
                                             args.batch_size),
    }
    if args.checkpoint:
        from ..sample import generate_images, load_checkpoint

        model = load_checkpoint(args.checkpoint)
        images = generate_images(model, n, seed=args.seed, batch_size=args.batch_size)  # (n, C, H, W) in [-1, 1]
        try:
            images = as_mnist_28(images)
        except ValueError as err:
            parser.error(str(err))
        centers = (images.flatten(1).double() + 1) / 2
        report["generated"] = parzen_evaluate(centers, splits["validation"], splits["test"], args.sigmas,
                                              args.batch_size)  # fmt: skip
        report["checkpoint"] = str(args.checkpoint)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return report


if __name__ == "__main__":
    main()
