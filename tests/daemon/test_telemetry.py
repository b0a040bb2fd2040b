"""Telemetry alone: figures from statuses with a fake clock and process, the
watchdog's decision, the status line."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from device.daemon.runner import PipelineStatus
from device.daemon.telemetry import Delivery, Telemetry, flowing, status_line, watchdog


class FakeProcess:
    def cpu_percent(self, interval):
        return 12.345

    def memory_info(self):
        return SimpleNamespace(rss=150 * 2**20)


def test_sample_figures_and_fps_between_samples():
    now = [100.0]
    telemetry = Telemetry(clock=lambda: now[0], process=FakeProcess())
    vision = PipelineStatus("running", counters={"frames_processed": 30, "frames_dropped": 2})
    audio = PipelineStatus("running", counters={"inputs": 50, "overflows": 1, "silent": 4})
    pipelines = {"vision": vision, "audio": audio}
    first = telemetry.sample(pipelines, model="m@1", delivery=Delivery(reps=3, sound=2, queued=1, dropped=4, reconnects=2))
    assert first.fps is None  # nothing to measure against yet
    now[0] = 102.0
    vision.counters["frames_processed"] = 90
    second = telemetry.sample(pipelines, model="m@1", delivery=Delivery())
    assert second.fps == 30.0 and second.uptime == 2.0 and second.frames == 90
    assert (first.frames_dropped, first.audio_chunks, first.audio_overflows, first.audio_windows_skipped_silent) == (2, 50, 1, 4)
    assert (first.reps_messages, first.sound_events, first.mqtt_queued, first.mqtt_dropped, first.mqtt_reconnects) == (3, 2, 1, 4, 2)
    assert first.cpu_percent == 12.3 and first.rss_mb == 150.0 and first.model == "m@1"
    assert first.pipelines == {"vision": "running", "audio": "running"}
    only_audio = Telemetry(process=FakeProcess()).sample({"audio": audio}, model=None, delivery=Delivery())
    assert only_audio.fps is None and only_audio.frames == 0 and only_audio.frames_dropped == 0


def test_flowing_ignores_finished_sources():
    fresh = PipelineStatus("running", last_input=99.0)
    stale = PipelineStatus("running", last_input=90.0)
    done = PipelineStatus("finished", last_input=10.0)
    never = PipelineStatus("starting")
    assert flowing({"a": fresh, "b": stale}, within=2.0, now=100.0)
    assert not flowing({"b": stale, "c": never}, within=2.0, now=100.0)
    assert flowing({"done": done}, within=2.0, now=100.0)  # nothing live: nothing is wedged
    assert flowing({}, within=2.0, now=100.0)
    assert not flowing({"done": done, "b": stale}, within=2.0, now=100.0)


def test_status_line():
    pipelines = {"vision": PipelineStatus("running"), "audio": PipelineStatus("restarting in 4s")}
    assert status_line(pipelines, model="m@1", connected=False) == "vision running, audio restarting in 4s, model m@1, mqtt offline"
    assert status_line({}, model=None, connected=True) == "model None, mqtt connected"


class FakeNotifier:
    def __init__(self, interval):
        self.watchdog_interval = interval
        self.pings = 0

    def watchdog(self):
        self.pings += 1


def test_watchdog_pings_only_while_input_flows():
    notifier = FakeNotifier(0.5)
    answers = [True, True, False, True]
    asked = []

    def is_flowing(within):
        asked.append(within)
        return answers.pop(0)

    async def sleep(seconds):
        assert seconds == 0.5
        if not answers:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(watchdog(notifier, is_flowing, sleep=sleep))
    assert notifier.pings == 3 and asked == [1.0] * 4


def test_no_watchdog_configured_returns_at_once():
    asyncio.run(watchdog(FakeNotifier(None), lambda within: pytest.fail("asked")))


def test_a_pipeline_has_a_problem_when_its_device_stops_delivering():
    from device.daemon.telemetry import NO_INPUT_AFTER, pipeline_problem

    running = PipelineStatus("running", started=100.0, last_input=200.0)
    assert pipeline_problem(running, now=200.0 + NO_INPUT_AFTER) is None
    assert "no input" in pipeline_problem(running, now=201.0 + NO_INPUT_AFTER)
    never = PipelineStatus("starting", started=100.0)  # opened, but not one frame came
    assert pipeline_problem(never, now=100.0 + NO_INPUT_AFTER) is None
    assert pipeline_problem(never, now=101.0 + NO_INPUT_AFTER) is not None
    failing = PipelineStatus("restarting in 4s", restarts=3, last_error="OSError: camera 0 not found")
    assert pipeline_problem(failing, now=0.0) == "failing: OSError: camera 0 not found"
    assert "ended" in pipeline_problem(PipelineStatus("finished", last_input=5.0), now=6.0)  # a file that ended
    assert pipeline_problem(PipelineStatus("stopped"), now=1e9) is None  # availability says the rest
    # the words stay the same while the problem lasts: the retained message is not re-sent
    assert pipeline_problem(running, now=1000.0) == pipeline_problem(running, now=5000.0)


def test_sound_events_per_label_over_the_last_hour():
    """`stats` says which labels fired in the last hour (issue 18: false alarms an owner can see)."""
    now = [0.0]
    telemetry = Telemetry(clock=lambda: now[0], process=FakeProcess())
    for t, label in ((0.0, "doorbell"), (100.0, "doorbell"), (200.0, "crying_baby"), (3650.0, "doorbell")):
        now[0] = t
        telemetry.sound_event(label)
    now[0] = 3650.0
    audio = PipelineStatus()
    audio.counters.update({"inputs": 10, "not_taught": 4, "background_kept": 2})
    stats = telemetry.sample({"audio": audio}, model=None, delivery=Delivery())
    assert stats.sound_events_last_hour == {"crying_baby": 1, "doorbell": 2}  # the one at 0 s is over an hour old
    assert stats.audio_windows_not_taught == 4
    assert stats.audio_background_kept == 2  # room clips kept for the next retrain ([sound] keep_background)
    now[0] = 8000.0
    assert telemetry.sample({"audio": audio}, model=None, delivery=Delivery()).sound_events_last_hour == {}
