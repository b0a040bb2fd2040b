"""The publisher's topics and payloads, and its routing of what comes in, without a
broker: its link is opened but never connected, so what it sends waits in the
link's offline queue and retained memory, where the test reads it."""

from __future__ import annotations

import json

import pytest

from device.audio.events import SoundEvent
from device.daemon.config import parse_config
from device.daemon.ledger import CountState
from device.daemon.topics import Topics
from device.daemon.publisher import (
    Publisher,
    count_payload,
    dumps,
    pipelines_payload,
    reps_payload,
    sound_payload,
    stats_payload,
)
from device.daemon.runner import PipelineStatus
from device.daemon.telemetry import Delivery, Stats

NOW = 1_700_000_000.123456


def make_config(tmp_path, **mqtt):
    return parse_config({"device": {"id": "pub"}, "storage": {"state_dir": str(tmp_path)},
                         "mqtt": {"host": "127.0.0.1", **mqtt}})


@pytest.fixture
def opened(tmp_path):
    commands = []
    publisher = Publisher(on_command=lambda name, command: commands.append((name, command)),
                          labels=lambda: ["knock"], clock=lambda: NOW)
    link = publisher.open(make_config(tmp_path))
    return publisher, link, commands


def sent(link, topic):
    return [json.loads(text) for t, text, _ in link.pending if t == topic]


def test_topics():
    topics = Topics("cadence/kitchen", "ha")
    assert topics.availability == "cadence/kitchen/availability"
    assert (topics.reps, topics.sound, topics.stats, topics.error) == (
        "cadence/kitchen/reps", "cadence/kitchen/sound", "cadence/kitchen/stats", "cadence/kitchen/error")
    assert topics.state("count") == "cadence/kitchen/state/count"
    assert topics.commands == "cadence/kitchen/cmd/#" and topics.command_prefix == "cadence/kitchen/cmd/"
    assert topics.ha_status == "ha/status"
    assert (topics.online, topics.offline) == ("online", "offline")


def test_payloads():
    state = CountState(count=3.5, set=2, set_count=1.5, rate=28.0)
    assert count_payload(state) == {"count": 3.5, "set": 2, "set_count": 1.5, "rate": 28.0, "day": None,
                                    "totals": {"all": 3.5}, "exercise": None, "exercise_confidence": None,
                                    "periodicity": None, "ambiguity": None}
    sure = CountState(count=3.5, periodicity=0.82, ambiguity=0.1)
    assert (count_payload(sure)["periodicity"], count_payload(sure)["ambiguity"]) == (0.82, 0.1)
    assert reps_payload(state, NOW) == {**count_payload(state), "timestamp": 1700000000.123}
    today = CountState(count=5.0, set=1, set_count=5.0, day="2026-11-30", totals={"squat": 3.0})
    assert count_payload(today)["totals"] == {"all": 5.0, "squat": 3.0} and count_payload(today)["day"] == "2026-11-30"
    assert reps_payload(state, NOW, media_time=12.34567)["media_time"] == 12.346
    event = SoundEvent("knock", 0.912345, 1.00049, 1.5)
    assert sound_payload(event, "sound.model@abc", NOW) == {
        "event_type": "knock", "label": "knock", "confidence": 0.9123, "start": 1.0, "end": 1.5,
        "model": "sound.model@abc", "timestamp": 1700000000.123}
    statuses = {"vision": PipelineStatus("restarting in 2s", 1, "RuntimeError: gone"),
                "audio": PipelineStatus("running", detail="waiting for a sound model")}
    assert pipelines_payload(statuses) == {
        "vision": {"status": "restarting in 2s", "restarts": 1, "last_error": "RuntimeError: gone",
                   "problem": "failing: RuntimeError: gone"},
        "audio": {"status": "running", "restarts": 0, "last_error": None, "problem": None,
                  "detail": "waiting for a sound model"}}
    stats = Stats(1.0, None, 0, 0, 0, 0, 0, 3, 1, 0, 0, {"knock": 2}, 0, 0, 0, 1.5, 80.0, None, {"audio": "running"})
    payload = stats_payload(stats, NOW)
    assert list(payload) == ["uptime", "fps", "frames", "frames_dropped", "audio_chunks", "audio_overflows",
                             "audio_windows_skipped_silent", "audio_windows_not_taught", "audio_background_kept",
                             "reps_messages", "sound_events", "sound_events_last_hour", "mqtt_queued",
                             "mqtt_dropped", "mqtt_reconnects", "cpu_percent", "rss_mb", "model", "pipelines",
                             "timestamp"]
    assert dumps({"a": 1, "b": [1.5, None]}) == '{"a":1,"b":[1.5,null]}'
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


def test_the_link_is_told_the_device_availability_and_subscriptions(tmp_path):
    publisher = Publisher()
    link = publisher.open(make_config(tmp_path))
    assert link.will == ("cadence/pub/availability", "offline") and link.birth == ("cadence/pub/availability", "online")
    assert link.subscriptions == ("cadence/pub/cmd/#", "homeassistant/status")
    announced = dict(link.announcements())
    assert json.loads(announced["homeassistant/sensor/cadence_pub/reps/config"])["state_topic"] == "cadence/pub/state/count"
    assert announced["homeassistant/event/cadence_pub/sound/config"] == ""  # no labels: the entity is removed
    quiet = Publisher().open(make_config(tmp_path, discovery=False))
    assert quiet.subscriptions == ("cadence/pub/cmd/#",) and quiet.announcements is None


