"""How the daemon is doing: stats figures, the watchdog's decision, the status line.

The figures are computed from the pipelines' statuses and counters, the
delivery counts and the process (CPU, RSS); the publisher turns them into the
``stats`` message. The watchdog pings systemd only while some pipeline's
input flows, so a wedged daemon is restarted and an idle-but-healthy one is not.
"""

from __future__ import annotations

import collections

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .runner import PipelineStatus
from .systemd import Notifier

log = logging.getLogger("cadence.daemon")


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What went out on MQTT (or could not): counted by the publisher and its link."""

    reps: int = 0
    sound: int = 0
    queued: int = 0
    dropped: int = 0
    reconnects: int = 0


@dataclasses.dataclass(frozen=True)
class Stats:
    """One sample of the daemon's figures (field order is the ``stats`` message's)."""

    uptime: float
    fps: float | None
    frames: int
    frames_dropped: int
    audio_chunks: int
    audio_overflows: int
    audio_windows_skipped_silent: int
    audio_windows_not_taught: int
    audio_background_kept: int  # clips of the room kept for the next retrain ([sound] keep_background)
    reps_messages: int
    sound_events: int
    sound_events_last_hour: dict[str, int]  # per label: what an owner checks for false alarms
    mqtt_queued: int
    mqtt_dropped: int
    mqtt_reconnects: int
    cpu_percent: float
    rss_mb: float
    model: str | None
    pipelines: dict[str, str]


class Telemetry:
    """Samples figures; fps is measured between two samples (the first has none)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, process: Any = None) -> None:
        self._clock = clock
        self._started = clock()
        self._previous: tuple[float, float] | None = None  # (time, frames) of the last sample
        self._process = process
        self._events: collections.deque[tuple[float, str]] = collections.deque()  # (time, label), the last hour

    def sound_event(self, label: str) -> None:
        """Note a published sound event (for the events per label over the last hour)."""
        self._events.append((self._clock(), label))
        self._forget()

    def _forget(self) -> None:
        horizon = self._clock() - 3600.0
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()

    def _proc(self) -> Any:
        if self._process is None:
            import psutil

            self._process = psutil.Process()
            self._process.cpu_percent(None)  # prime: the first call has no interval to measure
        return self._process

    def sample(self, pipelines: Mapping[str, PipelineStatus], *, model: str | None, delivery: Delivery) -> Stats:
        now = self._clock()
        proc = self._proc()
        vision = pipelines.get("vision")
        audio = pipelines.get("audio")
        v = vision.counters if vision is not None else {}
        a = audio.counters if audio is not None else {}
        frames = v.get("frames_processed", 0)
        fps = None
        if vision is not None and self._previous is not None and now > self._previous[0]:
            fps = round((frames - self._previous[1]) / (now - self._previous[0]), 2)
        self._previous = (now, frames)
        return Stats(
            uptime=round(now - self._started, 1),
            fps=fps,
            frames=int(frames),
            frames_dropped=int(v.get("frames_dropped", 0)),
            audio_chunks=int(a.get("inputs", 0)),
            audio_overflows=int(a.get("overflows", 0)),
            audio_windows_skipped_silent=int(a.get("silent", 0)),
            audio_windows_not_taught=int(a.get("not_taught", 0)),
            audio_background_kept=int(a.get("background_kept", 0)),
            reps_messages=delivery.reps,
            sound_events=delivery.sound,
            sound_events_last_hour=self._last_hour(),
            mqtt_queued=delivery.queued,
            mqtt_dropped=delivery.dropped,
            mqtt_reconnects=delivery.reconnects,
            cpu_percent=round(proc.cpu_percent(None), 1),
            rss_mb=round(proc.memory_info().rss / 2**20, 1),
            model=model,
            pipelines={name: status.status for name, status in pipelines.items()},
        )

    def _last_hour(self) -> dict[str, int]:
        self._forget()
        counts: dict[str, int] = {}
        for _, label in self._events:
            counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))


NO_INPUT_AFTER = 15.0  # seconds without a frame or audio chunk before a pipeline has a problem


def pipeline_problem(status: PipelineStatus, now: float | None = None) -> str | None:
    """What keeps a pipeline from delivering, in a few words, or None when it delivers.

    A source that ended (a file) is a problem too: nothing is watched any more.
    The words stay the same while the problem lasts (they are published retained).
    """
    if status.finished:
        return "the source ended (a file without loop)"
    if status.status.startswith("restarting"):
        return f"failing: {status.last_error}" if status.last_error else "restarting"
    if status.status == "stopped":
        return None
    now = time.monotonic() if now is None else now
    seen = [t for t in (status.last_input, status.started) if t is not None]
    if seen and now - max(seen) > NO_INPUT_AFTER:
        return f"no input for more than {NO_INPUT_AFTER:g} s"
    return None


def flowing(pipelines: Mapping[str, PipelineStatus], within: float, now: float | None = None) -> bool:
    """True if some live pipeline received input in the last ``within`` seconds
    (a file that ended is not wedged; with no live pipeline there is nothing to miss)."""
    live = [status for status in pipelines.values() if not status.finished]
    if not live:
        return True
    now = time.monotonic() if now is None else now
    return any(status.flowing(now, within) for status in live)


def status_line(pipelines: Mapping[str, PipelineStatus], *, model: str | None, connected: bool) -> str:
    """systemd's STATUS= line: each pipeline, the model, the MQTT connection."""
    parts = [f"{name} {status.status}" for name, status in pipelines.items()]
    parts.append(f"model {model}")
    parts.append("mqtt " + ("connected" if connected else "offline"))
    return ", ".join(parts)


async def watchdog(
    notifier: Notifier,
    is_flowing: Callable[[float], bool],
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """Ping systemd's watchdog every half ``WatchdogSec`` while input flows
    (within two intervals); without a watchdog, return at once."""
    interval = notifier.watchdog_interval
    if interval is None:
        return
    while True:
        await sleep(interval)
        if is_flowing(2 * interval):
            notifier.watchdog()
        else:
            log.warning("watchdog: no frames or audio for %.0fs; not pinging systemd", 2 * interval)
