"""FID, KID, IS and precision/recall of generated images on one set of features (torchmetrics does the math).

``GenerativeMetricSuite`` runs the feature extractor once per batch and hands its features to torchmetrics'
``FrechetInceptionDistance`` and ``KernelInceptionDistance`` (through a pass-through "feature network") and its
logits to ``InceptionScore``; all states are torchmetrics states, so they are summed / gathered across DDP ranks
in ``compute``.

* FID (Heusel et al. 2017): Fréchet distance of Gaussians fitted to real and generated features.
* KID (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial kernel, mean and std over random subsets.
* IS (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))`` of the generated samples' class posteriors, mean and
  std over splits; ranges from 1 to the number of classes.
* Precision / recall (Kynkäänniemi et al. 2019): see ``precision_recall``.
* With a dataset's own classifier as the extractor (``ClassifierExtractor``: the shipped MNIST / Fashion-MNIST
  classifiers), the share of generated images it classifies with probability >= ``confidence`` (``confident_rate``)
  and the smallest class's share of the generated images by its predicted class (``class_balance_min``; 1/K when
  balanced): legibility and mode coverage in two numbers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.aggregation import SumMetric
from torchmetrics.image import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance

from .extractors import ClassifierExtractor, FeatureExtractor
from .precision_recall import PrecisionRecall


class PrecomputedFeatures(nn.Identity):
    """The "feature network" handed to torchmetrics: the features are computed already, so it passes them on."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features


class ClassifierVerdicts(Metric):
    """Counts, over generated images, those classified with probability >= ``confidence`` and the images per
    predicted class (summed over DDP ranks)."""

    def __init__(self, num_classes: int, confidence: float = 0.9) -> None:
        super().__init__()
        self.confidence = confidence
        self.add_state("confident", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("per_class", default=torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor) -> None:
        probs = logits.double().softmax(1)
        top, cls = probs.max(1)
        self.confident += (top >= self.confidence).sum()
        self.per_class += torch.bincount(cls, minlength=self.per_class.numel()).double()

    def compute(self) -> tuple[Tensor, Tensor]:
        total = self.per_class.sum().clamp_min(1)
        return self.confident / total, self.per_class.min() / total


class GenerativeMetricSuite(nn.Module):
    """FID, KID, IS and precision/recall of generated vs real images on the features of ``extractor``.

    Args:
        extractor: maps images in [-1, 1] to ``(features, logits or None)``.
        kid_subsets: random subsets KID averages over.
        kid_subset_size: size of each KID subset, capped at ``kid_max_fraction`` of the smaller set.
        kid_max_fraction: largest share of the samples one KID subset may take. At 1.0 a subset can be the whole set
            (every subset alike: the exact unbiased MMD², std 0); the default 0.5 keeps the subsets different so that
            ``kid_std`` measures something when few samples exist.
        is_splits: splits of the generated samples for the Inception Score's mean and std.
        precision_recall_k: k of the k-NN manifolds (0 disables precision/recall).
        confidence: the probability above which a classifier extractor's verdict counts as confident.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        precision_recall_k: int = 3,
        kid_max_fraction: float = 0.5,
        confidence: float = 0.9,
    ):
        super().__init__()
        self.extractor = extractor
        features = PrecomputedFeatures(extractor.num_features)
        self.fid = FrechetInceptionDistance(feature=features)
        self.kid = KernelInceptionDistance(feature=features, subsets=kid_subsets, subset_size=kid_subset_size)
        self.inception_score = (
            InceptionScore(feature=nn.Identity(), splits=is_splits) if extractor.num_classes else None
        )
        self.precision_recall = PrecisionRecall(precision_recall_k) if precision_recall_k > 0 else None
        self.num_real, self.num_fake = SumMetric(), SumMetric()
        self.verdicts = (ClassifierVerdicts(extractor.num_classes, confidence)
                         if isinstance(extractor, ClassifierExtractor) else None)
        if not 0.0 < kid_max_fraction <= 1.0:
            raise ValueError(f"kid_max_fraction must be in (0, 1], got {kid_max_fraction}")
        self.kid_subset_size = kid_subset_size
        self.kid_max_fraction = kid_max_fraction
        self.settings = {
            "feature_extractor": extractor.name,
            "feature_dim": extractor.num_features,
            **({"classifier_crop": list(extractor.content)} if getattr(extractor, "content", None) else {}),
            "kid_subsets": kid_subsets,
            "kid_subset_size": kid_subset_size,
            "is_splits": is_splits,
            "precision_recall_k": precision_recall_k,
        }

    @torch.no_grad()
    def update(self, images: Tensor, real: bool) -> None:
        """Adds images ``(N, C, H, W)`` in [-1, 1] to the real or the generated set."""
        features, logits = self.extractor(images)
        features = features.float()
        self.fid.update(features, real=real)
        self.kid.update(features, real=real)
        if self.precision_recall is not None:
            self.precision_recall.update(features, real=real)
        if not real and self.inception_score is not None and logits is not None:
            self.inception_score.update(logits.double())  # float32 softmax underflows to 0 -> 0 * log 0 = nan
        if not real and self.verdicts is not None and logits is not None:
            self.verdicts.update(logits)
        (self.num_real if real else self.num_fake).update(torch.tensor(float(len(images)), device=features.device))

    @torch.no_grad()
    def compute(self) -> dict[str, Any]:
        """``{"fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall", "num_real", "num_fake"}``
        as Python numbers (synced across ranks); raises ``ValueError`` with fewer than 2 samples on a side."""
        n_real, n_fake = int(self.num_real.compute()), int(self.num_fake.compute())
        if min(n_real, n_fake) < 2:
            raise ValueError(f"FID/KID need at least 2 real and 2 generated images, got {n_real} and {n_fake}")
        out: dict[str, Any] = {"fid": self.fid.compute().item()}
        self.kid.subset_size = max(2, min(self.kid_subset_size, int(self.kid_max_fraction * min(n_real, n_fake))))
        with torch.random.fork_rng(devices=[]):  # KID subsets and IS splits draw from the global RNG
            torch.manual_seed(0)
            kid_mean, kid_std = self.kid.compute()
            out.update(kid_mean=kid_mean.item(), kid_std=kid_std.item())
            if self.inception_score is not None:
                is_mean, is_std = self.inception_score.compute()
                out.update(is_mean=is_mean.item(), is_std=is_std.item())
        if self.precision_recall is not None and min(n_real, n_fake) > self.precision_recall.k:
            precision, recall = self.precision_recall.compute()
            out.update(precision=precision.item(), recall=recall.item())
        if self.verdicts is not None:
            confident, smallest = self.verdicts.compute()
            out.update(confident_rate=confident.item(), class_balance_min=smallest.item())
        out.update(num_real=n_real, num_fake=n_fake, kid_subset_size=self.kid.subset_size)
        return out

    def reset(self) -> None:
        for metric in (self.fid, self.kid, self.inception_score, self.precision_recall, self.num_real, self.num_fake,
                       self.verdicts):
            if metric is not None:
                metric.reset()
