"""Learn on the device: sound classifiers, training data, feature cache, training loop.

Import from here::

    from device.learn import FullyConnectedNetworkClassifier, LogisticRegressionClassifier, load_classifier
    from device.learn import Trainer, TrainingConfig, load_dataset

Modules: ``inputs`` (the feature forms a classifier takes), ``logistic`` and
``network`` (the two estimators and their models), ``optim`` (Adam), ``model``
(what fitted models share; a clip's label from its windows), ``openset`` (the
reject option: "not a taught sound"), ``modelfile`` (loading, featurizer
checks), ``dataset`` (clips, labels, split by recording), ``cache`` and
``shards`` (the windows of every clip, int8, with their times and levels),
``config`` (training settings), ``training`` (the loop, checkpoints, resume),
``registry`` (model versions, rollback), ``quiet`` (which recorded clips are
background), ``cli``.
See ``docs/training.md``.
"""

from .inputs import FeatureInputError, as_matrix
from .logistic import LogisticRegressionClassifier, LogisticRegressionModel
from .model import ClassifierModel, ClipPrediction, ClipVote, classify_clip
from .modelfile import FeaturePrintMismatchError, check_fingerprint, load_classifier, read_classifier_file
from .network import FullyConnectedNetworkClassifier, FullyConnectedNetworkModel
from .openset import OTHER, SILENT_LABELS, RejectOption, RejectSettings, fit_reject_option
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
    "OTHER",
    "SILENT_LABELS",
    "RejectOption",
    "RejectSettings",
    "fit_reject_option",
    "ClipPrediction",
    "ClipVote",
    "FeatureInputError",
    "as_matrix",
    "check_fingerprint",
    "classify_clip",
    "load_classifier",
    "read_classifier_file",
]
