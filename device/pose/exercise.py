"""Which exercise: a classifier over pose windows, with an open set.

Each window of poses (the counter's windows) becomes an
:class:`~device.pose.exercise_features.ExerciseFeatures` vector; a
``device.learn`` classifier gives per-exercise probabilities. Evidence adds
up over a set: the label of a window is the exercise with the highest *mean*
probability over the moving windows so far (a single 3 s window can look like
another exercise; a set rarely does; a mean, unlike a sum of log
probabilities, lets no single odd window veto a label), and a whole sequence
is labelled the same way from all of its windows.

Open set, per window and per sequence:

* ``none`` — the body hardly moves (standing, resting) or nobody is seen;
* ``unknown`` — the windows lie far from every exercise the model knows
  (per-class standardised distance above what the training windows reach),
  look like the background class of moving landmarks that are no body
  (random clouds, shuffled joints: trained as the label ``unknown``), or the
  best exercise is not probable enough.

The thresholds travel with the model (``metadata["open_set"]``), so a model
retrained on the device brings its own. The shipped model is
``models/exercise.model``, built by ``scripts/build_exercise_model.py``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..components import TemporalFeature, TemporalTransformer
from .counter import REST_TIME
from .settings import PoseSettings
from .exercise_features import (
    DESCRIPTOR,
    POSITIONS,
    STATISTICS,
    ExerciseFeatures,
    as_landmarks,
    frame_descriptors,
    pool,
    window_array,
)
from .exercise_openset import (
    MAX_DISTANCE,
    MIN_CONFIDENCE,
    MIN_MOTION,
    UNKNOWN,
    nearest_distance,
    calibrate_open_set,
)

MODEL_FILE = "exercise.model"
NONE = "none"
# frames per second the windows are meant for (90 frames = 3 s)
WINDOW_FPS = 30.0
# Seconds of moving windows the live label weighs (40 windows of the pipeline's 0.5 s stride).
EVIDENCE_SECONDS = 20.0

_STD_OFFSET = STATISTICS.index("std") * len(DESCRIPTOR)


@dataclasses.dataclass(frozen=True)
class ExerciseGuess:
    """A label (an exercise, ``unknown`` or ``none``) and its confidence (0..1)."""

    label: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"exercise": self.label, "confidence": round(self.confidence, 3)}


def motion(raw: np.ndarray) -> np.ndarray:
    """How much the body moves in each window: mean std of its normalised positions."""
    raw = np.atleast_2d(raw)
    return raw[:, _STD_OFFSET + POSITIONS].mean(axis=1)


class ExerciseClassifier:
    """A fitted ``device.learn`` classifier with the exercise open set around it."""

    def __init__(self, model: Any, features: ExerciseFeatures | None = None) -> None:
        self.model = model
        self.features = features or ExerciseFeatures()
        open_set = dict(model.metadata.get("open_set") or {})
        self.min_motion = float(open_set.get("min_motion", MIN_MOTION))
        self.min_confidence = float(open_set.get("min_confidence", MIN_CONFIDENCE))
        self.max_distance = float(open_set.get("max_distance", MAX_DISTANCE))
        centres = open_set.get("centres")
        spreads = open_set.get("spreads")
        self.centres = None if centres is None else np.asarray(centres, dtype=np.float64)
        self.spreads = None if spreads is None else np.asarray(spreads, dtype=np.float64)

    @property
    def labels(self) -> list[str]:
        """The model's labels (its exercises, and ``unknown`` when it has a background class)."""
        return list(self.model.labels)

    @property
    def exercises(self) -> list[str]:
        return [label for label in self.model.labels if label != UNKNOWN]

    @classmethod
    def load(cls, path: str | Path | None = None, data: bytes | None = None) -> "ExerciseClassifier":
        """The model at ``path`` (``data``: its bytes, already read), or the shipped one (verified
        against its SHA-256)."""
        from ..learn import load_classifier

        features = ExerciseFeatures()
        if path is None:
            from ..pretrained import model_path

            path = model_path(MODEL_FILE)
        return cls(load_classifier(path, feature_print=features, data=data), features)

    # -- scores -----------------------------------------------------------------
    def scores(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log probabilities (n, k), motion (n,), distance to the nearest class (n,)) of raw window features."""
        raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
        q = self.features.quantize(raw)
        p = self.model.predict_proba(q.astype(np.float32) * self.features.scales)
        return np.log(np.maximum(p.astype(np.float64), 1e-9)), motion(raw), self.distance(raw)

    def distance(self, raw: np.ndarray) -> np.ndarray:
        """Distance to the nearest known exercise: the mean over dimensions of the
        squared standardised excess beyond each exercise's typical range (0 inside it)."""
        if self.centres is None or self.spreads is None:
            return np.zeros(len(np.atleast_2d(raw)))
        return nearest_distance(raw, self.centres, self.spreads)

    def decide(self, logp: np.ndarray, moving: np.ndarray, distance: np.ndarray) -> ExerciseGuess:
        """One label from the scores of a run of windows (a set so far, or a sequence)."""
        active = moving >= self.min_motion
        if not active.any():
            return ExerciseGuess(NONE, 1.0)
        known = active & (distance <= self.max_distance)
        if known.sum() * 2 < active.sum():  # most moving windows are like nothing the model knows
            return ExerciseGuess(UNKNOWN, float(1.0 - known.sum() / active.sum()))
        mean = np.exp(logp[known]).mean(axis=0)  # soft vote: one odd window cannot veto a label
        best = int(np.argmax(mean))
        confidence = float(mean[best])
        if self.labels[best] == UNKNOWN:  # the background class of landmarks that are no body
            return ExerciseGuess(UNKNOWN, confidence)
        if confidence < self.min_confidence:
            return ExerciseGuess(UNKNOWN, 1.0 - confidence)
        return ExerciseGuess(self.labels[best], confidence)

    # -- windows and sequences ----------------------------------------------------
    def classify_window(self, window: Any) -> ExerciseGuess:
        """The label of one window on its own (no memory of earlier windows)."""
        raw = self.features.raw(window)
        if raw is None:
            return ExerciseGuess(NONE, 1.0)
        return self.decide(*self.scores(raw))

    def classify_sequence(self, landmarks: Any, fps: float = WINDOW_FPS) -> ExerciseGuess:
        """The label of a whole sequence, from all of its windows."""
        rows = [raw for _, _, raw in self.features.raw_windows(_at_window_rate(as_landmarks(landmarks), fps))]
        if not rows:
            return ExerciseGuess(NONE, 1.0)
        return self.decide(*self.scores(np.stack(rows)))

    def tracker(self, forget_after: float | None = None) -> "ExerciseTracker":
        return ExerciseTracker(self, forget_after=forget_after)


