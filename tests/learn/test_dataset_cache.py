"""Training data discovery, the recording split and the feature cache."""

from __future__ import annotations


import numpy as np
import pytest
from learn_data import make_subset
from simple_print import SimpleFeaturePrint

from device.learn.cache import FeatureCache
from device.learn.dataset import (
    DatasetError,
    load_dataset,
    read_manifest,
    recording_id,
    split_by_recording,
)


def test_recording_ids_group_takes():
    assert recording_id("snu_027004.flac") == "snu_027"
    assert recording_id("crying_baby_1-211527-B.flac") == "crying_baby_1-211527"
    assert recording_id("crying_baby_margot.m4a_12.flac") == "crying_baby_margot.m4a"
    assert recording_id("knock_20261129-130501_3.wav") == "knock_20261129-130501"


def test_split_is_by_recording_and_stratified(dev_data):
    data = load_dataset(dev_data)
    assert len(data) == 437 and len(data.labels) == 7
    train, val = split_by_recording(data.clips, 0.2, seed=1)
    assert len(train) + len(val) == 437
    assert not {c.group for c in train} & {c.group for c in val}
    for label in data.labels:
        n = sum(c.label == label for c in data.clips)
        n_val = sum(c.label == label for c in val)
        assert 0 < n_val < n
        assert abs(n_val / n - 0.2) < 0.15
    # the same seed gives the same split
    assert split_by_recording(data.clips, 0.2, seed=1)[1] == val


def test_manifest_and_bad_inputs(tmp_path, dev_data):
    manifest = tmp_path / "clips.csv"
    a = sorted((dev_data / "ball_drop").glob("*.flac"))[:3]
    b = sorted((dev_data / "crying_baby").glob("*.flac"))[:2]
    lines = ["path,label"] + [f"{p},ball_drop" for p in a] + [f"{p},crying_baby" for p in b] + ["notes.txt,x", ",y"]
    manifest.write_text("\n".join(lines) + "\n")
    data = read_manifest(manifest)
    assert [c.label for c in data.clips] == ["ball_drop"] * 3 + ["crying_baby"] * 2
    assert len(data.problems) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\nx.wav,a\n")
    with pytest.raises(DatasetError, match="path,label"):
        load_dataset(bad)
    with pytest.raises(DatasetError, match="no such data folder"):
        load_dataset(tmp_path / "missing")
    one = make_subset(dev_data, tmp_path / "one", {"ball_drop": 2})
    with pytest.raises(DatasetError, match="two labels"):
        load_dataset(one)


def test_cache_is_incremental_and_invalidated(tmp_path, dev_data):
    data_dir = make_subset(dev_data, tmp_path / "data", {"ball_drop": 12, "crying_baby": 8})
    fp = SimpleFeaturePrint()
    cache = FeatureCache(tmp_path / "cache", fp, shard_size=5)
    report, hashes = cache.update(load_dataset(data_dir).clips)
    assert report.extracted == 20 and report.reused == 0 and fp.calls == 20
    assert len(list(cache.directory.glob("shard-*.values.npy"))) == 4
    keys = list(hashes.values())
    first, owner = cache.read(keys)
    counts = cache.window_counts(keys)
    assert first.shape == (counts.sum(), fp.dimension) and first.dtype == np.float32
    assert np.all(counts >= 1) and np.array_equal(owner, np.repeat(np.arange(20), counts))

    # new clips: only those are extracted; a fresh cache object reads the index back
    make_subset(dev_data, tmp_path / "data", {"chair_drag": 6})
    cache = FeatureCache(tmp_path / "cache", fp, shard_size=5)
    report, hashes = cache.update(load_dataset(data_dir).clips)
    assert report.extracted == 6 and report.reused == 20 and fp.calls == 26
    np.testing.assert_array_equal(cache.read(keys)[0], first)

    # a deleted clip drops out of the cache
    gone = sorted((data_dir / "ball_drop").glob("*.flac"))[0]
    gone_key = hashes[gone.resolve()]
    gone.unlink()
    report, hashes = cache.update(load_dataset(data_dir).clips)
    assert report.removed == 1 and gone_key not in cache and len(cache) == 25
    assert report.extracted == 0
    assert cache.check_consistency() == []

    # a changed feature print invalidates everything
    other = SimpleFeaturePrint(variant="b")
    cache2 = FeatureCache(tmp_path / "cache", other, shard_size=5)
    report, _ = cache2.update(load_dataset(data_dir).clips)
    assert report.extracted == 25 and not cache.directory.exists()


