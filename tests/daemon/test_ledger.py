"""The count ledger alone: no broker, no asyncio, no clock."""

from __future__ import annotations

import random

from device.daemon.ledger import CountLedger, CountState, RepUpdate


def counts(ledger: CountLedger, updates: list[RepUpdate]) -> list[float]:
    out = []
    for update in updates:
        ledger.update(update)
        out.append(ledger.state.count)
    return out


def test_monotonic_across_segments_and_resets():
    ledger = CountLedger()
    feed = [
        RepUpdate(1.0, 1, 1.0, segment="a"), RepUpdate(3.0, 1, 3.0, segment="a"),
        RepUpdate(0.5, 1, 0.5, segment="b"),  # the camera reopened: a new counter starts at 0
        RepUpdate(2.0, 1, 2.0, segment="b"),
    ]
    assert counts(ledger, feed) == [1.0, 3.0, 3.5, 5.0]
    assert ledger.reset() == CountState() == ledger.state
    ledger.update(RepUpdate(2.5, 1, 2.5, segment="b"))
    assert ledger.state == CountState(count=0.5, set=1, set_count=0.5, rate=None)
    ledger.update(RepUpdate(4.0, 2, 1.5, segment="b"))
    assert ledger.state.count == 2.0 and ledger.state.set == 2 and ledger.state.set_count == 1.5


def test_sets_carry_over_segments():
    ledger = CountLedger()
    counts(ledger, [RepUpdate(5.0, 1, 5.0, segment=1), RepUpdate(9.0, 2, 4.0, segment=1)])
    assert (ledger.state.count, ledger.state.set) == (9.0, 2)
    ledger.update(RepUpdate(2.0, 1, 2.0, segment=2))  # the new counter's first set is set 3 overall
    assert ledger.state == CountState(count=11.0, set=3, set_count=2.0)


def test_a_counter_that_goes_backwards_is_a_new_counter():
    """A restarted pipeline's counter starts again at 0 in the same (None) segment."""
    ledger = CountLedger()
    assert counts(ledger, [RepUpdate(3.0, 1, 3.0), RepUpdate(4.0, 1, 4.0),
                           RepUpdate(1.0, 1, 1.0), RepUpdate(2.0, 1, 2.0)]) == [3.0, 4.0, 5.0, 6.0]
    assert ledger.state.set == 2  # the restarted counter's set is a new one


def test_reset_mid_set_continues_the_set_as_set_one():
    ledger = CountLedger()
    counts(ledger, [RepUpdate(4.0, 1, 4.0), RepUpdate(10.0, 2, 6.0)])  # in set 2, 6 reps into it
    ledger.reset()
    ledger.update(RepUpdate(11.0, 2, 7.0))
    assert ledger.state == CountState(count=1.0, set=1, set_count=1.0)
    ledger.update(RepUpdate(14.0, 3, 2.0))  # the next set is set 2 of the new count
    assert ledger.state == CountState(count=4.0, set=2, set_count=2.0)


def test_reset_while_resting_starts_at_set_zero():
    ledger = CountLedger()
    ledger.update(RepUpdate(6.0, 1, 6.0, resting=True))
    ledger.reset()
    ledger.update(RepUpdate(6.0, 1, 6.0, resting=True))
    assert ledger.state == CountState(count=0.0, set=0, set_count=6.0)  # the old set's count is its own
    ledger.update(RepUpdate(7.0, 2, 1.0))
    assert ledger.state == CountState(count=1.0, set=1, set_count=1.0)


def test_reset_mid_set_then_the_segment_changes():
    ledger = CountLedger()
    ledger.update(RepUpdate(5.0, 1, 5.0, segment="a"))
    ledger.reset()
    ledger.update(RepUpdate(7.0, 1, 7.0, segment="a"))  # 2 since the reset
    ledger.update(RepUpdate(1.0, 1, 1.0, segment="b"))
    assert ledger.state == CountState(count=3.0, set=2, set_count=1.0)


