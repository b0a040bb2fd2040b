"""From feature windows to debounced sound events, in two stages.

:class:`WindowClassifier` turns each feature window into a
:class:`WindowPrediction`:

1. the **volume gate**: a window quieter than ``min_volume_db`` (RMS, dBFS)
   is not classified at all (saves the classifier's CPU on silence) and
   counts as "nothing";
2. the model (read from a slot on every window, so a hot-swapped model takes
   over at the next one) gives ``{label: probability}``; a model with a
   reject option answers ``{"_other": 1.0}`` for a window unlike every taught
   sound (``device.learn.openset``; ``reject=False`` turns it off).

:class:`SoundEventDetector` turns the predictions into events:

3. each label's probability is **smoothed** over the last ``smoothing``
   windows (with 50 % overlap every moment of audio is in two windows, so two
   is the natural default); a segment (a file, a microphone run) starts in
   silence — its first window is smoothed with "nothing" before it, as a
   sound arriving in a quiet room is — so one odd window never fires alone and
   a file reports what the daemon would (never-taught sounds stayed silent in
   0.56 of held-out clips this way against 0.33 when a file's first window was
   judged alone; research/SOUND_OPEN_SET.md);
4. the most probable label wins; the silent labels (``background`` and
   ``_other``, :data:`DEFAULT_BACKGROUND`) and labels below their
   **threshold** (``thresholds[label]`` or ``default_threshold``) or outside
   the **allow-list** mean "nothing";
5. consecutive windows with the same label form one run, reported as a
   :class:`SoundEvent` when it ends (or, for a sound that goes on, once it has
   lasted ``max_duration``, and again after each further ``max_duration``), if
   it lasted at least ``min_duration`` and the same label was not reported
   within ``cooldown`` seconds before (a sound going on: since its last report).

``device.audio.pipeline.sound_pipeline`` composes them after the feature print.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..components import TemporalFeature, TemporalTransformer
from ..learn.openset import OTHER, SILENT_LABELS

DEFAULT_BACKGROUND = SILENT_LABELS  # never an event: the owner's "nothing" and the model's "not a taught sound"


@dataclasses.dataclass(frozen=True)
class WindowPrediction:
    """One classified (or skipped) window."""

    start: float
    end: float
    rms_db: float
    probabilities: dict[str, float] | None  # None: below the volume gate, not classified

    @property
    def label(self) -> str | None:
        if not self.probabilities:
            return None
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def confidence(self) -> float:
        return max(self.probabilities.values()) if self.probabilities else 0.0

    @property
    def rejected(self) -> bool:
        """The model's reject option judged the window unlike every taught sound."""
        return self.label == OTHER

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "rms_db": None if not math.isfinite(self.rms_db) else round(self.rms_db, 1),
            "gated": self.probabilities is None,
            "rejected": self.rejected,
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "probabilities": None
            if self.probabilities is None
            else {k: round(float(v), 4) for k, v in self.probabilities.items()},
        }


@dataclasses.dataclass(frozen=True)
class SoundEvent:
    """A reported sound: its label, peak (smoothed) confidence and time span (s)."""

    label: str
    confidence: float
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": round(float(self.confidence), 4),
            "start": round(self.start, 3),
            "end": round(self.end, 3),
        }


Classifier = Callable[[Any], Mapping[str, float]]


@dataclasses.dataclass
class _Run:
    label: str
    start: float
    end: float
    confidence: float
    reported: bool = False
    continued: bool = False  # the same sound going on past max_duration, not a new one


class WindowClassifier(TemporalTransformer[Any, WindowPrediction]):
    """Feature windows → :class:`WindowPrediction` (volume gate, then the model).

    ``model`` is a classifier (``feature -> {label: probability}``) or a slot
    with a ``current`` classifier (:class:`~device.components.ModelSlot`, the
    daemon's model holder): it is read for every window, and while it is
    ``None`` windows are skipped (counted in :attr:`waiting`). ``reject``:
    use the model's reject option when it has one (``model.classify(x,
    reject=...)``).
    """

    output_type = WindowPrediction

    # -70 dBFS: at -60 some real impacts (7 of 90 dev ball drops) had every window gated and could never fire
    def __init__(self, model: Any, *, min_volume_db: float | None = -70.0, reject: bool = True) -> None:
        self.model = model
        self.min_volume_db = min_volume_db
        self.reject = reject
        self.classified = 0  # windows that went through the classifier
        self.gated = 0  # windows skipped by the volume gate
        self.waiting = 0  # windows skipped while there was no model
        self.rejected = 0  # classified windows the model's reject option called "not a taught sound"

    def audible(self, feature: Any) -> bool:
        """Whether a window is loud enough to classify (True when its level is unknown)."""
        if self.min_volume_db is None:
            return True
        level = getattr(feature, "rms_db", None)
        return level is None or level >= self.min_volume_db

    def current(self) -> Classifier | None:
        """The classifier to use now (a slot's current model, or the model itself)."""
        return self.model.current if hasattr(self.model, "current") else self.model

    def classify(self, feature: Any) -> WindowPrediction | None:
        """Gate, then classify one window (None while there is no model)."""
        start, stop = float(feature.start), float(feature.end)
        level = float(getattr(feature, "rms_db", math.nan))
        if not self.audible(feature):
            self.gated += 1
            return WindowPrediction(start, stop, level, None)
        model = self.current()
        if model is None:
            self.waiting += 1
            return None
        probs = model(feature) if self.reject or not hasattr(model, "classify") else model.classify(feature, reject=False)
        self.classified += 1
        prediction = WindowPrediction(start, stop, level, {str(k): float(v) for k, v in dict(probs).items()})
        self.rejected += prediction.rejected
        return prediction

    async def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[WindowPrediction]]:
        async for item in stream:
            prediction = self.classify(item.value)
            if prediction is not None:
                yield item.replace(prediction)


