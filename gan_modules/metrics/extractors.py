"""Feature extractors for FID, KID, IS and precision/recall, chosen by name.

Every extractor maps images ``(N, C, H, W)`` in [-1, 1] (what generators output and datamodules yield) to
``(features (N, D), logits (N, K) or None)`` in one forward pass, so each metric sees the same features and the
network runs once per batch:

* ``mnist_classifier`` / ``fashion_mnist_classifier``: the small CNNs shipped in ``gan_modules/metrics/weights``
  (penultimate 128-d features, 10-class logits), for 28x28 grayscale data. Fully offline.
* ``inception``: the FID Inception-v3 of torch-fidelity / torchmetrics (2048-d pool features, 1008 unbiased
  logits for IS), for natural RGB images. Needs ``torch-fidelity`` and its weights file (downloaded once into the
  torch hub cache, or put there by hand when offline).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .classifier import DomainClassifier

WEIGHTS_DIR = Path(__file__).parent / "weights"
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_ENV = "GAN_MODULES_INCEPTION_WEIGHTS"


class FeatureExtractor(nn.Module):
    """Base: a frozen network in eval mode. ``forward(images in [-1, 1]) -> (features, logits or None)``.

    Attributes:
        name: registry name (written into every metric's protocol).
        num_features: size D of the features.
        num_classes: size K of the logits (``None``: no Inception Score).
    """

    name: str = "custom"
    num_features: int
    num_classes: int | None = None

    def freeze(self) -> FeatureExtractor:
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> FeatureExtractor:
        return super().train(False)  # never leaves eval mode (BatchNorm statistics, dropout)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError


def crop_padding(images: Tensor, content: tuple[int, int] | None) -> Tensor:
    """The content of images a datamodule padded (``resize_mode: pad``): ``content = (offset, size)`` keeps
    ``[offset, offset + size)`` on both axes (MNIST padded 28 -> 32: ``(2, 28)``); ``None`` returns them unchanged."""
    if content is None:
        return images
    offset, size = content
    if images.shape[-1] < offset + size or images.shape[-2] < offset + size:
        raise ConfigError(f"images of {tuple(images.shape[-2:])} px cannot hold a {size} px padded content at "
                          f"offset {offset}; generate at the datamodule's image_size")
    return images[..., offset:offset + size, offset:offset + size]


def padded_content(datamodule: Any) -> tuple[int, int] | None:
    """``(offset, size)`` of the original images inside a datamodule's padded ones (``resize_mode: pad`` with an
    ``image_size`` above the data's ``native_size``, as ``datamodules.transforms.fit_square`` centres them), else
    ``None`` (the images fill the frame)."""
    if getattr(datamodule, "resize_mode", None) != "pad":
        return None
    size, native = getattr(datamodule, "image_size", None), getattr(datamodule, "native_size", None)
    if not isinstance(size, int) or not isinstance(native, int) or size <= native:
        return None
    return (size - native) // 2, native


def _to_gray_28(images: Tensor, content: tuple[int, int] | None = None) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> (N, 1, 28, 28): RGB mixed to luma (ITU-R 601); a padded datamodule's border cropped
    off (``content``, see ``padded_content``), so a padded 32 px digit is seen at its trained 28 px layout rather
    than shrunk; other sizes resized."""
    if images.shape[1] == 3:
        weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        images = (images * weights).sum(1, keepdim=True)
    elif images.shape[1] != 1:
        raise ConfigError(f"the 28x28 classifiers take 1- or 3-channel images, got {images.shape[1]} channels")
    images = crop_padding(images, content)
    if images.shape[-2:] != (28, 28):
        images = F.interpolate(images, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return images


class ClassifierExtractor(FeatureExtractor):
    """A shipped ``DomainClassifier`` (``weights/<name>.pt``): penultimate features and class logits.

    Args:
        name: ``mnist_classifier`` or ``fashion_mnist_classifier`` (the weights file's stem).
        weights_path: another weights file written by ``gan_modules.metrics.train_classifier``.
        content: ``(offset, size)`` of padded data's original images (``padded_content(datamodule)``): cropped
            before the classifier instead of resizing the whole padded frame.
    """

    def __init__(self, name: str, weights_path: str | Path | None = None, content: tuple[int, int] | None = None):
        super().__init__()
        path = Path(weights_path) if weights_path else WEIGHTS_DIR / f"{name}.pt"
        if not path.is_file():
            raise ConfigError(
                f"feature extractor weights {path} not found; reinstall gan_modules or train them with "
                f"`python -m gan_modules.metrics.train_classifier --dataset {name.removesuffix('_classifier')}`"
            )
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        self.net = DomainClassifier(**checkpoint["architecture"])
        state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
        self.net.load_state_dict(state)
        self.name = name
        self.content = tuple(content) if content is not None else None
        self.num_features = self.net.num_features
        self.num_classes = self.net.num_classes
        self.meta = {k: v for k, v in checkpoint.items() if k != "state_dict"}
        self.freeze()

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.net.features_and_logits(_to_gray_28(images.float(), self.content))  # (N, 128), (N, 10)


def inception_weights_path() -> Path:
    """Where the Inception weights are looked for: ``$GAN_MODULES_INCEPTION_WEIGHTS``, else the torch hub cache
    (``$TORCH_HOME/hub/checkpoints/``), where torch-fidelity's download puts them."""
    if os.environ.get(INCEPTION_ENV):
        return Path(os.environ[INCEPTION_ENV]).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]


class InceptionExtractor(FeatureExtractor):
    """The FID Inception-v3 (TF-ported weights of Heusel et al. 2017, via torch-fidelity): 2048-d pool3 features
    and 1008 unbiased logits (Inception Score), exactly as torchmetrics' default FID/KID/IS use it.

    Grayscale images are repeated to RGB; images are quantized to uint8 and resized to 299x299 inside, as the
    reference implementation does.

    Args:
        weights_path: the ``.pth`` weights file (default: see ``inception_weights_path``).
        allow_download: download the weights when the file is missing (never offline).
    """

    name = "inception"

    def __init__(self, weights_path: str | Path | None = None, allow_download: bool = True):
        super().__init__()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise ConfigError(
                "the inception feature extractor needs torch-fidelity: `pip install torch-fidelity` (or use "
                "feature_extractor: mnist_classifier / fashion_mnist_classifier for 28x28 grayscale data)"
            ) from None
        path = Path(weights_path).expanduser() if weights_path else inception_weights_path()
        if not path.is_file():
            if not allow_download or weights_path:
                raise ConfigError(self.missing_message(path))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
            except Exception as err:  # noqa: BLE001 - offline, proxy, read-only cache: one line that says what to do
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise ConfigError(f"{self.missing_message(path)} (download failed: {reason})") from None
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
        )
        self.num_features, self.num_classes = 2048, 1008
        self.freeze()

    @staticmethod
    def missing_message(path: Path) -> str:
        return (
            f"Inception weights not found at {path}: download {INCEPTION_URL} and put the file there (or set "
            f"{INCEPTION_ENV}=/path/to/file)"
        )

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        uint8 = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (N, 3, H, W)
        features, logits = self.net(uint8)
        return features, logits  # (N, 2048), (N, 1008)


