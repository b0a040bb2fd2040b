"""The sound classifiers under their old import path (``device.learn.classifiers``).

The code lives in modules of one concept each: :mod:`.inputs` (feature input),
:mod:`.logistic`, :mod:`.network`, :mod:`.optim` (Adam), :mod:`.model` (what
fitted models share, clip aggregation) and :mod:`.modelfile` (loading,
featurizer checks). New code imports from ``device.learn``.
"""

from .logistic import LogisticRegressionClassifier, LogisticRegressionModel
from .model import ClassifierModel, ClipPrediction, classify_clip
from .modelfile import FeaturePrintMismatchError, check_fingerprint, load_classifier
from .network import FullyConnectedNetworkClassifier, FullyConnectedNetworkModel

__all__ = [
    "ClassifierModel",
    "ClipPrediction",
    "FeaturePrintMismatchError",
    "FullyConnectedNetworkClassifier",
    "FullyConnectedNetworkModel",
    "LogisticRegressionClassifier",
    "LogisticRegressionModel",
    "check_fingerprint",
    "classify_clip",
    "load_classifier",
]
