"""The component protocols and their composition with ``|``.

- :class:`Transformer` maps one input to one output (``apply``/``__call__``).
- :class:`Estimator` learns a transformer from :class:`Examples` (``fit``):
  chunks of feature arrays with their labels, preprocessed once (the learn
  feature cache holds them) and read as often as fitting needs.
- :class:`UpdatableEstimator` can also start from an untrained model
  (``start``) and improve it one chunk at a time (``update``); the model
  carries its optimizer state, so a saved model is a checkpoint.
- :class:`TemporalTransformer` consumes an async stream and yields one,
  possibly accumulating several inputs per output.

Composition (river-style, one object per concept)::

    transformer | transformer   -> ChainedTransformer
    temporal    | temporal      -> TemporalPipeline
    transformer | temporal      -> TemporalPipeline (the transformer is lifted)
    temporal    | transformer   -> TemporalPipeline (the transformer is lifted)

An estimator is not composed: it is fitted on features extracted once (by a
featurizer into the feature cache) and its fitted model is composed.
Anything else fails at composition time with a :class:`CompositionError`.
Stages may declare ``input_type``/``output_type``; when both sides declare
them and they cannot match, composition fails with a message naming both.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from .errors import CadenceError, CompositionError
from .events import EventHandler, emit
from .stream import TemporalFeature, map_stream

X = TypeVar("X")
Y = TypeVar("Y")


def _describe(stage: object) -> str:
    return type(stage).__name__


def _check_types(left: object, right: object) -> None:
    out_type = getattr(left, "output_type", None)
    in_type = getattr(right, "input_type", None)
    if out_type is None or in_type is None:
        return
    if isinstance(out_type, type) and isinstance(in_type, type):
        if issubclass(out_type, in_type) or issubclass(in_type, out_type):
            return
        raise CompositionError(
            f"cannot compose {_describe(left)} | {_describe(right)}: "
            f"{_describe(left)} outputs {out_type.__name__} but {_describe(right)} expects {in_type.__name__}"
        )


def _not_a_stage(left: object, right: object) -> CompositionError:
    return CompositionError(
        f"cannot compose {_describe(left)} | {_describe(right)}: "
        f"{_describe(right)} is not a Transformer, Estimator or TemporalTransformer"
    )


class _Stages:
    """A sequence of stages whose input type is the first's and output the last's."""

    stages: list[Any]

    @property
    def input_type(self) -> type | None:
        return getattr(self.stages[0], "input_type", None)

    @property
    def output_type(self) -> type | None:
        return getattr(self.stages[-1], "output_type", None)


class Transformer(Generic[X, Y]):
    """Maps one input to one output. Subclasses implement :meth:`apply`."""

    input_type: ClassVar[type | None] = None
    output_type: ClassVar[type | None] = None

    def apply(self, x: X) -> Y:
        raise NotImplementedError(f"{_describe(self)}.apply")

    def __call__(self, x: X) -> Y:
        return self.apply(x)

    def apply_many(self, xs: Iterable[X]) -> list[Y]:
        return [self.apply(x) for x in xs]

    def to_stream(self, *, in_thread: bool = False) -> "TemporalTransformer[X, Y]":
        """Lift into a stream stage that applies this to every item's value."""
        return StreamStage(self, in_thread=in_thread)

    def __or__(self, other: object) -> Any:
        if isinstance(other, Transformer):
            _check_types(self, other)
            return ChainedTransformer([self, other])
        if isinstance(other, TemporalTransformer):
            _check_types(self, other)
            return TemporalPipeline([self.to_stream(), other])
        if isinstance(other, Estimator):
            raise CompositionError(
                f"cannot compose {_describe(self)} | {_describe(other)}: fit the estimator on features "
                "extracted once (device.learn's feature cache) and compose the fitted model"
            )
        raise _not_a_stage(self, other)


class ChainedTransformer(_Stages, Transformer[Any, Any]):  # type: ignore[misc]
    """Transformers applied in order; built by ``a | b``."""

    def __init__(self, stages: Sequence[Transformer[Any, Any]]) -> None:
        flat: list[Transformer[Any, Any]] = []
        for stage in stages:
            flat.extend(stage.stages if isinstance(stage, ChainedTransformer) else [stage])
        if not flat:
            raise CompositionError("a ChainedTransformer needs at least one stage")
        self.stages = flat

    def apply(self, x: Any) -> Any:
        for stage in self.stages:
            x = stage.apply(x)
        return x

    @property
    def last(self) -> Transformer[Any, Any]:
        return self.stages[-1]

    def __repr__(self) -> str:
        return " | ".join(_describe(s) for s in self.stages)


