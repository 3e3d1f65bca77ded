"""A small CNN classifier for 28x28 grayscale images, used as the feature extractor of FID/KID/IS on MNIST-like data.

Computing FID with a classifier trained on the domain instead of ImageNet's Inception is common practice for digit
and clothing datasets (e.g. the "domain FID" of conditional-GAN and VAE papers): Inception features of a 28x28
digit upsampled to 299x299 say little about digits. The features are the penultimate layer (``features``); the
logits give the Inception Score.

No Lightning here: training lives in ``gan_modules.metrics.train_classifier``.
"""

from __future__ import annotations

from torch import Tensor, nn


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DomainClassifier(nn.Module):
    """VGG-style CNN: two conv blocks with max-pooling, a third conv, global average pooling, a feature layer.

    Args:
        num_classes: output classes.
        width: channels of the first block (the second has ``2 * width``, the last conv ``4 * width``).
        feature_dim: size of the penultimate layer (the features FID/KID/precision-recall use).
        in_channels: input channels (1 for grayscale).
    """

    def __init__(self, num_classes: int = 10, width: int = 16, feature_dim: int = 128, in_channels: int = 1):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.body = nn.Sequential(
            _conv_bn_relu(in_channels, c1), _conv_bn_relu(c1, c1), nn.MaxPool2d(2),  # (N, c1, 14, 14)
            _conv_bn_relu(c1, c2), _conv_bn_relu(c2, c2), nn.MaxPool2d(2),  # (N, c2, 7, 7)
            _conv_bn_relu(c2, c3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (N, c3)
        )  # fmt: skip
        self.embed = nn.Sequential(nn.Linear(c3, feature_dim), nn.ReLU(inplace=True))  # (N, feature_dim)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(feature_dim, num_classes)  # (N, num_classes)
        self.num_features = feature_dim
        self.num_classes = num_classes

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations ``(N, feature_dim)`` of images ``(N, C, 28, 28)`` in [-1, 1]."""
        return self.embed(self.body(x))

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x)
        return f, self.head(self.dropout(f))

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[1]  # (N, num_classes) logits
