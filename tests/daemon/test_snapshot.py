"""Snapshots from the real vision pipeline on a real video: on request at once, then at
most every `interval` seconds while someone is in view; the skeleton drawn on the very
frame; nothing at all while snapshots are off (the default)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from daemon_helpers import SHARED
from device.daemon.config import parse_config
from device.daemon.pipelines import vision_pipeline
from device.daemon.runner import PipelineContext
from device.daemon.snapshot import Snapshot
from device.pose.drawing import BONE, pose_snapshot

VIDEO = SHARED / "videos" / "jumping_jacks_12.mp4"


class Camera:
    """The video's first frames, paced like a 30 fps camera."""

    fps = 30.0

    def __init__(self, frames):
        self.frames = frames

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        from device.components import TemporalFeature

        for i, frame in enumerate(self.frames):
            yield TemporalFeature(frame, i / self.fps, "camera")
            await asyncio.sleep(1 / self.fps)


def frames(n: int):
    from device.video import read_video

    return [item.value for _, item in zip(range(n), read_video(VIDEO))]


def decode(jpeg: bytes) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def bone_pixels(image: np.ndarray) -> int:
    return int(np.sum(np.all(np.abs(image.astype(int) - BONE) < 40, axis=2)))


@pytest.mark.skipif(not VIDEO.exists(), reason=f"shared data not found: {VIDEO}")
async def test_snapshots_on_request_and_while_someone_is_in_view(tmp_path):
    config = parse_config({"storage": {"state_dir": str(tmp_path)},
                           "snapshot": {"enabled": True, "interval": 1, "width": 240}})
    ctx = PipelineContext("vision", config)
    ctx.request("snapshot")
    shots = [out async for out in vision_pipeline(ctx, source=Camera(frames(120))) if isinstance(out, Snapshot)]
    assert shots and shots[0].requested  # the request is answered by the first analysed frame
    assert len(shots) <= 1 + 120 / 30 / 1 + 1  # then at most one a second (4 s of video)
    images = [decode(s.jpeg) for s in shots]
    assert all(image.shape[1] == 240 for image in images) and all(len(s.jpeg) < 60_000 for s in shots)
    with_person = [image for s, image in zip(shots, images) if s.person]
    assert with_person and all(bone_pixels(image) > 50 for image in with_person)  # the skeleton is drawn


@pytest.mark.skipif(not VIDEO.exists(), reason=f"shared data not found: {VIDEO}")
async def test_no_snapshot_while_they_are_off(tmp_path):
    config = parse_config({"storage": {"state_dir": str(tmp_path)}})  # the default: off
    ctx = PipelineContext("vision", config)
    ctx.request("snapshot")
    outputs = [out async for out in vision_pipeline(ctx, source=Camera(frames(45)))]
    assert outputs and not [out for out in outputs if isinstance(out, Snapshot)]


def test_nobody_in_view_is_a_plain_picture():
    image = np.full((480, 640, 3), 128, np.uint8)
    plain = decode(pose_snapshot(image, None, width=320, quality=70))
    assert plain.shape == (240, 320, 3) and bone_pixels(plain) == 0
