"""Live frames from a camera, as an async temporal source.

``read_camera(config)`` picks a backend: picamera2 (the Raspberry Pi camera)
when it is importable, otherwise OpenCV (a V4L2 index such as ``0``, a device
path such as ``/dev/video0``, or an ``rtsp://``/``http://`` stream URL). A
reader thread grabs frames as the camera delivers them and hands the newest
ones to the event loop (older ones are dropped rather than letting latency
grow). When the camera stops delivering (unplugged, driver error, network
stream gone, or no frame for ``timeout`` seconds) the stream raises
:class:`CameraLost`, which the daemon catches to reopen the source; each
opening is a new ``segment`` so windowed stages downstream start afresh.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ..components.stream import Handoff, TemporalFeature
from .errors import CameraError, CameraLost
from .file import VIDEO_SUFFIXES, VideoSource, check_resize, check_rotation, frame_too_large, orient, read_video

BACKENDS = ("auto", "picamera2", "opencv")


@dataclasses.dataclass
class CameraConfig:
    """Camera settings (the daemon's ``[camera]`` section has the same names).

    ``source``: ``0``/``"0"`` (V4L2 index), ``"/dev/video0"``, an ``rtsp://`` or
    ``http://`` URL, or ``"picamera2"``. ``resolution``/``fps``: requested from
    the device (a stream URL delivers what it delivers; frames are resized to
    ``resolution`` only when ``resize`` is true). ``rotation``: degrees clockwise.
    ``timeout``: seconds without a frame before the camera counts as lost.
    """

    source: int | str = 0
    resolution: tuple[int, int] | None = (640, 480)
    fps: float | None = 30.0
    rotation: int = 0
    backend: str = "auto"
    timeout: float = 5.0
    open_timeout: float = 10.0
    resize: bool = False
    buffer: int = 2

    @classmethod
    def coerce(cls, config: Any = None, **overrides: Any) -> "CameraConfig":
        """Build from a ``CameraConfig``, a mapping, or any object with these attributes."""
        if config is None:
            values: dict[str, Any] = {}
        elif isinstance(config, CameraConfig):
            values = dataclasses.asdict(config)
        elif isinstance(config, Mapping):
            values = dict(config)
        elif isinstance(config, (int, str)):
            values = {"source": config}
        else:
            values = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls) if hasattr(config, f.name)}
        values.update(overrides)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


class FrameGrabber(Protocol):
    """What a camera backend does: open, read one frame (blocking), close."""

    name: str
    fps: float | None

    def open(self) -> None: ...

    def read(self) -> np.ndarray: ...

    def close(self) -> None: ...


def _is_url(source: object) -> bool:
    return isinstance(source, str) and "://" in source


def _as_index(source: object) -> int | None:
    if isinstance(source, bool):
        return None
    if isinstance(source, int):
        return source
    if isinstance(source, str) and source.strip().isdigit():
        return int(source.strip())
    return None


class OpenCVGrabber:
    """A V4L2 device or a network stream through OpenCV."""

    def __init__(self, source: int | str, config: CameraConfig) -> None:
        self.source = source
        self.config = config
        index = _as_index(source)
        self.name = f"camera{index}" if index is not None else str(source)
        self.fps: float | None = config.fps
        self.capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        index = _as_index(self.source)
        open_ms = int(self.config.open_timeout * 1000)
        read_ms = int(self.config.timeout * 1000)
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
        if index is not None:
            capture = cv2.VideoCapture(index, cv2.CAP_ANY)
        elif _is_url(self.source):
            capture = cv2.VideoCapture(str(self.source), cv2.CAP_FFMPEG, timeouts)
        else:
            path = str(self.source)
            if Path(path).is_dir():
                raise CameraError(f"camera source {path} is a folder, not a camera device or a video file")
            if path.startswith("/dev/") and not Path(path).exists():
                raise CameraError(f"camera device {path} does not exist")
            capture = cv2.VideoCapture(path, cv2.CAP_ANY)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"cannot open camera {self.source!r} (not connected, busy, or not a video source)")
        if not _is_url(self.source):
            if self.config.resolution is not None:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.resolution[0])
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.resolution[1])
            if self.config.fps:
                capture.set(cv2.CAP_PROP_FPS, float(self.config.fps))
        reported = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if 1.0 <= reported <= 240.0:
            self.fps = reported
        self.capture = capture

    def read(self) -> np.ndarray:
        if self.capture is None:
            raise CameraLost(f"camera {self.source!r} is not open")
        ok, frame = self.capture.read()
        if not ok or frame is None or frame.size == 0:
            raise CameraLost(f"camera {self.source!r} stopped delivering frames")
        problem = frame_too_large(frame.shape[1], frame.shape[0])
        if problem:
            raise CameraLost(f"camera {self.source!r}: {problem}")
        return frame

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def _import_picamera2() -> Callable[..., Any] | None:
    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except Exception:  # not installed, or libcamera missing
        return None
    return Picamera2


class Picamera2Grabber:
    """The Raspberry Pi camera through picamera2 (BGR frames via ``RGB888``).

    ``factory(camera_num)`` makes the camera object; anything with picamera2's
    ``configure``/``start``/``capture_array``/``stop`` works (tests pass a stand-in).
    """

    def __init__(self, factory: Callable[..., Any], camera_num: int, config: CameraConfig) -> None:
        self.factory = factory
        self.camera_num = camera_num
        self.config = config
        self.name = f"picamera2:{camera_num}"
        self.fps: float | None = config.fps
        self.camera: Any = None

    def open(self) -> None:
        try:
            camera = self.factory(self.camera_num)
        except Exception as exc:
            raise CameraError(f"cannot open Raspberry Pi camera {self.camera_num}: {exc}") from exc
        main: dict[str, Any] = {"format": "RGB888"}  # picamera2's RGB888 is B, G, R in memory
        if self.config.resolution is not None:
            main["size"] = tuple(int(v) for v in self.config.resolution)
        controls = {"FrameRate": float(self.config.fps)} if self.config.fps else {}
        try:
            if hasattr(camera, "create_video_configuration"):
                settings = camera.create_video_configuration(main=main, controls=controls)
            else:
                settings = {"main": main, "controls": controls}
            camera.configure(settings)
            camera.start()
        except Exception as exc:
            _close_quietly(camera)
            raise CameraError(f"cannot start Raspberry Pi camera {self.camera_num}: {exc}") from exc
        self.camera = camera

    def read(self) -> np.ndarray:
        if self.camera is None:
            raise CameraLost(f"{self.name} is not open")
        try:
            frame = self.camera.capture_array()
        except Exception as exc:
            raise CameraLost(f"{self.name} stopped delivering frames: {exc}") from exc
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.size == 0:
            raise CameraLost(f"{self.name} delivered a frame of unexpected shape {frame.shape}")
        if frame.shape[2] == 4:  # XRGB8888: B, G, R, X
            frame = frame[:, :, :3]
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        if self.camera is not None:
            _close_quietly(self.camera)
            self.camera = None


def _close_quietly(camera: Any) -> None:
    for method in ("stop", "close"):
        fn = getattr(camera, method, None)
        if fn is not None:
            try:
                fn()
            except Exception:
                pass


class FallbackGrabber:
    """Try grabbers in order at each opening; use the first that opens.

    With ``source = 0`` on a Pi that has picamera2 but only a USB webcam,
    the Pi camera fails to open and the V4L2 device is used instead.
    """

    def __init__(self, grabbers: list[FrameGrabber]) -> None:
        self.grabbers = grabbers
        self.active: FrameGrabber = grabbers[0]

    @property
    def name(self) -> str:
        return self.active.name

    @property
    def fps(self) -> float | None:
        return self.active.fps

    def open(self) -> None:
        errors = []
        for grabber in self.grabbers:
            try:
                grabber.open()
            except CameraError as exc:
                errors.append(str(exc))
                continue
            self.active = grabber
            return
        raise CameraError("; ".join(errors))

    def read(self) -> np.ndarray:
        return self.active.read()

    def close(self) -> None:
        self.active.close()


class CameraSource:
    """An async stream of live BGR frames from one camera opening.

    ``fps`` is the requested (or, for OpenCV devices, reported) frame rate.
    Iterating opens the camera; leaving the loop (or an error) closes it.
    Iterate again to reopen (a new ``segment`` id each time).
    """

    def __init__(self, grabber: FrameGrabber, config: CameraConfig) -> None:
        self.grabber = grabber
        self.config = config
        self.rotate = check_rotation(config.rotation)
        self.resize = check_resize(config.resolution) if config.resize else None
        self.openings = 0
        self.frames_read = 0
        self._dropped_before = 0
        self._handoff: Handoff[TemporalFeature[np.ndarray]] | None = None

    @property
    def fps(self) -> float:
        return float(self.grabber.fps or self.config.fps or 30.0)

    @property
    def name(self) -> str:
        return self.grabber.name

    @property
    def dropped(self) -> int:
        """Frames the camera delivered that were replaced by newer ones before being read."""
        current = self._handoff.dropped if self._handoff is not None else 0
        return self._dropped_before + current

    def __repr__(self) -> str:
        return f"CameraSource({self.name!r}, {self.fps:g} fps)"

    def __aiter__(self) -> AsyncIterator[TemporalFeature[np.ndarray]]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[TemporalFeature[np.ndarray]]:
        try:
            await asyncio.wait_for(asyncio.to_thread(self.grabber.open), self.config.open_timeout + 5.0)
        except asyncio.TimeoutError:
            raise CameraError(f"camera {self.name!r} did not open within {self.config.open_timeout + 5.0:g} s") from None
        self.openings += 1
        segment = f"{self.name}#{self.openings}"
        loop = asyncio.get_running_loop()
        handoff: Handoff[TemporalFeature[np.ndarray]] = Handoff(max(1, self.config.buffer), "drop_oldest")
        handoff.bind(loop)
        self._handoff = handoff
        stop = threading.Event()
        started = time.monotonic()

        def reader() -> None:
            error: BaseException | None = None
            try:
                while not stop.is_set():
                    frame = self.grabber.read()
                    if stop.is_set():
                        break
                    frame = orient(frame, self.rotate, self.resize)
                    handoff.put_threadsafe(TemporalFeature(frame, time.monotonic() - started, segment))
            except CameraLost as exc:
                error = exc
            except Exception as exc:  # any driver failure counts as the camera going away
                error = CameraLost(f"camera {self.name!r} failed: {exc}")
            finally:
                self.grabber.close()
                if not stop.is_set():
                    try:
                        loop.call_soon_threadsafe(handoff.close, error or CameraLost(f"camera {self.name!r} stopped"))
                    except RuntimeError:
                        pass

        thread = threading.Thread(target=reader, name=f"cadence-camera-{self.name}", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(handoff.get(), self.config.timeout)
                except asyncio.TimeoutError:
                    raise CameraLost(
                        f"camera {self.name!r} delivered no frame for {self.config.timeout:g} s"
                    ) from None
                except StopAsyncIteration:
                    return
                self.frames_read += 1
                yield item
        finally:
            stop.set()
            self._dropped_before += handoff.dropped
            self._handoff = None
            await asyncio.to_thread(thread.join, 1.0)


def _option(config: Any, overrides: Mapping[str, Any], name: str, default: Any) -> Any:
    if name in overrides:
        return overrides[name]
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def read_camera(
    config: Any = None,
    *,
    picamera2_factory: Callable[..., Any] | None = None,
    **overrides: Any,
) -> CameraSource | VideoSource:
    """Open a live camera as a temporal source of BGR frames.

    ``config``: a :class:`CameraConfig`, a mapping, the daemon's camera section,
    or just a source (``0``, ``"/dev/video0"``, ``"rtsp://…"``). picamera2 is used
    when ``backend`` is ``"picamera2"``, or ``"auto"`` with an index source and
    picamera2 importable (or ``picamera2_factory`` given); otherwise OpenCV.
    A video-file source is played like a camera (paced at its frame rate,
    looping if the config says ``loop``).
    """
    cfg = CameraConfig.coerce(config, **overrides)
    if cfg.backend not in BACKENDS:
        raise CameraError(f"camera backend must be one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
    if cfg.timeout <= 0:
        raise CameraError(f"camera timeout must be > 0 s, got {cfg.timeout}")
    source = cfg.source
    if (
        isinstance(source, str)
        and not _is_url(source)
        and Path(source).suffix.lower() in VIDEO_SUFFIXES
    ):
        return read_video(
            source,
            rotate=cfg.rotation,
            resize=cfg.resolution if cfg.resize else None,
            loop=bool(_option(config, overrides, "loop", False)),
            realtime=bool(_option(config, overrides, "realtime", True)),
        )
    wants_picamera = cfg.backend == "picamera2" or source == "picamera2"
    factory = picamera2_factory
    if cfg.backend != "opencv" and (wants_picamera or _as_index(source) is not None):
        if factory is None:
            factory = _import_picamera2()
        if factory is None and wants_picamera:
            raise CameraError("camera source 'picamera2' needs the picamera2 package (sudo apt install python3-picamera2)")
        if factory is not None:
            camera_num = _as_index(source) or 0
            picamera = Picamera2Grabber(factory, camera_num, cfg)
            if wants_picamera:
                return CameraSource(picamera, cfg)
            # an index in auto mode: the Pi camera if it opens, else that V4L2 device
            return CameraSource(FallbackGrabber([picamera, OpenCVGrabber(source, cfg)]), cfg)
    if wants_picamera:
        raise CameraError("camera backend 'opencv' cannot open source 'picamera2'")
    return CameraSource(OpenCVGrabber(source, cfg), cfg)
