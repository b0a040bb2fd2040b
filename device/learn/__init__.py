"""Learn on the device: sound classifiers, training data, feature cache, training loop.

Import the classifiers from here::

    from device.learn import FullyConnectedNetworkClassifier, LogisticRegressionClassifier, load_classifier
"""

from .classifiers import (
    ClassifierModel,
    FeaturePrintMismatchError,
    FullyConnectedNetworkClassifier,
    FullyConnectedNetworkModel,
    LogisticRegressionClassifier,
    LogisticRegressionModel,
    as_feature_matrix,
    check_fingerprint,
    load_classifier,
)

__all__ = [
    "ClassifierModel",
    "FeaturePrintMismatchError",
    "FullyConnectedNetworkClassifier",
    "FullyConnectedNetworkModel",
    "LogisticRegressionClassifier",
    "LogisticRegressionModel",
    "as_feature_matrix",
    "check_fingerprint",
    "load_classifier",
]
