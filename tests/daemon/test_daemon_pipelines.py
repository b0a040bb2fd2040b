"""The real vision pipeline: frames are dropped (and counted), never queued, when
pose inference falls behind the camera."""

from __future__ import annotations

import asyncio
import time

import pytest

from daemon_helpers import SHARED
from device.daemon.config import parse_config
from device.daemon.pipelines import vision_pipeline
from device.daemon.runner import PipelineContext

VIDEO = SHARED / "videos" / "jumping_jacks_12.mp4"
VIDEO_11 = SHARED / "videos" / "jumping_jacks_11.mp4"


class FastCamera:
    """Real frames delivered at ~500 fps: far faster than pose inference can go."""

    fps = 30.0

    def __init__(self, frames):
        self.frames = frames
        self.delivered = 0

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        from device.components import TemporalFeature

        for i, frame in enumerate(self.frames):
            self.delivered += 1
            yield TemporalFeature(frame, i / self.fps, "fast")
            await asyncio.sleep(0.002)


@pytest.mark.skipif(not VIDEO.exists(), reason=f"shared data not found: {VIDEO}")
async def test_frames_are_dropped_not_queued_when_inference_lags(tmp_path):
    from device.video import read_video

    frames = [item.value for _, item in zip(range(120), read_video(VIDEO))]
    config = parse_config({"storage": {"state_dir": str(tmp_path)}, "microphone": {"enabled": False}})
    ctx = PipelineContext("vision", config)
    camera = FastCamera(frames)
    started = time.monotonic()
    outputs = [out async for out in vision_pipeline(ctx, source=camera)]
    elapsed = time.monotonic() - started
    c = ctx.counters
    assert camera.delivered == len(frames) == c["frames_in"]
    # every frame was either analysed or dropped; most were dropped, none waited in a queue
    assert c["frames_processed"] + c["frames_dropped"] == len(frames)
    assert c["frames_dropped"] > len(frames) / 3
    per_frame = c["inference_seconds"] / c["frames_processed"]
    assert elapsed < c["frames_processed"] * per_frame + 5.0  # no backlog worked off at the end
    assert isinstance(outputs, list)


class LossyCamera(FastCamera):
    """Real frames, 15 % of them lost on the way at random (timestamps keep real time)."""

    async def _gen(self):
        import numpy as np

        from device.components import TemporalFeature

        lost = np.random.default_rng(0).random(len(self.frames)) < 0.15
        for i, frame in enumerate(self.frames):
            if lost[i]:
                continue
            self.delivered += 1
            yield TemporalFeature(frame, i / self.fps, "lossy")
            await asyncio.sleep(0.05)


@pytest.mark.skipif(not VIDEO_11.exists(), reason=f"shared data not found: {VIDEO_11}")
async def test_lost_frames_do_not_change_the_count(tmp_path):
    """Dropped frames are refilled as gaps in time, so periods (and the count) stay right."""
    import numpy as np

    from device.video import read_video

    frames = [item.value for item in read_video(VIDEO_11)]
    config = parse_config({"storage": {"state_dir": str(tmp_path)}, "microphone": {"enabled": False}})
    ctx = PipelineContext("vision", config)
    camera = LossyCamera(frames)
    camera.fps = 29.97
    outputs = [out async for out in vision_pipeline(ctx, source=camera)]
    counts = [o.count for o in outputs]
    assert np.all(np.diff(counts) >= 0)
    assert round(counts[-1]) == 11, counts[-6:]  # jumping_jacks_11.mp4 has 11 repetitions


CURLS = SHARED / "videos" / "Curls.mp4"


@pytest.mark.skipif(not CURLS.exists(), reason=f"shared data not found: {CURLS}")
async def test_the_end_of_a_clip_keeps_what_was_published(tmp_path):
    """Curls.mp4 ends on a half movement: shown live as x.5, dropped by the counter's settled
    count. The published count and the set's count never go back below what was shown."""
    from device.video import read_video

    config = parse_config({"storage": {"state_dir": str(tmp_path)}, "microphone": {"enabled": False}})
    ctx = PipelineContext("vision", config)
    outputs = [out async for out in vision_pipeline(ctx, source=read_video(CURLS))]
    last = outputs[-1]
    assert last.count == max(o.count for o in outputs)
    assert last.set_count == max(o.set_count for o in outputs if o.set_number == last.set_number)
    assert last.count == last.set_count  # one set: the set holds the day's count
