"""Improved precision and recall of generative models (Kynkäänniemi et al., NeurIPS 2019, arXiv:1904.06991).

Each set of features approximates its manifold by the union of balls centred on its points, each with the radius
of the distance to its k-th nearest neighbour in the same set (k = 3 in the paper). Precision is the share of
generated samples inside the real manifold (quality); recall is the share of real samples inside the generated
manifold (coverage).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def knn_radii(features: Tensor, k: int = 3, batch_size: int = 1024) -> Tensor:
    """Distance of each row of ``features (N, D)`` to its k-th nearest other row: ``(N,)``."""
    if not 1 <= k < len(features):
        raise ValueError(f"k={k} nearest neighbours need more than k samples, got {len(features)}")
    radii = []
    for chunk in features.split(batch_size):
        d = torch.cdist(chunk, features)  # (B, N); the point itself is at distance 0 -> the (k+1)-th smallest
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def coverage(queries: Tensor, support: Tensor, radii: Tensor, batch_size: int = 1024) -> Tensor:
    """Share of ``queries`` inside at least one ball ``(support[j], radii[j])``."""
    inside = []
    for chunk in queries.split(batch_size):
        inside.append((torch.cdist(chunk, support) <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(inside).float().mean()


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """``(precision, recall)`` of ``fake (M, D)`` against ``real (N, D)`` features (k-NN manifolds)."""
    real, fake = real.double(), fake.double()
    precision = coverage(fake, real, knn_radii(real, k, batch_size), batch_size)
    recall = coverage(real, fake, knn_radii(fake, k, batch_size), batch_size)
    return precision, recall


class PrecisionRecall(Metric):
    """torchmetrics wrapper: ``update(features, real)``, ``compute() -> (precision, recall)``; features are
    gathered across DDP ranks before the k-NN search.

    Args:
        k: neighbourhood size of the manifold estimate (paper: 3).
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, k: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.k = k
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, features: Tensor, real: bool) -> None:
        (self.real_features if real else self.fake_features).append(features.detach().float())

    def compute(self) -> tuple[Tensor, Tensor]:
        return precision_recall(dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features), self.k)
