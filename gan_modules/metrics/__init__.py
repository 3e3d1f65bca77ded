"""Sample-quality metrics: feature extractors by name, FID/KID/IS/precision-recall on their features, Parzen."""

from .classifier import DomainClassifier
from .extractors import (
    FEATURE_EXTRACTORS,
    ClassifierExtractor,
    FeatureExtractor,
    InceptionExtractor,
    auto_feature_extractor,
    get_feature_extractor,
    inception_weights_path,
)
from .generative import GenerativeMetricSuite
from .parzen import parzen_evaluate, parzen_log_likelihood, select_sigma
from .precision_recall import PrecisionRecall, precision_recall

__all__ = [
    "FEATURE_EXTRACTORS",
    "ClassifierExtractor",
    "DomainClassifier",
    "FeatureExtractor",
    "GenerativeMetricSuite",
    "InceptionExtractor",
    "PrecisionRecall",
    "auto_feature_extractor",
    "get_feature_extractor",
    "inception_weights_path",
    "parzen_evaluate",
    "parzen_log_likelihood",
    "precision_recall",
    "select_sigma",
]