def test_chunks_cover_all_keys_once(tmp_path, dev_data):
    data_dir = make_subset(dev_data, tmp_path / "data", {"ball_drop": 9, "crying_baby": 8})
    cache = FeatureCache(tmp_path / "cache", SimpleFeaturePrint(), shard_size=4)
    _, hashes = cache.update(load_dataset(data_dir).clips)
    keys = list(hashes.values())
    full, owner = cache.read(keys)
    seen = []
    for x, pos in cache.iter_chunks(keys, 5, rng=np.random.default_rng(0)):
        assert len(pos) <= 5
        seen += [(int(p), row.tobytes()) for p, row in zip(pos, x)]
    # every window once, labelled with its own clip, in a shuffled order
    assert sorted(seen) == sorted((int(p), row.tobytes()) for p, row in zip(owner, full))
    assert [p for p, _ in seen] != sorted(p for p, _ in seen)


def test_unreadable_and_corrupt_files_are_skipped(tmp_path, dev_data):
    data_dir = make_subset(dev_data, tmp_path / "data", {"ball_drop": 5, "crying_baby": 5})
    (data_dir / "ball_drop" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    (data_dir / "ball_drop" / "empty.flac").write_bytes(b"")
    cache = FeatureCache(tmp_path / "cache", SimpleFeaturePrint(), shard_size=4)
    report, hashes = cache.update(load_dataset(data_dir).clips)
    assert report.extracted == 10 and len(report.skipped) == 2
    assert all("broken.wav" in s or "empty.flac" in s for s in report.skipped)
    assert len(hashes) == 10
    # a damaged shard is detected, dropped and re-extracted
    shard = sorted(cache.directory.glob("shard-*.values.npy"))[0]
    raw = bytearray(shard.read_bytes())
    raw[-3] ^= 0x55
    shard.write_bytes(bytes(raw))
    assert cache.check_consistency() != []
    report, _ = cache.update(load_dataset(data_dir).clips)
    assert report.extracted == 4 and cache.check_consistency() == []


def test_windows_of_a_clip_are_the_featurizers_and_short_clips_are_reported(tmp_path, dev_data):
    """A clip's examples are its stream's windows, in order; a clip with no window is named, not used."""
    import soundfile as sf

    data_dir = make_subset(dev_data, tmp_path / "data", {"ball_drop": 3, "crying_baby": 3})
    sf.write(data_dir / "ball_drop" / "blip.wav", np.zeros(4000, np.float32), 16000)  # 0.25 s
    sf.write(data_dir / "crying_baby" / "long.mp3", np.tile(np.sin(np.arange(16000) / 5.0), 12).astype(np.float32) * 0.3, 16000)
    fp = SimpleFeaturePrint()
    clips = load_dataset(data_dir).clips
    assert any(c.path.suffix == ".mp3" for c in clips)  # training reads MP3 like `cadence classify`
    with FeatureCache(tmp_path / "cache", fp, shard_size=2) as cache:
        report, hashes = cache.update(clips)
        (short,) = report.skipped
        assert "blip.wav" in short and "too short" in short and "\n" not in short
        assert len(hashes) == len(clips) - 1
        for clip in [c for c in clips if c.path.name != "blip.wav"][:2] + [c for c in clips if c.path.suffix == ".mp3"]:
            x, _ = cache.read([hashes[clip.path]])
            want = np.stack([w.dequantize() for w in fp.file_windows(clip.path)])
            np.testing.assert_array_equal(x, want)
        mp3 = next(c for c in clips if c.path.suffix == ".mp3")
        assert cache.window_counts([hashes[mp3.path]])[0] == 11  # 12 s: 2 s windows every 1 s


def test_a_cache_of_another_format_is_rebuilt_with_a_note(tmp_path, dev_data):
    import json

    data_dir = make_subset(dev_data, tmp_path / "data", {"ball_drop": 2, "crying_baby": 2})
    with FeatureCache(tmp_path / "cache", SimpleFeaturePrint()) as cache:
        cache.update(load_dataset(data_dir).clips)
        index = cache.directory / "index.json"
    old = json.loads(index.read_text())
    old["version"] = 1
    index.write_text(json.dumps(old))
    with FeatureCache(tmp_path / "cache", SimpleFeaturePrint()) as cache:
        report, _ = cache.update(load_dataset(data_dir).clips)
    (note,) = report.notes
    assert "format 1" in note and "rebuilt" in note and report.extracted == 4


def test_parallel_extraction_gives_the_same_cache(tmp_path, dev_data):
    data_dir = make_subset(dev_data, tmp_path / "data", {"ball_drop": 8, "crying_baby": 8})
    (data_dir / "crying_baby" / "bad.wav").write_bytes(b"not audio")
    clips = load_dataset(data_dir).clips
    one = FeatureCache(tmp_path / "one", SimpleFeaturePrint(), shard_size=5)
    r1, h1 = one.update(clips)
    two = FeatureCache(tmp_path / "two", SimpleFeaturePrint(), shard_size=5)
    r2, h2 = two.update(clips, jobs=2)
    assert h1 == h2 and r1.extracted == r2.extracted == 16 and len(r2.skipped) == 1
    keys = list(h1.values())
    np.testing.assert_array_equal(one.read(keys)[0], two.read(keys)[0])
    assert one.index["entries"] == two.index["entries"]


def test_windows_keep_their_times_and_levels_and_quiet_ones_can_be_left_out(tmp_path, dev_data):
    """What an evaluation replays through the live detector, and what training leaves out below the gate."""
    data_dir = make_subset(dev_data, tmp_path / "data", {"ball_drop": 4, "crying_baby": 3})
    fp = SimpleFeaturePrint()
    clips = load_dataset(data_dir).clips
    with FeatureCache(tmp_path / "cache", fp, shard_size=3) as cache:
        _, hashes = cache.update(clips)
        keys = [hashes[c.path] for c in clips]
        times, owner = cache.window_info(keys)
        want = [(w.start, w.end, w.rms_db) for c in clips for w in fp.file_windows(c.path)]
        np.testing.assert_allclose(times, np.array(want, dtype=np.float32), rtol=1e-6)
        assert np.array_equal(owner, cache.read(keys)[1])
        gate = float(np.median(times[:, 2]))
        loud = times[:, 2] >= gate
        x_all, _ = cache.read(keys)
        x, kept = cache.read(keys, min_level=gate)
        np.testing.assert_array_equal(x, x_all[loud])
        assert np.array_equal(kept, owner[loud]) and 0 < len(x) < len(x_all)
        chunked = np.concatenate([x for x, _ in cache.iter_chunks(keys, 4, min_level=gate)])
        np.testing.assert_array_equal(chunked, x)
        assert cache.examples(keys, [c.label for c in clips], ["ball_drop", "crying_baby"], 4, min_level=gate).count == len(x)


@pytest.mark.parametrize("label", ["a/b", "../../etc/evil", "_other", "two\nlines", ".hidden", "a}}{{b", "say \"hi\""])
def test_a_manifest_label_must_be_a_plain_name(tmp_path, dev_data, label):
    """Labels of a CSV manifest follow the folder rule (issue 17 #7)."""
    import csv

    clip = next((dev_data / "crying_baby").glob("*.flac"))
    manifest = tmp_path / "clips.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerow([str(clip), "crying_baby"])
        writer.writerow([str(clip), label])
    with pytest.raises(DatasetError, match=r"clips.csv:3: label .* is not a valid name"):
        read_manifest(manifest)


def test_a_cache_of_another_kind_is_kept(tmp_path, dev_data):
    """Sound and exercise training share the state's feature-cache root: training one must
    not throw away the other's windows (only an older version of its own kind)."""
    data_dir = make_subset(dev_data, tmp_path / "data", {"ball_drop": 3, "crying_baby": 3})
    clips = load_dataset(data_dir).clips

    class OtherKind(SimpleFeaturePrint):  # another featurizer class, as exercise features are beside sound
        pass

    sound = FeatureCache(tmp_path / "cache", SimpleFeaturePrint(), shard_size=5)
    sound.update(clips)
    other = FeatureCache(tmp_path / "cache", OtherKind(variant="x"), shard_size=5)
    other.update(clips)
    assert sound.directory.is_dir() and other.directory.is_dir()
    again = FeatureCache(tmp_path / "cache", SimpleFeaturePrint(), shard_size=5)
    report, _ = again.update(clips)
    assert report.extracted == 0 and report.reused == 6 and other.directory.is_dir()
    # a new version of the other kind replaces only its own old cache
    FeatureCache(tmp_path / "cache", OtherKind(variant="y"), shard_size=5).update(clips)
    assert not other.directory.exists() and sound.directory.is_dir()
