"""The room's own background, kept while the daemon listens, for the next ``cadence retrain sound``.

The owner's room noise is what keeps ``background`` silent (docs/audio.md,
"Few-shot background"), and a running device hears more of it than anyone
records. With the owner's consent (``[sound] keep_background = true``) the
audio pipeline keeps, at most once every ``keep_background_every`` seconds, a
clip of :data:`~device.learn.quiet.CLIP_SECONDS` (what ``cadence record sound
background --auto`` records) of the audio the feature print gets (16 kHz mono,
after the gain) that

- :class:`~device.learn.quiet.QuietClips` judges quiet, against the pipeline's
  volume gate (nothing louder than the room's usual level, some of it audible), and
- no sound event overlaps: the clip waits until the detector has judged every
  window that could still report one (``max_duration`` past the clip, or the
  end of its segment) — nor a window the model heard as a taught sound at or
  above its threshold (the cool-down or the allow-list keep some of them from
  being reported: none of them is background),

as ``<state_dir>/training-data/background/auto-background_<time>_<n>.wav``.
Each clip is a recording of its own (named by its own time): clips minutes or
hours apart are separate moments of the room, not takes of one sound, so the
validation split may hold some of them. Beyond ``keep_background_max`` the
oldest auto-kept clips are removed — never the owner's own files; below
``MIN_FREE_BYTES`` free on the storage none is kept. At most one
clip's samples are held; a write that fails (full or read-only storage) is one
log line and the daemon listens on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.events import SoundEvent, WindowPrediction
from ..audio.sources import SAMPLE_RATE, write_wav
from ..components import TemporalFeature
from ..learn.openset import BACKGROUND, SILENT_LABELS
from ..learn.quiet import CLIP_SECONDS, QuietClips
from ..storage import SOUND_DATA
from .config import Config
from .errors import one_line

log = logging.getLogger("cadence.daemon")

AUTO_PREFIX = f"auto-{BACKGROUND}"  # the daemon's clips; every other file in the folder is the owner's
AUTO_NAME = re.compile(rf"{re.escape(AUTO_PREFIX)}_\d{{8}}-\d{{6}}_\d+\.wav")  # exactly as keep() names them
GAP_TOLERANCE = 0.05  # seconds: chunks further apart than this are not one stretch of audio
# a clip is kept only while the storage keeps this much free: a model's save, a retrain's cache and
# checkpoints come first (50 clips are 8 MB; an SD card that fills up loses those writes)
MIN_FREE_BYTES = 256 * 1024 * 1024


class BackgroundFolder:
    """The auto-kept clips in the training data's background folder: write one, keep at most ``max_clips``."""

    def __init__(self, folder: Path, max_clips: int, *, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.max_clips = max_clips
        self._clock = clock

    def clips(self) -> list[Path]:
        """The auto-kept clips, oldest first: regular files named as :meth:`keep` names them.
        The owner's files are never among them — other names (also ``auto-background_mine.wav``),
        folders, links. ``OSError`` when the folder cannot be read."""
        try:
            entries = list(os.scandir(self.folder))
        except (FileNotFoundError, NotADirectoryError):  # none kept yet (a file there: keep() says so)
            return []
        found = []
        for entry in entries:
            if not AUTO_NAME.fullmatch(entry.name):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name, Path(entry.path)))
            except OSError:  # removed meanwhile
                continue
        return [path for _, _, path in sorted(found)]

    def seconds_since_last(self) -> float | None:
        """How long ago the newest auto-kept clip was written (None: there is none)."""
        clips = self.clips()
        if not clips:
            return None
        try:
            return self._clock() - clips[-1].stat().st_mtime
        except OSError:
            return None

    def keep(self, samples: np.ndarray) -> tuple[Path, int]:
        """Write a clip (atomically), then remove the oldest auto-kept ones beyond the cap;
        returns the file and how many auto-kept clips there are now. A folder that cannot be
        read raises before anything is written (the cap could not be held)."""
        others = self.clips()
        free = _free_bytes(self.folder)
        if free is not None and free < MIN_FREE_BYTES:
            raise OSError(errno.ENOSPC, f"only {free // 2**20} MB free on its storage, none kept below "
                                        f"{MIN_FREE_BYTES // 2**20} MB (models and retraining come first)")
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self._clock()))
        n = 1
        while os.path.lexists(path := self.folder / f"{AUTO_PREFIX}_{stamp}_{n}.wav"):  # the clock went back
            n += 1
        write_wav(path, samples)
        removed = 0
        for old in others[:max(0, len(others) - (self.max_clips - 1))]:
            try:
                old.unlink(missing_ok=True)
                removed += 1
            except OSError as exc:  # kept anyway: the next clip tries again
                log.warning("could not remove the old background clip %s: %s", old, one_line(exc))
        return path, len(others) - removed + 1


