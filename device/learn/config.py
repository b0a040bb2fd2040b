"""Training settings (one place for each default) and :class:`TrainingError`.

``TrainingConfig.resolved`` decides what ``classifier="auto"`` and
``augment_copies=None`` mean for a data set; ``estimator`` builds the
estimator the trainer fits; ``path_settings`` are what must match to resume.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from device.components import CadenceError, Estimator

from .logistic import LogisticRegressionClassifier
from .model import json_safe
from .network import FullyConnectedNetworkClassifier
from .openset import RejectSettings

CLASSIFIERS = ("auto", "network", "logistic")
AUTO_AUGMENT_COPIES = 8


class TrainingError(CadenceError):
    """Training cannot go on (too little data, settings changed under --resume, …)."""


@dataclasses.dataclass
class TrainingConfig:
    classifier: str = "auto"  # "network", "logistic", or "auto": logistic for few clips per label
    # "auto" picks the network (and no augmented copies) once the median label has at least this many clips
    auto_network_min_clips: int = 100
    # augmented copies per training clip; None: AUTO_AUGMENT_COPIES below auto_network_min_clips, else 0
    augment_copies: int | None = None
    validation_split: float = 0.2
    # a label whose every clip is unusable (unreadable, too short, a format not read) stops training,
    # unless allowed: then it is left out with a warning (a model must not lose a label unnoticed)
    allow_label_loss: bool = False
    target_accuracy: float | None = None
    max_epochs: int = 60
    patience: int = 10
    checkpoint_every: int = 5
    keep_checkpoints: int = 3
    chunk_size: int = 1024
    seed: int = 0
    # after early stopping, train once more on training + validation clips
    refit: bool = True
    # network
    hidden_unit_counts: tuple[int, ...] = (128,)
    batch_size: int = 32
    learning_rate: float = 3e-3
    dropout: float = 0.5
    network_l2: float = 1e-4
    # logistic regression
    l2_penalty: float = 1e-2
    max_iterations: int = 500
    convergence_threshold: float = 1e-6
    # windows quieter than this (dBFS) are not trained on: the device never classifies them (None: all windows;
    # ``cadence train sound`` passes the sound pipeline's volume gate)
    min_level_db: float | None = None
    # fit the reject option ("not a taught sound", device.learn.openset) after the classifier
    reject: bool = True
    reject_quantile: float = RejectSettings.quantile
    # add the shipped negatives (device.learn.negatives: floor noises the owner did not teach) when the
    # featurizer ships some (sound): None (default) or True: yes, False (``--no-shipped-negatives``): no. How:
    # when they are at most merge_negatives_share of the owner's clips they join ``background``; more, they
    # are a class of their own that silences a window only above NEGATIVES_THRESHOLD — joined to background
    # they cost an owner with 10-35 clips per label 4-16 points of recall, gated 0-5 (docs/audio.md
    # "Shipped negatives"; measured shares: 0.23 joined best, 0.37 and more gated)
    shipped_negatives: bool | None = None
    merge_negatives_share: float = 0.3
    # with the shipped negatives on: a shipped kind named like an owner label (the owner teaches
    # ``hammer_drop``) lends that label its recordings as examples instead of being left out
    # (docs/audio.md "Shipped recordings as examples")
    shipped_examples: bool = True

    def reject_settings(self) -> RejectSettings:
        return RejectSettings(quantile=self.reject_quantile, seed=self.seed)

    def validate(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise TrainingError(f"unknown classifier {self.classifier!r} (choose {', '.join(CLASSIFIERS)})")
        if self.augment_copies is not None and not 0 <= self.augment_copies <= 100:
            raise TrainingError(f"--augment must be between 0 and 100 copies, got {self.augment_copies}")
        if self.auto_network_min_clips < 1:
            raise TrainingError(f"auto_network_min_clips must be at least 1, got {self.auto_network_min_clips}")
        if not 0.0 <= self.validation_split < 1.0:
            raise TrainingError(f"--validation-split must be in [0, 1), got {self.validation_split}")
        if self.target_accuracy is not None and not 0.0 < self.target_accuracy <= 1.0:
            raise TrainingError(f"--target-accuracy must be in (0, 1], got {self.target_accuracy}")
        for name in ("max_epochs", "patience", "checkpoint_every", "keep_checkpoints", "chunk_size", "batch_size"):
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise TrainingError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not self.learning_rate > 0:
            raise TrainingError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.l2_penalty < 0 or self.network_l2 < 0:
            raise TrainingError(f"--l2-penalty must be at least 0, got {min(self.l2_penalty, self.network_l2)}")
        if not self.hidden_unit_counts or any(int(h) < 1 for h in self.hidden_unit_counts):
            raise TrainingError(f"--hidden-units must be positive integers, got {self.hidden_unit_counts}")
        if len(self.hidden_unit_counts) > 4 or any(int(h) > 4096 for h in self.hidden_unit_counts):
            # a bigger network does not fit a device's memory: said at once, not as an allocation failure
            raise TrainingError(f"--hidden-units allows at most 4 layers of at most 4096 units, "
                                f"got {','.join(str(h) for h in self.hidden_unit_counts)}")
        if not 0.5 <= self.reject_quantile < 1.0:
            raise TrainingError(f"--reject-quantile must be in [0.5, 1), got {self.reject_quantile}")

    def resolved(self, names: Sequence[str]) -> tuple["TrainingConfig", str | None]:
        """The config with ``classifier="auto"`` and ``augment_copies=None``
        replaced by the choices for clips labelled ``names`` (training +
        validation), and why they were made."""
        if self.classifier != "auto" and self.augment_copies is not None:
            return self, None
        counts: dict[str, int] = {}
        for name in names:
            counts[str(name)] = counts.get(str(name), 0) + 1
        median = float(np.median(list(counts.values()))) if counts else 0.0
        few = median < self.auto_network_min_clips
        relation = "fewer than" if few else "at least"
        clips = "clip" if median == 1 else "clips"
        why = f"the median label has {median:g} {clips}, {relation} {self.auto_network_min_clips}"
        changes: dict[str, Any] = {}
        said = []
        if self.classifier == "auto":
            changes["classifier"] = "logistic" if few else "network"
            said.append(f"classifier auto → {changes['classifier']}")
        if self.augment_copies is None:
            changes["augment_copies"] = AUTO_AUGMENT_COPIES if few else 0
            said.append(f"{changes['augment_copies']} augmented copies per training clip")
        return dataclasses.replace(self, **changes), f"{', '.join(said)}: {why}"

    def estimator(self) -> Estimator[Any, Any]:
        if self.classifier == "auto":
            raise TrainingError("classifier 'auto' must be resolved for the data first (TrainingConfig.resolved)")
        if self.classifier == "logistic":
            return LogisticRegressionClassifier(self.l2_penalty, self.max_iterations, self.convergence_threshold)
        return FullyConnectedNetworkClassifier(
            self.hidden_unit_counts,
            self.batch_size,
            self.learning_rate,
            self.max_epochs,
            self.dropout,
            self.seed,
            l2_penalty=self.network_l2,
        )

    def path_settings(self) -> dict[str, Any]:
        """Settings that decide the training path (must match to resume)."""
        keys = ["classifier", "validation_split", "chunk_size", "seed", "refit", "augment_copies", "min_level_db"]
        if self.classifier == "network":
            keys += ["hidden_unit_counts", "batch_size", "learning_rate", "dropout", "network_l2"]
        else:
            keys += ["l2_penalty", "max_iterations", "convergence_threshold"]
        return {k: json_safe(getattr(self, k)) for k in keys}
