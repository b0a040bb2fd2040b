"""Files the daemon and the CLI load cannot execute code.

A pickle payload whose ``__reduce__`` creates a marker file is planted under
every name Cadence loads from disk: the sound model, a registry version, a
training checkpoint, a feature-cache shard (with an index naming it and its
checksum) and the config. It is planted raw, as a numpy object array (.npy),
and inside a well-formed Cadence container with a valid checksum. Loading
must fail with one clear line and the marker must never appear."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from device.components import CadenceError
from device.daemon.config import ConfigError, load_config
from device.daemon.pipelines import load_sound_model
from device.daemon.model_holder import ModelHolder
from device.learn.cache import INDEX_VERSION, FeatureCache
from device.learn import load_classifier
from device.learn.registry import list_versions, rollback, versions_dir
from device.learn.checkpoint import read_checkpoint
from security_helpers import REPO


class Plant:
    """Unpickling this creates ``marker`` (an attacker would run a shell)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def raw_pickle(marker: Path) -> bytes:
    return pickle.dumps(Plant(marker), protocol=pickle.HIGHEST_PROTOCOL)


def npy_pickle(marker: Path) -> bytes:
    out = io.BytesIO()
    np.save(out, np.array([Plant(marker)], dtype=object), allow_pickle=True)
    return out.getvalue()


def container_pickle(marker: Path, kind: str = "cadence.classifier.logistic_regression") -> bytes:
    """A Cadence container, checksum and all, whose arrays are pickled objects."""
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w") as archive:
        for name in ("weights", "bias", "mean", "std"):
            archive.writestr(f"{name}.npy", npy_pickle(marker))
    payload = npz.getvalue()
    header = {"format": "cadence", "format_version": 1, "kind": kind,
              "payload_sha256": hashlib.sha256(payload).hexdigest(),
              "meta": {"labels": ["a", "b"], "model_version": 1}}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("meta.json", json.dumps(header))
        archive.writestr("arrays.npz", payload)
    return out.getvalue()


PAYLOADS = {"raw pickle": raw_pickle, "numpy object array": npy_pickle, "Cadence container": container_pickle}


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a planted pickle was executed"


def assert_clear(exc: BaseException, name: str) -> None:
    text = str(exc)
    assert isinstance(exc, CadenceError), repr(exc)
    assert text and "\n" not in text and name in text, text


def test_the_payload_is_live(tmp_path):
    """The planted bytes would run code if anything unpickled them."""
    for make in PAYLOADS.values():
        target = tmp_path / "proof"
        blob = make(target)
        if blob[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(blob)) as outer:
                blob = zipfile.ZipFile(io.BytesIO(outer.read("arrays.npz"))).read("weights.npy")
        if blob.startswith(b"\x93NUMPY"):
            np.load(io.BytesIO(blob), allow_pickle=True)
        else:
            pickle.loads(blob)
        assert target.exists()
        target.unlink()


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_sound_model(payload, tmp_path, marker):
    path = tmp_path / "models" / "sound.model"
    path.parent.mkdir()
    path.write_bytes(PAYLOADS[payload](marker))
    for load in (load_classifier, load_sound_model):
        with pytest.raises(CadenceError) as info:
            load(path)
        assert_clear(info.value, str(path))
    # the daemon's own path: the model holder refuses it and keeps running without a model
    holder = ModelHolder(path, load_sound_model)
    assert asyncio.run(holder.check(force=True)) == "failed"
    assert holder.current is None and "\n" not in holder.info["last_error"]
    # and the CLI: one line on stderr, exit 1
    audio = tmp_path / "a.wav"
    import soundfile

    soundfile.write(audio, np.zeros(16000, np.float32), 16000)
    proc = subprocess.run([sys.executable, "-m", "device", "classify", str(audio), "--model", str(path)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0 and str(path) in proc.stderr, proc.stderr


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_registry_version(payload, tmp_path, marker):
    model = tmp_path / "sound.model"
    version = versions_dir(model) / "0001-20260101T000000Z-deadbeef.model"
    version.parent.mkdir()
    version.write_bytes(PAYLOADS[payload](marker))
    [info] = list_versions(model)
    assert info["ok"] is False and str(version) in info["error"] and "\n" not in info["error"]
    with pytest.raises(CadenceError) as exc:
        rollback(model)
    assert_clear(exc.value, str(model))
    assert not model.exists()


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_training_checkpoint(payload, tmp_path, marker):
    ckpt = tmp_path / "checkpoints" / "0123456789abcdef"
    ckpt.mkdir(parents=True)
    path = ckpt / "checkpoint-000003.cadence"
    make = PAYLOADS[payload]
    path.write_bytes(make(marker, "cadence.training_checkpoint") if make is container_pickle else make(marker))
    notes: list[str] = []
    assert read_checkpoint(ckpt, "signature", notes) is None  # `--resume` starts over...
    assert any(path.name in note for note in notes), notes  # ...and says why


class _Print:
    """The smallest featurizer the cache needs: a fingerprint and a shape (nothing is extracted)."""

    dimension = 4
    scales = [1.0] * 4

    def fingerprint(self) -> str:
        return "f" * 64


@pytest.mark.parametrize("payload", ["numpy object array", "raw pickle"])
def test_feature_cache_shard(payload, tmp_path, marker):
    root = tmp_path / "feature-cache"
    folder = root / ("f" * 16)
    folder.mkdir(parents=True)
    shard = folder / "shard-000000.values.npy"
    shard.write_bytes(PAYLOADS[payload](marker))
    np.save(folder / "shard-000000.times.npy", np.zeros((1, 3), dtype=np.float32))  # an honest companion file
    key = "a" * 64
    index = {"format": "cadence.feature_cache", "version": INDEX_VERSION, "fingerprint": "f" * 64, "dimension": 4,
             "scales": [1.0] * 4, "next_shard": 1,
             "shards": {"000000": {"rows": 1, "sha256": hashlib.sha256(shard.read_bytes()).hexdigest(),
                                   "times_sha256": hashlib.sha256((folder / "shard-000000.times.npy").read_bytes()).hexdigest()}},
             "entries": {key: ["000000", 0, 1]}, "files": {}}
    (folder / "index.json").write_text(json.dumps(index))
    cache = FeatureCache(root, _Print())
    assert key in cache  # the index (with the shard's true checksum) is accepted as is
    with pytest.raises(CadenceError) as info:
        cache.read([key])
    assert_clear(info.value, shard.name)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_config(payload, tmp_path, marker):
    path = tmp_path / "cadence.toml"
    path.write_bytes(PAYLOADS[payload](marker))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert_clear(info.value, str(path))
    proc = subprocess.run([sys.executable, "-m", "device", "run", "--config", str(path)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and str(path) in proc.stderr, proc.stderr
