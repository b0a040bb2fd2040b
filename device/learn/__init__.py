"""Learn on the device: sound classifiers, training data, feature cache, training loop.

Import from here::

    from device.learn import FullyConnectedNetworkClassifier, LogisticRegressionClassifier, load_classifier
    from device.learn import Trainer, TrainingConfig, load_dataset

Modules: ``inputs`` (the feature forms a classifier takes), ``logistic`` and
``network`` (the two estimators and their models), ``optim`` (Adam), ``model``
(what fitted models share; a clip's label from its windows), ``modelfile``
(loading, featurizer checks), ``dataset`` (clips, labels, split by
recording), ``cache`` (the windows of every clip, int8), ``training`` (the
loop, checkpoints, resume), ``registry`` (model versions, rollback), ``cli``.
See ``docs/training.md``.
"""

from .inputs import FeatureInputError, as_matrix
from .logistic import LogisticRegressionClassifier, LogisticRegressionModel
from .model import ClassifierModel, ClipPrediction, ClipVote, classify_clip
from .modelfile import FeaturePrintMismatchError, check_fingerprint, load_classifier
from .network import FullyConnectedNetworkClassifier, FullyConnectedNetworkModel
from .optim import Adam
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
    "Adam",
    "ClipPrediction",
    "ClipVote",
    "FeatureInputError",
    "as_matrix",
    "check_fingerprint",
    "classify_clip",
    "load_classifier",
]