def test_what_each_fact_sends(opened):
    publisher, link, _ = opened
    state = CountState(count=2.0, set=1, set_count=2.0, rate=30.0)
    publisher.reps(state, media_time=4.0)
    assert sent(link, "cadence/pub/reps") == [{**count_payload(state), "timestamp": 1700000000.123, "media_time": 4.0}]
    assert json.loads(link.retained["cadence/pub/state/count"])["media_time"] == 4.0
    publisher.count(CountState())
    assert json.loads(link.retained["cadence/pub/state/count"]) == {
        "count": 0.0, "set": 0, "set_count": 0.0, "rate": None, "day": None, "totals": {"all": 0.0},
        "exercise": None, "exercise_confidence": None, "periodicity": None, "ambiguity": None,
        "timestamp": 1700000000.123}
    publisher.sound(SoundEvent("knock", 0.9, 1.0, 1.5), "m@1")
    assert sent(link, "cadence/pub/sound")[0]["model"] == "m@1"
    publisher.model({"name": "m@1", "status": "active"})
    assert json.loads(link.retained["cadence/pub/state/model"]) == {"name": "m@1", "status": "active"}
    publisher.pipelines({"vision": PipelineStatus("running")})
    assert json.loads(link.retained["cadence/pub/state/pipelines"])["vision"]["status"] == "running"
    publisher.stats(Stats(1.0, None, 0, 0, 0, 0, 0, 0, 0, 0, 0, {}, 0, 0, 0, 1.5, 80.0, None, {}))
    assert sent(link, "cadence/pub/stats") == []  # offline: figures are not queued
    publisher.error("reload: bad; keeping the running configuration")
    assert sent(link, "cadence/pub/error") == [{"error": "reload: bad; keeping the running configuration",
                                                "timestamp": 1700000000.123}]
    assert json.loads(link.retained["cadence/pub/state/error"])["error"] == "reload: bad; keeping the running configuration"
    publisher.result("reload", True, "configuration applied", ["a", None], config="configuration applied")
    assert sent(link, "cadence/pub/result") == [{"command": "reload", "ok": True, "message": "configuration applied",
                                                 "requests": 2, "request_ids": ["a"],
                                                 "config": "configuration applied", "timestamp": 1700000000.123}]
    publisher.snapshot(b"\xff\xd8jpeg")
    assert link.retained["cadence/pub/state/snapshot"] == b"\xff\xd8jpeg"
    publisher.clear_snapshot()
    assert link.retained["cadence/pub/state/snapshot"] == b""
    assert publisher.delivery() == Delivery(reps=1, sound=1, queued=len(link.pending), dropped=0, reconnects=0)
    # events go with the configured QoS, errors with 1
    assert {t: q for t, _, q in link.pending} == {"cadence/pub/reps": 1, "cadence/pub/sound": 1, "cadence/pub/error": 1,
                                                  "cadence/pub/result": 1}


def test_without_a_link_nothing_is_sent_but_events_are_counted():
    publisher = Publisher()
    publisher.reps(CountState(1.0, 1, 1.0))
    publisher.error("x")
    publisher.refresh_discovery()
    assert publisher.delivery() == Delivery(reps=1) and not publisher.connected


@pytest.mark.parametrize(
    ("topic", "payload", "retained", "fragment"),
    [
        ("cadence/pub/cmd/reset_count", b"{oops", False, "cmd/reset_count: payload is not JSON"),
        ("cadence/pub/cmd/reload", b'{"what": 3}', False, "cmd/reload: what:"),
        ("cadence/pub/cmd/reboot", b"", False, "unknown command 'reboot'"),
        ("cadence/pub/cmd/reset_count", b"{}", True, "retained commands are ignored"),
        ("cadence/pub/cmd/reset\r_count", b"{}", True, "'cadence/pub/cmd/reset\\r_count'"),
    ],
)
def test_bad_commands_are_answered_on_error(opened, topic, payload, retained, fragment):
    publisher, link, commands = opened
    publisher.on_message(topic, payload, retained)
    [error] = sent(link, "cadence/pub/error")
    assert fragment in error["error"] and "\n" not in error["error"] and "\r" not in error["error"]
    assert error["topic"] == topic and error["payload"] == payload.decode("utf-8", "replace")
    assert commands == [] and publisher.bad_commands == 1


def test_valid_commands_and_other_messages(opened):
    publisher, link, commands = opened
    publisher.on_message("cadence/pub/cmd/reload", b'{"what": "models"}', False)
    publisher.on_message("cadence/pub/cmd/reset_count", b"{}", False)
    assert [(name, getattr(command, "what", None)) for name, command in commands] == [("reload", "models"),
                                                                                     ("reset_count", None)]
    # an empty message (a retained command being cleared, retained or not) runs nothing and is no error
    publisher.on_message("cadence/pub/cmd/reset_count", b"", True)
    publisher.on_message("cadence/pub/cmd/reload", b"", False)
    assert len(commands) == 2 and sent(link, "cadence/pub/error") == []
    publisher.on_message("cadence/other/cmd/reload", b"", False)  # not ours
    publisher.on_message("homeassistant/status", b"offline", False)
    publisher.on_message("homeassistant/status", b"online", False)  # re-announce (offline: nothing to send)
    assert len(commands) == 2 and link.pending == [] and publisher.bad_commands == 0
