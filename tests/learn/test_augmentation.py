"""Augmented copies for few-shot training: deterministic, label-preserving, cached once, used only for fitting."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
from simple_print import SimpleFeaturePrint, load_clip

from device.audio.augmentation import AudioAugmenter
from device.learn.cache import FeatureCache, source_of
from device.learn.dataset import load_dataset
from device.learn.training import AUTO_AUGMENT_COPIES, Trainer, TrainingConfig, TrainingError


@pytest.fixture(scope="module")
def clip(dev_data):
    path = sorted((dev_data / "hammering").glob("*.flac"))[0]
    return load_clip(path), hashlib.sha256(path.read_bytes()).hexdigest()


def _rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x.astype(np.float64)))) + 1e-12)


def test_copies_are_deterministic_bounded_and_different(clip):
    x, digest = clip
    aug = AudioAugmenter()
    first = aug.copy(x, digest, 0)
    assert np.array_equal(first, aug.copy(x, digest, 0))  # the cache and resume rely on it
    others = [aug.copy(x, digest, i) for i in range(1, 6)]
    assert all(not np.array_equal(first[: len(o)], o[: len(first)]) for o in others)
    for y in [first, *others]:
        assert y.dtype == np.float32 and np.all(np.abs(y) <= 1.0)
        # at most 15 % cropped and 6 % faster or slower
        assert 0.85 * 0.94 * len(x) <= len(y) <= 1.065 * len(x)
        # level within the gain range plus what the colouring adds or removes
        assert abs(_rms_db(y) - _rms_db(x)) < 6 + 6 + 1
    # another settings key gives other copies
    assert AudioAugmenter(gain_db=3.0).key != aug.key
    assert not np.array_equal(AudioAugmenter(gain_db=3.0).copy(x, digest, 0)[:1000], first[:1000])
    with pytest.raises(ValueError, match="noise_probability"):
        AudioAugmenter(noise_probability=1.5)


def test_copies_keep_what_the_sound_is(clip, dev_data):
    """Every copy's long-term spectrum stays nearer its own clip's than another sound's."""
    x, digest = clip
    vacuum = load_clip(sorted((dev_data / "vacuum_cleaner").glob("*.flac"))[0])

    def spectrum(y):
        bands = np.abs(np.fft.rfft(y[:32000], 32000)) ** 2
        return 10 * np.log10(bands[:16000].reshape(40, 400).mean(axis=1) + 1e-12)  # 40 bands of 200 Hz

    own, other = spectrum(x), spectrum(vacuum)
    for i in range(8):
        c = spectrum(AudioAugmenter().copy(x, digest, i))
        shape = lambda s: s - s.mean()  # noqa: E731 - the level may change, the shape less
        assert np.mean(np.abs(shape(c) - shape(own))) < np.mean(np.abs(shape(other) - shape(own)))


def test_cache_keeps_copies_once_and_drops_them_with_their_clip(tmp_path, small_data):
    data = load_dataset(small_data)
    fp = SimpleFeaturePrint()
    aug = AudioAugmenter()
    with FeatureCache(tmp_path / "cache", fp) as cache:
        _, hashes = cache.update(data.clips)
        pairs = [(c, hashes[c.path]) for c in data.clips[:5]]
        report, copies = cache.augment(pairs, aug, 3)
        assert report.extracted == 15 and fp.calls == 60 + 15
        assert all(len(v) == 3 and all(source_of(k) == d for k in v) for d, v in copies.items())
        assert len(cache) == 60 and cache.copies == 15
        # a copy's features differ from its clip's
        first = pairs[0][1]
        assert not np.array_equal(cache.read([first]), cache.read([copies[first][0]]))
        report, again = cache.augment(pairs, aug, 4)  # one more copy each: only that is extracted
        assert report.extracted == 5 and report.reused == 15 and again[first][:3] == copies[first]
    gone = data.clips[0].path
    gone.unlink()
    with FeatureCache(tmp_path / "cache", fp) as cache:
        cache.update(load_dataset(small_data).clips)
        assert cache.copies == 16 and len(cache) == 59  # the deleted clip's copies went with it
        assert not any(source_of(k) == hashes[gone] for k in cache.index["entries"])


