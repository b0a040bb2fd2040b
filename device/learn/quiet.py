"""Which recorded clips are background: the room with nothing happening in it.

The owner's own room noise is the cheapest training data there is, and the
one that keeps ``background`` silent (measured: with 10 clips per label, every
background clip of the training part instead of 10 took held-out background
clips from 0.96 to 0.99 silent; docs/audio.md). ``cadence record sound background
--auto`` records clip after clip and keeps those :class:`QuietClips` judges
quiet: no 0.5 s block louder than the room's usual level (the median block
level of the last hour of audio judged) by more than ``margin_db`` — a door, a voice or a knock
makes a clip "not background" — and some block at least as loud as the
volume gate, since the device never classifies (or learns from) quieter audio.
The running daemon keeps such clips too, with the owner's consent
(``[sound] keep_background``, ``device/daemon/background.py``).
"""

from __future__ import annotations

import collections
import math

import numpy as np

CLIP_SECONDS = 5.0  # a background clip's length: `record --auto`'s default and the daemon's kept clips
BLOCK_SECONDS = 0.5
QUIET_MARGIN_DB = 10.0  # a block this far above the room's median level is a sound, not the room
HISTORY_SECONDS = 3600.0  # the room's level: of the last hour of audio judged (a daemon listens for weeks)


class QuietClips:
    """Judges clips one after another against the room's level so far."""

    def __init__(self, *, min_db: float, margin_db: float = QUIET_MARGIN_DB, rate: int = 16000) -> None:
        self.min_db = float(min_db)
        self.margin_db = float(margin_db)
        self.block = max(1, int(BLOCK_SECONDS * rate))
        # the levels (dBFS) of the blocks judged, the last hour of them: bounded memory however long it listens
        self.levels: collections.deque[float] = collections.deque(maxlen=int(HISTORY_SECONDS / BLOCK_SECONDS))

    @property
    def floor(self) -> float:
        """The room's usual level: the median level of the blocks judged so far (the last hour of them)."""
        return float(np.median(self.levels)) if self.levels else -math.inf

    def judge(self, samples: np.ndarray) -> tuple[bool, str]:
        """(keep, why) for the next clip; its blocks join the room's level either way."""
        x = np.asarray(samples, dtype=np.float64)
        n = max(1, len(x) // self.block)
        blocks = x[: n * self.block].reshape(n, -1) if len(x) >= self.block else x.reshape(1, -1)
        power = np.mean(blocks * blocks, axis=1)
        levels = [10.0 * math.log10(p) if p > 0 else -math.inf for p in power]
        self.levels.extend([v for v in levels if math.isfinite(v)] or [-120.0])
        loudest = max(levels)
        if loudest > self.floor + self.margin_db:
            return False, f"a sound {loudest - self.floor:.0f} dB above the room's level"
        if loudest < self.min_db:
            return False, f"quieter than the volume gate ({loudest:.0f} < {self.min_db:g} dBFS): nothing to learn"
        return True, f"room level {loudest:.0f} dBFS"