class FunctionTransformer(Transformer[Any, Any]):
    """Wrap a plain function as a transformer (handy in pipelines and tests)."""

    def __init__(self, fn: Any, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")

    def apply(self, x: Any) -> Any:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"FunctionTransformer({self.name})"


Chunk = tuple[np.ndarray, np.ndarray]


class Examples:
    """Annotated examples as chunks of arrays: what an estimator fits on.

    Iterating yields ``(x, y)`` chunks: float32 features ``(n, d)`` and their
    labels ``(n,)`` as strings. The source is read again on every pass (a
    feature cache larger than memory is read chunk by chunk), and
    :meth:`shuffled` reads it in an order drawn from a generator. ``labels``
    are all labels the model must know, also those that no chunk holds.
    """

    def __init__(
        self,
        source: Callable[[np.random.Generator | None], Iterable[Chunk]],
        labels: Sequence[str],
        *,
        dimension: int,
        count: int,
    ) -> None:
        self._source = source
        self.labels = sorted({str(label) for label in labels})
        self.dimension = int(dimension)
        self.count = int(count)

    @classmethod
    def of(
        cls, x: np.ndarray, y: Sequence[Any], *, labels: Sequence[str] | None = None, chunk_size: int = 1024
    ) -> "Examples":
        """Examples held in memory: a float matrix ``(n, d)`` and ``n`` labels."""
        x = np.asarray(x)
        names = np.asarray([str(v) for v in y])
        if x.ndim != 2 or x.shape[0] != len(names):
            raise CadenceError(f"examples need a (n, d) feature matrix and n labels, got {x.shape} and {len(names)}")
        if not np.issubdtype(x.dtype, np.floating):
            raise CadenceError(f"example features must be float (dequantise int8 first), got {x.dtype}")
        x = x.astype(np.float32, copy=False)

        def source(rng: np.random.Generator | None) -> Iterator[Chunk]:
            order = rng.permutation(len(names)) if rng is not None else np.arange(len(names))
            for a in range(0, len(order), chunk_size):
                idx = order[a : a + chunk_size]
                yield x[idx], names[idx]

        return cls(source, names.tolist() if labels is None else labels, dimension=x.shape[1], count=len(names))

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self._source(None))

    def shuffled(self, rng: np.random.Generator) -> Iterator[Chunk]:
        return iter(self._source(rng))

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"Examples({self.count} × {self.dimension}, labels={self.labels})"


class Estimator(Generic[X, Y]):
    """Learns a :class:`Transformer` from :class:`Examples`.

    Parameters go in ``__init__``; :meth:`fit` returns the fitted model (the
    estimator itself keeps no learned state). Bad examples (no examples,
    fewer than two labels, NaN) raise a :class:`CadenceError` with one line.
    """

    input_type: ClassVar[type | None] = None

    def fit(self, data: Examples, *, on_event: EventHandler | None = None) -> Transformer[X, Y]:
        raise NotImplementedError(f"{_describe(self)}.fit")

    def __or__(self, other: object) -> Any:
        raise CompositionError(
            f"cannot compose {_describe(self)} | {_describe(other)}: an estimator must be the last stage; "
            "fit it first and compose the fitted transformer"
        )


class UpdatableEstimator(Estimator[X, Y]):
    """An estimator that starts from an untrained model and learns chunk by chunk.

    ``start(data)`` makes the untrained model (sized from one pass over
    ``data``: its labels and input standardisation); ``update(model, x, y)``
    takes optimizer steps over one chunk and returns the model. The model
    carries its optimizer state, so ``save`` then ``load`` then ``update``
    gives bit for bit what ``update`` alone gives: a saved model is a
    checkpoint. :meth:`fit` is ``start`` then epochs of ``update``.
    """

    def start(self, data: Examples) -> Transformer[X, Y]:
        raise NotImplementedError(f"{_describe(self)}.start")

    def update(
        self, model: Transformer[X, Y], x: np.ndarray, y: Sequence[Any], *, on_event: EventHandler | None = None
    ) -> Transformer[X, Y]:
        raise NotImplementedError(f"{_describe(self)}.update")

    def save(self, model: Transformer[X, Y], path: Any) -> Any:
        """Write ``model`` with its optimizer state (safe format, atomic)."""
        raise NotImplementedError(f"{_describe(self)}.save")

    def load(self, path: Any) -> Transformer[X, Y]:
        """Read back a model written by :meth:`save`, optimizer state included."""
        raise NotImplementedError(f"{_describe(self)}.load")

    def epochs(self) -> int:
        """Passes over the data that :meth:`fit` makes."""
        return 10

    def fit(self, data: Examples, *, on_event: EventHandler | None = None) -> Transformer[X, Y]:
        """``start`` then :meth:`epochs` passes of ``update`` over the chunks of ``data``, in
        the order they come (an estimator learning by steps, such as the network, needs the
        examples in a shuffled order, not sorted by label: shuffle them first, as
        ``fit_classifier`` does, or train with the learn ``Trainer``, which shuffles every epoch)."""
        model = self.start(data)
        total = self.epochs()
        for epoch in range(total):
            for x, y in data:
                model = self.update(model, x, y)
            emit(on_event, "fit", epoch + 1, total)
        return model


