"""The pipeline runner and its context alone: backoff with a fake clock and sleep
(nothing waits for real), statuses, outputs, and the context a pipeline sees."""

from __future__ import annotations

import asyncio

import pytest

from device.daemon.config import parse_config
from device.daemon.model_holder import ModelHolder
from device.daemon.runner import Backoff, PipelineContext, PipelineRunner, PipelineSet, PipelineStatus


class FakeTime:
    """A clock that only moves when told, and a sleep that records and advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


def config(tmp_path, **sections):
    return parse_config({"storage": {"state_dir": str(tmp_path)}, **sections})


def test_backoff_doubles_up_to_the_maximum_and_starts_over_after_a_good_run():
    backoff = Backoff(1.0, 10.0, healthy_after=60.0)
    assert [backoff.delay(ran_for=0.5) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.delay(ran_for=61.0) == 1.0  # it ran fine for a while
    assert backoff.delay(ran_for=3.0) == 2.0


def run_to_end(runner: PipelineRunner) -> None:
    asyncio.run(asyncio.wait_for(runner.run(), 30))  # a bound on a bug, not a budget: nothing waits


def test_failures_restart_with_backoff_until_the_source_ends(tmp_path):
    fake = FakeTime()
    starts = []
    outputs = []
    changes = []

    async def flaky(ctx):
        starts.append(fake.now)
        ctx.heartbeat()
        yield len(starts)
        if len(starts) <= 4:
            raise RuntimeError(f"camera unplugged #{len(starts)}\nsecond line")

    ctx = PipelineContext("vision", config(tmp_path), clock=fake.clock)
    runner = PipelineRunner(ctx, flaky, on_output=outputs.append, on_change=lambda: changes.append(ctx.status.status),
                            backoff=Backoff(0.5, 2.0), sleep=fake.sleep, clock=fake.clock)
    run_to_end(runner)
    assert fake.slept == [0.5, 1.0, 2.0, 2.0]
    assert outputs == [1, 2, 3, 4, 5]
    assert ctx.status.restarts == 4 and ctx.status.status == "finished"
    assert ctx.status.last_error == "RuntimeError: camera unplugged #4"  # one line, with its type
    assert changes[-1] == "finished" and "restarting in 2s" in changes
    assert ctx.status.counters["inputs"] == 5


def test_a_long_good_run_resets_the_backoff(tmp_path):
    fake = FakeTime()
    runs = [1.0, 1.0, 120.0, 1.0]  # seconds each run lasts before it fails; then the source ends

    async def failing(ctx):
        if not runs:
            return
        fake.now += runs.pop(0)
        raise OSError("gone")
        yield  # pragma: no cover - makes this an async generator

    ctx = PipelineContext("audio", config(tmp_path))
    runner = PipelineRunner(ctx, failing, on_output=lambda _: None, backoff=Backoff(1.0, 60.0),
                            sleep=fake.sleep, clock=fake.clock)
    run_to_end(runner)
    assert fake.slept == [1.0, 2.0, 1.0, 2.0]
    assert ctx.status.last_error == "OSError: gone" and ctx.status.restarts == 4


def test_cancelling_stops_the_pipeline_and_is_not_a_failure(tmp_path):
    closed = []

    async def endless(ctx):
        try:
            while True:
                await asyncio.sleep(0)
                yield None
        finally:
            closed.append(True)

    ctx = PipelineContext("vision", config(tmp_path))
    runner = PipelineRunner(ctx, endless, on_output=lambda _: None)

    async def main():
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert closed == [True] and ctx.status.restarts == 0


def test_context_reports_changes_once_and_reads_the_current_config(tmp_path):
    current = {"config": config(tmp_path)}
    changes = []
    holder = ModelHolder(tmp_path / "m.model", None)
    status = PipelineStatus()
    ctx = PipelineContext("audio", lambda: current["config"], model=holder, status=status,
                          on_change=lambda: changes.append((status.status, status.detail)))
    assert ctx.model is holder and ctx.counters is status.counters
    ctx.heartbeat()
    ctx.heartbeat(3, counter="frames_in")
    assert changes == [("running", None)] and status.counters == {"inputs": 1, "frames_in": 3}
    ctx.set_detail("waiting for a sound model")
    ctx.set_detail("waiting for a sound model")
    ctx.set_detail(None)
    assert changes[1:] == [("running", "waiting for a sound model"), ("running", None)]
    ctx.count("windows")
    ctx.count("windows", 2)
    ctx.set("overflows", 7)
    assert status.counters["windows"] == 3 and status.counters["overflows"] == 7
    current["config"] = config(tmp_path, camera={"window": 120})
    assert ctx.config.camera.window == 120  # a reload is seen at once
    ctx.cache["featureprint"] = object()
    assert "featureprint" in ctx.cache


def test_a_standalone_context_needs_only_a_config(tmp_path):
    cfg = config(tmp_path)
    ctx = PipelineContext("vision", cfg)
    assert ctx.config is cfg and ctx.model.current is None and ctx.model.path == cfg.sound_model_path
    assert ctx.status.status == "starting"


def test_status_flowing_and_finished():
    status = PipelineStatus()
    assert not status.flowing(now=10.0, within=2.0)
    status.last_input = 9.0
    assert status.flowing(now=10.0, within=2.0) and not status.flowing(now=12.5, within=2.0)
    status.status = "finished"
    assert status.finished


def test_pipeline_set_starts_restarts_and_forgets(tmp_path):
    cfg = config(tmp_path)
    outputs, changes, starts = [], [], []

    def factory(tag):
        async def run(ctx):
            starts.append(tag)
            ctx.cache.setdefault("made", tag)  # kept across restarts
            ctx.heartbeat()
            yield (tag, ctx.cache["made"])
            await asyncio.Event().wait()  # runs until cancelled
        return run

    pipelines = PipelineSet(config=lambda: cfg, model=ModelHolder(tmp_path / "m", None),
                            on_output=lambda name, out: outputs.append((name, out)), on_change=lambda: changes.append(1))

    async def main():
        await pipelines.apply({"vision": factory("v1"), "audio": factory("a1")})
        while len(outputs) < 2:
            await asyncio.sleep(0)
        assert pipelines.running() == {"vision", "audio"}
        vision = pipelines.contexts["vision"]
        # vision's settings changed: restarted with the new factory, same context; audio untouched
        await pipelines.apply({"vision": factory("v2"), "audio": factory("a1")}, restart={"vision"})
        while len(outputs) < 3:
            await asyncio.sleep(0)
        assert pipelines.contexts["vision"] is vision and outputs[-1] == ("vision", ("v2", "v1"))
        # audio switched off: stopped and forgotten
        await pipelines.apply({"vision": factory("v2")})
        assert pipelines.running() == {"vision"} and set(pipelines.statuses) == {"vision"}
        await pipelines.stop_all()
        assert pipelines.running() == set()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert sorted(starts) == ["a1", "v1", "v2"] and changes
