"""The component protocols and their composition with ``|``.

- :class:`Transformer` maps one input to one output (``apply``/``__call__``).
- :class:`Estimator` learns a transformer from annotated data (``fit``).
- :class:`UpdatableEstimator` can also start untrained and improve batch by
  batch (``make_transformer``/``update``), for on-device training.
- :class:`TemporalTransformer` consumes an async stream and yields one,
  possibly accumulating several inputs per output.

Composition (river-style, one object per concept)::

    transformer | transformer   -> ChainedTransformer
    transformer | estimator     -> PreprocessingEstimator (features extracted once)
    temporal    | temporal      -> TemporalPipeline
    transformer | temporal      -> TemporalPipeline (the transformer is lifted)
    temporal    | transformer   -> TemporalPipeline (the transformer is lifted)

Anything else fails at composition time with a :class:`CompositionError`.
Stages may declare ``input_type``/``output_type``; when both sides declare
them and they cannot match, composition fails with a message naming both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from .errors import CompositionError
from .events import EventHandler, emit
from .stream import TemporalFeature, map_stream

X = TypeVar("X")
Y = TypeVar("Y")


@dataclasses.dataclass(frozen=True)
class AnnotatedFeature(Generic[X, Y]):
    """A supervised example: a feature and its annotation (label/target)."""

    feature: X
    annotation: Y


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
        if isinstance(other, Estimator):
            _check_types(self, other)
            return PreprocessingEstimator(self, other)
        if isinstance(other, TemporalTransformer):
            _check_types(self, other)
            return TemporalPipeline([self.to_stream(), other])
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


class Estimator(Generic[X, Y]):
    """Learns a :class:`Transformer` from annotated examples."""

    input_type: ClassVar[type | None] = None

    def fit(
        self,
        data: Iterable[AnnotatedFeature[X, Any]],
        *,
        validation: Iterable[AnnotatedFeature[X, Any]] | None = None,
        on_event: EventHandler | None = None,
    ) -> Transformer[X, Y]:
        raise NotImplementedError(f"{_describe(self)}.fit")

    def __or__(self, other: object) -> Any:
        raise CompositionError(
            f"cannot compose {_describe(self)} | {_describe(other)}: an estimator must be the last stage; "
            "fit it first and compose the fitted transformer"
        )


class UpdatableEstimator(Estimator[X, Y]):
    """An estimator that can start untrained and learn one batch at a time.

    The model it makes must carry its optimizer state, so that saving it (via
    :meth:`save`) and loading it back resumes training exactly.
    """

    def make_transformer(self) -> Transformer[X, Y]:
        raise NotImplementedError(f"{_describe(self)}.make_transformer")

    def update(
        self,
        model: Transformer[X, Y],
        batch: Sequence[AnnotatedFeature[X, Any]],
        *,
        on_event: EventHandler | None = None,
    ) -> Transformer[X, Y]:
        raise NotImplementedError(f"{_describe(self)}.update")

    def save(self, model: Transformer[X, Y], path: Any) -> Any:
        """Write ``model`` with its optimizer state (safe format, atomic)."""
        raise NotImplementedError(f"{_describe(self)}.save")

    def load(self, path: Any) -> Transformer[X, Y]:
        """Read back a model written by :meth:`save`, optimizer state included."""
        raise NotImplementedError(f"{_describe(self)}.load")

    def fit(
        self,
        data: Iterable[AnnotatedFeature[X, Any]],
        *,
        validation: Iterable[AnnotatedFeature[X, Any]] | None = None,
        on_event: EventHandler | None = None,
        epochs: int = 10,
        batch_size: int = 32,
    ) -> Transformer[X, Y]:
        """Default fit: ``epochs`` passes of :meth:`update` over batches."""
        from .stream import chunked

        items = list(data)
        model = self.make_transformer()
        for epoch in range(epochs):
            for batch in chunked(items, batch_size):
                model = self.update(model, batch)
            emit(on_event, "fit", epoch + 1, epochs)
        return model


class PreprocessingEstimator(Estimator[Any, Any]):
    """``transformer | estimator``: features are extracted once by the prefix.

    :meth:`preprocess` runs the prefix over the data and returns annotated
    features; :meth:`fit_preprocessed` fits the estimator on them and returns
    ``prefix | fitted``. Refitting with other estimator parameters reuses the
    same features (see :meth:`with_estimator`).
    """

    def __init__(self, prefix: Transformer[Any, Any], estimator: Estimator[Any, Any]) -> None:
        self.prefix = prefix
        self.estimator = estimator

    @property
    def input_type(self) -> type | None:  # type: ignore[override]
        return getattr(self.prefix, "input_type", None)

    def with_estimator(self, estimator: Estimator[Any, Any]) -> "PreprocessingEstimator":
        return PreprocessingEstimator(self.prefix, estimator)

    def preprocess(
        self, data: Iterable[AnnotatedFeature[Any, Any]], *, on_event: EventHandler | None = None
    ) -> list[AnnotatedFeature[Any, Any]]:
        items = list(data)
        out = []
        for i, item in enumerate(items):
            out.append(AnnotatedFeature(self.prefix.apply(item.feature), item.annotation))
            emit(on_event, "preprocess", i + 1, len(items))
        return out

    def fit_preprocessed(
        self,
        features: Iterable[AnnotatedFeature[Any, Any]],
        *,
        validation: Iterable[AnnotatedFeature[Any, Any]] | None = None,
        on_event: EventHandler | None = None,
        **kwargs: Any,
    ) -> ChainedTransformer:
        fitted = self.estimator.fit(features, validation=validation, on_event=on_event, **kwargs)
        return ChainedTransformer([self.prefix, fitted])

    def fit(
        self,
        data: Iterable[AnnotatedFeature[Any, Any]],
        *,
        validation: Iterable[AnnotatedFeature[Any, Any]] | None = None,
        on_event: EventHandler | None = None,
        **kwargs: Any,
    ) -> ChainedTransformer:
        features = self.preprocess(data, on_event=on_event)
        val = self.preprocess(validation, on_event=on_event) if validation is not None else None
        return self.fit_preprocessed(features, validation=val, on_event=on_event, **kwargs)

    # -- updatable form -----------------------------------------------------
    def _updatable(self) -> UpdatableEstimator[Any, Any]:
        if not isinstance(self.estimator, UpdatableEstimator):
            raise CompositionError(f"{_describe(self.estimator)} is not updatable (no make_transformer/update)")
        return self.estimator

    def make_transformer(self) -> ChainedTransformer:
        return ChainedTransformer([self.prefix, self._updatable().make_transformer()])

    def update_preprocessed(
        self,
        model: ChainedTransformer,
        features_batch: Sequence[AnnotatedFeature[Any, Any]],
        *,
        on_event: EventHandler | None = None,
    ) -> ChainedTransformer:
        head = ChainedTransformer(model.stages[:-1]) if len(model.stages) > 1 else None
        last = self._updatable().update(model.last, features_batch, on_event=on_event)
        return ChainedTransformer(([head] if head else []) + [last])

    def update(
        self,
        model: ChainedTransformer,
        batch: Sequence[AnnotatedFeature[Any, Any]],
        *,
        on_event: EventHandler | None = None,
    ) -> ChainedTransformer:
        return self.update_preprocessed(model, self.preprocess(batch), on_event=on_event)


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
