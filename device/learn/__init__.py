"""Learn on the device: sound classifiers, training data, feature cache, training loop.

Import from here::

    from device.learn import FullyConnectedNetworkClassifier, LogisticRegressionClassifier, load_classifier
    from device.learn import Trainer, TrainingConfig, load_dataset

Modules: ``classifiers`` (estimators and models), ``dataset`` (clips, labels,
split by recording), ``cache`` (int8 feature cache), ``training`` (the loop,
checkpoints, resume), ``registry`` (model versions, rollback), ``cli``.
See ``docs/training.md``.
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

from .dataset import Clip, Dataset, load_dataset, split_by_recording
from .training import Trainer, TrainingConfig, TrainingResult

__all__ = [
    "Clip",
    "Dataset",
    "Trainer",
    "TrainingConfig",
    "TrainingResult",
    "load_dataset",
    "split_by_recording",
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
