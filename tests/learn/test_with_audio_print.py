"""The training workflow with the real audio feature print (speech embedding + log-mel)."""

from __future__ import annotations

import numpy as np
import pytest
from learn_data import make_subset

from device.learn import FeaturePrintMismatchError, load_classifier
from device.learn.dataset import load_dataset, read_clip
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
    data_dir = make_subset(dev_data, tmp_path / "data", {"crying_baby": 8, "vacuum_cleaner": 8, "background": 8})
    cfg = TrainingConfig(classifier="network", max_epochs=5, hidden_unit_counts=(16,), validation_split=0.25)
    result = Trainer(audio_print, cfg, state_dir=tmp_path / "state").train(load_dataset(data_dir), tmp_path / "m.model")
    model = load_classifier(result.model_path, feature_print=audio_print)
    assert model.dimension == audio_print.dimension
    samples = read_clip(sorted((data_dir / "crying_baby").glob("*.flac"))[0])
    from_feature = model(audio_print.feature(samples))  # QuantizedFeature: values, scales, offsets
    from_int8 = model(audio_print.transform_clip(samples))  # bare int8: the model keeps the scales/offsets
    from_float = model(audio_print.features(samples))  # unquantised floats
    for label in model.labels:
        assert from_feature[label] == pytest.approx(from_int8[label], abs=1e-6)
        assert from_feature[label] == pytest.approx(from_float[label], abs=0.02)
    assert np.isclose(sum(from_feature.values()), 1.0, atol=1e-5)
    with pytest.raises(FeaturePrintMismatchError):
        load_classifier(result.model_path, feature_print=featureprint.AudioFeaturePrint(mel_statistics=("mean",)))


def test_values_scales_pairs_get_the_feature_print_offsets(tmp_path, dev_data, audio_print):
    """``cadence evaluate`` passes (int8 values, scales) pairs: the model adds the offsets it knows."""
    data_dir = make_subset(dev_data, tmp_path / "data", {"crying_baby": 6, "vacuum_cleaner": 6})
    cfg = TrainingConfig(classifier="logistic", validation_split=0)
    result = Trainer(audio_print, cfg, state_dir=tmp_path / "state").train(load_dataset(data_dir), tmp_path / "m.model")
    model = load_classifier(result.model_path, feature_print=audio_print)
    clips = [read_clip(p) for p in sorted(data_dir.rglob("*.flac"))[:4]]
    pairs = [(audio_print.transform_clip(s), audio_print.scales) for s in clips]
    features = [audio_print.feature(s) for s in clips]
    np.testing.assert_allclose(model.predict_proba(pairs), model.predict_proba(features), atol=1e-6)