class TemporalTransformer(Generic[X, Y]):
    """Consumes a stream of :class:`TemporalFeature` and yields another.

    Subclasses implement :meth:`process` as an async generator. A stage may
    hold state across items (windows, counters); state resets on a new
    segment id, and :meth:`reset` clears it explicitly.
    """

    input_type: ClassVar[type | None] = None
    output_type: ClassVar[type | None] = None

    def process(self, stream: AsyncIterable[TemporalFeature[X]]) -> AsyncIterator[TemporalFeature[Y]]:
        raise NotImplementedError(f"{_describe(self)}.process")

    def __call__(self, stream: AsyncIterable[TemporalFeature[X]]) -> AsyncIterator[TemporalFeature[Y]]:
        return self.process(stream)

    def reset(self) -> None:
        """Forget accumulated state (default: nothing to forget)."""

    def __or__(self, other: object) -> "TemporalPipeline":
        if isinstance(other, TemporalTransformer):
            _check_types(self, other)
            return TemporalPipeline([self, other])
        if isinstance(other, Transformer):
            _check_types(self, other)
            return TemporalPipeline([self, other.to_stream()])
        if isinstance(other, Estimator):
            raise CompositionError(
                f"cannot compose {_describe(self)} | {_describe(other)}: an estimator is fitted on "
                "collected data, not on a live stream; collect the stream's features and call fit"
            )
        raise _not_a_stage(self, other)

    def __ror__(self, other: object) -> "TemporalPipeline":
        raise _not_a_stage(other, self)


class StreamStage(TemporalTransformer[Any, Any]):
    """A plain :class:`Transformer` lifted into a stream stage."""

    def __init__(self, transformer: Transformer[Any, Any], *, in_thread: bool = False) -> None:
        self.transformer = transformer
        self.in_thread = in_thread

    @property
    def input_type(self) -> type | None:  # type: ignore[override]
        return getattr(self.transformer, "input_type", None)

    @property
    def output_type(self) -> type | None:  # type: ignore[override]
        return getattr(self.transformer, "output_type", None)

    def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[Any]]:
        return map_stream(self.transformer.apply, stream, in_thread=self.in_thread)

    def __repr__(self) -> str:
        return f"StreamStage({self.transformer!r})"


class TemporalPipeline(_Stages, TemporalTransformer[Any, Any]):  # type: ignore[misc]
    """Stream stages run in order; built by ``a | b``."""

    def __init__(self, stages: Sequence[TemporalTransformer[Any, Any] | Transformer[Any, Any]]) -> None:
        flat: list[TemporalTransformer[Any, Any]] = []
        for stage in stages:
            if isinstance(stage, Transformer):
                stage = stage.to_stream()
            if isinstance(stage, TemporalPipeline):
                flat.extend(stage.stages)
            elif isinstance(stage, TemporalTransformer):
                flat.append(stage)
            else:
                raise CompositionError(f"{_describe(stage)} is not a stream stage")
        if not flat:
            raise CompositionError("a TemporalPipeline needs at least one stage")
        for left, right in zip(flat, flat[1:]):
            _check_types(left, right)
        self.stages = flat

    def process(self, stream: AsyncIterable[TemporalFeature[Any]]) -> AsyncIterator[TemporalFeature[Any]]:
        for stage in self.stages:
            stream = stage.process(stream)
        return stream  # type: ignore[return-value]

    def reset(self) -> None:
        for stage in self.stages:
            stage.reset()

    def __repr__(self) -> str:
        return " | ".join(repr(s) if isinstance(s, StreamStage) else _describe(s) for s in self.stages)