class SoundEventDetector(TemporalTransformer[WindowPrediction, SoundEvent]):
    """Debounced sound events from a stream of window predictions (see module docs)."""

    input_type = WindowPrediction
    output_type = SoundEvent

    def __init__(
        self,
        *,
        thresholds: Mapping[str, float] | None = None,
        default_threshold: float = 0.5,
        allow: Iterable[str] | None = None,
        smoothing: int = 2,
        min_duration: float = 0.0,
        cooldown: float = 2.0,
        max_duration: float = 10.0,
        background: Iterable[str] = DEFAULT_BACKGROUND,
    ) -> None:
        thresholds = dict(thresholds or {})
        for label, value in {**thresholds, "default_threshold": default_threshold}.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"SoundEventDetector: threshold for {label!r} must be in [0, 1], got {value}")
        if not isinstance(smoothing, int) or smoothing < 1:
            raise ValueError(f"SoundEventDetector: smoothing must be an integer ≥ 1 (windows), got {smoothing!r}")
        for name, value in (("min_duration", min_duration), ("cooldown", cooldown)):
            if value < 0:
                raise ValueError(f"SoundEventDetector: {name} must be ≥ 0, got {value}")
        if max_duration <= 0:
            raise ValueError(f"SoundEventDetector: max_duration must be > 0, got {max_duration}")
        self.thresholds = {str(k): float(v) for k, v in thresholds.items()}
        self.default_threshold = float(default_threshold)
        self.allow = None if allow is None else frozenset(str(a) for a in allow)
        self.smoothing = smoothing
        self.min_duration = float(min_duration)
        self.cooldown = float(cooldown)
        self.max_duration = float(max_duration)
        self.background = frozenset(background)

    def threshold(self, label: str) -> float:
        return self.thresholds.get(label, self.default_threshold)

    async def process(
        self, stream: AsyncIterable[TemporalFeature[WindowPrediction]]
    ) -> AsyncIterator[TemporalFeature[SoundEvent]]:
        """Window predictions -> debounced events, each stamped with the time of the
        window that settled it (in a pipeline: the end of the window's audio)."""
        history: collections.deque[dict[str, float]] = collections.deque(maxlen=self.smoothing)
        run: _Run | None = None
        last_reported: dict[str, float] = {}
        segment: object = object()
        last_time = 0.0

        def report(r: _Run) -> SoundEvent | None:
            if r.reported or r.end - r.start < self.min_duration - 1e-9:
                return None
            r.reported = True
            previous = last_reported.get(r.label)
            if r.continued:
                # a sound going on: again once it has gone on for another max_duration (its tail,
                # when it stops sooner, is the sound already reported, not a new one), and once the
                # cool-down has passed since its last report (measured from its start, each
                # continuation would be 0 s after the last one)
                if r.end - r.start < self.max_duration - 1e-9:
                    return None
                if previous is not None and r.end - previous < self.cooldown - 1e-9:
                    return None
                last_reported[r.label] = r.end
                return SoundEvent(r.label, r.confidence, r.start, r.end)
            last_reported[r.label] = r.end
            if previous is not None and r.start - previous < self.cooldown - 1e-9:
                return None
            return SoundEvent(r.label, r.confidence, r.start, r.end)

        async for item in stream:
            pred = item.value
            if item.segment != segment:
                if run is not None:
                    ev = report(run)
                    if ev is not None:
                        yield TemporalFeature(ev, last_time, segment)  # type: ignore[arg-type]
                segment, run = item.segment, None
                history.clear()
                history.extend([{}] * (self.smoothing - 1))  # the segment starts in silence
                last_reported.clear()
            last_time = item.timestamp
            history.append(pred.probabilities or {})
            label, confidence = self._decide(history)
            if run is not None and label != run.label:
                ev = report(run)
                if ev is not None:
                    yield TemporalFeature(ev, item.timestamp, item.segment)
                run = None
            if label is None:
                continue
            if run is None:
                run = _Run(label, pred.start, pred.end, confidence)
            else:
                run.end = max(run.end, pred.end)
                run.confidence = max(run.confidence, confidence)
            if not run.reported and run.end - run.start >= self.max_duration:
                ev = report(run)
                if ev is not None:
                    yield TemporalFeature(ev, item.timestamp, item.segment)
                # a sound that goes on starts a new run, reported after another max_duration
                run = _Run(label, pred.end, pred.end, 0.0, continued=True)
        if run is not None:
            ev = report(run)
            if ev is not None:
                yield TemporalFeature(ev, last_time, segment)  # type: ignore[arg-type]

    def _decide(self, history: Iterable[dict[str, float]]) -> tuple[str | None, float]:
        windows = list(history)
        labels = sorted({k for w in windows for k in w})
        if not labels:
            return None, 0.0
        smoothed = np.array([[w.get(k, 0.0) for k in labels] for w in windows]).mean(axis=0)
        best = int(np.argmax(smoothed))
        label, confidence = labels[best], float(smoothed[best])
        if label in self.background:
            return None, confidence
        if self.allow is not None and label not in self.allow:
            return None, confidence
        if confidence < self.threshold(label):
            return None, confidence
        return label, confidence
