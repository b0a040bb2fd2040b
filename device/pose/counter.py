"""Class-agnostic repetition counting from a stream of body poses.

The counter does not know the exercise. It keeps the last seconds of one
person's normalised joint positions and, at every window, finds the dominant
motion (robust first principal component of the joint trajectories over a few
spans), checks that it is periodic (prominence of the autocorrelation peak)
and counts one repetition per full cycle: each time the motion has passed
both of its turning points (hysteresis crossings of its local mid-level,
"local" meaning the envelope over one period) since the last count, so a
half-movement at either end of a clip is not counted whichever extreme is the
rest position. Between counts the shown count advances with the progress of
the repetition in progress; it never decreases. A set that ends with one
turning point unpaired is settled by where the person stopped: back at the
position the set started from, the last repetition is complete.

The analysis is :class:`~device.pose.tracking.Tracker` (``tracking.py``);
this module is the stream stage around it. See ``docs/counter.md`` for the
reasoning and the measured accuracy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..components import SegmentStage, TemporalFeature
from .sets import SetExercises
from .tracking import RepetitionCount, Tracker

# Seconds of pause that end a set (the pipeline settings' default too).
REST_TIME = 8.0


class HumanBodyActionCounter(SegmentStage):
    """Counts repetitions of whatever periodic motion one person is doing.

    Input: windows (lists) of poses from :class:`SlidingWindow`, each pose an
    array-like (33, 2|3|4) in BlazePose order, a :class:`~device.pose.Pose`,
    or None when nobody was found. Consecutive overlapping windows are
    recognised, so each frame is used once. Output: a
    :class:`RepetitionCount` per window; a new segment starts from zero, and
    when a segment ends one more, settled state (``final=True``) follows.
    :attr:`final_count` is the number of completed repetitions, the open set
    settled as if the segment ended now.

    Main settings (seconds unless said otherwise): ``fps`` of the incoming
    poses (after any downsampling); ``history`` kept for the analysis and
    ``spans`` looked at; ``min_period``/``max_period`` of a repetition;
    ``min_periodicity`` (0–1) a motion needs to count as repetitive;
    ``min_amplitude`` of the motion in normalised body units and
    ``relative_amplitude`` of its usual size; ``hysteresis`` (share of the
    half-range) of the counting crossings; ``rest_time`` — a pause this long
    ends a set; ``max_gap`` — longer stretches without a person are not
    counted through; ``stillness`` — a motion moving less than this share of
    its range within half a second is still (left out of the periodicity
    test before and after a set); ``exercise`` — an optional hint (a name
    known to ``device.pose.rest``; others are ignored) that tells which end
    of the motion is rest. The others are described in ``docs/counter.md``.
    """

    input_type = list
    output_type = RepetitionCount

    def __init__(
        self,
        *,
        fps: float = 30.0,
        history: float = 20.0,
        min_period: float = 0.3,
        max_period: float = 12.0,
        min_periodicity: float = 0.3,
        min_amplitude: float = 0.02,
        hysteresis: float = 0.5,
        refractory: float = 0.6,
        lookback: float = 1.5,
        rest_time: float = REST_TIME,
        max_gap: float = 1.5,
        max_fraction: float = 0.9,
        min_visibility: float = 0.3,
        use_z: bool = False,
        spans: Sequence[float] = (4.0, 8.0, 20.0),
        max_period_share: float = 0.5,
        smoothing: float = 0.35,
        lookback_min: float = 3.0,
        skew_switch: float = 0.2,
        slow_share: float = 0.75,
        orient_start: bool = True,
        start_lookback: float = 1.5,
        relative_amplitude: float = 0.5,
        robust: float = 2.0,
        robust_quantile: float = 75.0,
        stillness: float = 0.05,
        slow_periodicity: float = 0.7,
        exercise: str | None = None,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"HumanBodyActionCounter: fps must be > 0, got {fps!r}")
        if not 0 < min_period < max_period:
            raise ValueError("HumanBodyActionCounter: need 0 < min_period < max_period")
        if rest_time <= 0:
            raise ValueError(f"HumanBodyActionCounter: rest_time must be > 0, got {rest_time!r}")
        if history <= 0 or not spans or min(spans) <= 0:
            raise ValueError("HumanBodyActionCounter: history and every span must be > 0")
        if not 0 <= hysteresis < 1 or not 0 <= min_periodicity <= 1:
            raise ValueError("HumanBodyActionCounter: hysteresis must be in [0, 1) and min_periodicity in [0, 1]")
        if not 0 <= stillness < 1:
            raise ValueError(f"HumanBodyActionCounter: stillness must be in [0, 1), got {stillness!r}")
        self.fps = fps
        self.history = history
        self.min_period = min_period
        self.max_period = max_period
        self.min_periodicity = min_periodicity
        self.min_amplitude = min_amplitude
        self.hysteresis = hysteresis
        self.refractory = refractory
        self.lookback = lookback
        self.rest_time = rest_time
        self.max_gap = max_gap
        self.max_fraction = max_fraction
        self.min_visibility = min_visibility
        self.use_z = use_z
        self.spans = tuple(spans)
        self.max_period_share = max_period_share
        self.smoothing = smoothing
        self.lookback_min = lookback_min
        self.skew_switch = skew_switch
        self.slow_share = slow_share
        self.orient_start = orient_start
        self.start_lookback = start_lookback
        self.relative_amplitude = relative_amplitude
        self.robust = robust
        self.robust_quantile = robust_quantile
        self.stillness = stillness
        self.slow_periodicity = slow_periodicity
        self.exercise = exercise
        self.reset()

    def reset(self) -> None:
        self._tracker = Tracker(self)
        self._last_window: list | None = None
        self._last_new = 0
        self._last_state: RepetitionCount | None = None
        self._exercises = SetExercises()

    def _new_items(self, window: list) -> list:
        """The items of ``window`` not seen in the previous one.

        Windows overlap: the new one is the tail of the previous one plus
        new items. The overlap is found by identity (what SlidingWindow
        passes on), else by value (copied windows); the number of new items
        found last time is tried first.
        """
        prev = self._last_window
        self._last_window = window
        if not prev:
            return list(window)
        n, m = len(window), len(prev)
        order = [self._last_new] + [k for k in range(n + 1) if k != self._last_new]

        def same(a: Any, b: Any) -> bool:
            if a is b:
                return True
            if a is None or b is None:
                return False
            return np.array_equal(np.asarray(getattr(a, "landmarks", a)), np.asarray(getattr(b, "landmarks", b)))

        for test in (lambda a, b: a is b, same):
            for k in order:
                overlap = n - k
                if 0 < overlap <= m and all(test(x, y) for x, y in zip(window[:overlap], prev[m - overlap :])):
                    self._last_new = k
                    return list(window[overlap:])
        return list(window)

    def push_window(self, window: list) -> RepetitionCount:
        """Synchronous step: one window in, the state after it out."""
        new = self._new_items(window)
        if new:
            self._tracker.push(new)
        return self._tracker.update()

    @property
    def final_count(self) -> float:
        return self._tracker.final()

    # -- as a stream stage (SegmentStage) ----------------------------------------
    def start(self, segment: Any) -> None:
        self.reset()

    def step(self, item: TemporalFeature[list]) -> list[TemporalFeature[RepetitionCount]]:
        state = self.push_window(item.value)
        guess = getattr(item.value, "guess", None)  # windows tagged by an exercise recogniser
        if guess is not None:
            state = self._with_exercise(state, guess)
        self._last_state = state
        return [item.replace(state)]

    def _with_exercise(self, state: RepetitionCount, guess: Any) -> RepetitionCount:
        """Name the sets by the recognised exercise; a change of exercise ends a set."""
        tracker, sets = self._tracker, self._exercises
        sets.sync(len(tracker.finished_sets))
        if sets.observe(guess.label, tracker.set_open):
            tracker.split_set()
            state = dataclasses.replace(
                state, set_number=tracker.set_number, sets=tuple(tracker.finished_sets),
                set_count=round(max(0.0, tracker.shown - tracker.set_base), 4),
            )
        current = sets.current if tracker.set_open else None
        return dataclasses.replace(
            state,
            exercise=current or guess.label,
            exercise_confidence=round(float(guess.confidence), 3),
            set_exercises=tuple(sets.finished),
        )

    def finish(self, last: TemporalFeature[list]) -> list[TemporalFeature[RepetitionCount]]:
        return [last.replace(self.final_state())]

    def final_state(self) -> RepetitionCount:
        """The settled state after the last window: completed repetitions, the last set closed."""
        state = self._last_state or RepetitionCount(0.0)
        final = float(self.final_count)
        sets = list(state.sets)
        if final > sum(sets):  # repetitions of a set still open at the end
            sets.append(final - sum(sets))
        set_exercises: list[str | None] = []
        if state.exercise is not None:  # an exercise recogniser ran: name every set
            self._exercises.sync(len(self._tracker.finished_sets))
            set_exercises = list(self._exercises.finished)
            if len(set_exercises) < len(sets):
                set_exercises.append(self._exercises.current)
        return dataclasses.replace(
            state,
            count=final,
            set_number=max(state.set_number, len(sets)),
            set_count=sets[-1] if sets and final > sum(state.sets) else 0.0,
            resting=True,
            sets=tuple(sets),
            set_exercises=tuple(set_exercises),
            final=True,
        )
