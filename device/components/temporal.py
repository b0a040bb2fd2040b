"""Generic temporal stages: :class:`Downsampler` and :class:`SlidingWindow`."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from .core import TemporalTransformer
from .stream import TemporalFeature


class Downsampler(TemporalTransformer[Any, Any]):
    """Keep every ``factor``-th item of each segment (the first one included).

    Useful in front of slow-motion analysis: at factor 2 a 30 fps stream
    becomes 15 fps, so a window of the same length spans twice the time.
    """

    def __init__(self, factor: int = 1) -> None:
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"Downsampler: factor must be an integer ≥ 1, got {factor!r}")
        self.factor = factor

    async def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[Any]]:
        segment: object = object()
        index = 0
        async for item in stream:
            if item.segment != segment:
                segment, index = item.segment, 0
            if index % self.factor == 0:
                yield item
            index += 1


class SlidingWindow(TemporalTransformer[Any, list]):
    """Overlapping (or hopping) windows of ``length`` items every ``stride``.

    The first window is emitted once ``length`` items of a segment have
    arrived; then one every ``stride`` items. A window's value is a list of
    the item values in order, stamped with the timestamp of its *last* item.
    When the stream (or a segment) ends, a final partial window (fewer than
    ``length`` items, or items not yet covered by a full window) is **dropped**
    by default; with ``emit_partial=True`` the trailing items since the last
    emitted window are emitted once as a shorter window, so nothing is lost at
    the end of a file. A segment change resets the buffer: windows never mix
    sources.
    """

    output_type = list

    def __init__(self, length: int, stride: int | None = None, *, emit_partial: bool = False) -> None:
        stride = length if stride is None else stride
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"SlidingWindow: length must be an integer ≥ 1, got {length!r}")
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"SlidingWindow: stride must be an integer ≥ 1, got {stride!r}")
        self.length = length
        self.stride = stride
        self.emit_partial = emit_partial

    async def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[list]]:
        buffer: collections.deque[TemporalFeature[Any]] = collections.deque(maxlen=self.length)
        segment: object = object()
        since_emit = 0  # items arrived since the last emitted window
        emitted_any = False

        def partial() -> TemporalFeature[list] | None:
            if not self.emit_partial or not buffer:
                return None
            if emitted_any and since_emit == 0:
                return None
            last = buffer[-1]
            return TemporalFeature([it.value for it in buffer], last.timestamp, last.segment)

        async for item in stream:
            if item.segment != segment:
                tail = partial()
                if tail is not None:
                    yield tail
                buffer.clear()
                segment, since_emit, emitted_any = item.segment, 0, False
            buffer.append(item)
            since_emit += 1
            if len(buffer) == self.length and (not emitted_any or since_emit >= self.stride):
                yield TemporalFeature([it.value for it in buffer], item.timestamp, item.segment)
                since_emit = 0
                emitted_any = True
        tail = partial()
        if tail is not None:
            yield tail


class GapFiller(TemporalTransformer[Any, Any]):
    """Put a regular time grid back under a stream that lost items.

    Live pipelines drop frames when inference falls behind; stages that reason
    in items (a window of 90 poses = 3 s at 30 fps) would then see time run
    faster and mis-estimate periods. For every gap longer than 1.5 item
    intervals this stage inserts ``fill`` items (e.g. ``None`` = "no pose") at
    the missing grid times, so downstream stages see one item per interval.
    Gaps longer than ``max_gap`` seconds are not filled (a pause of the
    source, handled as a new start by the stages that care). Segment changes
    reset the grid.
    """

    def __init__(self, rate: float, fill: Any = None, *, max_gap: float = 10.0) -> None:
        if not rate or rate <= 0:
            raise ValueError(f"GapFiller: rate must be > 0 items per second, got {rate!r}")
        self.rate = float(rate)
        self.fill = fill
        self.max_gap = float(max_gap)
        self.filled = 0

    async def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[Any]]:
        interval = 1.0 / self.rate
        last: TemporalFeature[Any] | None = None
        async for item in stream:
            if last is not None and item.segment == last.segment:
                gap = item.timestamp - last.timestamp
                if 1.5 * interval < gap <= self.max_gap:
                    missing = int(round(gap / interval)) - 1
                    for k in range(1, missing + 1):
                        self.filled += 1
                        yield TemporalFeature(self.fill, last.timestamp + k * gap / (missing + 1), item.segment)
            yield item
            last = item