def pause_to_forget(rest_time: float, window: float, stride: float) -> float:
    """Seconds between two moving windows after which the evidence goes: a window still moves for
    up to its length after the person stops, so the counter's ``rest_time`` (from the last movement)
    is ``rest_time − window + stride`` from the last moving window (all in seconds; at least a stride)."""
    return max(stride, rest_time - window + stride)


def _default_forget_after() -> float:
    fields = PoseSettings.model_fields
    return pause_to_forget(REST_TIME, fields["window"].default / WINDOW_FPS, fields["stride"].default / WINDOW_FPS)


class ExerciseTracker:
    """Streaming labels for one segment (a file, a camera run): push each window,
    get the label that the evidence of the windows so far gives.

    Consecutive windows of the pipeline share most of their frames (the same
    objects, 75 of 90); their per-frame descriptors are kept, so each frame is
    described once. The evidence is that of the last ``memory`` moving windows
    of the last ``horizon`` seconds, all forgotten when ``forget_after``
    seconds pass between two moving windows (default: the counter's
    set-ending pause at the pipeline's window and stride, :func:`pause_to_forget`):
    after a pause that ends a set the next
    set may be another exercise, and old evidence would name its first
    repetitions wrongly (and the change of name split the set). Without
    window times (``push(window)`` alone) only ``memory`` applies.
    """

    def __init__(self, classifier: ExerciseClassifier, memory: int = 40, forget_after: float | None = None,
                 horizon: float = EVIDENCE_SECONDS) -> None:
        self.classifier = classifier
        self.memory = int(memory)  # moving windows remembered (40 × 15 frames = 20 s at 30 fps)
        self.forget_after = _default_forget_after() if forget_after is None else float(forget_after)
        self.horizon = float(horizon)
        self.reset()

    def reset(self) -> None:
        self._window: list[Any] | None = None
        self._descriptors: np.ndarray | None = None
        self.forget()

    def forget(self) -> None:
        """Drop the evidence of the windows so far (the frames' descriptors stay)."""
        self._logp = np.zeros((self.memory, len(self.classifier.labels)))
        self._motion = np.zeros(self.memory)
        self._distance = np.zeros(self.memory)
        self._time = np.full(self.memory, np.inf)
        self._seen = 0
        self._last_moving: float | None = None

    def _describe(self, window: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Per-frame descriptors of ``window``, reusing those of the frames it
        shares (by identity) with the previous window."""
        if isinstance(window, np.ndarray):
            self._window = None
            return frame_descriptors(window)
        items = list(window)
        prev, desc = self._window, self._descriptors
        reused = 0
        if prev and items and desc is not None:
            first = items[0]
            k = next((i for i, item in enumerate(prev) if item is first and item is not None), -1)
            overlap = len(prev) - k
            if k >= 0 and overlap <= len(items) and all(a is b for a, b in zip(items[:overlap], prev[k:])):
                reused = overlap
        new = frame_descriptors(window_array(items[reused:])) if len(items) > reused else desc[:0]
        out = np.concatenate([desc[len(prev) - reused :], new]) if reused else new
        self._window, self._descriptors = items, out
        return out

    def push(self, window: Sequence[Any] | np.ndarray, time: float | None = None) -> ExerciseGuess:
        """The label after ``window`` (``time``: when it ends, in seconds)."""
        raw = pool(self._describe(window))
        moving = None
        if raw is not None:
            logp, moving, distance = self.classifier.scores(raw)
        # a short pause keeps the set's evidence; a long one forgets it (checked at the next window, moving or not)
        if time is not None and self._last_moving is not None and time - self._last_moving >= self.forget_after:
            self.forget()
        if moving is None or moving[0] < self.classifier.min_motion:
            return ExerciseGuess(NONE, 1.0)  # a pause says none now
        self._last_moving = time
        slot = self._seen % self.memory
        self._logp[slot], self._motion[slot], self._distance[slot] = logp[0], moving[0], distance[0]
        self._time[slot] = np.inf if time is None else time
        self._seen += 1
        n = min(self._seen, self.memory)
        kept = slice(None, n) if time is None else np.flatnonzero(self._time[:n] > time - self.horizon)
        return self.classifier.decide(self._logp[kept], self._motion[kept], self._distance[kept])


class ExerciseWindow(list):
    """A window of poses tagged with the exercise recognised in it (:attr:`guess`),
    so the counter after the recogniser can name the sets it counts."""

    guess: ExerciseGuess


class ExerciseRecognizer(TemporalTransformer[list, list]):
    """The tracker as a pipeline stage before the counter: windows of poses
    (from ``SlidingWindow``) in, the same windows out, each tagged with an
    :class:`ExerciseGuess` (:class:`ExerciseWindow`); a new segment (file,
    camera run) starts with no evidence, and so does the first set after a
    pause that ends a set (``forget_after``: see :class:`ExerciseTracker`).
    ``classifier`` is an :class:`ExerciseClassifier` or a slot whose
    ``current`` one is read per window (hot swap: a new classifier starts with
    no evidence; while the slot is empty, windows pass untagged)."""

    input_type = list
    output_type = list

    def __init__(self, classifier: Any = None, forget_after: float | None = None) -> None:
        self.classifier = classifier if classifier is not None else shipped_classifier()
        self.forget_after = forget_after

    def current(self) -> ExerciseClassifier | None:
        return self.classifier.current if hasattr(self.classifier, "current") else self.classifier

    async def process(self, stream: AsyncIterable[TemporalFeature[list]]) -> AsyncIterator[TemporalFeature[list]]:
        segment: object = object()
        tracker: ExerciseTracker | None = None
        async for item in stream:
            classifier = self.current()
            if classifier is None:
                yield item
                continue
            if item.segment != segment or tracker is None or tracker.classifier is not classifier:
                segment, tracker = item.segment, classifier.tracker(forget_after=self.forget_after)
            window = ExerciseWindow(item.value)
            window.guess = tracker.push(item.value, item.timestamp)
            yield item.replace(window)


def _at_window_rate(arr: np.ndarray, fps: float) -> np.ndarray:
    """Keep every n-th frame of a fast recording so that 90 frames span about 3 s."""
    if not fps or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    step = max(1, int(round(fps / WINDOW_FPS)))
    return arr[::step] if step > 1 else arr


_SHIPPED: ExerciseClassifier | None = None


def shipped_classifier() -> ExerciseClassifier:
    """The shipped model (loaded and verified once per process)."""
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = ExerciseClassifier.load()
    return _SHIPPED


def classify_exercise(landmarks: Any, fps: float = 30.0) -> str:
    """The exercise of a whole pose sequence, by the shipped model.

    ``landmarks``: (frames, 33, 2|3|4), image-normalised or per-frame min–max
    normalised coordinates (both give the same answer), NaN rows where nobody
    was found. Returns one of the model's exercises or ``"unknown"`` (also for
    a sequence in which nobody moves).
    """
    label = shipped_classifier().classify_sequence(landmarks, fps).label
    return UNKNOWN if label == NONE else label


# -- training (the one place that knows the device.learn classifier API) --------
# the exercise network: the shipped model's build and `cadence train exercise` alike
NETWORK = {"hidden": 64, "epochs": 40, "dropout": 0.2, "l2": 1e-4}


def fit_classifier(
    raw: np.ndarray,
    labels: Sequence[str],
    *,
    hidden: int = NETWORK["hidden"],
    epochs: int = NETWORK["epochs"],
    seed: int = 0,
    min_windows: int = 300,
    created: str | None = None,
    features: ExerciseFeatures | None = None,
) -> ExerciseClassifier:
    """Fit the window classifier (the small network of ``device.learn``) on raw
    window features and calibrate its open set (:func:`calibrate_open_set`).

    The network sees the quantised features (what the feature cache and the
    live pipeline give it). The label ``unknown`` may be among ``labels``: a
    background class of windows that are no exercise. An exercise with fewer than ``min_windows`` windows (one taught from a
    few recordings) has its windows repeated up to that many, so that it is
    not drowned by the shipped ones. ``created`` (ISO time) replaces the time of training in the model's
    metadata: a fixed one makes a rebuild from the same data byte-identical.
    """
    from ..components import Examples
    from ..learn import FullyConnectedNetworkClassifier

    features = features or ExerciseFeatures()
    raw = np.asarray(raw, dtype=np.float64)
    names = np.asarray([str(label) for label in labels])
    rows = np.concatenate([_repeated(np.flatnonzero(names == label), min_windows) for label in sorted(set(names))])
    # one seeded order of all windows: the estimator's fit passes over the examples chunk by chunk in
    # the order given (it shuffles only within a chunk), and in label order every chunk of 1,024 would
    # hold one or two exercises, so each epoch would end on the last labels
    rows = rows[np.random.default_rng(seed).permutation(len(rows))]
    dequantised = features.quantize(raw[rows]).astype(np.float32) * features.scales
    data = Examples.of(dequantised, names[rows])
    estimator = FullyConnectedNetworkClassifier(
        hidden_unit_counts=(hidden,), max_iterations=epochs, dropout=NETWORK["dropout"], l2_penalty=NETWORK["l2"],
        random_seed=seed,
    )
    model = estimator.fit(data)
    if created is not None:
        model.metadata["created"] = created
    model.metadata["feature_print_fingerprint"] = features.fingerprint()
    # as the trainer records it: a model put in the sound slot is named as an exercise model
    model.metadata["feature_print"] = {
        "class": type(features).__name__, "fingerprint": features.fingerprint(), "dimension": features.dimension,
    }
    model.metadata["open_set"] = calibrate_open_set(raw, names)
    return ExerciseClassifier(model, features)


def _repeated(index: np.ndarray, at_least: int) -> np.ndarray:
    """``index`` repeated (whole, then a prefix) up to ``at_least`` entries."""
    if len(index) >= at_least or not len(index):
        return index
    return np.resize(index, at_least)
