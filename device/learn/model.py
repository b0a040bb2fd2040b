"""What every fitted classifier shares: labels, standardisation, prediction, state, clips.

A fitted model is a :class:`~device.components.Transformer` from one feature
(any form :func:`~device.learn.inputs.as_matrix` takes) to a
``{label: probability}`` dict; :meth:`ClassifierModel.predict_proba` and
:meth:`ClassifierModel.predict` work on batches. A clip (or a file, or a
stretch of a live stream) is classified from its windows by
:func:`classify_clip`: the label with the highest mean window probability.
Saving writes JSON + npz through :func:`device.components.save_state`;
:func:`restore` reads it back (each model class registers its ``kind``);
:mod:`device.learn.modelfile` adds the featurizer checks.

A model may carry a :class:`~device.learn.openset.RejectOption` (fitted by
the trainer): then a window too far from the label the classifier picked is
answered ``{"_other": 1.0}`` ("not a taught sound") by :meth:`classify` — the
one call the daemon, ``cadence classify`` and ``cadence evaluate`` make per
window — unless ``reject=False``.

A model trained with the shipped negatives has one class the owner never
taught, ``_negatives`` (:data:`~device.learn.openset.NEGATIVES`): it is one of
:attr:`ClassifierModel.labels` (the classifier's outputs) but not of
:attr:`~ClassifierModel.taught_labels` or of what :meth:`classify` answers. A
window it holds with more than the model's ``negatives_threshold`` is
answered ``background``; below that it is left out and the taught labels'
probabilities renormalised — a gate, not the argmax, so that a few-shot
owner's label keeps the windows the negatives only half claim.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.components import (
    CadenceError,
    ClipPrediction,
    ClipVote,
    PersistenceError,
    Transformer,
    first_line,
    load_state,
    save_state,
)

from .inputs import as_matrix
from .labels import labels_problem
from .openset import BACKGROUND, NEGATIVES, NEGATIVES_THRESHOLD, OTHER, RejectOption

LOGISTIC_KIND = "cadence.classifier.logistic_regression"
NETWORK_KIND = "cadence.classifier.fully_connected_network"
# 3: may carry a reject option (``openset`` meta and ``openset_*`` arrays); trained on windows above the gate
# 2: trained on the windows of the stream (not whole clips); no offsets, no "quantized" input space;
#    the optimizer's state is its own block
MODEL_VERSION = 3


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays as plain JSON values and non-finite floats as null."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def encode_rng(generator: np.random.Generator) -> dict[str, Any]:
    """A PCG64 generator's state as JSON (its 128-bit integers as strings)."""
    state = generator.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": str(state["state"]["state"]),
        "inc": str(state["state"]["inc"]),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def decode_rng(data: Mapping[str, Any]) -> np.random.Generator:
    generator = np.random.Generator(np.random.PCG64())
    generator.bit_generator.state = {
        "bit_generator": data["bit_generator"],
        "state": {"state": int(data["state"]), "inc": int(data["inc"])},
        "has_uint32": int(data["has_uint32"]),
        "uinteger": int(data["uinteger"]),
    }
    return generator


_TYPES: dict[str, type["ClassifierModel"]] = {}


