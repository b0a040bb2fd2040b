"""Streams: windows, downsampling, hand-off, cancellation, empty streams."""

from __future__ import annotations

import asyncio
import threading

import pytest

from device.components import (
    Downsampler,
    Handoff,
    HandoffClosed,
    SlidingWindow,
    TemporalFeature,
    batched,
    chunked,
    collect,
    from_iterable,
    map_stream,
    pump,
)


async def windows(stage, values, **kw):
    return await collect(stage(from_iterable(values, **kw)))


async def test_sliding_window_overlaps_and_stamps_last_item():
    out = await windows(SlidingWindow(4, 2), range(10), rate=10.0)
    assert [w.value for w in out] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert [round(w.timestamp, 2) for w in out] == [0.3, 0.5, 0.7, 0.9]


async def test_sliding_window_drops_final_partial_by_default():
    out = await windows(SlidingWindow(4, 3), range(9))
    assert [w.value for w in out] == [[0, 1, 2, 3], [3, 4, 5, 6]]  # 7, 8 never fill a stride


async def test_sliding_window_emit_partial_flushes_tail_once():
    out = await windows(SlidingWindow(4, 3, emit_partial=True), range(9))
    assert [w.value for w in out] == [[0, 1, 2, 3], [3, 4, 5, 6], [5, 6, 7, 8]]
    exact = await windows(SlidingWindow(3, 3, emit_partial=True), range(6))
    assert [w.value for w in exact] == [[0, 1, 2], [3, 4, 5]]  # nothing left over: no extra window


async def test_window_longer_than_stream():
    assert await windows(SlidingWindow(90, 15), range(30)) == []
    short = await windows(SlidingWindow(90, 15, emit_partial=True), range(30))
    assert len(short) == 1 and short[0].value == list(range(30))


async def test_empty_stream_yields_nothing_everywhere():
    for stage in (SlidingWindow(3), Downsampler(2), SlidingWindow(3, emit_partial=True)):
        assert await windows(stage, []) == []


async def test_segment_change_resets_windows_and_downsampler():
    async def two_sources():
        for seg in ("a", "b"):
            for i in range(5):
                yield TemporalFeature(f"{seg}{i}", float(i), seg)

    out = await collect(SlidingWindow(3, 3)(two_sources()))
    assert [w.value for w in out] == [["a0", "a1", "a2"], ["b0", "b1", "b2"]]
    assert [w.segment for w in out] == ["a", "b"]
    down = await collect(Downsampler(2)(two_sources()))
    assert [d.value for d in down] == ["a0", "a2", "a4", "b0", "b2", "b4"]


def test_invalid_stage_parameters():
    with pytest.raises(ValueError, match="length must be"):
        SlidingWindow(0)
    with pytest.raises(ValueError, match="stride must be"):
        SlidingWindow(5, 0)
    with pytest.raises(ValueError, match="factor must be"):
        Downsampler(0)


async def test_map_batched_chunked():
    async def double(x):
        return 2 * x

    mapped = await collect(map_stream(double, from_iterable([1, 2, 3])))
    assert [m.value for m in mapped] == [2, 4, 6]
    groups = await collect(batched(from_iterable(range(5)), 2))
    assert [[g.value for g in b] for b in groups] == [[0, 1], [2, 3], [4]]
    assert list(chunked(range(5), 3)) == [[0, 1, 2], [3, 4]]
    with pytest.raises(ValueError):
        list(chunked([], 0))


async def test_handoff_drop_oldest_counts_drops_and_never_blocks():
    handoff: Handoff[int] = Handoff(3, policy="drop_oldest")
    for i in range(10):
        await handoff.put(i)  # would hang if it blocked
    assert handoff.dropped == 7
    handoff.close()
    assert [x async for x in handoff] == [7, 8, 9]


async def test_handoff_wait_applies_back_pressure():
    handoff: Handoff[int] = Handoff(2, policy="wait")
    produced = []

    async def producer():
        for i in range(6):
            await handoff.put(i)
            produced.append(i)
        handoff.close()

    task = asyncio.create_task(producer())
    await asyncio.sleep(0.01)
    assert produced == [0, 1]  # blocked on the third until someone consumes
    got = []
    async for item in handoff:
        got.append(item)
        await asyncio.sleep(0)
    await task
    assert got == list(range(6)) and handoff.dropped == 0


async def test_handoff_from_another_thread():
    handoff: Handoff[int] = Handoff(1000, policy="drop_oldest")
    handoff.bind()

    def audio_thread():
        for i in range(100):
            handoff.put_threadsafe(i)

    t = threading.Thread(target=audio_thread)
    t.start()
    t.join()
    await asyncio.sleep(0.01)
    handoff.close()
    assert [x async for x in handoff] == list(range(100))
    with pytest.raises(HandoffClosed):
        handoff.put_nowait(1)


async def test_pump_passes_errors_to_consumer():
    async def failing():
        yield TemporalFeature(1, 0.0)
        raise OSError("camera unplugged")

    handoff: Handoff[TemporalFeature[int]] = Handoff(4)
    task = asyncio.create_task(pump(failing(), handoff))
    got = []
    with pytest.raises(OSError, match="camera unplugged"):
        async for item in handoff:
            got.append(item.value)
    await task
    assert got == [1]


async def test_cancelling_a_running_pipeline_closes_the_source():
    closed = asyncio.Event()
    started = asyncio.Event()

    async def endless():
        i = 0
        try:
            while True:
                yield TemporalFeature(i, i / 30)
                i += 1
                started.set()
                await asyncio.sleep(0.001)
        finally:
            closed.set()

    pipeline = Downsampler(2) | SlidingWindow(4, 2)

    async def consume():
        async for _ in pipeline(endless()):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(closed.wait(), 1)  # the source's finally ran


async def test_gap_filler_restores_the_time_grid():
    from device.components import GapFiller

    times = [0.0, 0.1, 0.2, 0.5, 0.6, 0.62, 0.7, 30.0, 30.1]  # 0.3 and 0.4 lost; jitter at 0.62; a long pause
    async def source():
        for t in times:
            yield TemporalFeature(round(t, 2), t)

    filler = GapFiller(rate=10.0, fill=None, max_gap=5.0)
    out = await collect(filler(source()))
    values = [o.value for o in out]
    assert values == [0.0, 0.1, 0.2, None, None, 0.5, 0.6, 0.62, 0.7, 30.0, 30.1]
    assert [round(o.timestamp, 2) for o in out][3:5] == [0.3, 0.4]
    assert filler.filled == 2
    with pytest.raises(ValueError, match="rate must be"):
        GapFiller(0)