def test_reset_before_any_update_and_twice():
    ledger = CountLedger()
    assert ledger.reset() == CountState()
    ledger.update(RepUpdate(2.0, 1, 2.0))
    assert ledger.state.count == 2.0
    ledger.reset()
    ledger.reset()
    ledger.update(RepUpdate(3.0, 1, 3.0))
    assert ledger.state == CountState(count=1.0, set=1, set_count=1.0)


def test_unchanged_updates_publish_nothing():
    ledger = CountLedger()
    assert ledger.update(RepUpdate(1.0, 1, 1.0, rate=30.0)) == CountState(1.0, 1, 1.0, 30.0)
    assert ledger.update(RepUpdate(1.0004, 1, 1.0, rate=30.001, media_time=9.0)) is None  # below the published precision
    assert ledger.update(RepUpdate(1.0004, 1, 1.0, rate=None)) == CountState(1.0, 1, 1.0, None)
    assert ledger.update(RepUpdate(1.23456, 1, 1.23456, rate=29.987)) == CountState(1.235, 1, 1.235, 29.99)


def test_start_carries_earlier_totals():
    ledger = CountLedger(CountState(count=20.0, set=3, set_count=5.0))
    assert ledger.state.count == 20.0
    ledger.update(RepUpdate(2.0, 1, 2.0))
    assert ledger.state == CountState(count=22.0, set=4, set_count=2.0)


def test_published_count_never_decreases_between_resets():
    rng = random.Random(13)
    ledger = CountLedger()
    raw, sets, segment, previous = 0.0, 1, 0, 0.0
    for _ in range(2000):
        roll = rng.random()
        if roll < 0.02:
            segment += 1
            raw, sets = 0.0, 1
        elif roll < 0.04:
            raw, sets = 0.0, 1  # a restarted counter in the same segment
        elif roll < 0.05:
            ledger.reset()
            previous = 0.0
            continue
        elif roll < 0.1:
            sets += 1
        raw += rng.choice([0.0, 0.5, 1.0])
        ledger.update(RepUpdate(raw, sets, rng.random() * 5, segment=segment, resting=roll > 0.95))
        assert ledger.state.count >= previous
        assert ledger.state.set >= 0 and ledger.state.set_count >= 0
        previous = ledger.state.count


def test_a_restored_open_set_goes_on():
    """The daemon restarted mid-set (within rest_time): the next reps belong to the same set."""
    ledger = CountLedger(CountState(count=20.0, set=3, set_count=5.0, day="2026-11-30"), open_set=True)
    assert ledger.update(RepUpdate(0.0, 0, 0.0)) is None  # a fresh counter before its first rep: nothing changes
    ledger.update(RepUpdate(2.0, 1, 2.0))
    assert ledger.state == CountState(count=22.0, set=3, set_count=7.0, day="2026-11-30")
    ledger.update(RepUpdate(4.0, 2, 1.0))  # the counter's next set is the day's next set
    assert ledger.state == CountState(count=24.0, set=4, set_count=1.0, day="2026-11-30")


def test_a_restored_closed_set_is_followed_by_a_new_one():
    ledger = CountLedger(CountState(count=20.0, set=3, set_count=5.0, day="2026-11-30"))
    assert ledger.update(RepUpdate(0.0, 0, 0.0)) is None
    ledger.update(RepUpdate(1.0, 1, 1.0))
    assert (ledger.state.count, ledger.state.set, ledger.state.set_count) == (21.0, 4, 1.0)


def test_a_new_day_starts_from_zero_like_a_reset():
    ledger = CountLedger(CountState(day="2026-11-30"))
    ledger.update(RepUpdate(5.0, 1, 5.0))
    assert ledger.new_day("2026-12-01") == CountState(day="2026-12-01") == ledger.state
    ledger.update(RepUpdate(6.0, 1, 6.0))  # mid-set at midnight: the set goes on as the new day's set 1
    assert ledger.state == CountState(count=1.0, set=1, set_count=1.0, day="2026-12-01")
    assert ledger.reset().day == "2026-12-01"  # a reset keeps the day


