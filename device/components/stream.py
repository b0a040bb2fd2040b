"""Timestamped async streams and the helpers that move them along.

A stream is an ``AsyncIterable[TemporalFeature]``. Each item carries its value,
a timestamp in seconds and a ``segment`` (source/segment id): stages that
accumulate state (windows, counters) reset when the segment changes, so one
pipeline can process several files or a camera that reconnected.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
U = TypeVar("U")


@dataclasses.dataclass(frozen=True)
class TemporalFeature(Generic[T]):
    """One stream item: a value at a time, from a segment/source."""

    value: T
    timestamp: float
    segment: str | int = 0

    def replace(self, value: Any) -> "TemporalFeature[Any]":
        """The same time and segment with another value."""
        return TemporalFeature(value, self.timestamp, self.segment)


async def from_iterable(
    values: Iterable[T], *, rate: float = 1.0, segment: str | int = 0, start: float = 0.0
) -> AsyncIterator[TemporalFeature[T]]:
    """Turn plain values into a stream, stamped at ``rate`` items per second."""
    for i, value in enumerate(values):
        yield TemporalFeature(value, start + i / rate, segment)
        if i % 256 == 255:
            await asyncio.sleep(0)


async def collect(stream: AsyncIterable[T], limit: int | None = None) -> list[T]:
    """Gather a stream (or its first ``limit`` items) into a list."""
    items: list[T] = []
    async for item in stream:
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    return items


def run(stream: AsyncIterable[T], limit: int | None = None) -> list[T]:
    """Collect a stream from synchronous code (``asyncio.run`` under the hood)."""
    return asyncio.run(collect(stream, limit))


async def map_stream(
    fn: Callable[[Any], Any] | Callable[[Any], Awaitable[Any]],
    stream: AsyncIterable[TemporalFeature[Any]],
    *,
    in_thread: bool = False,
) -> AsyncIterator[TemporalFeature[Any]]:
    """Apply ``fn`` to each item's value, keeping time and segment.

    ``fn`` may be a coroutine function. With ``in_thread=True`` a synchronous
    ``fn`` runs in a worker thread so heavy work (model inference) never blocks
    the event loop.
    """
    is_coroutine = inspect.iscoroutinefunction(fn)
    async for item in stream:
        if is_coroutine:
            value = await fn(item.value)  # type: ignore[misc]
        elif in_thread:
            value = await asyncio.to_thread(fn, item.value)
        else:
            value = fn(item.value)
        yield item.replace(value)


async def batched(stream: AsyncIterable[T], size: int) -> AsyncIterator[list[T]]:
    """Group a stream into lists of ``size`` items; the last may be shorter."""
    if size < 1:
        raise ValueError(f"batched: size must be ≥ 1, got {size}")
    batch: list[T] = []
    async for item in stream:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def chunked(items: Iterable[T], size: int) -> Iterable[list[T]]:
    """Synchronous counterpart of :func:`batched` for plain iterables."""
    if size < 1:
        raise ValueError(f"chunked: size must be ≥ 1, got {size}")
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


class HandoffClosed(Exception):
    """Raised by :meth:`Handoff.put` after the hand-off was closed."""


class Handoff(Generic[T]):
    """A bounded hand-off between a producer and a slower consumer.

    ``policy="wait"`` makes the producer wait for room (back-pressure);
    ``policy="drop_oldest"`` never blocks the producer: when full, the oldest
    item is discarded and counted in :attr:`dropped`. :meth:`put_nowait` is
    safe to call from the event loop's thread only; use
    :meth:`put_threadsafe` from other threads (audio callbacks): it never
    blocks the caller either.
    Iterate with ``async for``; iteration ends after :meth:`close` once the
    buffer is drained.
    """

    def __init__(self, maxsize: int, policy: Literal["wait", "drop_oldest"] = "wait") -> None:
        if maxsize < 1:
            raise ValueError(f"Handoff: maxsize must be ≥ 1, got {maxsize}")
        if policy not in ("wait", "drop_oldest"):
            raise ValueError(f"Handoff: policy must be 'wait' or 'drop_oldest', got {policy!r}")
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self.delivered = 0
        self._items: collections.deque[T] = collections.deque()
        self._closed = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def _notify(self) -> None:
        self._changed.set()

    def put_nowait(self, item: T) -> bool:
        """Add without waiting; returns False if an item had to be dropped
        (the oldest under ``drop_oldest``, the new one under ``wait``)."""
        if self._closed:
            raise HandoffClosed("hand-off is closed")
        ok = True
        if len(self._items) >= self.maxsize:
            self.dropped += 1
            ok = False
            if self.policy == "drop_oldest":
                self._items.popleft()
            else:
                self._notify()
                return False
        self._items.append(item)
        self._notify()
        return ok

    async def put(self, item: T) -> None:
        """Add an item; under ``wait`` this waits for room."""
        if self.policy == "drop_oldest":
            self.put_nowait(item)
            return
        while len(self._items) >= self.maxsize:
            if self._closed:
                raise HandoffClosed("hand-off is closed")
            self._changed.clear()
            await self._changed.wait()
        self.put_nowait(item)

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Remember the loop that consumes, for :meth:`put_threadsafe`."""
        self._loop = loop or asyncio.get_running_loop()

    def put_threadsafe(self, item: T) -> None:
        """From another thread: hand over without ever blocking that thread."""
        if self._loop is None:
            raise RuntimeError("Handoff.put_threadsafe needs bind() on the consuming loop first")
        try:
            self._loop.call_soon_threadsafe(self._put_from_thread, item)
        except RuntimeError:  # loop closed: the consumer is gone
            self.dropped += 1

    def _put_from_thread(self, item: T) -> None:
        if self._closed:
            self.dropped += 1
            return
        self.put_nowait(item)

    def close(self, error: BaseException | None = None) -> None:
        """No more items; consumers finish after draining (or raise ``error``)."""
        self._closed = True
        self._error = error
        self._notify()

    async def get(self) -> T:
        while not self._items:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()
        item = self._items.popleft()
        self.delivered += 1
        self._notify()
        return item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            try:
                yield await self.get()
            except StopAsyncIteration:
                return


async def pump(stream: AsyncIterable[T], handoff: Handoff[T]) -> None:
    """Feed a stream into a hand-off, closing it at the end (or on error)."""
    try:
        async for item in stream:
            await handoff.put(item)
    except asyncio.CancelledError:
        handoff.close()
        raise
    except Exception as exc:  # hand the failure to the consumer
        handoff.close(exc)
        return
    handoff.close()
