"""The count ledger: what the device has counted, whatever happened to the counter.

The vision pipeline's counter is cumulative and restarts from zero whenever
its source does (camera reopened, file looped, pipeline restarted). The owner
wants one total that only ever grows until they reset it. The ledger turns the
counter's raw states into that total — plain Python, no clock, no I/O, so the
rules are tested on their own:

- a new segment, or a raw count that goes backwards (a fresh counter), carries
  what the previous counter had counted over;
- ``reset()`` counts from zero again while the counter keeps running; a reset
  in the middle of a set lets that set go on as set 1 of the new count;
- an update that changes nothing published returns ``None`` (nothing to send);
  the recogniser's confidence and the counter's (``periodicity``, ``ambiguity``)
  alone are no change (they waver every window);
- the count is the day's: :meth:`new_day` starts the next one (like a reset),
  and ``start`` carries an earlier run's totals of the same day over (a restart
  or a power cut loses nothing saved). With ``open_set`` the restored set goes
  on (the counter stopped mid-set and came back before the pause ended a set);
- ``totals`` are the day's repetitions per exercise, for updates that name one
  (the exercise recogniser); ``count`` is the total over all of them. A change
  of exercise ends a set in the counter: its set number goes up without a
  pause, and so does the published one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class RepUpdate:
    """The counter's cumulative state after a window (raw, before any reset)."""

    count: float
    set_number: int = 1
    set_count: float = 0.0
    rate: float | None = None  # repetitions per minute
    media_time: float | None = None  # stream timestamp, seconds
    segment: Any = None  # a new segment (camera reopened, file looped) starts a new counter
    resting: bool = False
    exercise: str | None = None  # what is being counted, when a recogniser says so
    exercise_confidence: float | None = None  # how sure it is (0..1)
    periodicity: float | None = None  # the counter's confidence that the motion repeats (0..1)
    ambiguity: float | None = None  # how nearly half or twice the period was chosen (0..1)


@dataclasses.dataclass(frozen=True)
class CountState:
    """The published count, rounded as published (a change below that is no change)."""

    count: float = 0.0
    set: int = 0
    set_count: float = 0.0
    rate: float | None = None
    day: str | None = None  # the local date counted (ISO), None for a ledger without days
    totals: Mapping[str, float] = dataclasses.field(default_factory=dict)  # per exercise, the day's
    exercise: str | None = None  # being done now (None: not recognised, or no recogniser)
    exercise_confidence: float | None = None
    # the counter's confidence in the last update (docs/counter.md); like exercise_confidence,
    # a change of these alone is no change (not published, not saved)
    periodicity: float | None = None
    ambiguity: float | None = None


_ORIGIN = RepUpdate(0.0, 0, 0.0)
_CONFIDENCES = ("exercise_confidence", "periodicity", "ambiguity")  # carried along, never a change by themselves


def _rounded(value: float | None) -> float | None:
    """Two decimals; None for None and for what JSON cannot carry (NaN, infinities)."""
    return None if value is None or not math.isfinite(value) else round(float(value), 2)


