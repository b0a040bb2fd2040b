"""Conformance checks for components, in the manner of river's ``check_estimator``.

Each ``check_*`` runs a list of small checks on one stage and raises
:class:`ConformanceError` naming the first that fails. A stage that passes
behaves the way the library promises wherever it is composed:

* a :class:`Transformer`: ``t(x) == t.apply(x)``, ``apply_many`` is apply on
  each, the declared ``output_type`` holds, its stream form keeps every
  item's time and segment, and ``t | identity`` gives the same result;
* an :class:`Estimator`: ``fit`` returns a :class:`Transformer`, is repeatable
  and leaves the estimator's parameters alone; empty data, a single label and
  NaN features are one-line :class:`CadenceError` s; an
  :class:`UpdatableEstimator`'s ``update`` resumes bit for bit after
  ``save``/``load`` and refuses bad chunks with one line;
* a :class:`TemporalTransformer`: an empty stream gives nothing, a new
  segment starts from fresh state (the outputs of segment B after segment A
  equal those of B alone), ``reset()`` forgets, outputs carry an input
  segment and times that do not go backwards within a segment.

``tests/components/test_conformance.py`` runs them over every stage the
package exports.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .core import Estimator, Examples, FunctionTransformer, TemporalTransformer, Transformer, UpdatableEstimator
from .errors import CadenceError
from .stream import TemporalFeature, run


class ConformanceError(AssertionError):
    """A stage does not behave as the component protocol promises."""


def same(a: Any, b: Any) -> bool:
    """Deep equality for stage outputs (arrays, dataclasses, dicts, NaN == NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if hasattr(a, "__dict__") and type(a) is type(b) and not isinstance(a, (str, bytes)) and a.__class__.__eq__ is object.__eq__:
        return same(vars(a), vars(b))
    return bool(a == b)


def _expect(condition: bool, stage: Any, check: str) -> None:
    if not condition:
        raise ConformanceError(f"{type(stage).__name__}: {check}")


def _one_line_error(stage: Any, check: str, call: Callable[[], Any]) -> None:
    try:
        call()
    except CadenceError as exc:
        _expect("\n" not in str(exc) and bool(str(exc)), stage, f"{check}: the error is not one line: {exc!r}")
        return
    except Exception as exc:  # noqa: BLE001 - the check reports what escaped
        raise ConformanceError(f"{type(stage).__name__}: {check}: raised {type(exc).__name__}, not a CadenceError: {exc}") from exc
    raise ConformanceError(f"{type(stage).__name__}: {check}: accepted")


# ---------------------------------------------------------------------------
# transformers
def check_transformer(transformer: Transformer[Any, Any], inputs: Sequence[Any], *, stateless: bool = True) -> None:
    """Check a :class:`Transformer` on a few ``inputs``; ``stateless=False`` for
    a stage that carries state from one input to the next (a tracker), whose
    outputs are then compared on fresh copies made by the caller."""
    _expect(isinstance(transformer, Transformer), transformer, "is not a Transformer")
    _expect(len(inputs) > 0, transformer, "no inputs to check with")
    first = [transformer.apply(x) for x in inputs]
    out_type = getattr(transformer, "output_type", None)
    if isinstance(out_type, type):
        _expect(all(isinstance(y, out_type) for y in first), transformer, f"an output is not a {out_type.__name__}")
    if not stateless:
        return
    _expect(same([transformer(x) for x in inputs], first), transformer, "t(x) differs from t.apply(x)")
    _expect(same(transformer.apply_many(inputs), first), transformer, "apply_many differs from apply on each input")
    chained = transformer | FunctionTransformer(lambda v: v, "identity")
    _expect(same([chained.apply(x) for x in inputs], first), transformer, "t | identity differs from t")

    async def stream() -> AsyncIterator[TemporalFeature[Any]]:
        for i, x in enumerate(inputs):
            yield TemporalFeature(x, 0.5 * i, "check")

    items = run(transformer.to_stream().process(stream()))
    _expect([(i.timestamp, i.segment) for i in items] == [(0.5 * i, "check") for i in range(len(inputs))],
            transformer, "the stream form does not keep each item's time and segment")
    _expect(same([i.value for i in items], first), transformer, "the stream form differs from apply")


# ---------------------------------------------------------------------------
# estimators
def check_estimator(estimator: Estimator[Any, Any], data: Callable[[], Examples]) -> None:
    """Check an :class:`Estimator` with ``data()`` (fresh :class:`Examples` of two labels or more)."""
    _expect(isinstance(estimator, Estimator), estimator, "is not an Estimator")
    params = _params(estimator)
    model = estimator.fit(data())
    _expect(isinstance(model, Transformer), estimator, "fit does not return a Transformer")
    _expect(same(_params(estimator), params), estimator, "fit changed the estimator's parameters")
    x, _ = next(iter(data()))
    out = model.apply(x[0])
    _expect(same(estimator.fit(data()).apply(x[0]), out), estimator, "fitting twice on the same data differs")
    if isinstance(out, dict) and out:  # a classifier: one probability per label
        _expect(sorted(out) == sorted(data().labels), estimator, "the fitted model's labels are not the data's")
        _expect(abs(sum(out.values()) - 1.0) < 1e-4, estimator, "class probabilities do not sum to 1")
    d = data().dimension
    empty = Examples.of(np.zeros((0, d), np.float32), [], labels=data().labels)
    _one_line_error(estimator, "fit on no examples", lambda: estimator.fit(empty))
    _one_line_error(estimator, "fit on a single label", lambda: estimator.fit(Examples.of(x[:2], ["a", "a"])))
    bad = x[:4].copy()
    bad[0, 0] = np.nan
    _one_line_error(estimator, "fit on NaN features", lambda: estimator.fit(Examples.of(bad, ["a", "b", "a", "b"])))
    _one_line_error(estimator, "a model given features of another dimension", lambda: model.apply(np.zeros(d + 1, np.float32)))
    if isinstance(estimator, UpdatableEstimator):
        _check_updatable(estimator, data)


def _check_updatable(estimator: UpdatableEstimator[Any, Any], data: Callable[[], Examples]) -> None:
    chunks = list(data())
    _expect(len(chunks) >= 2, estimator, "the check needs data of at least two chunks")
    model = estimator.start(data())
    estimator.update(model, *chunks[0])
    with tempfile.TemporaryDirectory(prefix="cadence-check-") as tmp:
        path = estimator.save(model, Path(tmp) / "model.cadence")
        loaded = estimator.load(path)
    straight = estimator.update(model, *chunks[1])
    resumed = estimator.update(loaded, *chunks[1])
    _expect(same(_state(straight), _state(resumed)), estimator, "update after save/load differs from update (not bit for bit)")
    x, y = chunks[0]
    _one_line_error(estimator, "update with a label the model does not know",
                    lambda: estimator.update(estimator.start(data()), x[:1], ["not-a-label"]))
    _one_line_error(estimator, "update with no examples", lambda: estimator.update(estimator.start(data()), x[:0], y[:0]))


def _params(estimator: Any) -> Any:
    get = getattr(estimator, "get_params", None)
    return get() if callable(get) else dict(vars(estimator))


def _state(model: Any) -> Any:
    state = getattr(model, "state", None)
    return state() if callable(state) else vars(model)


# ---------------------------------------------------------------------------
# temporal transformers
def check_temporal_transformer(
    make: Callable[[], TemporalTransformer[Any, Any]], values: Sequence[Any], *, rate: float, min_outputs: int = 1
) -> None:
    """Check a :class:`TemporalTransformer` made fresh by ``make()``, fed ``values``
    at ``rate`` items per second (a segment long enough for ``min_outputs``)."""
    stage = make()
    _expect(isinstance(stage, TemporalTransformer), stage, "is not a TemporalTransformer")

    span = len(values) / rate

    def feed(segments: Sequence[str]) -> AsyncIterator[TemporalFeature[Any]]:
        """``values`` once per segment; the last segment starts at 100 s, earlier ones before it."""
        async def stream() -> AsyncIterator[TemporalFeature[Any]]:
            for k, segment in enumerate(segments):
                start = 100.0 - (len(segments) - 1 - k) * span
                for i, v in enumerate(values):
                    yield TemporalFeature(v, start + i / rate, segment)
        return stream()

    _expect(run(make().process(feed([]))) == [], stage, "an empty stream gives output")
    alone = run(make().process(feed(["b"])))
    _expect(len(alone) >= min_outputs, stage, f"gave {len(alone)} outputs, the check expects at least {min_outputs}")
    both = run(stage.process(feed(["a", "b"])))
    _expect({i.segment for i in both} <= {"a", "b"}, stage, "an output carries a segment no input had")
    after = [i for i in both if i.segment == "b"]
    _expect(both[-len(after):] == after if after else True, stage, "outputs of segment a come after segment b's")
    _expect(same([i.value for i in after], [i.value for i in alone]), stage,
            "a new segment does not start from fresh state (segment b after a differs from b alone)")
    for segment in ("a", "b"):
        times = [i.timestamp for i in both if i.segment == segment]
        _expect(times == sorted(times), stage, f"output times go backwards within segment {segment}")
    last = (100.0 + (len(values) - 1) / rate)
    _expect(all(100.0 - 1e-9 <= i.timestamp <= last + 1.0 / rate + 1e-9 for i in after), stage,
            "an output of segment b is stamped outside the segment's time span")
    stage.reset()
    again = run(stage.process(feed(["b"])))
    _expect(same([i.value for i in again], [i.value for i in alone]), stage, "reset() does not forget the state")
