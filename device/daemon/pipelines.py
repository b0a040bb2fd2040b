"""The real pipelines the supervisor runs (factories taking a PipelineContext).

vision: camera or video file → Downsampler → hand-off (drop_oldest) → pose
extractor in a worker thread → PoseSelector → SlidingWindow →
HumanBodyActionCounter → :class:`RepUpdate`. The hand-off holds one frame:
when inference falls behind the camera, the oldest waiting frame is dropped
(counted) instead of latency growing. A video file with ``realtime = false``
uses back-pressure instead, so every frame is analysed (tests, benchmarks).

audio: microphone or audio file → gain → AudioFeaturePrint → the active sound
model (hot-swapped by the supervisor between windows) → sound events →
:class:`SoundEvent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from ..components import Downsampler, GapFiller, Handoff, SlidingWindow, TemporalFeature
from .supervisor import PipelineContext, RepUpdate, SoundEvent


def load_sound_model(path: Path) -> Any:
    """Load a trained sound classifier, refusing one made for another feature print."""
    from ..learn import load_classifier

    feature_print = None
    with contextlib.suppress(Exception):
        feature_print = _feature_print_for_model()
    if feature_print is not None:
        return load_classifier(path, feature_print=feature_print)
    return load_classifier(path)


def _feature_print_for_model() -> Any:
    from ..audio.featureprint import AudioFeaturePrint

    return AudioFeaturePrint()


# ---------------------------------------------------------------------------
# vision


async def vision_pipeline(ctx: PipelineContext, *, source: Any = None) -> AsyncIterator[RepUpdate]:
    """``source``: any async iterable of BGR frames with an ``fps`` (default: the configured camera)."""
    from ..pose.counter import HumanBodyActionCounter
    from ..pose.extractor import HumanBodyPoseExtractor
    from ..pose.selection import PoseSelector
    from ..video import read_camera

    cam = ctx.config.camera
    if source is None:
        source = read_camera(cam)
    fps = float(getattr(source, "fps", None) or cam.fps) / cam.downsample
    # loading the TFLite models takes a moment: off the event loop, and once (kept across restarts)
    key = ("extractor", cam.threads)
    cached = ctx.cache.get(key)
    if cached is None:
        extractor = await asyncio.to_thread(HumanBodyPoseExtractor, num_threads=cam.threads, fps=fps)
        # one interpreter, one caller: a cancelled run's last call may still be finishing in its thread
        lock = threading.Lock()
        ctx.cache.clear()
        ctx.cache[key] = (extractor, lock)
    else:
        extractor, lock = cached
        with lock:
            extractor.reset()
        extractor.fps = fps

    def infer(frame: Any, timestamp: float) -> Any:
        with lock:
            return extractor.process(frame, timestamp)
    selector = PoseSelector(cam.selector)
    counter = HumanBodyActionCounter(fps=fps, rest_time=cam.rest_time)
    windows = SlidingWindow(cam.window, cam.stride, emit_partial=True)
    drop = not (cam.is_file and not cam.realtime)
    frames: Handoff[TemporalFeature[Any]] = Handoff(1, "drop_oldest" if drop else "wait")

    async def produce() -> None:
        try:
            async for item in Downsampler(cam.downsample)(source):
                ctx.heartbeat(counter="frames_in")
                await frames.put(item)
        except asyncio.CancelledError:
            frames.close()
            raise
        except Exception as exc:
            frames.close(exc)
            return
        frames.close()

    async def poses() -> AsyncIterator[TemporalFeature[Any]]:
        busy = 0.0
        async for item in frames:
            t0 = time.perf_counter()
            found = await asyncio.to_thread(infer, item.value, item.timestamp)
            busy += time.perf_counter() - t0
            ctx.count("frames_processed")
            ctx.set("frames_dropped", frames.dropped + int(getattr(source, "dropped", 0) or 0))
            ctx.set("inference_seconds", busy)
            yield item.replace(selector(found))

    producer = asyncio.create_task(produce(), name="vision-source")
    segment: object = None
    last = None
    try:
        # frames dropped under load leave holes in time: refill them as "no pose" so the
        # counter's windows keep their length in seconds (its periods stay right)
        async for window in windows(GapFiller(fps, None)(poses())):
            if window.segment != segment:
                if last is not None:  # the source restarted (looped file, camera reopened)
                    yield _final(counter, last, segment)
                counter.reset()
                segment, last = window.segment, None
            state = counter.push_window(window.value)
            last = (state, window.timestamp)
            yield RepUpdate(
                float(state.count), int(state.set_number), float(state.set_count), state.rate,
                media_time=window.timestamp, segment=segment, resting=bool(state.resting),
            )
        if last is not None:
            yield _final(counter, last, segment)
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await producer


def _final(counter: Any, last: tuple[Any, float], segment: object) -> RepUpdate:
    """The count once a segment ends: the repetition in progress is settled."""
    state, timestamp = last
    final = max(float(counter.final_count), float(state.count))
    extra = final - float(state.count)
    return RepUpdate(final, int(state.set_number) or (1 if final > 0 else 0), float(state.set_count) + extra,
                     state.rate, media_time=timestamp, segment=segment, resting=bool(state.resting))


# ---------------------------------------------------------------------------
# audio


async def file_audio(path: str, *, loop: bool, realtime: bool, chunk: float = 0.1) -> AsyncIterator[TemporalFeature[np.ndarray]]:
    """An audio file played as if it were a microphone (paced, optionally looping)."""
    from ..audio.sources import read_audio

    n = 0
    while True:
        n += 1
        start = time.monotonic()
        async for item in read_audio(path, chunk_duration=chunk, segment=f"{path}#{n}"):
            if realtime:
                delay = start + item.timestamp - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield item
        if not loop:
            return


async def feature_windows(features: Any, stream: AsyncIterator[TemporalFeature[np.ndarray]]) -> AsyncIterator[TemporalFeature[Any]]:
    """The feature print's windows, each computed in a worker thread (the loop never blocks).

    Same windows as ``AudioFeaturePrint.process``: ``window_duration`` long,
    every ``hop_duration``, reset per segment, and a final window aligned to
    the end of a segment so the end of a file is not lost.
    """
    from ..audio.sources import SAMPLE_RATE

    window = int(round(features.window_duration * SAMPLE_RATE))
    hop = max(1, int(round(features.hop_duration * SAMPLE_RATE)))
    buffer = np.zeros(0, dtype=np.float32)
    start = 0.0
    segment: object = object()
    emitted_end = -np.inf
    seen = 0

    async def tail(seg: object) -> TemporalFeature[Any] | None:
        if seen == 0:
            return None
        end = start + len(buffer) / SAMPLE_RATE
        if not np.isfinite(emitted_end):
            if len(buffer) < SAMPLE_RATE // 2:
                return None
            block, block_start = buffer, start
        else:
            if end - emitted_end < 0.1 * features.hop_duration:
                return None
            block = buffer[-window:]
            block_start = end - len(block) / SAMPLE_RATE
        feat = await asyncio.to_thread(features.feature, block.copy(), block_start)
        return TemporalFeature(feat, feat.end, seg)  # type: ignore[arg-type]

    async for item in stream:
        if item.segment != segment:
            last = await tail(segment)
            if last is not None:
                yield last
            segment, buffer, emitted_end, seen = item.segment, np.zeros(0, dtype=np.float32), -np.inf, 0
            start = float(item.timestamp)
        chunk = np.asarray(item.value, dtype=np.float32).reshape(-1)
        if len(buffer) == 0 and seen == 0:
            start = float(item.timestamp)
        buffer = np.concatenate([buffer, chunk])
        seen += len(chunk)
        while len(buffer) >= window:
            feat = await asyncio.to_thread(features.feature, buffer[:window].copy(), start)
            emitted_end = feat.end
            yield TemporalFeature(feat, feat.end, segment)  # type: ignore[arg-type]
            buffer = buffer[hop:]
            start += hop / SAMPLE_RATE
    last = await tail(segment)
    if last is not None:
        yield last


async def audio_pipeline(ctx: PipelineContext, *, source: Any = None) -> AsyncIterator[SoundEvent]:
    """``source``: any async iterable of 16 kHz mono chunks (default: the configured microphone)."""
    from ..audio.events import SoundEventDetector
    from ..audio.featureprint import AudioFeaturePrint

    mic = ctx.config.microphone
    snd = ctx.config.sound
    device = None
    if source is None:
        if mic.is_file:
            source = file_audio(str(mic.device), loop=mic.loop, realtime=mic.realtime)
        else:
            from ..audio.sources import MicrophoneConfig, read_microphone

            source = device = read_microphone(MicrophoneConfig(device=mic.device))

    async def chunks() -> AsyncIterator[TemporalFeature[np.ndarray]]:
        async for item in source:
            ctx.heartbeat()
            if device is not None:
                ctx.set("overflows", device.input_overflows + device.dropped_chunks)
            yield item if mic.gain == 1.0 else item.replace(np.clip(item.value * mic.gain, -1.0, 1.0))

    options = {k: v for k, v in (("window_duration", snd.window), ("overlap_factor", snd.overlap)) if v is not None}
    features = ctx.cache.get(("featureprint", tuple(options.items())))
    if features is None:
        features = await asyncio.to_thread(lambda: AudioFeaturePrint(**options))
        ctx.cache.clear()
        ctx.cache[("featureprint", tuple(options.items()))] = features
    detector = SoundEventDetector(
        thresholds=dict(snd.thresholds),
        default_threshold=snd.default_threshold,
        allow=snd.allow,
        min_volume_db=snd.min_volume_db,
        cooldown=snd.cooldown,
        window_duration=features.window_duration,
    )

    async def predictions() -> AsyncIterator[TemporalFeature[Any]]:
        async for item in feature_windows(features, chunks()):
            model = ctx.model.current  # read per window: a reloaded model takes over at the next one
            if model is None:  # the watcher swaps one in as soon as the file appears
                ctx.set_detail("waiting for a sound model")
                continue
            ctx.set_detail(None)
            ctx.count("windows")
            prediction = detector.classify(item.value, model)
            if prediction.probabilities is None:
                ctx.count("silent")
            yield item.replace(prediction)

    async for event in detector(predictions()):
        yield event.value
