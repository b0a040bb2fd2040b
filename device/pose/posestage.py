"""The pose stage: frames → one person's pose per frame, on a worker thread.

The repetition pipeline runs it live; ``cadence pose`` and the exercise
features of a training video run the very same stage over a file, so a video
is turned into poses one way only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..components import (
    Downsampler,
    GapFiller,
    InThread,
    SlidingWindow,
    TemporalFeature,
    TemporalPipeline,
    TemporalTransformer,
)
from ..components.features import iterate_sync
from .selection import PoseSelector
from .settings import PoseSettings


def make_extractor(settings: PoseSettings, fps: float, **options: Any) -> Any:
    """A BlazePose extractor for frames arriving at ``fps`` (loads the TFLite models) with the
    settings' landmark model and threads: the one place the product builds one, so that
    ``cadence pose`` extracts with the model the daemon runs. ``options`` go to
    :class:`~device.pose.extractor.HumanBodyPoseExtractor` (``max_poses``, ``tracking``)."""
    from .extractor import HumanBodyPoseExtractor

    if settings.landmark_model:
        options["landmark_model"] = settings.landmark_model
    return HumanBodyPoseExtractor(num_threads=settings.threads, fps=fps / settings.downsample, **options)


def pose_stage(settings: PoseSettings, extractor: Any) -> InThread:
    """BGR frames → one person's :class:`~device.pose.Pose` (or None) per frame, on a worker thread."""
    from .extractor import PoseStream

    return InThread(PoseStream(extractor) | PoseSelector(settings.selector), name="pose")


def downsampled(settings: PoseSettings) -> list[TemporalTransformer[Any, Any]]:
    """The downsampler in front of the pose stage (none when every frame is kept)."""
    return [Downsampler(settings.downsample)] if settings.downsample > 1 else []


def window_stages(settings: PoseSettings, rate: float) -> list[TemporalTransformer[Any, Any]]:
    """Poses at ``rate`` per second → windows of poses (gaps filled with "no pose")."""
    return [GapFiller(rate, None), SlidingWindow(settings.window, settings.stride, emit_partial=True)]


def video_pose_windows(path: str | Path, settings: PoseSettings) -> Iterator[TemporalFeature[list]]:
    """The windows of poses of a video file, as the repetition pipeline makes them
    (pose stage, gap filler, sliding windows), one at a time (bounded memory).
    Synchronous: call it from a worker thread when an event loop is running."""
    from ..video import read_video

    video = read_video(path)
    extractor = make_extractor(settings, video.fps)
    rate = video.fps / settings.downsample
    stages = TemporalPipeline(downsampled(settings) + [pose_stage(settings, extractor)] + window_stages(settings, rate))
    yield from iterate_sync(stages(video))
