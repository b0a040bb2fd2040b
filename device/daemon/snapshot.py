"""Snapshots: when the vision pipeline turns a frame and its pose into a small JPEG.

Off unless ``[snapshot] enabled`` (privacy). Then a picture is taken on
request (``cmd/snapshot``, Home Assistant's button) from the next analysed
frame — with nobody in view too, since that is when the camera needs aiming —
and at most every ``[snapshot] interval`` seconds while someone is in view.
The pose is drawn on the very frame it was found in (matched by timestamp).
The settings are read at each frame, so a reload applies without a restart.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from ..components import TemporalFeature
from .errors import one_line
from .runner import PipelineContext

log = logging.getLogger("cadence.daemon")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A JPEG of the camera's view with the skeleton drawn (a vision pipeline output)."""

    jpeg: bytes
    media_time: float
    person: bool  # someone was found in the picture
    requested: bool  # taken on request (not by the interval)


class SnapshotTaker:
    """Keeps the last few frames and makes a :class:`Snapshot` when one is due.

    ``on_frame`` sees every frame entering the pipeline, ``on_pose`` every frame's
    pose (or None) after the pose stage; :meth:`take` hands over the pictures made.
    """

    FRAMES = 4  # frames between the camera and the pose stage: the buffer's one, the worker's, margin

    def __init__(self, ctx: PipelineContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self._clock = clock
        self._frames: collections.deque[TemporalFeature[Any]] = collections.deque(maxlen=self.FRAMES)
        self._last: float | None = None
        self._ready: collections.deque[Snapshot] = collections.deque(maxlen=self.FRAMES)  # made, not yet handed over

    @property
    def enabled(self) -> bool:
        return bool(self.ctx.config.snapshot.enabled)

    def on_frame(self, item: TemporalFeature[Any]) -> None:
        if self.enabled:
            self._frames.append(item)
        elif self._frames:
            self._frames.clear()

    def on_pose(self, item: TemporalFeature[Any]) -> None:
        settings = self.ctx.config.snapshot
        if not settings.enabled:
            self.ctx.take_request("snapshot")  # asked while off: the supervisor said so; nothing to keep
            return
        frame = self._frame_at(item.timestamp)
        if frame is None:
            return  # a request waits for a frame
        now = self._clock()
        person = item.value is not None
        periodic = person and (self._last is None or now - self._last >= settings.interval)
        requested = self.ctx.take_request("snapshot")
        if not (requested or periodic):
            return
        from ..pose.drawing import pose_snapshot

        try:
            jpeg = pose_snapshot(frame, item.value, width=settings.width, quality=settings.quality)
        except Exception as exc:  # a picture is never worth stopping the counting for
            log.warning("snapshot not made: %s", one_line(exc))
            return
        self._last = now
        self._ready.append(Snapshot(jpeg, float(item.timestamp), person, requested))

    def _frame_at(self, timestamp: float) -> Any:
        for frame in reversed(self._frames):
            if frame.timestamp == timestamp:
                return frame.value
        return self._frames[-1].value if self._frames else None

    def take(self) -> list[Snapshot]:
        """The pictures made since the last call, oldest first."""
        ready = list(self._ready)
        self._ready.clear()
        return ready
