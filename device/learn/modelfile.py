"""Loading a classifier file, and refusing one made for another featurizer.

A model's weights mean something only for the featurizer (fingerprint) whose
windows it was trained on; :func:`load_classifier` with ``feature_print``
refuses any other, with one line that says what to do.
"""

from __future__ import annotations

import os
import re
from typing import Any

from device.components import CadenceError, decode_state, read_state_file

from .logistic import LogisticRegressionModel  # noqa: F401 - registers the model kinds restore() reads
from .network import FullyConnectedNetworkModel  # noqa: F401
from .model import ClassifierModel, restore


# what a classifier file may hold (logistic, network + Adam moments, reject option): anything
# else is refused before it is unpacked; and no classifier comes near this size
MODEL_ARRAYS = re.compile(r"(mean|std|feature_scales|weights|bias|[wb]\d{1,2}|adam\.[mv]\d{1,2}|openset_[a-z_]{1,32})")
MAX_MODEL_BYTES = 64 << 20


class FeaturePrintMismatchError(CadenceError):
    """A model was trained on another featurizer than the one running."""


def read_classifier_file(path: str | os.PathLike[str]) -> bytes:
    """A classifier file's bytes, read once (size-checked; :func:`load_classifier` verifies them)."""
    return read_state_file(path, max_bytes=MAX_MODEL_BYTES)


def load_classifier(
    path: str | os.PathLike[str], *, feature_print: Any = None, data: bytes | None = None
) -> ClassifierModel:
    """Load a saved classifier; with ``feature_print`` (a featurizer, or its
    fingerprint string) refuse a model made for another featurizer. ``data``: the
    file's bytes already read (:func:`read_classifier_file`), so it is not read again."""
    if data is None:
        data = read_classifier_file(path)
    meta, arrays = decode_state(data, source=str(path), arrays=MODEL_ARRAYS.fullmatch)
    model = restore(meta, arrays, str(path))
    check_fingerprint(model, feature_print, source=str(path))
    return model


def check_fingerprint(model: ClassifierModel, feature_print: Any, *, source: str = "model") -> None:
    """Raise :class:`FeaturePrintMismatchError` unless ``model`` was trained on ``feature_print``."""
    if feature_print is None:
        return
    running = feature_print if isinstance(feature_print, str) else str(feature_print.fingerprint())
    # the command that makes a model for this featurizer (a featurizer may name its own)
    train = getattr(feature_print, "train_command", "cadence train sound")
    stored = model.fingerprint
    if stored is None:
        raise FeaturePrintMismatchError(
            f"{source}: the model does not record which feature print it was trained on; retrain it with '{train}'"
        )
    if stored != running:
        made_for = ((model.metadata or {}).get("feature_print") or {}).get("class")
        needed = None if isinstance(feature_print, str) else type(feature_print).__name__
        if made_for and needed and made_for != needed:  # a model of another kind (sound vs exercise)
            raise FeaturePrintMismatchError(
                f"{source}: is a model for {made_for} features, not the {needed} ones this model slot needs "
                f"(a model of another kind); train one with '{train}'"
            )
        raise FeaturePrintMismatchError(
            f"{source}: the model was trained on feature print {stored[:12]} but this device runs {running[:12]}; "
            f"retrain it with '{train}' (or roll back with 'cadence models rollback')"
        )
