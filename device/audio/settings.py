"""The sound pipeline's settings (one place for each default: the stages' own).

The daemon's ``[sound]`` section extends :class:`SoundSettings` with the
model file; ``cadence classify`` derives its options from it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from ..components.settings import Settings, default_of
from .events import SoundEventDetector, WindowClassifier
from .featureprint import AudioFeaturePrint

_print = AudioFeaturePrint.__init__
_detector = SoundEventDetector.__init__


class SoundSettings(Settings):
    """How audio becomes sound events."""

    window: Annotated[float, Field(ge=0.5, le=15, description="seconds of audio per classified window")] = default_of(
        _print, "window_duration")
    overlap: Annotated[float, Field(ge=0, lt=1, description="share of a window that the next one repeats")] = default_of(
        _print, "overlap_factor")
    min_volume_db: Annotated[float, Field(ge=-120, le=0, description="windows quieter than this (dBFS) are not classified")] = (
        default_of(WindowClassifier.__init__, "min_volume_db"))
    default_threshold: Annotated[float, Field(ge=0, le=1, description="smoothed probability a label needs for an event")] = (
        default_of(_detector, "default_threshold"))
    thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, description="per-label thresholds, e.g. {doorbell = 0.6}")
    allow: list[str] | None = Field(default=None, description="report only these labels (default: all)")
    smoothing: Annotated[int, Field(ge=1, le=20, description="windows averaged per decision")] = default_of(_detector, "smoothing")
    min_duration: Annotated[float, Field(ge=0, le=3600, description="shortest event reported (s)")] = default_of(
        _detector, "min_duration")
    cooldown: Annotated[float, Field(ge=0, le=3600, description="seconds before the same label is reported again")] = (
        default_of(_detector, "cooldown"))
    max_duration: Annotated[float, Field(gt=0, le=3600, description="a sound that goes on is reported again after this (s)")] = (
        default_of(_detector, "max_duration"))

    @field_validator("thresholds")
    @classmethod
    def _labels(cls, value: dict[str, float]) -> dict[str, float]:
        for label in value:
            if not label.strip():
                raise ValueError("labels must not be empty")
        return value

    @model_validator(mode="after")
    def _cross(self) -> "SoundSettings":
        if self.allow is not None:
            if not self.allow:
                raise ValueError("allow: an empty allow-list would report nothing (leave it out to allow all)")
            unknown = sorted(set(self.thresholds) - set(self.allow))
            if unknown:
                raise ValueError(f"thresholds: labels {unknown} are not in allow")
        return self

    @property
    def hop(self) -> float:
        """Seconds between the starts of successive windows."""
        return self.window * (1.0 - self.overlap)