class ClassifierModel(Transformer[Any, dict[str, float]]):
    """Labels, per-dimension standardisation, the featurizer's scales and metadata."""

    kind: str = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            _TYPES[cls.kind] = cls

    def __init__(
        self,
        labels: Sequence[str],
        mean: np.ndarray,
        std: np.ndarray,
        *,
        feature_scales: np.ndarray | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.labels = [str(label) for label in labels]
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        #: how int8 inputs are dequantised (the featurizer's scales, stored at training)
        self.feature_scales = None if feature_scales is None else np.asarray(feature_scales, dtype=np.float32)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.metadata.setdefault("created", now())
        #: "none of these": set by the trainer (or read from the file); None: every window gets a taught label
        self.reject_option: RejectOption | None = None

    @property
    def dimension(self) -> int:
        return int(self.mean.shape[0])

    @property
    def fingerprint(self) -> str | None:
        """The featurizer fingerprint the model was trained on (None if not recorded)."""
        fp = self.metadata.get("feature_print_fingerprint")
        return str(fp) if fp else None

    @property
    def taught_labels(self) -> list[str]:
        """The labels the owner taught (:attr:`labels` without the shipped negatives' class)."""
        return [label for label in self.labels if label != NEGATIVES]

    @property
    def negatives_threshold(self) -> float:
        """Above this ``_negatives`` probability a window is answered ``background`` (stored at training)."""
        return float(self.metadata.get("negatives_threshold", NEGATIVES_THRESHOLD))

    def standardise(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] != self.dimension:
            raise CadenceError(f"features have {x.shape[1]} dimensions, the model expects {self.dimension}")
        return (x - self.mean) / self.std

    def _logits(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def as_matrix(self, features: Any) -> np.ndarray:
        """Inputs as the float matrix this model was trained on."""
        return as_matrix(features, self.feature_scales)

    def predict_proba(self, features: Any) -> np.ndarray:
        """Probabilities ``(n, len(labels))`` for a batch of features."""
        z = self.standardise(self.as_matrix(features))
        return softmax(self._logits(z).astype(np.float64)).astype(np.float32)

    def predict(self, features: Any) -> list[str]:
        """The most probable label of each feature of a batch (the classifier's own outputs, ``_negatives``
        included; what the product answers is :meth:`classify`)."""
        return [self.labels[i] for i in np.argmax(self.predict_proba(features), axis=1)]

    def output_labels(self, reject: bool = True) -> list[str]:
        """The labels :meth:`classify` answers with (the taught ones, and ``_other`` with a reject option)."""
        taught = self.taught_labels
        return taught + [OTHER] if reject and self.reject_option is not None else taught

    def predict_open(self, features: Any, *, reject: bool = True, proba: np.ndarray | None = None) -> np.ndarray:
        """Probabilities over :meth:`output_labels`: a rejected window is all ``_other``; a window
        the shipped negatives hold above :attr:`negatives_threshold` is all ``background``
        (``proba``: :meth:`predict_proba` of these features, when the caller has it already)."""
        x = self.as_matrix(features)
        p = self.predict_proba(x) if proba is None else proba
        shipped = None
        if NEGATIVES in self.labels:
            neg = self.labels.index(NEGATIVES)
            shipped = p[:, neg] > self.negatives_threshold
            p = p.copy()
            p[:, neg] = 0.0
            picked = np.argmax(p, axis=1)  # an index of labels, as the reject option counts them
            p = np.delete(p, neg, axis=1)
            p /= np.maximum(p.sum(axis=1, keepdims=True), np.float32(1e-12))
        else:
            picked = np.argmax(p, axis=1)
        if reject and self.reject_option is not None:
            out = np.concatenate([p, np.zeros((len(p), 1), dtype=p.dtype)], axis=1)
            rejected = self.reject_option.rejects(x, picked)
            out[rejected] = 0.0
            out[rejected, -1] = 1.0
        else:
            out = p
        if shipped is not None and shipped.any():
            out[shipped] = 0.0
            out[shipped, self.taught_labels.index(BACKGROUND)] = 1.0
        return out

    def classify(self, x: Any, *, reject: bool = True) -> dict[str, float]:
        """One window's ``{label: probability}`` (with ``_other`` when the model has a reject option)."""
        p = self.predict_open(x, reject=reject)[0]
        return {label: float(v) for label, v in zip(self.output_labels(reject), p)}

    def apply(self, x: Any) -> dict[str, float]:
        return self.classify(x)

    # -- persistence --------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(meta, arrays) as stored on disk."""
        arrays = {**self._arrays(), "mean": self.mean, "std": self.std}
        if self.feature_scales is not None:
            arrays["feature_scales"] = self.feature_scales
        meta = {"model_version": MODEL_VERSION, "labels": self.labels, **self._meta(), "metadata": json_safe(self.metadata)}
        if self.reject_option is not None:
            arrays.update(self.reject_option.arrays())
            meta["openset"] = json_safe(self.reject_option.meta())
        return meta, arrays

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (old file intact on any failure, e.g. a full disk)."""
        meta, arrays = self.state()
        return save_state(path, self.kind, meta, arrays)

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "ClassifierModel":
        raise NotImplementedError

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> "ClassifierModel":
        """A model of this class from a file written by :meth:`save`."""
        meta, arrays = load_state(path, kind=cls.kind)
        return restore(meta, arrays, str(path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(labels={self.labels}, dimension={self.dimension})"


def classifier_kinds() -> frozenset[str]:
    """The ``kind`` of every classifier model file this Cadence reads (:func:`restore` takes them)."""
    return frozenset(_TYPES)


def restore(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], source: str = "<model>") -> ClassifierModel:
    """The model in ``(meta, arrays)``; refuses other kinds, other format versions
    and arrays that do not fit together, each with one line."""
    kind = meta.get("kind")
    version = meta.get("model_version", 1)
    if kind not in _TYPES:
        raise PersistenceError(f"{source}: holds a {kind!r}, not a classifier model")
    if version != MODEL_VERSION:
        newer = isinstance(version, int) and version > MODEL_VERSION
        raise PersistenceError(
            f"{source}: classifier format {version!r} is " + ("newer than this Cadence reads" if newer else
            f"from an older Cadence (this one reads {MODEL_VERSION}); retrain it with 'cadence train sound'")
        )
    try:
        if not isinstance(meta.get("labels"), list):
            raise ValueError(f"labels {type(meta.get('labels')).__name__}, not a list")
        model = _TYPES[kind].from_state(meta, arrays)
        if not model.labels:
            raise ValueError("no labels")
        problem = labels_problem(model.taught_labels, saved=True)
        if problem:
            raise ValueError(problem)
        if len(set(model.labels)) != len(model.labels):
            raise ValueError(f"a label appears twice in {model.labels}")
        if NEGATIVES in model.labels and BACKGROUND not in model.labels:
            raise ValueError(f"a '{NEGATIVES}' class without '{BACKGROUND}' to answer for it")
        threshold = model.metadata.get("negatives_threshold", NEGATIVES_THRESHOLD)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ValueError(f"negatives_threshold {threshold!r} is not a number")
        if not 0.0 < model.negatives_threshold < 1.0:
            raise ValueError(f"negatives_threshold {model.negatives_threshold!r} is not between 0 and 1")
        if meta.get("openset"):
            model.reject_option = RejectOption.from_state(meta["openset"], arrays, model.labels)
        probe = np.zeros((1, model.dimension), dtype=np.float32)
        p = model.predict_open(probe)
        if p.shape != (1, len(model.output_labels())) or not np.all(np.isfinite(p)):
            raise ValueError(f"outputs of shape {p.shape} for {len(model.labels)} labels")
        if model.feature_scales is not None and model.feature_scales.shape != (model.dimension,):
            raise ValueError(f"{model.feature_scales.shape[0]} feature scales for {model.dimension} dimensions")
    except PersistenceError as exc:
        raise PersistenceError(f"{source}: {exc}") from exc
    except (CadenceError, KeyError, ValueError, TypeError, AttributeError, IndexError, OverflowError) as exc:
        raise PersistenceError(f"{source}: incomplete or inconsistent classifier model ({first_line(exc)})") from exc
    return model


def classify_clip(model: ClassifierModel, windows: Iterable[Any], *, batch: int = 64) -> ClipPrediction:
    """The label of a clip from its windows (QuantizedFeatures or rows of an array).

    Windows are classified in batches of ``batch``, so a clip of any length
    takes bounded memory; a clip without windows gets ``label=None``. The
    trainer's clip metrics and ``scripts/eval_sound.py`` use the same rule.
    """
    vote = ClipVote(model.output_labels(reject=False))
    pending: list[Any] = []
    for window in windows:
        pending.append(window)
        if len(pending) >= batch:
            vote.add(model.predict_open(_batch(pending), reject=False))
            pending = []
    if pending:
        vote.add(model.predict_open(_batch(pending), reject=False))
    return vote.result()


def _batch(items: list[Any]) -> Any:
    return np.stack(items) if isinstance(items[0], np.ndarray) else items
