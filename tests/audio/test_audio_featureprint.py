"""The audio feature print on real clips: shapes, determinism, quantisation, windows, model files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from device.audio.featureprint import MODULATION_EDGES_HZ, AudioFeaturePrint, QuantizedFeature, modulation_spectrum
from device.audio.frontend import SpeechEmbedding, log_mel
from device.audio.sources import SAMPLE_RATE, load_audio, read_audio
from device.components import TemporalFeature, run


@pytest.fixture(scope="module")
def clips(dev_data):
    """Two clips of every dev label."""
    labels = sorted(p.name for p in dev_data.iterdir() if p.is_dir())
    return [load_audio(sorted((dev_data / label).glob("*.flac"))[i]) for label in labels for i in (0, 5)]


@pytest.fixture(scope="module")
def clip_features(clips, feature_print):
    """Float features of each clip, computed once."""
    return np.stack([feature_print.features(x) for x in clips])


def test_shapes_and_types(feature_print, clips):
    fp = feature_print
    # log-mel: 6 statistics per band, modulation: 16 groups x (6 octave shares + level), embedding: mean + max
    assert fp.mel_dimension == 64 * 6 + 16 * 7 and fp.dimension == fp.mel_dimension + 96 * 2 == 688
    assert fp.scales.shape == fp.centres.shape == (fp.dimension,) and np.all(fp.scales > 0)
    q = fp.transform_clip(clips[0])
    assert q.dtype == np.int8 and q.shape == (fp.dimension,)
    assert log_mel(clips[0]).shape == (1 + (len(clips[0]) - 400) // 160, 64)
    emb = fp._speech_embedding()
    mel = emb.mel(clips[0])
    assert mel.shape[1] == 32 and abs(len(mel) - (len(clips[0]) / 160 - 3)) <= 1
    assert emb.embed(mel, stride=8).shape == ((len(mel) - 76) // 8 + 1, 96)
    # very short input (below one embedding window) is padded, not an error
    assert fp.transform_clip(np.zeros(4000, dtype=np.float32)).shape == (fp.dimension,)


def test_deterministic_across_calls_and_instances(feature_print, clips):
    a = feature_print.transform_clip(clips[3])
    b = feature_print.transform_clip(clips[3])
    c = AudioFeaturePrint().transform_clip(clips[3])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert AudioFeaturePrint().fingerprint() == feature_print.fingerprint()


def test_features_separate_different_sounds(clip_features):
    feats = clip_features
    # two clips of one label are closer than clips of different labels, on average
    d = np.linalg.norm(feats[:, None] - feats[None], axis=2)
    same = np.mean([d[i, i + 1] for i in range(0, len(feats), 2)])
    other = np.mean([d[i, j] for i in range(len(feats)) for j in range(len(feats)) if i // 2 != j // 2])
    assert same < other


def test_quantisation_error_is_bounded(feature_print, clips, clip_features):
    fp = feature_print
    q = fp.quantize(clip_features)
    np.testing.assert_array_equal(q[0], fp.transform_clip(clips[0]))
    back = fp.dequantize(q)
    inside = np.abs(q) < 127
    # rounding error at most half a step wherever the value is inside the range
    err = np.abs(back - clip_features)
    assert np.all(err[inside] <= np.broadcast_to(fp.scales / 2 + 1e-4, err.shape)[inside])
    # saturation is rare on real clips
    assert (~inside).mean() <= 0.01
    # and the step is small against how much each dimension varies between clips
    spread = clip_features.std(axis=0)
    assert np.median(fp.scales / 2 / np.maximum(spread, 1e-6)) < 0.1
    # QuantizedFeature dequantises the same way, as an array too
    qf = fp.feature(clips[0])
    assert isinstance(qf, QuantizedFeature) and qf.values.dtype == np.int8
    np.testing.assert_array_equal(np.asarray(qf), fp.dequantize(qf.values))
    assert qf.end == pytest.approx(len(clips[0]) / SAMPLE_RATE)


def test_fingerprint_follows_content_and_windowing(feature_print):
    # a classifier learns from the stream's windows: windows of another layout are other training examples
    assert AudioFeaturePrint(window_duration=1.0, overlap_factor=0.0).fingerprint() != feature_print.fingerprint()
    assert AudioFeaturePrint(window_duration=3.0, overlap_factor=0.5).fingerprint() == feature_print.fingerprint()
    assert AudioFeaturePrint(mel_statistics=("mean",)).fingerprint() != feature_print.fingerprint()
    assert AudioFeaturePrint(embedding_stride=8).fingerprint() != feature_print.fingerprint()
    assert AudioFeaturePrint(modulation_groups=8).fingerprint() != feature_print.fingerprint()
    assert AudioFeaturePrint(modulation_groups=0).dimension == 64 * 6 + 96 * 2
    for bad in (
        {"window_duration": 0.2}, {"window_duration": 20}, {"overlap_factor": 1.0}, {"mel_statistics": ("median",)},
        {"modulation_groups": 5}, {"modulation_groups": -1},
    ):
        with pytest.raises(ValueError):
            AudioFeaturePrint(**bad)


def test_stream_windows_match_the_clip_form(dev_data, feature_print):
    path = sorted((dev_data / "vacuum_cleaner").glob("*.flac"))[0]
    samples = load_audio(path)
    fp = AudioFeaturePrint(window_duration=2.0, overlap_factor=0.5)
    items = run(fp(read_audio(path, chunk_duration=0.1)))
    duration = len(samples) / SAMPLE_RATE
    full = int((duration - 2.0) // 1.0) + 1
    assert len(items) in (full, full + 1)  # + a final window aligned to the end
    for k, item in enumerate(items[:full]):
        assert isinstance(item.value, QuantizedFeature)
        assert item.value.start == pytest.approx(k * 1.0) and item.value.end == pytest.approx(k * 1.0 + 2.0)
        assert item.timestamp == pytest.approx(item.value.end)
        block = samples[k * SAMPLE_RATE : k * SAMPLE_RATE + 2 * SAMPLE_RATE]
        clip_form = fp.transform_clip(block).astype(int)
        streamed = item.value.values.astype(int)
        mel_dims = fp.mel_dimension  # log-mel statistics and modulation spectrum
        # log-mel statistics: the very same frames
        np.testing.assert_array_equal(streamed[:mel_dims], clip_form[:mel_dims])
        # embeddings: identical when the window starts on the stream's embedding grid,
        # otherwise the pooled embeddings are shifted by less than one stride
        if (k * SAMPLE_RATE) % (160 * fp.embedding_stride) == 0:
            np.testing.assert_array_equal(streamed[mel_dims:], clip_form[mel_dims:])
        else:
            assert np.mean(np.abs(streamed[mel_dims:] - clip_form[mel_dims:])) < 16  # of ±127
        assert item.value.rms_db == pytest.approx(10 * np.log10(np.mean(block.astype(np.float64) ** 2)), abs=0.01)
    assert items[-1].value.end == pytest.approx(duration, abs=1e-3)
    # with the default windows (3 s every 1.5 s) the embedding grid matches: identical vectors
    default = AudioFeaturePrint()
    for item in run(default(read_audio(path, chunk_duration=0.1)))[:-1]:
        a = int(round(item.value.start * SAMPLE_RATE))
        np.testing.assert_array_equal(item.value.values, default.transform_clip(samples[a : a + 3 * SAMPLE_RATE]))


def test_stream_resets_per_segment_and_handles_short_streams(feature_print):
    fp = AudioFeaturePrint(window_duration=1.0, overlap_factor=0.0)
    rng = np.random.default_rng(1)

    async def stream():
        for seg, seconds in (("a", 2.5), ("b", 0.7), ("c", 0.3)):
            for i in range(int(seconds * 10)):
                yield TemporalFeature((0.1 * rng.standard_normal(1600)).astype(np.float32), i / 10, seg)

    items = run(fp(stream()))
    by_segment = {}
    for it in items:
        by_segment.setdefault(it.segment, []).append((round(it.value.start, 2), round(it.value.end, 2)))
    assert by_segment["a"] == [(0.0, 1.0), (1.0, 2.0), (1.5, 2.5)]
    assert by_segment["b"] == [(0.0, 0.7)]  # shorter than a window: one feature of what there was
    assert "c" not in by_segment  # under 0.5 s: nothing to say


def test_corrupt_or_missing_model_files_are_refused(tmp_path):
    from device.inference import InferenceError
    from device.pretrained import ModelFileError, models_dir

    src = models_dir()
    local = tmp_path / "models"
    local.mkdir()
    shutil.copy(src / "manifest.json", local)
    for name in ("melspectrogram.tflite", "embedding_model.tflite"):
        shutil.copy(src / name, local)
    assert AudioFeaturePrint(models_dir=local).fingerprint() == AudioFeaturePrint().fingerprint()
    data = (local / "embedding_model.tflite").read_bytes()
    (local / "embedding_model.tflite").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="embedding_model.tflite.*SHA-256"):
        AudioFeaturePrint(models_dir=local).transform_clip(np.zeros(16000, dtype=np.float32))
    (local / "melspectrogram.tflite").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        AudioFeaturePrint(models_dir=local).fingerprint()
    # a damaged file that bypasses the manifest is still refused with one line
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InferenceError, match="bad.tflite") as info:
        SpeechEmbedding(melspectrogram_path=src / "melspectrogram.tflite", embedding_path=bad)
    assert "\n" not in str(info.value)


def _clicks(rate_hz: float, seconds: float = 3.0, rng_seed: int = 0) -> np.ndarray:
    """Quiet noise with a short loud burst every 1 / rate_hz seconds."""
    rng = np.random.default_rng(rng_seed)
    x = (0.003 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    for start in np.arange(0.1, seconds - 0.05, 1.0 / rate_hz):
        a = int(start * SAMPLE_RATE)
        x[a : a + 320] += (0.5 * rng.standard_normal(320) * np.exp(-np.arange(320) / 80)).astype(np.float32)
    return x


def test_modulation_spectrum_finds_the_blow_rate():
    # regular blows leave (almost) no fluctuation below their rate: the octave
    # band holding the rate has a far larger share than every band below it
    edges = MODULATION_EDGES_HZ
    for rate in (1.5, 3.0, 6.0):
        spec = modulation_spectrum(log_mel(_clicks(rate)), groups=16)
        shares = spec[: 16 * 6].reshape(6, 16).mean(axis=1)  # log shares per octave band, mean over groups
        band = int(np.searchsorted(edges, rate, side="right")) - 1
        assert np.all(shares[:band] < shares[band] - 2.0), (rate, shares)
    # steady noise fluctuates far less than blows
    noise = 0.1 * np.random.default_rng(2).standard_normal(48000).astype(np.float32)
    steady = modulation_spectrum(log_mel(noise))
    assert steady[-16:].mean() < modulation_spectrum(log_mel(_clicks(3.0)))[-16:].mean() - 1.0


def test_impulsive_bands_have_heavy_tails(feature_print):
    # one impact in quiet noise: positive skew and high kurtosis in every band; steady noise: neither
    fp = AudioFeaturePrint(mel_statistics=("skew", "kurt"), embedding_statistics=(), modulation_groups=0)
    impact = fp.raw_features(_clicks(0.2))  # a single burst in 3 s
    noise = fp.raw_features(0.1 * np.random.default_rng(3).standard_normal(48000).astype(np.float32))
    assert np.median(impact[:64]) > 2 and np.median(noise[:64]) < 1
    assert np.median(impact[64:]) > np.median(noise[64:]) + 1.5
