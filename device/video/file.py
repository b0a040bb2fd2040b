"""Frames from a video file, as an async temporal source.

``read_video(path)`` opens the file at once (so a bad path fails where it is
given, with a clear :class:`VideoFileError`) and yields
``TemporalFeature(frame, timestamp, segment)`` items: ``frame`` a BGR
``uint8`` array, ``timestamp`` in seconds from the file's frame rate. The same
object also iterates synchronously (:meth:`VideoSource.frames`) for scripts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..components.stream import TemporalFeature
from .errors import VideoFileError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mjpeg", ".mjpg")
# 8K UHD. A damaged or forged file can declare (or decode to) frames of hundreds of
# megapixels: one such BGR frame is ~1 GB, more than a small board has.
MAX_FRAME_PIXELS = 7680 * 4320
ROTATIONS = {
    0: None,
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


def frame_too_large(width: float, height: float) -> str | None:
    """Why frames of this size are refused (``None``: they are not)."""
    if width * height > MAX_FRAME_PIXELS:
        return f"frames of {width:.0f}x{height:.0f} pixels are larger than 8K (7680x4320); refusing them"
    return None


def check_rotation(rotate: int) -> int:
    rotate = int(rotate) % 360
    if rotate not in ROTATIONS:
        raise ValueError(f"rotation must be 0, 90, 180 or 270 degrees clockwise, got {rotate}")
    return rotate


def check_resize(resize: tuple[int, int] | None) -> tuple[int, int] | None:
    if resize is None:
        return None
    try:
        width, height = (int(v) for v in resize)
    except (TypeError, ValueError):
        raise ValueError(f"resize must be (width, height), got {resize!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"resize must be positive (width, height), got {resize!r}")
    return width, height


def orient(frame: np.ndarray, rotate: int, resize: tuple[int, int] | None) -> np.ndarray:
    """Rotate clockwise by ``rotate`` degrees, then resize to ``(width, height)``."""
    code = ROTATIONS[rotate]
    if code is not None:
        frame = cv2.rotate(frame, code)
    if resize is not None and (frame.shape[1], frame.shape[0]) != resize:
        frame = cv2.resize(frame, resize, interpolation=cv2.INTER_AREA)
    return frame


class VideoSource:
    """An opened video file: ``fps``, ``frame_count``, ``size`` and its frames.

    Iterate with ``async for`` (decoding runs in a worker thread when
    ``in_thread`` is true, so a slow decode never blocks the event loop) or
    synchronously with :meth:`frames`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        rotate: int = 0,
        resize: tuple[int, int] | None = None,
        segment: str | int | None = None,
        start_frame: int = 0,
        max_frames: int | None = None,
        loop: bool = False,
        realtime: bool = False,
        in_thread: bool = True,
        auto_orient: bool = False,
    ) -> None:
        self.path = Path(path)
        self.auto_orient = auto_orient
        self.rotate = check_rotation(rotate)
        self.resize = check_resize(resize)
        self.segment = str(self.path.name) if segment is None else segment
        self.start_frame = max(0, int(start_frame))
        self.max_frames = max_frames
        self.loop = loop
        self.realtime = realtime
        self.in_thread = in_thread
        capture = self._open()
        try:
            fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
            count = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0
            # a raw MJPEG stream reports INT64_MIN; unknown is 0 (the frames are counted as they come)
            self.frame_count = int(count) if 0 < count < 2**31 else 0
            self._check_size(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0, capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
            ok, first = capture.read()
            if not ok or first is None or first.size == 0:
                raise VideoFileError(f"{self.path}: no frame could be decoded (corrupt or unsupported video)")
            self._check_size(first.shape[1], first.shape[0])
            self.source_size = (int(first.shape[1]), int(first.shape[0]))
        finally:
            capture.release()
        # Some containers report 0 or absurd rates; 30 fps is the usual camera rate.
        self.fps = fps if 1.0 <= fps <= 1000.0 else 30.0
        oriented = orient(first, self.rotate, self.resize)
        self.size = (int(oriented.shape[1]), int(oriented.shape[0]))

    def _check_size(self, width: float, height: float) -> None:
        problem = frame_too_large(width, height)
        if problem:
            raise VideoFileError(f"{self.path}: {problem}")

    def _open(self) -> cv2.VideoCapture:
        if not self.path.exists():
            raise VideoFileError(f"video file {self.path} does not exist")
        if self.path.is_dir():
            raise VideoFileError(f"{self.path} is a folder, not a video file")
        if self.path.stat().st_size == 0:
            raise VideoFileError(f"video file {self.path} is empty")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise VideoFileError(
                f"{self.path}: cannot open as a video (supported: {', '.join(s[1:] for s in VIDEO_SUFFIXES)})"
            )
        # Frames as stored, unless asked otherwise: OpenCV builds differ in whether
        # they apply a phone's rotation tag, and `rotate` must mean the same everywhere.
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1 if self.auto_orient else 0)
        return capture

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.frame_count else 0.0

    def __repr__(self) -> str:
        return f"VideoSource({str(self.path)!r}, {self.size[0]}x{self.size[1]}, {self.fps:.2f} fps)"

    # -- synchronous --------------------------------------------------------
    def frames(self) -> Iterator[TemporalFeature[np.ndarray]]:
        """Decode frames in order (repeating if ``loop``); timestamps from the frame rate."""
        produced = 0
        offset = 0.0  # time already played in earlier loops
        while True:
            capture = self._open()
            try:
                if self.start_frame:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, self.start_frame)
                index = self.start_frame
                decoded = 0
                while self.max_frames is None or produced < self.max_frames:
                    ok, frame = capture.read()
                    if not ok or frame is None:
                        break
                    self._check_size(frame.shape[1], frame.shape[0])  # a stream may change size mid-way
                    yield TemporalFeature(orient(frame, self.rotate, self.resize), offset + index / self.fps, self.segment)
                    index += 1
                    decoded += 1
                    produced += 1
            finally:
                capture.release()
            if decoded == 0 and produced == 0:
                raise VideoFileError(f"{self.path}: no frame could be decoded from frame {self.start_frame} on")
            if not self.loop or decoded == 0 or (self.max_frames is not None and produced >= self.max_frames):
                return
            offset += index / self.fps

    def __iter__(self) -> Iterator[TemporalFeature[np.ndarray]]:
        return self.frames()

    # -- asynchronous -------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[TemporalFeature[np.ndarray]]:
        return self._aframes()

    async def _aframes(self) -> AsyncIterator[TemporalFeature[np.ndarray]]:
        frames = self.frames()
        done = object()
        started: float | None = None
        first_ts = 0.0
        try:
            while True:
                if self.in_thread:
                    item = await asyncio.to_thread(next, frames, done)
                else:
                    item = next(frames, done)
                    await asyncio.sleep(0)
                if item is done:
                    return
                assert isinstance(item, TemporalFeature)
                if self.realtime:  # pace like a camera: frame t is due at start + t
                    now = time.monotonic()
                    if started is None:
                        started, first_ts = now, item.timestamp
                    delay = started + (item.timestamp - first_ts) - now
                    if delay > 0:
                        await asyncio.sleep(delay)
                yield item
        finally:
            frames.close()


def read_video(path: str | Path, **options: Any) -> VideoSource:
    """Open a video file as a temporal source of BGR frames (the options of :class:`VideoSource`).

    ``rotate``: degrees clockwise (0/90/180/270) to make the picture upright;
    ``resize``: ``(width, height)`` after rotation; ``segment``: the segment id
    stamped on items (default: the file name); ``loop`` restarts at the end;
    ``realtime`` paces frames at the file's rate, as a camera would deliver them;
    ``auto_orient`` applies the file's rotation tag (off by default, so that
    ``rotate`` means the same with every OpenCV build: frames as stored).
    Raises :class:`VideoFileError` at once for a missing, empty or undecodable file.
    """
    return VideoSource(path, **options)
