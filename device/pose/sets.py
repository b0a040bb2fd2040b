"""Which exercise each set is, from the exercise recognised window by window.

The counter stays class-agnostic: it counts whatever moves periodically and
ends a set after a pause. When an exercise recogniser runs before it (the
windows arrive tagged with a guess), :class:`SetExercises` names each set by
the exercise recognised most often during it, and ends a set when another
exercise is recognised for ``switch`` windows in a row — someone going
straight from squats to push-ups without a pause starts a new set — unless
the open set's name itself rests on fewer than ``settle`` windows: the first
guesses of a set are the recogniser's least sure (little evidence yet), so
such a change renames the set instead of splitting it. Guesses that are no
exercise (``none``, ``unknown``) do not vote.
"""

from __future__ import annotations

import collections
from typing import Any

NOT_AN_EXERCISE = ("none", "unknown")
SWITCH_WINDOWS = 6  # 3 s of windows every 0.5 s: a change must hold this long to end a set
SETTLE_WINDOWS = 12  # 6 s: a set named for fewer windows is renamed by a change, not split


class SetExercises:
    """The exercise of the open set, of the finished ones, and when a change ends a set."""

    def __init__(self, switch: int = SWITCH_WINDOWS, settle: int = SETTLE_WINDOWS) -> None:
        if switch < 1:
            raise ValueError(f"SetExercises: switch must be ≥ 1 window, got {switch}")
        self.switch = switch
        self.settle = settle
        self.finished: list[str | None] = []  # one per finished set
        self._votes: collections.Counter[str] = collections.Counter()
        self._challenger: str | None = None
        self._streak = 0

    @property
    def current(self) -> str | None:
        """The open set's exercise so far (None before any vote)."""
        return self._votes.most_common(1)[0][0] if self._votes else None

    def close(self) -> None:
        """The open set ended: remember its exercise, start counting votes afresh."""
        self.finished.append(self.current)
        self._votes.clear()
        self._challenger, self._streak = None, 0

    def sync(self, finished_sets: int) -> None:
        """Close as many sets as the counter has finished since the last window (pauses)."""
        while len(self.finished) < finished_sets:
            self.close()

    def observe(self, label: str | None, set_open: bool) -> bool:
        """Take one window's recognised exercise; True when it ends the open set
        (another exercise held for ``switch`` windows): the old set is closed
        here, and the caller ends it in the counter too."""
        if label is None or label in NOT_AN_EXERCISE:
            self._challenger, self._streak = None, 0
            return False
        if not set_open or self.current in (None, label):
            self._votes[label] += 1
            self._challenger, self._streak = None, 0
            return False
        self._streak = self._streak + 1 if label == self._challenger else 1
        self._challenger = label
        if self._streak < self.switch:
            return False
        streak = self._streak
        if sum(self._votes.values()) < self.settle:  # a name of the set's first, unsure windows: rename
            self._votes.clear()
            self._votes[label] = streak
            self._challenger, self._streak = None, 0
            return False
        self.close()
        self._votes[label] = streak  # the new set's exercise, seen for `switch` windows already
        return True

    def describe(self) -> dict[str, Any]:
        return {"current": self.current, "finished": list(self.finished)}