def test_few_clips_train_with_copies_and_validate_without(tmp_path, small_data, capsys):
    data = load_dataset(small_data)  # median label: 15 clips → auto: 8 copies, logistic
    cfg = TrainingConfig(chunk_size=16)
    result = Trainer(SimpleFeaturePrint(), cfg, state_dir=tmp_path).train(data, tmp_path / "m.model")
    train, val = result.report["clips"]["train"], result.report["clips"]["validation"]
    assert result.report["augmentation"]["copies_per_clip"] == AUTO_AUGMENT_COPIES
    assert result.report["augmentation"]["extracted"] == AUTO_AUGMENT_COPIES * 60
    assert result.model.metadata["refit"] == {"clips": train + val, "augmented_copies": AUTO_AUGMENT_COPIES * 60}
    assert result.validation.count == val  # validation: original clips only
    assert any("8 augmented copies per training clip" in n for n in result.report["notes"])
    # the copies are cached: training again extracts nothing, and gives the same model
    fp = SimpleFeaturePrint()
    again = Trainer(fp, TrainingConfig(chunk_size=16), state_dir=tmp_path).train(data, tmp_path / "m2.model")
    assert fp.calls == 0 and again.report["augmentation"]["reused"] == AUTO_AUGMENT_COPIES * 60
    assert np.array_equal(again.model.weights, result.model.weights)
    # --augment 0 turns it off; many clips per label turn it off by default
    none = Trainer(SimpleFeaturePrint(), TrainingConfig(augment_copies=0), state_dir=tmp_path).train(data, tmp_path / "n.model")
    assert none.model.metadata["refit"]["augmented_copies"] == 0
    assert TrainingConfig().resolved(["a"] * 30 + ["b"] * 40)[0].augment_copies == 0
    with pytest.raises(TrainingError, match="--augment must be between 0 and 100"):
        TrainingConfig(augment_copies=-1).validate()


def test_network_resume_with_copies_matches_an_uninterrupted_run(tmp_path, small_data):
    data = load_dataset(small_data)
    cfg = dict(classifier="network", augment_copies=2, max_epochs=4, checkpoint_every=1, hidden_unit_counts=(8,),
               chunk_size=32, patience=100, refit=False)
    whole = Trainer(SimpleFeaturePrint(), TrainingConfig(**cfg), state_dir=tmp_path / "a").train(data, tmp_path / "a.model")

    class Stop(Exception):
        pass

    def stop_after_two(event):
        if event.origin == "train" and event.item_count == 2:
            raise Stop

    state = tmp_path / "b"
    with pytest.raises(Stop):
        Trainer(SimpleFeaturePrint(), TrainingConfig(**cfg), state_dir=state, on_event=stop_after_two).train(
            data, tmp_path / "b.model")
    resumed = Trainer(SimpleFeaturePrint(), TrainingConfig(**cfg), state_dir=state).train(
        data, tmp_path / "b.model", resume=True)
    assert any("resumed" in n for n in resumed.report["notes"])
    for a, b in zip(whole.model.weights, resumed.model.weights):
        assert np.array_equal(a, b)
    # other augmentation settings are other training data: --resume refuses
    shutil.rmtree(state)
    with pytest.raises(Stop):
        Trainer(SimpleFeaturePrint(), TrainingConfig(**cfg), state_dir=state, on_event=stop_after_two).train(
            data, tmp_path / "b.model")
    with pytest.raises(TrainingError, match="changed since this checkpoint"):
        Trainer(SimpleFeaturePrint(), TrainingConfig(**(cfg | {"augment_copies": 3})), state_dir=state).train(
            data, tmp_path / "b.model", resume=True)