def test_day_totals_per_exercise():
    """Updates naming an exercise (the recogniser) add to that exercise's total; count is all of them."""
    ledger = CountLedger(CountState(count=4.0, set=1, day="d", totals={"squat": 4.0}))
    ledger.update(RepUpdate(2.0, 1, 2.0, exercise="squat"))
    ledger.update(RepUpdate(5.0, 2, 3.0, exercise="jumping_jack"))
    assert (ledger.state.exercise, ledger.state.exercise_confidence) == ("jumping_jack", None)
    ledger.update(RepUpdate(6.0, 2, 4.0))  # not recognised: counted in all only
    assert ledger.state.count == 10.0 and ledger.state.totals == {"squat": 6.0, "jumping_jack": 3.0}
    assert ledger.state.exercise is None
    ledger.update(RepUpdate(6.0, 2, 4.0, exercise="squat", exercise_confidence=0.876))
    assert (ledger.state.count, ledger.state.exercise, ledger.state.exercise_confidence) == (10.0, "squat", 0.88)
    ledger.reset()
    assert ledger.state.totals == {}


def test_a_change_of_exercise_is_a_new_set_and_confidence_alone_is_no_news():
    ledger = CountLedger(CountState(day="d"))
    assert ledger.update(RepUpdate(4.0, 1, 4.0, exercise="push_up", exercise_confidence=0.91)).set == 1
    # the recogniser only grew surer: nothing to publish
    assert ledger.update(RepUpdate(4.0, 1, 4.0, exercise="push_up", exercise_confidence=0.95)) is None
    # jumping jacks without a pause: the counter ended the set, the ledger publishes a new one
    state = ledger.update(RepUpdate(6.0, 2, 2.0, exercise="jumping_jack", exercise_confidence=0.7))
    assert (state.set, state.set_count, state.exercise) == (2, 2.0, "jumping_jack") and not ledger.resting
    assert state.totals == {"push_up": 4.0, "jumping_jack": 2.0}


def test_the_counters_confidence_is_carried_but_alone_is_no_news():
    """periodicity/ambiguity ride along with each published state (rounded); a change of them alone
    publishes (and saves) nothing, like the recogniser's confidence."""
    ledger = CountLedger(CountState(day="d"))
    state = ledger.update(RepUpdate(1.0, 1, 1.0, periodicity=0.8134, ambiguity=0.0567))
    assert (state.periodicity, state.ambiguity) == (0.81, 0.06)
    assert ledger.update(RepUpdate(1.0, 1, 1.0, periodicity=0.42, ambiguity=0.9)) is None
    state = ledger.update(RepUpdate(1.5, 1, 1.5, periodicity=0.42, ambiguity=0.9))
    assert (state.count, state.periodicity, state.ambiguity) == (1.5, 0.42, 0.9)
    assert ledger.reset().periodicity is None
    # what JSON cannot carry is not published as a number (the publisher refuses NaN)
    state = ledger.update(RepUpdate(2.5, 1, 2.5, periodicity=float("nan"), ambiguity=float("inf")))
    assert state is not None and (state.periodicity, state.ambiguity) == (None, None)


def test_a_published_count_beyond_the_restored_one_is_added_once():
    """What was counted after the last save (a power cut) comes back from the retained state/count."""
    day = "2026-11-30"
    restored = CountState(count=20.0, set=3, set_count=5.0, day=day, totals={"squat": 20.0})
    ledger = CountLedger(restored)
    ledger.update(RepUpdate(2.0, 1, 2.0, exercise="squat"))  # counting already went on before the broker answered
    published = CountState(count=23.0, set=3, day=day, totals={"squat": 21.0, "push_up": 2.0, "all": 23.0})
    state = ledger.adopt(published)
    assert state is not None and state.count == 25.0 and state.set == 4  # 20 + 3 lost + 2 new
    assert state.totals == {"squat": 23.0, "push_up": 2.0}
    ledger.update(RepUpdate(3.0, 1, 3.0, exercise="squat"))
    assert ledger.state.count == 26.0  # the counter goes on from there
    assert ledger.adopt(published) is None and ledger.state.count == 26.0  # once, never twice
    assert CountLedger(CountState(count=1.0, day=day)).adopt(CountState(count=9.0, day="2026-11-29")) is None
    assert CountLedger(CountState(count=1.0, day=day)).adopt(CountState(count=1.0, day=day)) is None
