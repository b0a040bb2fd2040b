"""The training workflow with the real audio feature print (speech embedding + log-mel)."""

from __future__ import annotations

import numpy as np
import pytest
from learn_data import make_subset

from device.learn import FeaturePrintMismatchError, load_classifier
from device.audio.sources import load_audio
from device.learn.dataset import load_dataset
from device.learn.training import Trainer, TrainingConfig

featureprint = pytest.importorskip("device.audio.featureprint", reason="the audio feature print is not built yet")


@pytest.fixture(scope="module")
def audio_print():
    from device.pretrained import ModelFileError

    try:
        fp = featureprint.AudioFeaturePrint()
        fp.fingerprint()
    except ModelFileError as exc:
        pytest.skip(f"pretrained audio models missing: {exc}")
    return fp


def test_trained_model_takes_every_form_of_the_feature_print(tmp_path, dev_data, audio_print):
    """Trained on the windows of the stream; the model takes them as QuantizedFeatures, int8 or floats."""
    data_dir = make_subset(dev_data, tmp_path / "data", {"crying_baby": 8, "vacuum_cleaner": 8, "background": 8})
    cfg = TrainingConfig(classifier="network", max_epochs=5, hidden_unit_counts=(16,), validation_split=0.25)
    result = Trainer(audio_print, cfg, state_dir=tmp_path / "state").train(load_dataset(data_dir), tmp_path / "m.model")
    model = load_classifier(result.model_path, feature_print=audio_print)
    assert model.dimension == audio_print.dimension
    path = sorted((data_dir / "crying_baby").glob("*.flac"))[0]
    windows = list(audio_print.file_windows(path))
    assert len(windows) == 3  # 5 s: 0–3 s, 1.5–4.5 s and the end-aligned 2–5 s
    from_feature = model(windows[0])
    from_int8 = model(windows[0].values)  # bare int8: the model keeps the featurizer's scales
    from_float = model(audio_print.features(load_audio(path)[: 3 * 16000]))  # unquantised floats
    for label in model.taught_labels:  # (the shipped negatives' class is no answer)
        assert from_feature[label] == pytest.approx(from_int8[label], abs=1e-6)
        assert from_feature[label] == pytest.approx(from_float[label], abs=0.02)
    assert np.isclose(sum(from_feature.values()), 1.0, atol=1e-5)
    with pytest.raises(FeaturePrintMismatchError):
        load_classifier(result.model_path, feature_print=featureprint.AudioFeaturePrint(mel_statistics=("mean",)))
    with pytest.raises(FeaturePrintMismatchError):  # windows of another length are other examples
        load_classifier(result.model_path, feature_print=featureprint.AudioFeaturePrint(window_duration=2.0))


def test_file_windows_are_the_stream_bit_for_bit(dev_data, audio_print, tmp_path):
    """The clip form is the stream over the file: training sees exactly what `process(read_audio(path))` yields."""
    import soundfile as sf

    from device.audio.sources import read_audio
    from device.components import run

    path = tmp_path / "long.flac"
    sf.write(path, np.concatenate([load_audio(p) for p in sorted((dev_data / "hammering").glob("*.flac"))[:3]]), 16000)
    streamed = [item.value for item in run(audio_print.process(read_audio(path)))]
    windows = list(audio_print.file_windows(path))
    assert len(windows) == len(streamed) > 5
    for a, b in zip(windows, streamed):
        assert (a.start, a.end) == (b.start, b.end) and np.array_equal(a.values, b.values)
        assert a.scales is audio_print.scales or np.array_equal(a.scales, audio_print.scales)
