"""Fixtures for the daemon tests (helpers live in daemon_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon_helpers import MOSQUITTO, Mosquitto, Recorder


@pytest.fixture
def mosquitto(tmp_path: Path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def recorder_factory():
    made: list[Recorder] = []

    def make(port: int, topics: list[str], **kw) -> Recorder:
        rec = Recorder(port, topics, **kw)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.close()
