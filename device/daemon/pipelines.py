"""The daemon's two pipelines: it chooses their sources and sinks, the library
composes the rest.

vision: the configured camera (or a video file played as one) →
:func:`device.pose.pipeline.repetition_pipeline` (live: the oldest waiting
frame is dropped when inference falls behind; a file with ``realtime =
false`` waits instead, so every frame is analysed) with the hot-swapped
exercise model holder as the recogniser's model slot → :class:`RepUpdate`
(with the exercise of the open set).

audio: the configured microphone (or an audio file played as one) →
:func:`device.audio.pipeline.sound_pipeline` with the hot-swapped model
holder as its model slot → :class:`SoundEvent`; with the owner's consent its
taps also feed the :class:`~.background.BackgroundKeeper` (quiet clips of the
room without an event, kept for the next retrain).

Each factory takes a :class:`PipelineContext`: heartbeats and counters go to
it through taps, expensive objects (the pose extractor, the feature print)
are kept in its cache across restarts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..audio.events import SoundEvent
from ..components import Buffer, InThread, Tap, TemporalFeature, find_stage
from .ledger import RepUpdate
from .runner import PipelineContext
from .snapshot import Snapshot, SnapshotTaker
from .threads import in_daemon_thread


def load_sound_model(path: Path, data: bytes | None = None) -> Any:
    """Load a trained sound classifier, refusing one made for another feature print
    (``data``: the file's bytes, already read)."""
    from ..learn import load_classifier

    feature_print = None
    with contextlib.suppress(Exception):
        from ..audio.featureprint import AudioFeaturePrint

        feature_print = AudioFeaturePrint()
    return load_classifier(path, feature_print=feature_print, data=data)


def load_exercise_model(path: Path, data: bytes | None = None) -> Any:
    """Load an exercise classifier (its open set comes with it), refusing one made for other features
    (``data``: the file's bytes, already read)."""
    from ..pose.exercise import ExerciseClassifier

    return ExerciseClassifier.load(path, data)


def shipped_exercise_model() -> Path:
    """The shipped exercise model's file, checked against its pinned SHA-256."""
    from ..pose.exercise import MODEL_FILE
    from ..pretrained import model_path

    return model_path(MODEL_FILE)


# ---------------------------------------------------------------------------
# vision


async def vision_pipeline(ctx: PipelineContext, *, source: Any = None) -> AsyncIterator[RepUpdate | Snapshot]:
    """``source``: any async iterable of BGR frames with an ``fps`` (default: the configured camera).
    Yields counts, and :class:`Snapshot` pictures when ``[snapshot]`` asks for them."""
    from ..pose.pipeline import make_extractor, repetition_pipeline
    from ..video import read_camera

    cam = ctx.config.camera.for_board()  # the board profile's values where the file sets none
    if source is None:
        source = read_camera(cam)
    fps = float(getattr(source, "fps", None) or cam.fps)
    settings = cam.pose_settings()
    # loading the TFLite models takes a moment: off the event loop, and once (kept across restarts)
    key = ("extractor", settings.threads)
    extractor = ctx.cache.get(key)
    if extractor is None:
        extractor = await in_daemon_thread(make_extractor, settings, fps)
        ctx.cache.clear()
        ctx.cache[key] = extractor
    snapshots = SnapshotTaker(ctx)
    pipeline = repetition_pipeline(settings, fps, extractor=extractor, live=not (cam.is_file and not cam.realtime),
                                   on_pose=snapshots.on_pose, exercise_model=ctx.exercise_model)
    poses, buffer = find_stage(pipeline, InThread), find_stage(pipeline, Buffer)

    def on_frame(item: TemporalFeature[Any]) -> None:
        ctx.heartbeat(counter="frames_in")
        snapshots.on_frame(item)

    # the count (and set count) already published for this segment: a settled count never goes below
    # it — a trailing half repetition shown live stays (the day's count only grows; docs/mqtt.md)
    shown = shown_set = 0.0
    shown_number = 0
    async for item in (Tap(on_frame) | pipeline)(source):
        for shot in snapshots.take():
            yield shot
        ctx.set("frames_processed", poses.items)
        ctx.set("frames_dropped", buffer.dropped + int(getattr(source, "dropped", 0) or 0))
        ctx.set("inference_seconds", poses.busy)
        state = item.value
        count = max(float(state.count), shown) if state.final else float(state.count)
        set_count = float(state.set_count)
        if state.final and int(state.set_number) == shown_number:
            set_count = max(set_count, shown_set)
        shown, shown_set, shown_number = (0.0, 0.0, 0) if state.final else (count, set_count, int(state.set_number))
        yield RepUpdate(
            count, int(state.set_number), set_count, state.rate,
            media_time=item.timestamp, segment=item.segment, resting=bool(state.resting),
            exercise=state.exercise,
            exercise_confidence=None if state.exercise is None else float(state.exercise_confidence),
            periodicity=float(state.periodicity), ambiguity=float(state.ambiguity),
        )


# ---------------------------------------------------------------------------
# audio


async def audio_pipeline(ctx: PipelineContext, *, source: Any = None) -> AsyncIterator[SoundEvent]:
    """``source``: any async iterable of 16 kHz mono chunks (default: the configured microphone)."""
    from ..audio.pipeline import make_feature_print, sound_pipeline
    from ..audio.sources import MicrophoneConfig, read_audio, read_microphone
    from .background import background_keeper

    mic = ctx.config.microphone
    settings = ctx.config.sound.sound_settings()
    device = None
    if source is None:
        if mic.is_file:
            source = read_audio(str(mic.device), loop=mic.loop, realtime=mic.realtime)
        else:
            source = device = read_microphone(MicrophoneConfig(device=mic.device))
    key = ("featureprint", settings.window, settings.overlap)
    fp = ctx.cache.get(key)
    if fp is None:
        fp = await in_daemon_thread(make_feature_print, settings)
        ctx.cache.clear()
        ctx.cache[key] = fp

    def on_chunk(item: TemporalFeature[Any]) -> None:
        ctx.heartbeat()
        if device is not None:
            ctx.set("overflows", device.input_overflows + device.dropped_chunks)
        # the model watcher swaps one in as soon as the file appears
        ctx.set_detail("waiting for a sound model" if ctx.model.current is None else None)

    def on_window(item: TemporalFeature[Any]) -> None:
        ctx.count("windows" if item.value.probabilities is not None else "silent")
        if item.value.rejected:  # the reject option: a sound the model was not taught
            ctx.count("not_taught")
        if keeper is not None:
            keeper.on_window(item)

    keeper = background_keeper(ctx.config, on_kept=lambda path: ctx.count("background_kept"))
    pipeline = sound_pipeline(settings, ctx.model, feature_print=fp, gain=mic.gain, on_window=on_window,
                              on_audio=keeper.on_audio if keeper else None,
                              on_feature=keeper.on_feature if keeper else None)
    async for item in (Tap(on_chunk) | pipeline)(source):
        if keeper is not None:
            keeper.on_event(item)
        yield item.value
    if keeper is not None:
        await keeper.finish()  # the source ended: every event has been said
