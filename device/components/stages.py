"""Stages that live pipelines need around their models, as components.

- :class:`Buffer` — a bounded hand-off between a producer and a slower
  consumer (``drop_oldest`` for a live camera: latency never grows; ``wait``
  for a file: every item is analysed).
- :class:`Tap` — calls a function for each item passing by (heartbeats,
  meters), the items unchanged.
- :class:`InThread` — runs a stage on a worker thread with its own event
  loop, so CPU-heavy work (feature prints, inference) never blocks the
  caller's loop (MQTT, watchdog, signals).
- :class:`SegmentStage` — a stage whose state lives per segment, with a
  flush when a segment ends (end of a file, a camera reopened).
- :class:`ModelSlot` — the model a stage reads on every item, swapped from
  outside (hot swap) without rebuilding the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Literal

from .core import TemporalTransformer, Transformer
from .stream import Handoff, HandoffClosed, TemporalFeature, pump


class Buffer(TemporalTransformer[Any, Any]):
    """Decouple a producer from a slower consumer through ``size`` slots.

    The upstream stream is pumped by its own task, so a camera keeps being
    read while the model works. With ``policy="drop_oldest"`` a full buffer
    discards its oldest item (counted in :attr:`dropped`); with ``"wait"``
    the producer waits (back-pressure, nothing lost). An upstream error
    reaches the consumer after the items before it.
    """

    def __init__(self, size: int = 1, policy: Literal["wait", "drop_oldest"] = "drop_oldest") -> None:
        Handoff(size, policy)  # validates both now, at composition time
        self.size = size
        self.policy = policy
        self._finished_drops = 0
        self._current: Handoff[Any] | None = None

    @property
    def dropped(self) -> int:
        """Items discarded so far, over every run of this stage."""
        return self._finished_drops + (self._current.dropped if self._current is not None else 0)

    async def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[Any]]:
        handoff: Handoff[TemporalFeature[Any]] = Handoff(self.size, self.policy)
        self._current = handoff
        producer = asyncio.create_task(pump(stream, handoff), name="buffer-producer")
        try:
            async for item in handoff:
                yield item
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
            self._finished_drops += handoff.dropped
            self._current = None

    def __repr__(self) -> str:
        return f"Buffer({self.size}, {self.policy!r})"


class Tap(TemporalTransformer[Any, Any]):
    """Call ``fn(item)`` for every item and pass the item on unchanged."""

    def __init__(self, fn: Callable[[TemporalFeature[Any]], None], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "tap")

    async def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[Any]]:
        async for item in stream:
            self.fn(item)
            yield item

    def __repr__(self) -> str:
        return f"Tap({self.name})"


class _Done:
    """Marks the end of the upstream stream for the worker."""


_DONE = _Done()


async def _next_item(iterator: AsyncIterator[Any]) -> Any:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _DONE


class InThread(TemporalTransformer[Any, Any]):
    """Run ``stage`` on a worker thread that has an event loop of its own.

    The worker pulls upstream items one at a time from the caller's loop and
    hands results back through a one-slot hand-off, so nothing piles up in
    between and the order is kept. An error in the stage reaches the
    consumer; when the consumer stops (cancelled, or it has seen enough), the
    worker is stopped too. :attr:`busy` is the worker's time spent inside the
    stage (seconds) and :attr:`items` the outputs so far, for utilisation figures.
    """

    def __init__(self, stage: TemporalTransformer[Any, Any] | Transformer[Any, Any], *, name: str = "stage") -> None:
        self.stage = stage.to_stream() if isinstance(stage, Transformer) else stage
        self.name = name
        self.busy = 0.0
        self.items = 0
        self._busy_before = 0.0

    @property
    def input_type(self) -> type | None:  # type: ignore[override]
        return getattr(self.stage, "input_type", None)

    @property
    def output_type(self) -> type | None:  # type: ignore[override]
        return getattr(self.stage, "output_type", None)

    def reset(self) -> None:
        self.stage.reset()

    async def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[Any]]:
        main = asyncio.get_running_loop()
        upstream = stream.__aiter__()
        results: Handoff[TemporalFeature[Any]] = Handoff(1, "wait")
        stopping = threading.Event()
        pending: dict[str, Any] = {}  # the cross-loop call in flight, to cancel it when stopping

        clock = {"start": 0.0, "waited": 0.0}

        async def call_main(coro: Any) -> Any:
            future = asyncio.run_coroutine_threadsafe(coro, main)
            pending["future"] = future
            waiting = time.perf_counter()
            try:
                return await asyncio.wrap_future(future)
            finally:  # time spent waiting for the caller's loop is not work
                clock["waited"] += time.perf_counter() - waiting
                self.busy = self._busy_before + time.perf_counter() - clock["start"] - clock["waited"]

        async def source() -> AsyncIterator[TemporalFeature[Any]]:
            while not stopping.is_set():
                item = await call_main(_next_item(upstream))
                if item is _DONE:
                    return
                yield item

        async def work() -> None:
            clock["start"] = time.perf_counter()
            async for item in self.stage.process(source()):
                await call_main(results.put(item))

        def run() -> None:
            error: BaseException | None = None
            try:
                asyncio.run(work())
            except (asyncio.CancelledError, HandoffClosed):
                pass
            except BaseException as exc:  # handed to the consumer
                error = exc
            with contextlib.suppress(RuntimeError):  # the caller's loop is already closed
                main.call_soon_threadsafe(results.close, error)

        self._busy_before = self.busy
        worker = threading.Thread(target=run, name=f"cadence-{self.name}", daemon=True)
        worker.start()
        try:
            async for item in results:
                self.items += 1
                yield item
        finally:
            stopping.set()
            results.close()
            future = pending.get("future")
            if future is not None:
                future.cancel()
            await asyncio.to_thread(worker.join, 5.0)
            aclose = getattr(upstream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def __repr__(self) -> str:
        return f"InThread({self.stage!r})"


class SegmentStage(TemporalTransformer[Any, Any]):
    """A stage whose state belongs to one segment (a file, one camera run).

    Subclasses implement :meth:`start` (fresh state for a segment),
    :meth:`step` (outputs for one item) and :meth:`finish` (outputs once the
    segment has ended: another segment began or the stream ended) — the
    place for a settled, final result.
    """

    def start(self, segment: Any) -> None:
        """Forget everything: a new segment begins."""

    def step(self, item: TemporalFeature[Any]) -> Iterable[TemporalFeature[Any]]:
        raise NotImplementedError(f"{type(self).__name__}.step")

    def finish(self, last: TemporalFeature[Any]) -> Iterable[TemporalFeature[Any]]:
        """Outputs after the last item of a segment (default: none)."""
        return ()

    async def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[Any]]:
        last: TemporalFeature[Any] | None = None
        async for item in stream:
            if last is None or item.segment != last.segment:
                if last is not None:
                    for out in self.finish(last):
                        yield out
                self.start(item.segment)
            for out in self.step(item):
                yield out
            last = item
        if last is not None:
            for out in self.finish(last):
                yield out


class ModelSlot:
    """Holds the model a stage uses; assigning :attr:`current` swaps it.

    Stages read ``slot.current`` for every item, so a new model takes over
    at the next item while the pipeline keeps running; ``None`` means no
    model yet (the stage skips its work).
    """

    def __init__(self, current: Any = None) -> None:
        self.current = current

    def __repr__(self) -> str:
        return f"ModelSlot({type(self.current).__name__ if self.current is not None else None})"


def find_stage(pipeline: Any, kind: type) -> Any:
    """The first stage of type ``kind`` in a composed pipeline (looking inside
    :class:`InThread` and nested compositions), for its counters; None if absent."""
    if isinstance(pipeline, kind):
        return pipeline
    inner = [pipeline.stage] if isinstance(pipeline, InThread) else list(getattr(pipeline, "stages", []))
    for stage in inner:
        if hasattr(stage, "transformer") and isinstance(stage.transformer, kind):
            return stage.transformer
        found = find_stage(stage, kind)
        if found is not None:
            return found
    return None
