"""Augmented copies for few-shot training: deterministic, label-preserving, cached once, used only for fitting."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
from simple_print import SimpleFeaturePrint

from device.audio.augmentation import AudioAugmenter
from device.audio.sources import load_audio
from device.learn.cache import FeatureCache, source_of
from device.learn.dataset import load_dataset
from device.learn.training import AUTO_AUGMENT_COPIES, Trainer, TrainingConfig, TrainingError
from device.learn.training import FeatureCache as TrainingCache


@pytest.fixture(scope="module")
def clip(dev_data):
    path = sorted((dev_data / "hammering").glob("*.flac"))[0]
    return load_audio(path), hashlib.sha256(path.read_bytes()).hexdigest()


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
    # a loud clip's copies are scaled into full scale, never clipped (clipping would mark loud labels)
    loud = (x / np.max(np.abs(x))).astype(np.float32)
    for i in range(8):
        y = aug.copy(loud, digest, i)
        assert np.max(np.abs(y)) <= 1.0 and np.mean(np.abs(y) > 0.999) < 1e-3


def test_each_change_does_what_it_says(clip):
    """Alone, each change stays within its documented range (what the held-out gain in docs/audio.md rests on)."""
    x, digest = clip
    off = dict(eq_probability=0.0, speed_probability=0.0, noise_probability=0.0, crop_probability=0.0)
    for i in range(6):
        y = AudioAugmenter(**off).copy(x, digest, i)  # gain only: the same samples, scaled
        ratio = float(np.dot(y, x) / np.dot(x, x))
        assert np.allclose(y, ratio * x, atol=1e-6) and abs(20 * np.log10(ratio)) <= 6.0 + 1e-6

    def shape(y):  # level-free spectrum in 40 bands of 200 Hz
        bands = np.abs(np.fft.rfft(y[:32000], 32000)) ** 2
        db = 10 * np.log10(bands[:16000].reshape(40, 400).mean(axis=1) + 1e-12)
        return db - db.mean()

    eq_only = dict(off, eq_probability=1.0)
    deviation = [np.max(np.abs(shape(AudioAugmenter(gain_db=0.0, **eq_only).copy(x, digest, i)) - shape(x)))
                 for i in range(6)]
    assert 0.5 < max(deviation) <= 2 * 6.0  # ±6 dB around a level that moves by at most 6 dB
    lengths = {len(AudioAugmenter(gain_db=0.0, **dict(off, speed_probability=1.0)).copy(x, digest, i)) for i in range(6)}
    assert len(lengths) > 1 and all(0.94 * len(x) - 2 <= n <= len(x) / 0.94 + 2 for n in lengths)


def test_copies_of_a_long_clip_are_bounded(tmp_path, dev_data):
    """Only the first max_seconds of a clip are read and copied (a 60-minute recording stays out of memory)."""
    import soundfile as sf

    long = tmp_path / "long.flac"
    x = load_audio(sorted((dev_data / "hammering").glob("*.flac"))[0])
    sf.write(long, np.tile(x, 8), 16000)  # ~40 s
    aug = AudioAugmenter(max_seconds=6.0, crop_probability=0.0, speed_probability=0.0)
    head = aug.head(long)
    assert len(head) == 6 * 16000 and np.array_equal(head, np.tile(x, 2)[: 6 * 16000])
    windows = list(aug.file_windows(SimpleFeaturePrint(), long, "hash", 0))
    assert windows and max(w.end for w in windows) <= 6.0 and len(windows) == 5  # 2 s windows every 1 s of 6 s
    assert AudioAugmenter(max_seconds=6.0).key != AudioAugmenter().key
    with pytest.raises(ValueError, match="max_seconds"):
        AudioAugmenter(max_seconds=0)


def test_cache_keeps_copies_once_and_drops_them_with_their_clip(tmp_path, small_data):
    data = load_dataset(small_data)
    fp = SimpleFeaturePrint()
    aug = AudioAugmenter()
    with FeatureCache(tmp_path / "cache", fp) as cache:
        _, hashes = cache.update(data.clips)
        pairs = [(c, hashes[c.path]) for c in data.clips[:5]]
        report, copies = cache.augment(pairs, aug, 3)
        assert report.extracted == 15 and fp.calls == 60  # copies are made from the head read once per copy
        assert all(len(v) == 3 and all(source_of(k) == d for k in v) for d, v in copies.items())
        assert len(cache) == 60 and cache.copies == 15
        # a copy's features differ from its clip's
        first = pairs[0][1]
        assert not np.array_equal(cache.read([first])[0][:1], cache.read([copies[first][0]])[0][:1])
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
    cfg = TrainingConfig(chunk_size=64)
    result = Trainer(SimpleFeaturePrint(), cfg, state_dir=tmp_path).train(data, tmp_path / "m.model")
    train, val = result.report["clips"]["train"], result.report["clips"]["validation"]
    assert result.report["augmentation"]["copies_per_clip"] == AUTO_AUGMENT_COPIES
    assert result.report["augmentation"]["extracted"] == AUTO_AUGMENT_COPIES * 60
    assert result.model.metadata["refit"] == {"clips": train + val, "augmented_copies": AUTO_AUGMENT_COPIES * 60}
    assert result.validation.count == val  # validation: original clips only
    assert any("8 augmented copies per training clip" in n for n in result.report["notes"])
    # the copies are cached: training again extracts nothing, and gives the same model
    fp = SimpleFeaturePrint()
    again = Trainer(fp, TrainingConfig(chunk_size=64), state_dir=tmp_path).train(data, tmp_path / "m2.model")
    assert fp.calls == 0 and again.report["augmentation"]["reused"] == AUTO_AUGMENT_COPIES * 60
    assert np.array_equal(again.model.weights, result.model.weights)
    # --augment 0 turns it off; many clips per label turn it off by default
    none = Trainer(SimpleFeaturePrint(), TrainingConfig(augment_copies=0), state_dir=tmp_path).train(data, tmp_path / "n.model")
    assert none.model.metadata["refit"]["augmented_copies"] == 0
    assert TrainingConfig().resolved(["a"] * 100 + ["b"] * 120)[0].augment_copies == 0
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


def test_jobs_copies_and_stale_settings(tmp_path, small_data):
    """Copies made by worker processes equal those made in-process; copies of other settings are dropped."""
    data = load_dataset(small_data)
    pairs_of = lambda cache, hashes: [(c, hashes[c.path]) for c in data.clips[:6]]  # noqa: E731
    rows = []
    for jobs in (1, 2):
        with FeatureCache(tmp_path / f"cache{jobs}", SimpleFeaturePrint()) as cache:
            _, hashes = cache.update(data.clips)
            _, copies = cache.augment(pairs_of(cache, hashes), AudioAugmenter(), 3, jobs=jobs)
            keys = sorted(k for v in copies.values() for k in v)
            rows.append((keys, cache.read(keys)[0]))
    assert rows[0][0] == rows[1][0] and np.array_equal(rows[0][1], rows[1][1])
    with FeatureCache(tmp_path / "cache1", SimpleFeaturePrint()) as cache:
        _, hashes = cache.update(data.clips)
        report, _ = cache.augment(pairs_of(cache, hashes), AudioAugmenter(gain_db=3.0), 2)
        assert report.removed == 18 and cache.copies == 12 and report.extracted == 12
        assert cache.check_consistency() == []


def test_validation_clips_and_their_copies_never_fit_the_validated_model(tmp_path, small_data, monkeypatch):
    data = load_dataset(small_data)
    seen: list[list[str]] = []
    original = TrainingCache._windows

    def spy(self, keys, min_level=None):  # every read of windows, for fitting, metrics or the reject option
        seen.append(list(keys))
        return original(self, keys, min_level)

    monkeypatch.setattr(TrainingCache, "_windows", spy)
    cfg = TrainingConfig(classifier="network", augment_copies=2, max_epochs=2, hidden_unit_counts=(8,), refit=False)
    result = Trainer(SimpleFeaturePrint(), cfg, state_dir=tmp_path).train(data, tmp_path / "m.model")
    val_count = result.report["clips"]["validation"]
    assert val_count > 0
    with FeatureCache(tmp_path / "feature-cache", SimpleFeaturePrint()) as cache:
        hashes = cache.update(data.clips)[1]
    split = result.report["split"]
    assert sum(v["validation"] for v in split.values()) == val_count
    # the keys the model was fitted on: the lists with copies in them
    fitted = [keys for keys in seen if any("~" in k for k in keys)]
    assert fitted
    train_sources = {k for keys in fitted for k in keys if "~" not in k}
    copy_sources = {k.split("~")[0] for keys in fitted for k in keys if "~" in k}
    assert copy_sources == train_sources and len(train_sources) == result.report["clips"]["train"]
    assert len(train_sources | {hashes[c.path] for c in data.clips}) == len(data.clips)
    assert all(len(keys) == 3 * len(train_sources) for keys in fitted)  # each clip + 2 copies


def test_a_failing_copy_is_a_warning_and_its_clip_still_trains(tmp_path, small_data, monkeypatch):
    real = AudioAugmenter.copy

    def broken(self, samples, source, index):
        if index == 1:
            raise FloatingPointError("boom")
        return real(self, samples, source, index)

    monkeypatch.setattr(AudioAugmenter, "copy", broken)
    data = load_dataset(small_data)
    result = Trainer(SimpleFeaturePrint(), TrainingConfig(augment_copies=2), state_dir=tmp_path).train(
        data, tmp_path / "m.model")
    assert result.report["skipped"] == []
    failed = [w for w in result.report["warnings"] if "augmented copies failed (boom)" in w]
    assert len(failed) == 60 and result.model.metadata["refit"] == {"clips": 60, "augmented_copies": 60}


def test_a_clip_whose_copies_all_fail_is_said_once(tmp_path, small_data, monkeypatch):
    """One line per clip and problem, with a count — not one per copy (issue 17: a file
    changed during training repeated its warning for every copy)."""
    def broken(self, samples, source, index):
        raise OSError("the file changed")

    monkeypatch.setattr(AudioAugmenter, "copy", broken)
    data = load_dataset(small_data)
    result = Trainer(SimpleFeaturePrint(), TrainingConfig(augment_copies=4), state_dir=tmp_path).train(
        data, tmp_path / "m.model")
    failed = [w for w in result.report["warnings"] if "augmented copies failed (the file changed)" in w]
    assert len(failed) == len(data.clips) == len(set(failed))
    assert all(w.endswith("(4 times)") for w in failed)


def test_a_reused_trainer_follows_its_changed_config(tmp_path, small_data):
    from device.learn import FullyConnectedNetworkModel

    data = load_dataset(small_data)
    trainer = Trainer(SimpleFeaturePrint(), TrainingConfig(max_epochs=2, hidden_unit_counts=(8,)), state_dir=tmp_path)
    first = trainer.train(data, tmp_path / "m.model")
    assert first.report["classifier"] == "logistic" and trainer.config.classifier == "auto"
    trainer.config.classifier, trainer.config.augment_copies = "network", 0
    second = trainer.train(data, tmp_path / "m.model")
    assert isinstance(second.model, FullyConnectedNetworkModel)
    assert [n for n in second.report["notes"] if not n.startswith("not validated")] == []  # no auto choice said
    assert second.report["augmentation"]["copies_per_clip"] == 0


def test_resume_refuses_copies_of_another_augmenter_version(tmp_path, small_data, monkeypatch):
    import device.audio.augmentation as augmentation

    data = load_dataset(small_data)
    cfg = dict(classifier="network", augment_copies=1, max_epochs=3, checkpoint_every=1, hidden_unit_counts=(8,),
               patience=100)

    class Stop(Exception):
        pass

    def stop(event):  # after epoch 1's checkpoint
        if event.origin == "train" and event.item_count == 2:
            raise Stop

    with pytest.raises(Stop):
        Trainer(SimpleFeaturePrint(), TrainingConfig(**cfg), state_dir=tmp_path, on_event=stop).train(
            data, tmp_path / "m.model")
    monkeypatch.setattr(augmentation, "AUGMENTATION_VERSION", augmentation.AUGMENTATION_VERSION + 1)
    with pytest.raises(TrainingError, match="changed since this checkpoint"):
        Trainer(SimpleFeaturePrint(), TrainingConfig(**cfg), state_dir=tmp_path).train(
            data, tmp_path / "m.model", resume=True)
