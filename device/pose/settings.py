"""The repetition pipeline's settings: the one place for their defaults.

The daemon's ``[camera]`` section extends :class:`PoseSettings` with where the
frames come from, and ``cadence count`` derives its options from it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..components.settings import Settings
from .counter import REST_TIME
from .selection import STRATEGIES


class PoseSettings(Settings):
    """How frames (or saved poses) become repetition counts."""

    window: Annotated[int, Field(ge=8, le=1000, description="frames per counting window")] = 90
    stride: Annotated[int, Field(ge=1, le=1000, description="frames between count updates (at most the window)")] = 15
    downsample: Annotated[int, Field(ge=1, le=10, description="keep every n-th frame (2 for slow exercises)")] = 1
    selector: Annotated[
        Literal[STRATEGIES],  # type: ignore[valid-type]
        Field(description="which person to follow when several are in view"),
    ] = "maximum_bounding_box_area"
    rest_time: Annotated[float, Field(gt=0, le=3600, description="seconds of pause that end a set")] = REST_TIME
    threads: Annotated[int, Field(ge=1, le=8, description="pose inference threads")] = 1
    recognize_exercise: Annotated[bool, Field(description="recognise the exercise and name each set by it")] = True
    landmark_model: Annotated[str | None, Field(
        description="the pinned landmark model file the pose stage runs (default: the full float model)")] = None

    @field_validator("landmark_model")
    @classmethod
    def _a_pinned_landmark_model(cls, name: str | None) -> str | None:
        """A name of the manifest's landmark models (a typo is said by `config check`, not at the first frame)."""
        if name is None:
            return None
        from ..pretrained import ModelFileError, load_manifest

        try:
            known = sorted(f for f in load_manifest()["files"] if f.startswith("pose_landmark"))
        except (ModelFileError, KeyError, TypeError):
            return name  # no readable manifest here: loading the model will say so
        if name not in known:
            raise ValueError(f"must be one of {', '.join(known)}")
        return name

    @model_validator(mode="after")
    def _stride_within_window(self) -> "PoseSettings":
        if self.stride > self.window:
            raise ValueError(f"stride: must not exceed window ({self.stride} > {self.window})")
        return self
