"""Sets named by the recognised exercise; a change of exercise ends a set (issue 15)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from device.components import SlidingWindow, TemporalFeature, TemporalTransformer, from_iterable, run
from device.pose.counter import HumanBodyActionCounter
from device.pose.exercise import ExerciseGuess, ExerciseWindow
from device.pose.sets import SetExercises
from test_counter import FPS, cycles, poses_from


def test_the_majority_names_the_set_and_a_held_change_ends_it() -> None:
    sets = SetExercises(switch=3, settle=5)
    assert not any(sets.observe("squat", True) for _ in range(5))
    assert sets.current == "squat"
    assert not sets.observe("push_up", True) and not sets.observe("push_up", True)
    assert not sets.observe("none", True)  # no exercise: the streak starts again
    assert not sets.observe("push_up", True) and not sets.observe("push_up", True)
    assert sets.observe("push_up", True)  # the third in a row
    assert sets.finished == ["squat"] and sets.current == "push_up"


def test_a_change_early_in_a_set_renames_it_instead_of_splitting_it() -> None:
    """The first guesses after a pause rest on little evidence: a set named for fewer than
    ``settle`` windows takes the new name when a change holds, and stays one set."""
    sets = SetExercises(switch=3, settle=6)
    for label in ["lunge"] * 4 + ["squat"] * 3:
        assert not sets.observe(label, True)
    assert sets.current == "squat" and sets.finished == []
    for _ in range(5):
        assert not sets.observe("squat", True)
    # named squat for 8 windows now (≥ 6): a held change splits as before
    assert [sets.observe("push_up", True) for _ in range(3)] == [False, False, True]
    assert sets.finished == ["squat"] and sets.current == "push_up"


def test_sets_closed_by_a_pause_keep_their_exercise() -> None:
    sets = SetExercises()
    for _ in range(4):
        sets.observe("lunge", True)
    sets.sync(1)  # the counter ended the set after a pause
    assert sets.finished == ["lunge"] and sets.current is None
    for _ in range(3):
        sets.observe("unknown", False)
    assert sets.current is None  # not an exercise: no vote
    with pytest.raises(ValueError):
        SetExercises(switch=0)


class Tagger(TemporalTransformer[list, list]):
    """Tags windows like the exercise recogniser, with a fixed label per time."""

    def __init__(self, label_at: dict[float, str]) -> None:
        self.label_at = sorted(label_at.items())

    async def process(self, stream: AsyncIterator[TemporalFeature[list]]) -> AsyncIterator[TemporalFeature[list]]:
        async for item in stream:
            window = ExerciseWindow(item.value)
            label = [name for start, name in self.label_at if item.timestamp >= start][-1]
            window.guess = ExerciseGuess(label, 0.9)
            yield item.replace(window)


def test_a_change_of_exercise_without_a_pause_ends_the_set_and_keeps_the_count() -> None:
    motion = np.concatenate([cycles(10, 2.0, tail=0), cycles(8, 2.0, lead=0)])
    frames = [None if np.isnan(p[:, 0]).all() else p for p in poses_from(motion)]

    def final(tagger: Tagger | None) -> object:
        stages = [SlidingWindow(90, 15, emit_partial=True)] + ([tagger] if tagger else []) + [
            HumanBodyActionCounter(fps=FPS)]
        pipeline = stages[0]
        for stage in stages[1:]:
            pipeline = pipeline | stage
        states = [item.value for item in run(pipeline(from_iterable(frames, rate=FPS)))]
        assert states[-1].final
        return states

    plain = final(None)
    named = final(Tagger({0.0: "squat", 21.0: "push_up"}))
    assert named[-1].count == plain[-1].count == 18
    assert plain[-1].sets == (18.0,) and plain[-1].exercise is None
    assert len(named[-1].sets) == 2 and sum(named[-1].sets) == 18
    assert named[-1].set_exercises == ("squat", "push_up")
    assert [s.count for s in named] == [s.count for s in plain]  # naming sets never changes the count
    live = [s for s in named if not s.final]
    assert live[5].exercise == "squat" and live[-1].exercise == "push_up"
