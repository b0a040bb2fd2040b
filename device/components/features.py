"""The one quantised-feature type and the featurizer protocol that learning depends on.

A featurizer turns a file into the windows its live stream stage computes
("the clip form is the stream over a file"), as :class:`QuantizedFeature` s.
The feature cache and the trainer in ``device.learn`` depend only on
:class:`Featurizer`, so the audio feature print and the pose exercise features
share one cache, one trainer and one model registry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, eq=False)
class QuantizedFeature:
    """An int8 feature vector with its per-dimension dequantisation.

    ``float value = values * scales`` (featurizers centre their float features
    before quantising, so there are no offsets and every consumer dequantises
    the same way). ``start``/``end`` (seconds) say where in the stream it came
    from; ``rms_db`` is the window's level in dBFS (the sound-event stage skips
    silent windows with it; -inf where a featurizer has no level).
    """

    values: np.ndarray
    scales: np.ndarray
    start: float = 0.0
    end: float = 0.0
    rms_db: float = -math.inf

    def dequantize(self) -> np.ndarray:
        return self.values.astype(np.float32) * self.scales

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.dequantize()
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        # short: asyncio and logging repr results, and printing 2 × 688 numbers costs ~3 ms
        return (
            f"QuantizedFeature({len(self.values)} int8, {self.start:.3f}–{self.end:.3f} s, "
            f"{self.rms_db:.1f} dBFS)"
        )

    @property
    def duration(self) -> float:
        return self.end - self.start


@runtime_checkable
class Featurizer(Protocol):
    """What the learn cache extracts training examples with.

    ``file_windows(path)`` yields the windows of the featurizer's stream stage
    over the file, in bounded memory (never the whole file at once); every
    window's ``scales`` are the featurizer's ``scales`` (``dimension`` values).
    ``fingerprint()`` changes whenever a window's values would mean something
    else (cached windows and trained models are tied to it); ``suffixes`` are
    the file suffixes it reads (lower case, with the dot). A featurizer may
    also offer ``augmenter()``: an object with a ``key`` (its settings) and
    ``file_windows(featurizer, path, source_hash, index)`` giving the windows
    of augmented copy ``index`` of a file, for training from few clips; and
    ``model_metadata(chunks)``: given the windows a model finally trained on as
    ``(float windows, their labels)`` chunks, a dict the trainer adds to the
    model's metadata (the exercise features calibrate their open set with it).
    """

    dimension: int
    scales: np.ndarray
    suffixes: tuple[str, ...]

    def fingerprint(self) -> str: ...

    def file_windows(self, path: str | os.PathLike[str]) -> Iterator[QuantizedFeature]: ...


def iterate_sync(stream: AsyncIterable[T]) -> Iterator[T]:
    """Drive an async stream from synchronous code, one item at a time.

    Unlike :func:`device.components.run` nothing is collected: a featurizer's
    ``file_windows`` runs its stream stage over a file with this and memory
    stays at one window. Must not be called from inside a running event loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "iterate_sync runs its own event loop: call it from a worker thread (asyncio.to_thread), "
            "or iterate the stream with `async for` inside the running loop"
        )
    loop = asyncio.new_event_loop()
    iterator: AsyncIterator[T] = stream.__aiter__()
    try:
        while True:
            try:
                item = loop.run_until_complete(iterator.__anext__())  # type: ignore[arg-type]
            except StopAsyncIteration:
                return
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            loop.run_until_complete(close())
        loop.close()
