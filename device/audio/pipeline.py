"""The sound pipeline: the one composition the daemon, ``cadence classify``,
``cadence evaluate sound`` and the evaluations all run.

    16 kHz chunks ─▶ [Gain] ─▶ InThread(AudioFeaturePrint) ─▶ WindowClassifier ─▶ [Tap] ─▶ SoundEventDetector ─▶ SoundEvent

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

from ..components import InThread, ModelSlot, Tap, TemporalFeature, TemporalPipeline, Transformer
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
) -> TemporalPipeline:
    """16 kHz mono chunks → :class:`~device.audio.events.SoundEvent` items.

    ``model``: a classifier, or a slot whose ``current`` classifier is read
    for every window (``ModelSlot``, the daemon's model holder).
    ``feature_print``: one to reuse (its window must match ``settings``);
    ``on_window`` sees every window's prediction (``classify`` prints them).
    """
    fp = feature_print or make_feature_print(settings)
    if (fp.window_duration, fp.overlap_factor) != (settings.window, settings.overlap):
        raise ValueError(
            f"sound_pipeline: the feature print's windows ({fp.window_duration:g} s, overlap {fp.overlap_factor:g}) "
            f"differ from the settings' ({settings.window:g} s, overlap {settings.overlap:g})"
        )
    stages: list[Any] = [Gain(gain)] if gain != 1.0 else []
    stages += [InThread(fp, name="featureprint"), WindowClassifier(model, min_volume_db=settings.min_volume_db)]
    if on_window is not None:
        stages.append(Tap(on_window, name="windows"))
    stages.append(make_detector(settings))
    return TemporalPipeline(stages)


class ClipSummary:
    """The label of a whole clip from its windows: the highest mean probability
    over the classified windows (kept as running sums: bounded memory)."""

    def __init__(self) -> None:
        self.windows = 0
        self.classified = 0
        self._sums: dict[str, float] = {}

    def add(self, item: TemporalFeature[WindowPrediction] | WindowPrediction) -> None:
        prediction = item.value if isinstance(item, TemporalFeature) else item
        self.windows += 1
        if prediction.probabilities is None:
            return
        self.classified += 1
        for label, p in prediction.probabilities.items():
            self._sums[label] = self._sums.get(label, 0.0) + p

    @property
    def probabilities(self) -> dict[str, float] | None:
        """Mean probability per label, or None when no window was classified."""
        if not self.classified:
            return None
        return {label: total / self.classified for label, total in sorted(self._sums.items())}

    @property
    def label(self) -> str | None:
        probs = self.probabilities
        return None if probs is None else max(probs, key=probs.__getitem__)


__all__ = ["ClipSummary", "Gain", "ModelSlot", "make_detector", "make_feature_print", "sound_pipeline"]
