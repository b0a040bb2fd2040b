"""Composition of transformers, estimators and temporal stages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from device.components import (
    AnnotatedFeature,
    ChainedTransformer,
    CompositionError,
    Downsampler,
    Estimator,
    EventRecorder,
    FunctionTransformer,
    PreprocessingEstimator,
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


class Threshold(Transformer[float, str]):
    def __init__(self, cut: float) -> None:
        self.cut = cut

    def apply(self, x: float) -> str:
        return "high" if x >= self.cut else "low"


class ThresholdEstimator(Estimator[float, str]):
    """Learns the midpoint between the class means."""

    input_type = float

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def fit(self, data, *, validation=None, on_event=None):  # type: ignore[override]
        data = list(data)
        highs = [d.feature for d in data if d.annotation == "high"]
        lows = [d.feature for d in data if d.annotation == "low"]
        emit(on_event, "fit", len(data), len(data))
        return Threshold((np.mean(highs) + np.mean(lows)) / 2 + self.shift)


class Mean(Transformer[Any, float]):
    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def apply(self, x: float) -> float:
        return self.total / self.count if self.count else 0.0


class MeanEstimator(UpdatableEstimator[float, float]):
    def make_transformer(self) -> Mean:
        return Mean()

    def update(self, model, batch, *, on_event=None):  # type: ignore[override]
        model.total += sum(b.feature for b in batch)
        model.count += len(batch)
        return model


def annotated(values: list[float]) -> list[AnnotatedFeature[float, str]]:
    return [AnnotatedFeature(v, "high" if v >= 5 else "low") for v in values]


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


def test_transformer_then_estimator_extracts_features_once():
    prefix = Scale(10.0)
    estimator = prefix | ThresholdEstimator()
    assert isinstance(estimator, PreprocessingEstimator)
    data = annotated([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    data = [AnnotatedFeature(d.feature, "high" if d.feature > 0.5 else "low") for d in data]
    recorder = EventRecorder()
    features = estimator.preprocess(data, on_event=recorder)
    assert prefix.calls == 6
    assert [e.item_count for e in recorder.of("preprocess")] == [1, 2, 3, 4, 5, 6]
    model = estimator.fit_preprocessed(features)
    assert model(0.25) == "low" and model(0.75) == "high"
    # refit with other parameters from the same features: no new extraction
    assert prefix.calls == 8  # the two predictions above ran the prefix
    shifted = estimator.with_estimator(ThresholdEstimator(shift=3.0)).fit_preprocessed(features)
    assert prefix.calls == 8  # refitting did not extract again
    assert shifted(0.75) == "low"  # 7.5 < 5 + 3


def test_fit_equals_preprocess_then_fit_preprocessed():
    data = annotated([1, 2, 3, 7, 8, 9])
    est = Scale(1.0) | ThresholdEstimator()
    a = est.fit(data)
    b = est.fit_preprocessed(est.preprocess(data))
    assert a.last.cut == b.last.cut == 5.0


def test_updatable_estimator_through_preprocessing():
    est = Scale(2.0) | MeanEstimator()
    model = est.make_transformer()
    assert model(0.0) == 0.0
    batch = [AnnotatedFeature(1.0, None), AnnotatedFeature(3.0, None)]
    model = est.update(model, batch)
    assert model(123.0) == pytest.approx(4.0)  # mean of 2 and 6
    feats = est.preprocess([AnnotatedFeature(10.0, None)])
    model = est.update_preprocessed(model, feats)
    assert model.last.count == 3 and model(0) == pytest.approx((2 + 6 + 20) / 3)


def test_updatable_default_fit_runs_epochs():
    recorder = EventRecorder()
    model = MeanEstimator().fit(annotated([1.0, 2.0, 3.0]), epochs=2, batch_size=2, on_event=recorder)
    assert model.count == 6
    assert [e.item_count for e in recorder.of("fit")] == [1, 2]


def test_preprocessing_with_non_updatable_estimator_refuses_update():
    est = Scale(1.0) | ThresholdEstimator()
    with pytest.raises(CompositionError, match="not updatable"):
        est.make_transformer()


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

    def make_transformer(self) -> Linear:
        return Linear(self.dim)

    def update(self, model, batch, *, on_event=None):  # type: ignore[override]
        x = np.array([b.feature for b in batch])
        y = np.array([b.annotation for b in batch])
        grad = 2 * x.T @ (x @ model.w - y) / len(batch)
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
    data = [AnnotatedFeature(x, float(x @ [1.0, -2.0, 0.5])) for x in xs]
    batches = [data[i : i + 8] for i in range(0, 64, 8)]
    est = MomentumRegressor(3)
    straight = est.make_transformer()
    for batch in batches:
        straight = est.update(straight, batch)
    interrupted = est.make_transformer()
    for batch in batches[:3]:
        interrupted = est.update(interrupted, batch)
    est.save(interrupted, tmp_path / "ckpt")
    resumed = est.load(tmp_path / "ckpt")
    for batch in batches[3:]:
        resumed = est.update(resumed, batch)
    assert np.array_equal(resumed.w, straight.w) and resumed.steps == straight.steps == 8
    # without the optimizer state (velocity reset) the result differs: the state matters
    lost = est.load(tmp_path / "ckpt")
    lost.velocity = np.zeros(3)
    for batch in batches[3:]:
        lost = est.update(lost, batch)
    assert not np.allclose(lost.w, straight.w)