class CountLedger:
    """Monotonic count and sets over counter restarts, segments and resets.

    ``start`` carries totals over from before (e.g. the state file of an earlier
    run the same day): they are added to whatever the counters count from now
    on; with ``open_set`` the first set counted continues ``start``'s set.
    """

    def __init__(self, start: CountState | None = None, *, open_set: bool = False) -> None:
        self.state = start or CountState()
        self.resting = not open_set  # as of the last update: between sets
        self._last: RepUpdate | None = None  # the last raw update
        self._base = _ORIGIN  # raw counter state at the last reset (this segment)
        self._carry = self.state.count  # counted in earlier segments since the last reset
        self._floor = self.state.set  # the set number never goes below the restored one
        self._carry_sets = self.state.set - (1 if open_set and self.state.set > 0 else 0)
        self._reset_set: tuple[int, float] | None = None  # (raw set, its count) at a mid-set reset
        # the restored open set's count, added to the first counter's first set
        self._open: float | None = self.state.set_count if open_set and self.state.set > 0 else None
        self._shown: float | None = self.state.set_count  # the restored set's count, until a set starts
        self._start: CountState | None = self.state  # what adopt() compares with, until its first call

    @property
    def day(self) -> str | None:
        return self.state.day

    def update(self, raw: RepUpdate) -> CountState | None:
        """Take the counter's latest state; the new published state, or None if unchanged."""
        last = self._last
        if last is not None and (raw.segment != last.segment or raw.count < last.count):
            self._carry += max(0.0, last.count - self._base.count)
            self._carry_sets += max(0, last.set_number - self._base.set_number)
            self._floor = max(self._floor, self.state.set)
            self._base = _ORIGIN
            self._reset_set = None
            self._open = self._shown = None
        self._last = raw
        self.resting = raw.resting
        base = self._base
        count = self._carry + max(0.0, raw.count - base.count)
        set_number = max(self._floor, self._carry_sets + max(0, raw.set_number - base.set_number))
        set_count = raw.set_count
        if self._reset_set is not None and raw.set_number == self._reset_set[0]:
            set_count = max(0.0, raw.set_count - self._reset_set[1])
        if self._shown is not None and raw.set_number == 0:
            set_count = self._shown
        elif self._open is not None and raw.set_number == 1:
            set_count += self._open
        count = round(count, 3)
        totals = dict(self.state.totals)
        if raw.exercise is not None and count > self.state.count:
            totals[raw.exercise] = round(totals.get(raw.exercise, 0.0) + count - self.state.count, 3)
        state = CountState(
            count=count,
            set=int(set_number),
            set_count=round(set_count, 3),
            rate=None if raw.rate is None else round(float(raw.rate), 2),
            day=self.state.day,
            totals=totals,
            exercise=raw.exercise,
            exercise_confidence=_rounded(raw.exercise_confidence),
            periodicity=_rounded(raw.periodicity),
            ambiguity=_rounded(raw.ambiguity),
        )
        if dataclasses.replace(state, **{k: getattr(self.state, k) for k in _CONFIDENCES}) == self.state:
            return None
        self.state = state
        return state

    def adopt(self, published: CountState) -> CountState | None:
        """Add what ``published`` (a count published earlier the same day: the broker's retained one at the first
        connection) has beyond the count this ledger started from — a kill -9 or a power cut loses what was
        counted after the last save, and the retained ``state/count`` still has it. Looked at once: later
        counts are this run's own, and after a reset or a new day the old count is not to come back. The new
        state, or None when there is nothing to add."""
        start, self._start = self._start, None
        if start is None or published.day != self.state.day or published.day != start.day:
            return None
        lost = round(published.count - start.count, 3)
        if lost <= 0:
            return None
        self._carry += lost
        self._floor = max(self._floor, published.set)
        totals = dict(self.state.totals)
        for exercise, total in published.totals.items():
            more = total - start.totals.get(exercise, 0.0)
            if exercise != "all" and more > 0:
                totals[exercise] = round(totals.get(exercise, 0.0) + more, 3)
        self.state = dataclasses.replace(self.state, count=round(self.state.count + lost, 3),
                                         set=max(self.state.set, published.set), totals=totals)
        return self.state

    def reset(self) -> CountState:
        """Count from zero (the counter keeps running underneath); returns the zero state."""
        return self.new_day(self.state.day)

    def new_day(self, day: str | None) -> CountState:
        """Start ``day`` from zero, like :meth:`reset` (at midnight); returns the zero state."""
        last = self._last
        self._start = None  # the day before the reset is not to come back (adopt)
        self._carry, self._carry_sets, self._floor, self._open, self._shown = 0.0, 0, 0, None, None
        if last is None:
            self._base = _ORIGIN
            self._reset_set = None
        else:
            # mid-set, the set goes on as set 1 of the new count
            in_set = not last.resting and last.set_number > 0
            self._base = RepUpdate(last.count, last.set_number - (1 if in_set else 0), 0.0, segment=last.segment)
            self._reset_set = (last.set_number, last.set_count) if in_set else None
        self.state = CountState(day=day)
        return self.state
