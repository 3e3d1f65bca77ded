"""Sample-quality metrics: feature extractors by name, FID/KID/IS/precision-recall on their features, Parzen."""

from .classifier import DomainClassifier
from .extractors import (
    FEATURE_EXTRACTORS,
    ClassifierExtractor,
    FeatureExtractor,
    InceptionExtractor,
    auto_feature_extractor,
    feature_extractor_for,
    get_feature_extractor,
    inception_weights_path,
)
from .generative import GenerativeMetricSuite
from .precision_recall import PrecisionRecall, precision_recall

_PARZEN = ("parzen_evaluate", "parzen_log_likelihood", "select_sigma")


def __getattr__(name: str):
    """The Parzen functions on first use, so ``python -m gan_modules.metrics.parzen`` runs its module once (an eager
    import here made runpy warn that the module was already in ``sys.modules``)."""
    if name in _PARZEN:
        from . import parzen

        return getattr(parzen, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "FEATURE_EXTRACTORS",
    "ClassifierExtractor",
    "DomainClassifier",
    "FeatureExtractor",
    "GenerativeMetricSuite",
    "InceptionExtractor",
    "PrecisionRecall",
    "auto_feature_extractor",
    "feature_extractor_for",
    "get_feature_extractor",
    "inception_weights_path",
    "parzen_evaluate",
    "parzen_log_likelihood",
    "precision_recall",
    "select_sigma",
]
