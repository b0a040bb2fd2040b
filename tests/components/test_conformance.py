"""Every transformer, estimator and temporal stage the package exports passes the conformance check.

The stages are enumerated from the exports of ``device.components``,
``device.pose``, ``device.audio`` and ``device.learn``: a new exported stage
without a case below fails ``test_every_exported_stage_has_a_case`` until one
is added. Stages that need model files run on the real pinned models and on
real data (dev sound clips, a COCO image, RepCount pose sequences).
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

from device.components import (
    Estimator,
    Examples,
    TemporalTransformer,
    Transformer,
    UpdatableEstimator,
)
from device.components.checks import (
    ConformanceError,
    check_estimator,
    check_temporal_transformer,
    check_transformer,
)

PACKAGES = ("device.components", "device.pose", "device.audio", "device.learn")
BASES = (Transformer, Estimator, UpdatableEstimator, TemporalTransformer)
ABSTRACT = {"Transformer", "Estimator", "UpdatableEstimator", "TemporalTransformer", "ClassifierModel", "SegmentStage"}


def exported_stages() -> dict[str, type]:
    stages = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) and issubclass(value, BASES) and name not in ABSTRACT:
                stages[name] = value
    return stages


# -- real data ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def audio_print():
    from device.audio import AudioFeaturePrint
    from device.pretrained import ModelFileError

    try:
        fp = AudioFeaturePrint()
        fp.fingerprint()
    except ModelFileError as exc:
        pytest.skip(f"pretrained audio models missing: {exc}")
    return fp


@pytest.fixture(scope="module")
def clips(dev_data):
    from device.audio.sources import load_audio

    return {label: [load_audio(p) for p in sorted((dev_data / label).glob("*.flac"))[:4]]
            for label in ("crying_baby", "vacuum_cleaner", "background")}


@pytest.fixture(scope="module")
def windows(clips, audio_print):
    """(labels, QuantizedFeature windows) of 12 dev clips: what the classifiers learn from."""
    labels, feats = [], []
    for label, samples in clips.items():
        for x in samples:
            for w in audio_print.sample_windows(x):
                labels.append(label)
                feats.append(w)
    return np.array(labels), feats


@pytest.fixture(scope="module")
def examples(windows):
    labels, feats = windows
    x = np.stack([f.dequantize() for f in feats])
    return lambda: Examples.of(x, labels, chunk_size=16)


@pytest.fixture(scope="module")
def poses(shared_data):
    from device.pose import Pose

    seq = np.load(shared_data / "repcount-dev" / "poses" / "stu10_1.npy")[:240]
    scale = float(np.nanmax(seq[..., :2]))
    out = []
    for frame in seq:
        lm = np.concatenate([frame[:, :2] / scale, frame[:, 2:3] / scale, np.ones((33, 1), np.float32)], axis=1)
        out.append(Pose.from_landmarks(lm, image_size=(1, 1)))
    return out


def _fitted(estimator, examples, audio_print):
    model = estimator.fit(examples())
    model.feature_scales = audio_print.scales
    return model


# -- one case per exported stage -------------------------------------------------------------
def case(name, request):
    """Run the conformance check of exported stage ``name``."""
    from device import audio, components, learn, pose

    get = request.getfixturevalue
    identity = components.FunctionTransformer(lambda v: v, "identity")
    numbers = [1.0, 2.0, 3.5, -1.0]
    if name == "FunctionTransformer":
        check_transformer(components.FunctionTransformer(lambda v: 2 * v, "double"), numbers)
    elif name == "ChainedTransformer":
        check_transformer(identity | components.FunctionTransformer(lambda v: v + 1, "inc"), numbers)
    elif name == "StreamStage":
        check_temporal_transformer(lambda: components.StreamStage(identity), numbers * 5, rate=10)
    elif name == "TemporalPipeline":
        check_temporal_transformer(
            lambda: components.Downsampler(2) | components.SlidingWindow(3, 2), list(range(40)), rate=10
        )
    elif name == "Downsampler":
        check_temporal_transformer(lambda: components.Downsampler(3), list(range(30)), rate=30)
    elif name == "SlidingWindow":
        check_temporal_transformer(lambda: components.SlidingWindow(4, 2), list(range(30)), rate=10)
    elif name == "GapFiller":
        check_temporal_transformer(lambda: components.GapFiller(10.0), list(range(30)), rate=10)
    elif name == "AudioFeaturePrint":
        fp = get("audio_print")
        x = get("clips")["crying_baby"][0]
        chunks = [x[a : a + 1600] for a in range(0, len(x), 1600)]
        check_temporal_transformer(lambda: audio.AudioFeaturePrint(), chunks, rate=10, min_outputs=2)
        assert fp.dimension == len(next(iter(fp.sample_windows(x))).values)
    elif name == "ClipFeaturePrint":
        x = get("clips")["vacuum_cleaner"][0]
        check_transformer(get("audio_print").as_transformer(), [x[:24000], x[8000:40000]])
    elif name == "SoundEventDetector":
        knock, quiet = {"knock": 0.9, "background": 0.1}, {"knock": 0.1, "background": 0.9}
        preds = [audio.WindowPrediction(1.5 * i, 1.5 * i + 3, -30.0, p)
                 for i, p in enumerate(([knock] * 4 + [quiet] * 4) * 3)]
        check_temporal_transformer(lambda: audio.SoundEventDetector(), preds, rate=1 / 1.5)
    elif name == "WindowClassifier":
        model = _fitted(learn.LogisticRegressionClassifier(max_iterations=50), get("examples"), get("audio_print"))
        feats = get("windows")[1][:8]
        check_temporal_transformer(lambda: audio.WindowClassifier(components.ModelSlot(model)), feats, rate=1 / 1.5,
                                   min_outputs=8)
    elif name == "Buffer":
        check_temporal_transformer(lambda: components.Buffer(4, "wait"), numbers * 5, rate=10, min_outputs=20)
    elif name == "Tap":
        seen = []
        check_temporal_transformer(lambda: components.Tap(seen.append), numbers * 5, rate=10, min_outputs=20)
        assert seen
    elif name == "InThread":
        check_temporal_transformer(lambda: components.InThread(components.SlidingWindow(4, 2)), list(range(30)),
                                   rate=10)
    elif name == "ExerciseRecognizer":
        p = get("poses")
        windows = [p[a : a + 90] for a in range(0, len(p) - 89, 15)]
        check_temporal_transformer(lambda: pose.ExerciseRecognizer(), windows, rate=2.0)
    elif name in ("LogisticRegressionClassifier", "FullyConnectedNetworkClassifier"):
        est = (learn.LogisticRegressionClassifier(max_iterations=50) if name.startswith("Logistic")
               else learn.FullyConnectedNetworkClassifier((16,), max_iterations=3, batch_size=8))
        check_estimator(est, get("examples"))
    elif name in ("LogisticRegressionModel", "FullyConnectedNetworkModel"):
        est = (learn.LogisticRegressionClassifier(max_iterations=50) if name.startswith("Logistic")
               else learn.FullyConnectedNetworkClassifier((16,), max_iterations=3))
        model = _fitted(est, get("examples"), get("audio_print"))
        assert type(model).__name__ == name
        feats = get("windows")[1]
        check_transformer(model, [feats[0], feats[-1], feats[0].values, feats[:3]])
    elif name == "HumanBodyPoseExtractor":
        import cv2

        images = sorted((get("shared_data") / "pose-images" / "coco").glob("*.jpg"))[:2]
        frames = [cv2.imread(str(p)) for p in images]
        check_transformer(pose.HumanBodyPoseExtractor(tracking=False, smooth=False), frames)
    elif name == "PoseSelector":
        p = get("poses")
        check_transformer(pose.PoseSelector(), [[p[0]], [p[0], p[5]], []])
    elif name == "JointsSelector":
        p = get("poses")
        check_transformer(pose.JointsSelector(["left_wrist", "right_wrist"]), [p[0], [p[1], p[2]], None])
    elif name == "HumanBodyActionCounter":
        p = get("poses")
        windows = [p[a : a + 90] for a in range(0, len(p) - 89, 15)]
        check_temporal_transformer(lambda: pose.HumanBodyActionCounter(fps=30.0), windows, rate=2.0)
    else:
        return False
    return True


STAGES = exported_stages()


def test_every_exported_stage_has_a_case():
    """Adding an exported stage means adding its conformance case here."""
    source = inspect.getsource(case)
    missing = [name for name in sorted(STAGES) if f'"{name}"' not in source]
    assert not missing, f"exported stages without a conformance case: {missing}"
    assert len(STAGES) >= 18


@pytest.mark.parametrize("name", sorted(STAGES))
def test_exported_stage_conforms(name, request):
    assert case(name, request), f"no conformance case for {name}"


def test_the_check_finds_a_stage_that_keeps_state_across_segments():
    from device.components import TemporalFeature

    class Leaky(TemporalTransformer):
        """Counts items but never resets on a new segment."""

        def __init__(self):
            self.n = 0

        async def process(self, stream):
            async for item in stream:
                self.n += 1
                yield TemporalFeature(self.n, item.timestamp, item.segment)

    with pytest.raises(ConformanceError, match="fresh state"):
        check_temporal_transformer(Leaky, [0, 1, 2], rate=1)


def test_the_check_finds_an_estimator_with_a_multi_line_error():
    class Chatty(Estimator):
        def fit(self, data, *, on_event=None):
            if len(data) == 0 or len(data.labels) < 2:
                from device.components import CadenceError

                raise CadenceError("no\nway")
            return components.FunctionTransformer(lambda v: {"a": 0.5, "b": 0.5})

    from device import components

    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    with pytest.raises(ConformanceError):
        check_estimator(Chatty(), lambda: Examples.of(x, ["a", "b"] * 4, chunk_size=4))


def test_the_check_finds_an_update_that_does_not_resume(tmp_path):
    """An optimizer state left out of the saved model shows as a resume that differs."""
    from device.learn import FullyConnectedNetworkClassifier

    class Forgetful(FullyConnectedNetworkClassifier):
        def load(self, path):
            model = super().load(path)
            model.optimizer.reset(model.parameters())
            return model

    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    with pytest.raises(ConformanceError, match="bit for bit"):
        check_estimator(Forgetful((4,), max_iterations=1), lambda: Examples.of(x, ["a", "b"] * 16, chunk_size=16))

