"""daemon-state.json: what is saved, what a start restores, when it is written."""

from __future__ import annotations

import datetime as dt
import json

from device.daemon.ledger import CountState, RepUpdate
from device.daemon.state_file import MIN_GAP, NAME, Saver, load_saved, record, restore, save_state, seconds_to_midnight

NOW = 1_800_000_000.0
DAY = dt.date.fromtimestamp(NOW).isoformat()


def saved(count=12.5, set_=2, set_count=3.5, *, day=DAY, resting=False, at=NOW, totals=None):
    state = CountState(count, set_, set_count, 30.0, day, totals or {})
    return record(state, resting=resting, model={"name": "m@1"}, now=at)


def test_the_same_day_is_restored_and_another_day_starts_from_zero():
    ledger = restore(saved(), day=DAY, now=NOW + 3600, rest_time=8.0)
    assert ledger.state == CountState(12.5, 2, 3.5, None, DAY, {})
    assert restore(saved(day="2020-01-01"), day=DAY, now=NOW, rest_time=8.0).state == CountState(day=DAY)
    assert restore(None, day=DAY, now=NOW, rest_time=8.0).state == CountState(day=DAY)
    # a record from before days were kept: its day is the day it was saved
    old = {"count": {"count": 4.0, "set": 1, "set_count": 4.0, "rate": None}, "saved_at": NOW}
    assert restore(old, day=DAY, now=NOW, rest_time=8.0).state.count == 4.0


def test_a_set_stays_open_only_after_a_short_break():
    """Saved mid-set and back before rest_time: the set goes on; later, or resting: a new set."""
    quick = restore(saved(), day=DAY, now=NOW + 3, rest_time=8.0)
    quick.update(RepUpdate(1.0, 1, 1.0))
    assert (quick.state.set, quick.state.set_count) == (2, 4.5)
    for late in (restore(saved(), day=DAY, now=NOW + 60, rest_time=8.0),
                 restore(saved(resting=True), day=DAY, now=NOW + 3, rest_time=8.0)):
        late.update(RepUpdate(1.0, 1, 1.0))
        assert (late.state.set, late.state.set_count) == (3, 1.0)


def test_garbage_is_a_fresh_start(tmp_path):
    assert load_saved(tmp_path) is None
    for text in ("{ truncated", "[]", '{"count": 3}', '{"count": {"count": "many", "set": -4}}'):
        (tmp_path / NAME).write_text(text)
        ledger = restore(load_saved(tmp_path), day=DAY, now=NOW, rest_time=8.0)
        assert ledger.state.count == 0.0 and ledger.state.set == 0


def test_save_and_load(tmp_path):
    assert save_state(tmp_path, saved(totals={"squat": 2.0}))
    data = load_saved(tmp_path)
    assert data["day"] == DAY and data["count"]["totals"] == {"squat": 2.0} and data["resting"] is False
    assert restore(data, day=DAY, now=NOW + 100, rest_time=8.0).state.totals == {"squat": 2.0}
    assert not save_state(tmp_path / NAME, saved())  # a file where the folder should be: logged, never raised
    assert json.loads((tmp_path / NAME).read_text())["model"] == {"name": "m@1"}


def test_writes_are_rare():
    now = [0.0]
    saver = Saver(clock=lambda: now[0])
    assert not saver.due(60)
    saver.changed()
    assert saver.due(60)  # the first change is written
    saver.written()
    for second in range(1, 60):  # counting for a minute: no write
        now[0] = float(second)
        saver.changed()
        assert not saver.due(60)
    now[0] = 60.0
    assert saver.due(60)
    saver.written()
    saver.changed(urgent=True)  # a reset: soon, but a burst of them is one write
    assert not saver.due(60)
    now[0] += MIN_GAP
    assert saver.due(60)
    saver.written()
    assert saver.writes == 3 and not saver.due(60)


def test_seconds_to_midnight():
    assert seconds_to_midnight(dt.datetime(2026, 11, 30, 23, 59, 30)) == 30.0
    assert seconds_to_midnight(dt.datetime(2026, 11, 30, 0, 0, 0)) == 86400.0
