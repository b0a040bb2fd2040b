"""read_camera: the picamera2 path with a stand-in camera, the OpenCV path
with a real MJPEG-over-HTTP stream on 127.0.0.1, and camera loss."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from device.components import CadenceError, collect
from device.video import CameraConfig, CameraError, CameraLost, SourceLost, read_camera

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mjpeg_server import MjpegServer, jpeg_frames  # noqa: E402


class StandInPicamera2:
    """picamera2's interface (configure/start/capture_array/stop) over real frames.

    ``fail_after``: raise like a camera unplugged after this many frames;
    ``stall_after``: block (no frame) after this many; ``channels=4`` gives XRGB8888.
    """

    instances: list["StandInPicamera2"] = []

    def __init__(self, frames: list[np.ndarray], *, fail_after: int | None = None,
                 stall_after: int | None = None, channels: int = 3, fail_configure: bool = False) -> None:
        self.frames = frames
        self.fail_after = fail_after
        self.stall_after = stall_after
        self.channels = channels
        self.fail_configure = fail_configure
        self.calls: list[str] = []
        self.config = None
        self.captured = 0
        self.release = threading.Event()

    def create_video_configuration(self, main: dict, controls: dict) -> dict:
        self.calls.append("create_video_configuration")
        return {"main": main, "controls": controls}

    def configure(self, config: dict) -> None:
        self.calls.append("configure")
        if self.fail_configure:
            raise RuntimeError("Camera __init__ sequence did not complete")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_array(self, name: str = "main") -> np.ndarray:
        if self.fail_after is not None and self.captured >= self.fail_after:
            raise RuntimeError("Device or resource busy: camera frontend has timed out")
        if self.stall_after is not None and self.captured >= self.stall_after:
            self.release.wait(5)
            raise RuntimeError("stalled")
        frame = self.frames[self.captured % len(self.frames)]
        self.captured += 1
        time.sleep(0.005)
        if self.channels == 4:
            frame = np.dstack([frame, np.full(frame.shape[:2], 255, np.uint8)])
        return frame

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture(scope="module")
def real_frames(videos: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(videos / "jumping_jacks_11.mp4"))
    frames = []
    for _ in range(8):
        ok, frame = capture.read()
        assert ok
        frames.append(cv2.resize(frame, (320, 180)))
    capture.release()
    return frames


def _factory(camera: StandInPicamera2):
    def make(camera_num: int) -> StandInPicamera2:
        camera.calls.append(f"open:{camera_num}")
        return camera

    return make


async def _drain(source, limit: int | None = None) -> tuple[list, BaseException | None]:
    items: list = []
    try:
        async for item in source:
            items.append(item)
            if limit is not None and len(items) >= limit:
                break
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return items, exc
    return items, None


def test_picamera2_path_configures_and_delivers_bgr_frames(real_frames) -> None:
    camera = StandInPicamera2(real_frames)
    source = read_camera({"source": 0, "resolution": (320, 180), "fps": 25}, picamera2_factory=_factory(camera))
    assert source.fps == 25
    items, error = asyncio.run(_drain(source, limit=5))
    assert error is None and len(items) == 5
    assert camera.config["main"] == {"format": "RGB888", "size": (320, 180)}
    assert camera.config["controls"] == {"FrameRate": 25.0}
    assert camera.calls[:4] == ["open:0", "create_video_configuration", "configure", "start"]
    assert "stop" in camera.calls  # leaving the loop releases the camera
    assert np.array_equal(items[0].value, real_frames[0])
    stamps = [it.timestamp for it in items]
    assert stamps == sorted(stamps)


def test_picamera2_xrgb_frames_become_bgr(real_frames) -> None:
    camera = StandInPicamera2(real_frames, channels=4)
    source = read_camera(CameraConfig(source="picamera2", rotation=90), picamera2_factory=_factory(camera))
    items, error = asyncio.run(_drain(source, limit=2))
    assert error is None
    assert items[0].value.shape == (320, 180, 3)  # rotated and alpha dropped
    assert np.array_equal(items[0].value, np.rot90(real_frames[0], k=-1))


def test_picamera2_unplugged_raises_camera_lost_and_reopens_as_new_segment(real_frames) -> None:
    camera = StandInPicamera2(real_frames, fail_after=6)
    source = read_camera(0, picamera2_factory=_factory(camera))
    items, error = asyncio.run(_drain(source))
    assert isinstance(error, CameraLost) and isinstance(error, SourceLost) and isinstance(error, CadenceError)
    assert "stopped delivering" in str(error)
    assert 1 <= len(items) <= 6
    assert "stop" in camera.calls
    camera.fail_after = None
    camera.captured = 0
    again, error = asyncio.run(_drain(source, limit=3))
    assert error is None and len(again) == 3
    assert again[0].segment != items[0].segment


def test_picamera2_stall_times_out_as_camera_lost(real_frames) -> None:
    camera = StandInPicamera2(real_frames, stall_after=2)
    source = read_camera(CameraConfig(source=0, timeout=0.4), picamera2_factory=_factory(camera))
    started = time.monotonic()
    items, error = asyncio.run(_drain(source))
    camera.release.set()
    assert isinstance(error, CameraLost) and "no frame for 0.4 s" in str(error)
    assert len(items) == 2
    assert time.monotonic() - started < 8  # the timeout fired (the stand-in would block 5 s)


def test_picamera2_failing_configuration_is_a_camera_error(real_frames) -> None:
    camera = StandInPicamera2(real_frames, fail_configure=True)
    source = read_camera("picamera2", picamera2_factory=_factory(camera))
    items, error = asyncio.run(_drain(source))
    assert isinstance(error, CameraError) and not isinstance(error, CameraLost)
    assert "cannot start Raspberry Pi camera" in str(error)


def test_picamera2_source_without_picamera2_is_explained() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(CameraError, match="picamera2"):
            read_camera("picamera2")
    else:  # pragma: no cover - only on a Pi
        pytest.skip("picamera2 is installed")


def test_opencv_mjpeg_stream_then_server_gone(videos: Path) -> None:
    jpegs = jpeg_frames(str(videos / "jumping_jacks_11.mp4"), 10)
    with MjpegServer(jpegs, frames=20, fps=50) as server:
        # a daemon-like config object (attributes, not a dict)
        config = SimpleNamespace(source=server.url, resolution=(640, 480), fps=30.0, rotation=0)
        source = read_camera(config, timeout=5.0)
        items, error = asyncio.run(_drain(source))
    assert isinstance(error, CameraLost), error
    assert 10 <= len(items) <= 20  # most frames arrive (the newest are kept if the consumer lags)
    assert len(items) + source.dropped <= 20
    first = items[0].value
    assert first.shape == (180, 320, 3) and first.dtype == np.uint8
    expected = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(first.astype(int) - expected.astype(int)).mean() < 3.0
    assert items[0].segment.startswith(server.url)


def test_opencv_stream_that_stalls_is_lost_after_timeout(videos: Path) -> None:
    jpegs = jpeg_frames(str(videos / "jumping_jacks_11.mp4"), 3)
    with MjpegServer(jpegs, frames=None, fps=20) as server:
        source = read_camera(CameraConfig(source=server.url, timeout=1.0))

        async def consume() -> tuple[int, BaseException | None]:
            count = 0
            try:
                async for _ in source:
                    count += 1
                    if count == 5:
                        server.stopped.set()  # the camera freezes: no more parts, connection kept
            except Exception as exc:  # noqa: BLE001
                return count, exc
            return count, None

        count, error = asyncio.run(consume())
    assert isinstance(error, CameraLost)
    assert count >= 5


def test_slow_consumer_gets_fresh_frames_and_drops_are_counted(real_frames) -> None:
    camera = StandInPicamera2(real_frames)
    source = read_camera(CameraConfig(source=0, buffer=1), picamera2_factory=_factory(camera))

    async def slow() -> list:
        items = []
        async for item in source:
            items.append(item)
            await asyncio.sleep(0.05)  # inference slower than the camera
            if len(items) == 5:
                break
        return items

    items = asyncio.run(slow())
    assert len(items) == 5
    assert source.dropped >= 5  # old frames were replaced, not queued
    assert camera.captured >= 5 + source.dropped - 1


def test_unopenable_cameras_give_camera_errors() -> None:
    with pytest.raises(CameraError, match="does not exist"):
        asyncio.run(collect(read_camera("/dev/video97", backend="opencv")))
    port = _free_port()
    with pytest.raises(CameraError, match="cannot open camera"):
        asyncio.run(collect(read_camera(f"http://127.0.0.1:{port}/stream.mjpg", open_timeout=2.0)))
    with pytest.raises(CameraError, match="backend"):
        read_camera(0, backend="gstreamer")


def test_video_file_source_plays_like_a_camera(short_clip: Path) -> None:
    source = read_camera({"source": str(short_clip), "loop": False, "realtime": False})
    items, error = asyncio.run(_drain(source))
    assert error is None and len(items) == 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_index_source_falls_back_from_pi_camera_to_v4l2() -> None:
    def no_pi_camera(camera_num: int):
        raise RuntimeError("list index out of range (no cameras available)")

    source = read_camera(CameraConfig(source=7, open_timeout=2.0), picamera2_factory=no_pi_camera)
    items, error = asyncio.run(_drain(source))
    assert isinstance(error, CameraError) and not isinstance(error, CameraLost)
    message = str(error)
    assert "Raspberry Pi camera 7" in message and "cannot open camera 7" in message  # both were tried
