"""Buffer, Tap, InThread, SegmentStage and ModelSlot: the stages live pipelines are built from."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from device.components import (
    Buffer,
    FunctionTransformer,
    InThread,
    ModelSlot,
    SegmentStage,
    SlidingWindow,
    Tap,
    TemporalFeature,
    collect,
    from_iterable,
)


async def _slow_consumer(stream: AsyncIterator[TemporalFeature[int]], until: int) -> list[int]:
    seen = []
    async for item in stream:
        seen.append(item.value)
        if item.value >= until:
            break
        await asyncio.sleep(0.01)
    return seen


async def _fast_source(n: int) -> AsyncIterator[TemporalFeature[int]]:
    for i in range(n):
        yield TemporalFeature(i, i / 30)
        await asyncio.sleep(0)


async def test_buffer_drop_oldest_drops_and_counts_while_the_consumer_is_slow() -> None:
    buffer = Buffer(1, "drop_oldest")
    seen = await _slow_consumer(buffer(_fast_source(200)), until=199)
    assert seen[-1] == 199  # the newest item always gets through
    assert len(seen) < 200
    assert buffer.dropped == 200 - len(seen)


async def test_buffer_wait_loses_nothing() -> None:
    buffer = Buffer(2, "wait")
    seen = await _slow_consumer(buffer(_fast_source(30)), until=29)
    assert seen == list(range(30))
    assert buffer.dropped == 0


async def test_buffer_passes_an_upstream_error_on_after_the_items_before_it() -> None:
    async def failing() -> AsyncIterator[TemporalFeature[int]]:
        yield TemporalFeature(1, 0.0)
        raise OSError("camera gone")

    got = []
    with pytest.raises(OSError, match="camera gone"):
        async for item in Buffer(4, "wait")(failing()):
            got.append(item.value)
    assert got == [1]


def test_buffer_settings_are_checked_when_it_is_made() -> None:
    with pytest.raises(ValueError, match="policy"):
        Buffer(1, "sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxsize"):
        Buffer(0)


async def test_tap_sees_every_item_and_changes_none() -> None:
    seen = []
    out = await collect(Tap(seen.append)(from_iterable([1, 2, 3], rate=10)))
    assert [i.value for i in seen] == [1, 2, 3]
    assert [(i.value, i.timestamp) for i in out] == [(1, 0.0), (2, 0.1), (3, 0.2)]


async def test_in_thread_gives_what_the_stage_gives_on_another_thread() -> None:
    threads = set()

    def square(x: int) -> int:
        threads.add(threading.current_thread().name)
        return x * x

    stage = FunctionTransformer(square) | SlidingWindow(3, 2, emit_partial=True)
    direct = await collect(stage(from_iterable(range(10), rate=5)))
    threads.clear()
    threaded = InThread(FunctionTransformer(square) | SlidingWindow(3, 2, emit_partial=True), name="squares")
    out = await collect(threaded(from_iterable(range(10), rate=5)))
    assert [(i.value, i.timestamp, i.segment) for i in out] == [(i.value, i.timestamp, i.segment) for i in direct]
    assert threads == {"cadence-squares"}
    assert threaded.busy >= 0.0


async def test_in_thread_passes_a_stage_error_on() -> None:
    def boom(x: int) -> int:
        if x == 3:
            raise ValueError("bad item 3")
        return x

    got = []
    with pytest.raises(ValueError, match="bad item 3"):
        async for item in InThread(FunctionTransformer(boom))(from_iterable(range(10))):
            got.append(item.value)
    assert got == [0, 1, 2]


async def test_in_thread_stops_its_worker_when_the_consumer_stops_early() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[TemporalFeature[int]]:
        i = 0
        try:
            while True:
                yield TemporalFeature(i, float(i))
                i += 1
                await asyncio.sleep(0)
        finally:
            closed.set()

    stage = InThread(FunctionTransformer(lambda x: x + 1), name="early-stop")
    stream = stage(endless())
    first = [item.value async for item in _take(stream, 5)]
    await stream.aclose()
    assert first == [1, 2, 3, 4, 5]
    await asyncio.wait_for(closed.wait(), 10)  # the upstream source was closed
    for _ in range(100):  # and the worker thread ended
        if not any(t.name == "cadence-early-stop" for t in threading.enumerate()):
            break
        await asyncio.sleep(0.05)
    assert not any(t.name == "cadence-early-stop" for t in threading.enumerate())


async def _take(stream: AsyncIterator[TemporalFeature[int]], n: int) -> AsyncIterator[TemporalFeature[int]]:
    for _ in range(n):
        yield await stream.__anext__()


async def test_in_thread_under_cancellation_ends_cleanly() -> None:
    async def slow() -> AsyncIterator[TemporalFeature[int]]:
        for i in range(1000):
            yield TemporalFeature(i, float(i))
            await asyncio.sleep(0.01)

    async def consume() -> None:
        async for _ in InThread(FunctionTransformer(lambda x: x), name="cancelled")(slow()):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not any(t.name == "cadence-cancelled" for t in threading.enumerate()):
            break
        await asyncio.sleep(0.05)
    assert not any(t.name == "cadence-cancelled" for t in threading.enumerate())


class _Summer(SegmentStage):
    """Running sums per segment, and the total once a segment ends."""

    def start(self, segment: object) -> None:
        self.total = 0

    def step(self, item: TemporalFeature[int]) -> list[TemporalFeature[tuple[str, int]]]:
        self.total += item.value
        return [item.replace(("sum", self.total))]

    def finish(self, last: TemporalFeature[int]) -> list[TemporalFeature[tuple[str, int]]]:
        return [last.replace(("final", self.total))]


async def test_segment_stage_flushes_each_segment_and_the_end_of_the_stream() -> None:
    async def two_segments() -> AsyncIterator[TemporalFeature[int]]:
        async for item in from_iterable([1, 2], segment="a"):
            yield item
        async for item in from_iterable([10, 20, 30], segment="b"):
            yield item

    out = await collect(_Summer()(two_segments()))
    assert [(i.segment, i.value) for i in out] == [
        ("a", ("sum", 1)), ("a", ("sum", 3)), ("a", ("final", 3)),
        ("b", ("sum", 10)), ("b", ("sum", 30)), ("b", ("sum", 60)), ("b", ("final", 60)),
    ]
    assert await collect(_Summer()(from_iterable([]))) == []


def test_model_slot_swaps_what_readers_see() -> None:
    slot = ModelSlot()
    assert slot.current is None
    slot.current = "model-a"
    reader = [slot.current]
    slot.current = "model-b"
    reader.append(slot.current)
    assert reader == ["model-a", "model-b"]
