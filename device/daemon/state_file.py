"""``<state_dir>/daemon-state.json``: the day's count and the active model, for the
owner and for the next start — so a restart or a power cut loses no counting.

Writes are atomic and rare (an SD card wears): while counting at most every
``storage.save_interval`` seconds, and at once (but never twice within
:data:`MIN_GAP`) on a reset, at a set's end, at midnight and at shutdown.
A missing or unreadable file is a fresh start, never an error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..components import atomic_write_json
from .errors import one_line
from .ledger import CountLedger, CountState

log = logging.getLogger("cadence.daemon")

NAME = "daemon-state.json"
MIN_GAP = 2.0  # seconds: a burst of resets is one write


def today() -> str:
    """The local date (ISO): a day's count ends at local midnight."""
    return dt.date.today().isoformat()


def seconds_to_midnight(now: dt.datetime | None = None) -> float:
    """Seconds until the next local midnight (at least one)."""
    now = now or dt.datetime.now()
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time())
    return max(1.0, (tomorrow - now).total_seconds())


def record(state: CountState, *, resting: bool, model: Mapping[str, Any], now: float) -> dict[str, Any]:
    """What is saved: the day's count and open set, the model (for the owner)."""
    return {
        "day": state.day,
        "count": {"count": state.count, "set": state.set, "set_count": state.set_count, "rate": state.rate,
                  "totals": dict(state.totals)},
        "resting": resting,
        "model": dict(model),
        "saved_at": round(now, 3),
    }


def save_state(state_dir: Path, saved: Mapping[str, Any]) -> bool:
    """Write the record atomically; a failure (full or read-only storage) is logged, never raised."""
    try:
        atomic_write_json(state_dir / NAME, dict(saved))
        return True
    except Exception as exc:
        log.warning("could not write daemon state: %s", one_line(exc))
        return False


def load_saved(state_dir: Path) -> dict[str, Any] | None:
    """The last record, or None (missing, unreadable or not a record: a fresh start)."""
    path = state_dir / NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: not read (%s); counting starts from zero", path, one_line(exc))
        return None
    return data if isinstance(data, dict) and isinstance(data.get("count"), dict) else None


def restore(saved: Mapping[str, Any] | None, *, day: str, now: float, rest_time: float) -> CountLedger:
    """The ledger to start with: the saved day's totals if that day is ``day``
    (else a fresh day); the saved set stays open if counting stopped mid-set less
    than ``rest_time`` seconds ago (the pause did not end the set)."""
    if not saved:
        return CountLedger(CountState(day=day))
    saved_at = _number(saved.get("saved_at"))
    saved_day = saved.get("day")
    if not isinstance(saved_day, str) and saved_at is not None:  # a record from before days were kept
        saved_day = dt.date.fromtimestamp(saved_at).isoformat()
    if saved_day != day:
        return CountLedger(CountState(day=day))
    state = count_state(saved["count"], day)
    recent = saved_at is not None and 0 <= now - saved_at < rest_time
    return CountLedger(state, open_set=recent and saved.get("resting") is False)


def count_state(count: Mapping[str, Any], day: str | None) -> CountState:
    """The count of a saved record or of a ``state/count`` payload (values that are no numbers count 0)."""
    totals = count.get("totals") if isinstance(count.get("totals"), dict) else {}
    return CountState(
        count=max(0.0, _number(count.get("count")) or 0.0),
        set=max(0, int(_number(count.get("set")) or 0)),
        set_count=max(0.0, _number(count.get("set_count")) or 0.0),
        day=day,
        totals={str(k): float(v) for k, v in totals.items() if _number(v) is not None},
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


class Saver:
    """Decides when to write: :meth:`changed` after a count change (written within
    the save interval), ``changed(urgent=True)`` for a reset, a set's end or
    midnight (written at once, but at most once per :data:`MIN_GAP`)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.dirty = False
        self.urgent = False
        self.last_write: float | None = None
        self.writes = 0

    def changed(self, *, urgent: bool = False) -> None:
        self.dirty = True
        self.urgent = self.urgent or urgent

    def due(self, interval: float) -> bool:
        """True when the unsaved change should be written now."""
        if not self.dirty:
            return False
        if self.last_write is None:
            return True
        return self._clock() - self.last_write >= (MIN_GAP if self.urgent else interval)

    def written(self) -> None:
        self.dirty = self.urgent = False
        self.last_write = self._clock()
        self.writes += 1
