"""The sound pipeline: the one composition the daemon, ``cadence classify``,
``cadence evaluate sound`` and the evaluations all run.

    16 kHz chunks ─▶ [Gain] ─▶ [Tap] ─▶ InThread(AudioFeaturePrint) ─▶ [Tap] ─▶ WindowClassifier ─▶ [Tap] ─▶ SoundEventDetector ─▶ SoundEvent

:func:`window_pipeline` is the same composition after the feature print:
windows already computed (an evaluation's cached windows) become the events
the device would report for them.

The feature print runs on a worker thread (its speech embedding is the
costly part), so the caller's event loop — MQTT, the watchdog — never waits
for it. The classifier reads its model from a slot on every window (hot
swap). A file is the same stream as a microphone (``read_audio``), so what
``classify`` prints is what the daemon would report, window for window.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..components import ClipPrediction, ClipVote, InThread, Tap, TemporalFeature, TemporalPipeline, Transformer
from .events import SoundEventDetector, WindowClassifier, WindowPrediction
from .featureprint import AudioFeaturePrint
from .settings import SoundSettings


class Gain(Transformer[np.ndarray, np.ndarray]):
    """Scale samples by ``factor``, clipped to [-1, 1] (a quiet microphone)."""

    def __init__(self, factor: float) -> None:
        if not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"Gain: factor must be a positive number, got {factor!r}")
        self.factor = float(factor)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=np.float32) * np.float32(self.factor), -1.0, 1.0)


def make_feature_print(settings: SoundSettings) -> AudioFeaturePrint:
    """The feature print for ``settings`` (its models load on first use)."""
    return AudioFeaturePrint(window_duration=settings.window, overlap_factor=settings.overlap)


def make_detector(settings: SoundSettings) -> SoundEventDetector:
    return SoundEventDetector(
        thresholds=settings.thresholds,
        default_threshold=settings.default_threshold,
        allow=settings.allow,
        smoothing=settings.smoothing,
        min_duration=settings.min_duration,
        cooldown=settings.cooldown,
        max_duration=settings.max_duration,
    )


def sound_pipeline(
    settings: SoundSettings,
    model: Any,
    *,
    feature_print: AudioFeaturePrint | None = None,
    gain: float = 1.0,
    on_window: Callable[[TemporalFeature[WindowPrediction]], None] | None = None,
    on_audio: Callable[[TemporalFeature[np.ndarray]], None] | None = None,
    on_feature: Callable[[TemporalFeature[Any]], None] | None = None,
) -> TemporalPipeline:
    """16 kHz mono chunks → :class:`~device.audio.events.SoundEvent` items.

    ``model``: a classifier, or a slot whose ``current`` classifier is read
    for every window (``ModelSlot``, the daemon's model holder).
    ``feature_print``: one to reuse (its window must match ``settings``);
    ``on_window`` sees every window's prediction (``classify`` prints them);
    ``on_audio`` every chunk as the feature print gets it (after the gain);
    ``on_feature`` every feature window, also while there is no model — the
    stages after it run in order, so when it sees a window the detector has
    finished with every window before it (and said its events).
    """
    fp = feature_print or make_feature_print(settings)
    if (fp.window_duration, fp.overlap_factor) != (settings.window, settings.overlap):
        raise ValueError(
            f"sound_pipeline: the feature print's windows ({fp.window_duration:g} s, overlap {fp.overlap_factor:g}) "
            f"differ from the settings' ({settings.window:g} s, overlap {settings.overlap:g})"
        )
    stages: list[Any] = [Gain(gain)] if gain != 1.0 else []
    stages += [Tap(on_audio, name="audio")] if on_audio is not None else []
    stages += [InThread(fp, name="featureprint")]
    stages += [Tap(on_feature, name="features")] if on_feature is not None else []
    stages += _window_stages(settings, model, on_window)
    return TemporalPipeline(stages)


def window_pipeline(
    settings: SoundSettings,
    model: Any,
    *,
    on_window: Callable[[TemporalFeature[WindowPrediction]], None] | None = None,
) -> TemporalPipeline:
    """Feature windows (``QuantizedFeature`` items) → ``SoundEvent`` items: the sound
    pipeline after its feature print (gate, model with its reject option, detector)."""
    return TemporalPipeline(_window_stages(settings, model, on_window))


def _window_stages(settings: SoundSettings, model: Any, on_window: Any) -> list[Any]:
    stages: list[Any] = [WindowClassifier(model, min_volume_db=settings.min_volume_db, reject=settings.reject)]
    if on_window is not None:
        stages.append(Tap(on_window, name="windows"))
    stages.append(make_detector(settings))
    return stages


class ClipSummary:
    """A whole clip's label from the windows the pipeline classified (gated windows
    do not vote): :class:`~device.components.ClipVote`'s rule — the highest mean
    window probability — over running sums, so memory stays bounded."""

    def __init__(self) -> None:
        self.windows = 0
        self._vote: ClipVote | None = None

    def add(self, item: TemporalFeature[WindowPrediction] | WindowPrediction) -> None:
        prediction = item.value if isinstance(item, TemporalFeature) else item
        self.windows += 1
        if prediction.probabilities is None:
            return
        if self._vote is None:
            self._vote = ClipVote(sorted(prediction.probabilities))
        self._vote.add(np.array([prediction.probabilities.get(label, 0.0) for label in self._vote.labels]))

    @property
    def classified(self) -> int:
        return 0 if self._vote is None else int(self._vote.windows[0])

    def result(self) -> ClipPrediction:
        return ClipPrediction(None, {}, 0) if self._vote is None else self._vote.result()


__all__ = ["ClipSummary", "Gain", "make_detector", "make_feature_print", "sound_pipeline", "window_pipeline"]