def _free_bytes(folder: Path) -> int | None:
    """Free bytes on the storage ``folder`` is (or will be) on; None when that cannot be told."""
    for place in (folder, *folder.parents):
        if place.exists():
            try:
                return shutil.disk_usage(place).free
            except OSError:
                return None
    return None


@dataclasses.dataclass
class _Clip:
    """A clip being collected, or waiting for the detector's verdict."""

    samples: np.ndarray
    segment: Any
    start: float  # stream time (s) of its first sample
    filled: int = 0
    heard: float = 0.0  # the keeper's audio clock when the clip was complete
    reached: bool = False  # the detector has judged a window of the clip's segment
    why: str = ""


class BackgroundKeeper:
    """Keeps quiet clips without a sound event, fed by the sound pipeline: ``on_audio``
    (its audio after the gain), ``on_feature`` (each feature window: the detector is
    done with the ones before), ``on_window`` (each classified window), ``on_event``
    (each sound event) and :meth:`finish` (the stream ended: every event has been said).
    ``thresholds``/``default_threshold``: the detector's, for what counts as heard.

    Spacing is counted in seconds of audio heard — real time for a microphone —
    and starts from the newest auto-kept clip's age, so a restart does not write at once.
    """

    def __init__(self, folder: BackgroundFolder, *, min_db: float, max_duration: float, every: float,
                 thresholds: Mapping[str, float] | None = None, default_threshold: float = 0.5,
                 seconds: float = CLIP_SECONDS, rate: int = SAMPLE_RATE,
                 on_kept: Callable[[Path], None] | None = None) -> None:
        self.folder = folder
        self.quiet = QuietClips(min_db=min_db, rate=rate)
        self.thresholds = dict(thresholds or {})
        self.default_threshold = float(default_threshold)
        self.max_duration = float(max_duration)
        self.every = float(every)
        self.rate = rate
        self.length = int(round(seconds * rate))
        self.on_kept = on_kept
        self.kept = 0
        self.failing = False  # the last write failed: the next failures are not warned again
        self.heard = 0.0  # seconds of audio heard: the spacing's clock
        try:
            since = folder.seconds_since_last()
        except OSError as exc:  # an unreadable folder must not stop the listening: a clip's write says it again
            log.warning("cannot read the background clips in %s: %s", folder.folder, one_line(exc))
            since = 0.0
        self._next_at = 0.0 if since is None else min(self.every, max(0.0, self.every - since))
        self._collecting: _Clip | None = None
        self._pending: _Clip | None = None
        self._writing: asyncio.Future[Any] | None = None
        self._previous: tuple[Any, float] | None = None  # (segment, time) of the last feature window seen

    @property
    def seconds(self) -> float:
        return self.length / self.rate

    @property
    def waiting(self) -> bool:
        """A quiet clip waits for the detector's verdict (an event that may still overlap it)."""
        return self._pending is not None

    def on_audio(self, item: TemporalFeature[np.ndarray]) -> None:
        """A chunk of the pipeline's audio: collect it into the clip, judge the clip once full."""
        x = np.asarray(item.value, dtype=np.float32).reshape(-1)
        before, self.heard = self.heard, self.heard + len(x) / self.rate
        if self._pending is not None or self._writing is not None or before < self._next_at:
            return  # one clip at a time; spaced out
        clip = self._collecting
        if clip is not None and (clip.segment != item.segment
                                 or abs(float(item.timestamp) - clip.start - clip.filled / self.rate) > GAP_TOLERANCE):
            clip = None  # a new segment (a microphone reopened, a file's next pass) or lost audio: start again
        if clip is None:
            clip = _Clip(np.empty(self.length, dtype=np.float32), item.segment, float(item.timestamp))
        take = min(len(x), self.length - clip.filled)
        clip.samples[clip.filled:clip.filled + take] = x[:take]
        clip.filled += take
        if clip.filled < self.length:
            self._collecting = clip
            return
        self._collecting = None
        keep, clip.why = self.quiet.judge(clip.samples)
        if not keep:
            log.debug("background clip at %.1f s not kept: %s", clip.start, clip.why)
            return
        clip.heard = self.heard
        self._pending = clip

    def on_feature(self, item: TemporalFeature[Any]) -> None:
        """A feature window on its way to the classifier: the detector has said every event
        of the windows before it, so a waiting clip may be settled."""
        previous, self._previous = self._previous, (item.segment, float(item.timestamp))
        clip = self._pending
        if clip is None or previous is None:
            return
        segment, end = previous
        if segment == clip.segment:
            clip.reached = True
            if end >= clip.start + self.seconds + self.max_duration:  # any run over the clip has been reported
                self._settle()
        elif clip.reached:  # a later segment began: the detector flushed the clip's
            self._settle()

    def on_window(self, item: TemporalFeature[WindowPrediction]) -> None:
        """A classified window: heard as a taught sound, it spoils the clip it overlaps."""
        window = item.value
        label = window.label
        if label is not None and label not in SILENT_LABELS \
                and window.confidence >= self.thresholds.get(label, self.default_threshold):
            self._spoil(item.segment, window.start, window.end, f"the model heard {label}")

    def on_event(self, item: TemporalFeature[SoundEvent]) -> None:
        """A sound event: the clip it overlaps (being collected or waiting) is not background."""
        event = item.value
        self._spoil(item.segment, event.start, event.end, f"a sound event ({event.label})")

    def _spoil(self, segment: Any, start: float, end: float, why: str) -> None:
        for clip in (self._collecting, self._pending):
            if clip is not None and segment == clip.segment and end > clip.start and start < clip.start + self.seconds:
                log.debug("background clip at %.1f s not kept: %s in it", clip.start, why)
                if clip is self._pending:
                    self._pending = None
                else:
                    self._collecting = None

    async def finish(self) -> None:
        """The stream ended (a file): every event has been said; settle and write what waits."""
        if self._pending is not None:
            self._settle()
        if self._writing is not None:
            try:
                await self._writing
            except Exception:  # said by _written
                pass
            await asyncio.sleep(0)  # let _written run first

    def _settle(self) -> None:
        """The waiting clip had no event: write it off the event loop (an SD card's fsync is slow)."""
        clip, self._pending = self._pending, None
        assert clip is not None
        self._next_at = clip.heard + self.every  # also after a failed write: a full disk is not hammered
        self._writing = asyncio.get_running_loop().run_in_executor(None, self.folder.keep, clip.samples)
        self._writing.add_done_callback(functools.partial(self._written, clip))

    def _written(self, clip: _Clip, future: asyncio.Future[Any]) -> None:
        self._writing = None
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:  # warned once, not every `every` seconds while the storage stays full
            say = log.debug if self.failing else log.warning
            say("could not keep a background clip for retraining: %s%s", one_line(error),
                "" if self.failing else " (said once until a clip is kept again)")
            self.failing = True
            return
        path, count = future.result()
        self.failing = False
        self.kept += 1
        log.info("kept %s for the next `cadence retrain sound` (%s; %d of at most %d kept clips)",
                 path, clip.why, count, self.folder.max_clips)
        if self.on_kept is not None:
            self.on_kept(path)


def background_folder(config: Config) -> Path:
    """Where the kept clips go: the ``background`` label of the data ``cadence retrain sound`` trains on."""
    return config.state_dir / SOUND_DATA / BACKGROUND


def background_keeper(config: Config, *, on_kept: Callable[[Path], None] | None = None) -> BackgroundKeeper | None:
    """The keeper ``[sound]`` asks for; None without the owner's consent (``keep_background``)."""
    sound = config.sound
    if not sound.keep_background:
        return None
    folder = BackgroundFolder(background_folder(config), sound.keep_background_max)
    keeper = BackgroundKeeper(folder, min_db=sound.min_volume_db, max_duration=sound.max_duration,
                              every=sound.keep_background_every, thresholds=sound.thresholds,
                              default_threshold=sound.default_threshold, on_kept=on_kept)
    log.info("keeping the room's background for the next retrain: a %g s quiet clip without sound events at most "
             "every %g s, up to %d, in %s ([sound] keep_background)", keeper.seconds, keeper.every,
             folder.max_clips, folder.folder)
    return keeper
