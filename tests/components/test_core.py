"""Composition of transformers, estimators and temporal stages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from device.components import (
    CadenceError,
    ChainedTransformer,
    CompositionError,
    Downsampler,
    Estimator,
    EventRecorder,
    Examples,
    FunctionTransformer,
    SlidingWindow,
    TemporalPipeline,
    TemporalTransformer,
    Transformer,
    UpdatableEstimator,
    collect,
    emit,
    from_iterable,
)


class Scale(Transformer[float, float]):
    input_type = float
    output_type = float

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.calls = 0

    def apply(self, x: float) -> float:
        self.calls += 1
        return x * self.factor


class ToText(Transformer[float, str]):
    input_type = float
    output_type = str

    def apply(self, x: float) -> str:
        return f"{x:.1f}"


class Threshold(Transformer[Any, str]):
    def __init__(self, cut: float) -> None:
        self.cut = cut

    def apply(self, x: Any) -> str:
        return "high" if float(np.ravel(x)[0]) >= self.cut else "low"


class ThresholdEstimator(Estimator[Any, str]):
    """Learns the midpoint between the class means of the first feature, reading the chunks once."""

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def fit(self, data, *, on_event=None):  # type: ignore[override]
        sums = {"high": [0.0, 0], "low": [0.0, 0]}
        for x, y in data:
            for v, label in zip(x[:, 0], y):
                sums[label][0] += float(v)
                sums[label][1] += 1
        if not sums["high"][1] or not sums["low"][1]:
            raise CadenceError("need examples of both labels")
        emit(on_event, "fit", len(data), len(data))
        return Threshold((sums["high"][0] / sums["high"][1] + sums["low"][0] / sums["low"][1]) / 2 + self.shift)


class Mean(Transformer[Any, float]):
    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def apply(self, x: Any) -> float:
        return self.total / self.count if self.count else 0.0


class MeanEstimator(UpdatableEstimator[Any, float]):
    def start(self, data) -> Mean:  # type: ignore[override]
        return Mean()

    def update(self, model, x, y, *, on_event=None):  # type: ignore[override]
        model.total += float(x[:, 0].sum())
        model.count += len(x)
        return model


def examples(values: list[float], chunk_size: int = 1024) -> Examples:
    x = np.array(values, dtype=np.float32)[:, None]
    return Examples.of(x, ["high" if v >= 5 else "low" for v in values], chunk_size=chunk_size)


def test_transformer_chain_applies_in_order():
    chain = Scale(2.0) | Scale(3.0) | ToText()
    assert isinstance(chain, ChainedTransformer)
    assert len(chain.stages) == 3  # nested chains are flattened
    assert chain(1.5) == "9.0"
    assert chain.apply_many([1.0, 2.0]) == ["6.0", "12.0"]


def test_incompatible_types_fail_at_composition():
    with pytest.raises(CompositionError, match="outputs str but Scale expects float"):
        _ = ToText() | Scale(2.0)


def test_composing_with_a_non_stage_fails_clearly():
    with pytest.raises(CompositionError, match="not a Transformer, Estimator or TemporalTransformer"):
        _ = Scale(1.0) | 42
    with pytest.raises(CompositionError, match="must be the last stage"):
        _ = ThresholdEstimator() | Scale(1.0)
    with pytest.raises(CompositionError, match="not on a live stream"):
        _ = SlidingWindow(3) | ThresholdEstimator()


def test_an_estimator_is_not_composed_but_fitted_on_extracted_features():
    """Features are extracted once (the learn cache does it); the fitted model is what composes."""
    with pytest.raises(CompositionError, match="fit the estimator on features extracted once"):
        _ = Scale(10.0) | ThresholdEstimator()
    model = ThresholdEstimator().fit(examples([1, 2, 3, 7, 8, 9], chunk_size=4))
    assert model(np.array([4.0])) == "low" and model(np.array([6.0])) == "high"
    shifted = ThresholdEstimator(shift=3.0).fit(examples([1, 2, 3, 7, 8, 9]))
    assert shifted(np.array([7.5])) == "low"  # 7.5 < 5 + 3
    with pytest.raises(CadenceError, match="both labels"):
        ThresholdEstimator().fit(examples([1, 2]))


def test_examples_are_chunks_read_again_and_shuffled_on_request():
    data = examples([float(v) for v in range(10)], chunk_size=4)
    assert len(data) == 10 and data.dimension == 1 and data.labels == ["high", "low"]
    first = [x[:, 0].tolist() for x, _ in data]
    assert first == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and [x[:, 0].tolist() for x, _ in data] == first
    order = [v for x, _ in data.shuffled(np.random.default_rng(0)) for v in x[:, 0].tolist()]
    assert sorted(order) == list(range(10)) and order != list(range(10))
    with pytest.raises(CadenceError, match="float"):
        Examples.of(np.zeros((2, 1), np.int8), ["a", "b"])
    with pytest.raises(CadenceError, match="n labels"):
        Examples.of(np.zeros((2, 1), np.float32), ["a"])


def test_updatable_default_fit_runs_epochs():
    recorder = EventRecorder()

    class TwoEpochs(MeanEstimator):
        def epochs(self) -> int:
            return 2

    model = TwoEpochs().fit(examples([1.0, 2.0, 3.0], chunk_size=2), on_event=recorder)
    assert model.count == 6
    assert [e.item_count for e in recorder.of("fit")] == [1, 2]


async def test_temporal_pipeline_and_lifting():
    pipeline = Scale(2.0) | Downsampler(2) | SlidingWindow(3, 1) | FunctionTransformer(sum)
    assert isinstance(pipeline, TemporalPipeline)
    assert len(pipeline.stages) == 4
    out = await collect(pipeline(from_iterable(range(10), rate=10.0)))
    # scaled: 0,2,..18; every 2nd: 0,4,8,12,16; windows of 3 stride 1
    assert [o.value for o in out] == [12, 24, 36]
    assert out[0].timestamp == pytest.approx(0.4)


async def test_temporal_pipelines_compose_and_type_check():
    class Texts(TemporalTransformer[Any, str]):
        output_type = str

        async def process(self, stream):
            async for item in stream:
                yield item.replace(str(item.value))

    with pytest.raises(CompositionError, match="outputs str but Scale expects float"):
        _ = Texts() | Scale(2.0)
    a = Downsampler(2) | Downsampler(3)
    b = a | SlidingWindow(2, 1)
    assert len(b.stages) == 3
    out = await collect(b(from_iterable(range(13))))
    assert [o.value for o in out] == [[0, 6], [6, 12]]


async def test_lifted_transformer_in_thread():
    import threading

    seen = []

    def record_thread(x):
        seen.append(threading.current_thread().name)
        return x + 1

    stage = FunctionTransformer(record_thread).to_stream(in_thread=True)
    out = await collect(stage(from_iterable([1, 2])))
    assert [o.value for o in out] == [2, 3]
    assert all(name != threading.main_thread().name for name in seen)


class Linear(Transformer[Any, float]):
    """y = w·x, trained by SGD with momentum; the velocity is optimizer state."""

    def __init__(self, dim: int) -> None:
        self.w = np.zeros(dim)
        self.velocity = np.zeros(dim)
        self.steps = 0

    def apply(self, x: Any) -> float:
        return float(self.w @ np.asarray(x))


class MomentumRegressor(UpdatableEstimator[Any, float]):
    def __init__(self, dim: int, rate: float = 0.05, momentum: float = 0.9) -> None:
        self.dim, self.rate, self.momentum = dim, rate, momentum

    def start(self, data) -> Linear:  # type: ignore[override]
        return Linear(self.dim)

    def update(self, model, x, y, *, on_event=None):  # type: ignore[override]
        y = np.asarray(y, dtype=np.float64)
        grad = 2 * x.T @ (x @ model.w - y) / len(x)
        model.velocity = self.momentum * model.velocity - self.rate * grad
        model.w = model.w + model.velocity
        model.steps += 1
        return model

    def save(self, model, path):  # type: ignore[override]
        from device.components import save_state

        return save_state(path, "test-linear", {"steps": model.steps},
                          {"w": model.w, "velocity": model.velocity})

    def load(self, path):  # type: ignore[override]
        from device.components import load_state

        meta, arrays = load_state(path, kind="test-linear")
        model = Linear(self.dim)
        model.w, model.velocity, model.steps = arrays["w"], arrays["velocity"], meta["steps"]
        return model


def test_updatable_model_saved_with_optimizer_state_resumes_exactly(tmp_path):
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(64, 3))
    ys = xs @ [1.0, -2.0, 0.5]
    batches = [(xs[i : i + 8], ys[i : i + 8]) for i in range(0, 64, 8)]
    est = MomentumRegressor(3)
    straight = est.start(None)
    for x, y in batches:
        straight = est.update(straight, x, y)
    interrupted = est.start(None)
    for x, y in batches[:3]:
        interrupted = est.update(interrupted, x, y)
    est.save(interrupted, tmp_path / "ckpt")
    resumed = est.load(tmp_path / "ckpt")
    for x, y in batches[3:]:
        resumed = est.update(resumed, x, y)
    assert np.array_equal(resumed.w, straight.w) and resumed.steps == straight.steps == 8
    # without the optimizer state (velocity reset) the result differs: the state matters
    lost = est.load(tmp_path / "ckpt")
    lost.velocity = np.zeros(3)
    for x, y in batches[3:]:
        lost = est.update(lost, x, y)
    assert not np.allclose(lost.w, straight.w)


def test_iterate_sync_drives_a_stream_one_item_at_a_time():
    """The sync form of a stream (a featurizer's file_windows): items come as produced, nothing collected."""
    import asyncio

    from device.components import iterate_sync

    produced = []

    async def stream():
        for i in range(3):
            produced.append(i)
            yield i

    items = iterate_sync(stream())
    assert next(items) == 0 and produced == [0]  # lazily: the next item is not computed yet
    assert list(items) == [1, 2] and produced == [0, 1, 2]

    async def inside_a_loop():
        with pytest.raises(RuntimeError, match="worker thread"):
            next(iterate_sync(stream()))

    asyncio.run(inside_a_loop())