#: registry: name -> factory(**kwargs) of a FeatureExtractor.
FEATURE_EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {
    "mnist_classifier": lambda **kw: ClassifierExtractor("mnist_classifier", **kw),
    "fashion_mnist_classifier": lambda **kw: ClassifierExtractor("fashion_mnist_classifier", **kw),
    "inception": InceptionExtractor,
}


def get_feature_extractor(name: str, **kwargs: Any) -> FeatureExtractor:
    """The feature extractor registered as ``name`` (see ``FEATURE_EXTRACTORS``)."""
    if name not in FEATURE_EXTRACTORS:
        raise ConfigError(
            f"unknown feature extractor {name!r}; choose one of {', '.join(FEATURE_EXTRACTORS)} (or 'auto')"
        )
    return FEATURE_EXTRACTORS[name](**kwargs)


def feature_extractor_for(name: str, datamodule: Any, **inception_kwargs: Any) -> FeatureExtractor:
    """The extractor ``name`` fitted to ``datamodule``'s images: a classifier crops the border of padded data
    (``padded_content``); ``inception_kwargs`` (weights path, download) go to Inception only."""
    if name == "inception":
        return get_feature_extractor(name, **inception_kwargs)
    return get_feature_extractor(name, content=padded_content(datamodule))


def auto_feature_extractor(datamodule: Any) -> str:
    """The extractor that suits a datamodule: its ``feature_extractor_hint`` attribute when it has one, else
    ``fashion_mnist_classifier`` / ``mnist_classifier`` for Fashion-MNIST / MNIST datamodules, else ``inception``."""
    hint = getattr(datamodule, "feature_extractor_hint", None)
    if hint:
        return str(hint)
    name = type(datamodule).__name__.lower() if datamodule is not None else ""
    if "fashion" in name:
        return "fashion_mnist_classifier"
    if "mnist" in name:
        return "mnist_classifier"
    return "inception"
