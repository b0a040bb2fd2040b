"""The repetition pipeline: the one composition the daemon, ``cadence count``,
:func:`count_repetitions` and the evaluations all run.

    frames ─▶ [Downsampler] ─▶ Buffer ─▶ InThread(PoseStream | PoseSelector) ─▶ GapFiller
           ─▶ SlidingWindow(window, stride, emit_partial) ─▶ HumanBodyActionCounter ─▶ RepetitionCount

Saved poses enter after the pose stage (:func:`counting_pipeline`). The
buffer holds one frame: live (``live=True``) the oldest waiting frame is
dropped when inference falls behind the camera, so latency never grows; from
a file the source waits instead, so every frame is analysed. Frames dropped
under load leave holes in time: the gap filler puts "no pose" items back, so
windows keep their length in seconds and periods stay right. The counter
emits one ``RepetitionCount`` per window and a settled one (``final=True``)
when a segment (a file, a camera run) ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..components import (
    Buffer,
    Tap,
    TemporalFeature,
    TemporalPipeline,
    TemporalTransformer,
    collect,
    from_iterable,
)
from .counter import HumanBodyActionCounter, RepetitionCount
from .posefile import frames_of
from .posestage import downsampled, make_extractor, pose_stage, window_stages
from .settings import PoseSettings


def counting_stages(
    settings: PoseSettings, rate: float, *, exercise_model: Any = None, **counter_options: Any
) -> list[TemporalTransformer[Any, Any]]:
    """Poses at ``rate`` per second (after any downsampling) → counts. With
    ``settings.recognize_exercise`` the exercise recogniser tags each window first
    (``exercise_model``: an :class:`ExerciseClassifier` or a slot holding one;
    default the shipped model), so the counter names its sets."""
    stages = window_stages(settings, rate)
    if settings.recognize_exercise:
        from .exercise import ExerciseRecognizer, pause_to_forget

        forget = pause_to_forget(settings.rest_time, settings.window / rate, settings.stride / rate)
        stages.append(ExerciseRecognizer(exercise_model, forget_after=forget))
    stages.append(HumanBodyActionCounter(fps=rate, rest_time=settings.rest_time, **counter_options))
    return stages


def counting_pipeline(
    settings: PoseSettings, fps: float, *, exercise_model: Any = None, **counter_options: Any
) -> TemporalPipeline:
    """One person's poses (33 × 2|3|4 arrays, ``None`` where nobody was found)
    at ``fps`` → :class:`RepetitionCount` items. ``counter_options`` go to
    :class:`HumanBodyActionCounter` (its finer settings)."""
    rate = fps / settings.downsample
    return TemporalPipeline(
        downsampled(settings) + counting_stages(settings, rate, exercise_model=exercise_model, **counter_options)
    )


def repetition_pipeline(
    settings: PoseSettings,
    fps: float,
    *,
    extractor: Any = None,
    live: bool = False,
    on_pose: Callable[[TemporalFeature[Any]], None] | None = None,
    exercise_model: Any = None,
    **counter_options: Any,
) -> TemporalPipeline:
    """BGR frames at ``fps`` → :class:`RepetitionCount` items (see the module docstring).

    ``extractor``: a :class:`HumanBodyPoseExtractor` to reuse (loading one
    takes a moment; it is reset here and its frame rate set); default: a new
    one. ``live``: drop the oldest frame when inference falls behind
    (a camera) instead of waiting (a file). ``on_pose``: called with each
    frame's pose item (a :class:`~device.pose.Pose` or None) after the pose
    stage, e.g. to draw the skeleton on that frame. ``exercise_model``: see
    :func:`counting_stages`.
    """
    rate = fps / settings.downsample
    if extractor is None:
        extractor = make_extractor(settings, fps)
    else:
        extractor.reset()
        extractor.fps = rate
    buffer = Buffer(1, "drop_oldest" if live else "wait")
    stages: list[TemporalTransformer[Any, Any]] = [buffer, pose_stage(settings, extractor)]
    if on_pose is not None:
        stages.append(Tap(on_pose, "on_pose"))
    counting = counting_stages(settings, rate, exercise_model=exercise_model, **counter_options)
    return TemporalPipeline(downsampled(settings) + stages + counting)


def _as_pose_array(landmarks: Any) -> np.ndarray:
    arr = np.asarray(landmarks, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != 33 or arr.shape[2] not in (2, 3, 4):
        raise ValueError(f"count_repetitions: landmarks must have shape (frames, 33, 2|3|4), got {arr.shape}")
    return arr


def split_settings(settings: Mapping[str, Any]) -> tuple[PoseSettings, dict[str, Any]]:
    """Keyword settings → (the pipeline's :class:`PoseSettings`, the counter's own options)."""
    fields = PoseSettings.model_fields
    pose = PoseSettings(**{k: v for k, v in settings.items() if k in fields})
    return pose, {k: v for k, v in settings.items() if k not in fields}


def count_repetitions(landmarks: Any, fps: float = 30.0, **settings: Any) -> float:
    """Count repetitions in a whole pose sequence with the repetition pipeline.

    ``landmarks``: (frames, 33, 2|3|4), NaN rows where nobody was found.
    ``settings``: :class:`PoseSettings` fields (``window``, ``stride``,
    ``downsample``, ``rest_time``) and finer counter settings
    (:class:`HumanBodyActionCounter`). Returns the settled count.
    """
    arr = _as_pose_array(landmarks)
    pose, options = split_settings(settings)
    pipeline = counting_pipeline(pose, fps, **options)

    async def go() -> list[Any]:
        return await collect(pipeline(from_iterable(frames_of(arr), rate=fps)))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        outputs = asyncio.run(go())
    else:  # called from async code: run the pipeline on its own loop in a thread
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            outputs = pool.submit(asyncio.run, go()).result()
    finals: list[RepetitionCount] = [o.value for o in outputs if o.value.final]
    return float(finals[-1].count) if finals else 0.0
