"""Fuzz what the daemon and the CLI load from disk: sound models (the Cadence
zip container), the model registry, training checkpoints and the feature cache.

Damaged bytes (truncated, bit-flipped, random), forged containers with a
valid checksum but wrong members or metadata, and arrays whose declared
shape is huge must give a model that works or one clear ``CadenceError``
line naming the file; nothing else may escape."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import given
from hypothesis import strategies as st

from device.components import Examples, encode_state
from device.learn.cache import FeatureCache
from device.learn import (
    FullyConnectedNetworkClassifier,
    LogisticRegressionModel,
    load_classifier,
)
from device.learn.dataset import Clip
from device.learn.registry import list_versions, publish, rollback, versions_dir
from device.learn.checkpoint import Progress, read_checkpoint, write_checkpoint
from fuzz_helpers import REJECTED, expect_clear, fuzz_settings, record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learn"))
from simple_print import SimpleFeaturePrint  # noqa: E402  (a small real feature print)

DIM = 6
# forged arrays (NaN, complex) make numpy warn on the way to being refused
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::numpy.exceptions.ComplexWarning")


def _network() -> object:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, DIM)).astype(np.float32)
    names = ["knock", "ring", "silence"] * 8
    est = FullyConnectedNetworkClassifier(hidden_unit_counts=(5,), max_iterations=1, batch_size=8)
    model = est.start(Examples.of(x, names))
    return est.update(model, x, names)


def _logistic() -> LogisticRegressionModel:
    rng = np.random.default_rng(1)
    return LogisticRegressionModel(["a", "b"], np.zeros(DIM), np.ones(DIM), rng.normal(size=(DIM, 2)), np.zeros(2),
                                   metadata={"feature_print_fingerprint": "f" * 64})


MODELS = {"network": _network(), "logistic": _logistic()}
VALID = {name: encode_state(m.kind, *m.state()) for name, m in MODELS.items()}


def _works(model) -> None:
    """A model that loaded must classify: the daemon calls nothing else."""
    p = model.predict_proba(np.zeros((2, model.dimension), dtype=np.float32))
    assert p.shape == (2, len(model.labels))


def _load_model(target: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sound.model"
        path.write_bytes(data)
        model = expect_clear(target, lambda: load_classifier(path), [str(path)])
        if model is not REJECTED:
            _works(model)


# -- damaged bytes ---------------------------------------------------------------
def damage(data: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert"]))
    if how == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    buf = bytearray(data)
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
    elif how == "overwrite":
        i = draw(st.integers(0, len(buf) - 1))
        chunk = draw(st.binary(min_size=1, max_size=64))
        buf[i : i + len(chunk)] = chunk
    else:
        i = draw(st.integers(0, len(buf)))
        buf[i:i] = draw(st.binary(min_size=1, max_size=64))
    return bytes(buf)


@fuzz_settings(300)
@given(st.sampled_from(sorted(VALID)), st.data())
def test_damaged_model_file(name, data):
    _load_model("model: damaged bytes", damage(VALID[name], data.draw))


@fuzz_settings(100)
@given(st.binary(max_size=2000))
def test_random_bytes_model_file(data):
    _load_model("model: random bytes", data)


# -- forged containers: valid zip and checksum, wrong content -------------------------
# zip member names (zipfile cuts a name at NUL, cannot write an empty one or a lone surrogate)
member_names = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def _npy(array_bytes_shape_dtype) -> bytes:
    shape, dtype, payload = array_bytes_shape_dtype
    header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)}
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + payload


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return out.getvalue()


def _container(header: object, npz: bytes) -> bytes:
    return _zip({"meta.json": json.dumps(header).encode(), "arrays.npz": npz})


def _header(kind: str, meta: object, npz: bytes) -> dict:
    import hashlib

    return {"format": "cadence", "format_version": 1, "kind": kind,
            "payload_sha256": hashlib.sha256(npz).hexdigest(), "meta": meta}


@fuzz_settings(300)
@given(st.sampled_from(sorted(MODELS)), st.data())
def test_forged_metadata(name, data):
    """The real arrays with metadata keys replaced by values of any type (checksum valid)."""
    model = MODELS[name]
    meta, arrays = model.state()
    meta = json.loads(json.dumps(meta))
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(["labels", "input_space", "model_version", "params", "metadata",
                                          "optimizer", "optimizer.layers", "optimizer.step", "optimizer.rng_state",
                                          "params.random_seed", "params.dropout", "metadata.feature_print_fingerprint"]))
        where, _, key = path.rpartition(".")
        target = meta.get(where) if where else meta
        if isinstance(target, dict):
            if data.draw(st.booleans()):
                target[key] = data.draw(json_values)
            else:
                target.pop(key, None)
    out = io.BytesIO()
    np.savez(out, **arrays)
    npz = out.getvalue()
    _load_model("model: forged metadata", _container(_header(model.kind, meta, npz), npz))


@fuzz_settings(300)
@given(st.sampled_from(sorted(MODELS)), st.data())
def test_forged_arrays(name, data):
    """Real metadata; arrays dropped, renamed, reshaped, retyped, or declaring huge shapes."""
    model = MODELS[name]
    meta, arrays = model.state()
    members = {f"{k}.npy": _npy((v.shape, v.dtype, v.tobytes())) for k, v in arrays.items()}
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(members)))
        op = data.draw(st.sampled_from(["drop", "reshape", "retype", "huge", "garbage", "rename"]))
        if op == "drop":
            members.pop(key, None)
        elif op == "rename":
            members[data.draw(member_names) + ".npy"] = members.pop(key, b"")
        elif op == "garbage":
            members[key] = data.draw(st.binary(max_size=200))
        else:
            shape = data.draw(st.lists(st.integers(0, 7), max_size=3))
            dtype = data.draw(st.sampled_from(["<f4", "<f8", "|i1", "<i8", "|b1", "<c8", "|u1"])) if op == "retype" else "<f4"
            if op == "huge":
                shape = data.draw(st.lists(st.integers(2**20, 2**40), min_size=1, max_size=3))
            count = int(np.prod(shape)) if op != "huge" else 4
            members[key] = _npy((shape, dtype, bytes(count * np.dtype(dtype).itemsize)))
    npz = _zip(members)
    _load_model("model: forged arrays", _container(_header(model.kind, meta, npz), npz))


@fuzz_settings(200)
@given(
    st.dictionaries(st.sampled_from(["meta.json", "arrays.npz", "x", "../evil", "meta.json/"]) | member_names,
                    st.binary(max_size=120), max_size=4),
    json_values,
)
def test_forged_container(members, header):
    """Zips with wrong or missing members, and ``meta.json`` that is any JSON at all."""
    members = dict(members)
    if "arrays.npz" in members or header is not None:
        members["meta.json"] = json.dumps(header).encode()
    _load_model("model: forged container", _zip(members))


# -- the registry: what `cadence models list|rollback` and publish read ----------------------
@fuzz_settings(60)
@given(st.sampled_from(sorted(VALID)), st.data())
def test_registry_versions(name, data):
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "sound.model"
        publish(MODELS[name], model_path)
        vdir = versions_dir(model_path)
        bad = vdir / "0002-20260101T000000Z-deadbeef.model"
        bad.write_bytes(damage(VALID[name], data.draw) if data.draw(st.booleans()) else data.draw(st.binary(max_size=300)))
        if data.draw(st.booleans()):  # the current file damaged too
            model_path.write_bytes(damage(VALID[name], data.draw))
        mentions = [str(model_path), "version"]
        listed = expect_clear("registry: list versions", lambda: list_versions(model_path), mentions)
        if listed is not REJECTED:
            assert all(v["ok"] or v["error"] for v in listed)
        target = expect_clear("registry: rollback", lambda: rollback(model_path, data.draw(st.sampled_from([None, "0002", "0001"]))),
                              mentions + [str(bad)])
        if target is not REJECTED:
            _works(load_classifier(model_path))
        # publishing over a damaged current file works, and every kept version then loads or is marked bad
        publish(MODELS[name], model_path)
        _works(load_classifier(model_path))
        assert all(v["ok"] or str(v["error"]).startswith(v["path"]) for v in list_versions(model_path))


# -- training checkpoints (`cadence train sound --resume`) ------------------------------------
def _checkpoint(tmp: Path) -> bytes:
    model = MODELS["network"]
    progress = Progress(model, model.copy(), np.random.default_rng(3), 2,
                        [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}], 2, 0, "run", False, "")
    return write_checkpoint(tmp, "sig", progress, keep=3).read_bytes()


CHECKPOINT = _checkpoint(Path(tempfile.mkdtemp()))


def _forge_checkpoint(data) -> bytes:
    header = json.loads(zipfile.ZipFile(io.BytesIO(CHECKPOINT)).read("meta.json"))
    npz = zipfile.ZipFile(io.BytesIO(CHECKPOINT)).read("arrays.npz")
    meta = header["meta"]
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(["epoch", "history", "best_epoch", "since_best", "run_id", "finished",
                                         "stop_reason", "order_rng", "model", "best", "signature"]))
        if data.draw(st.booleans()):
            meta[key] = data.draw(json_values)
        else:
            meta.pop(key, None)
    return _container(_header(header["kind"], meta, npz), npz)


@fuzz_settings(200)
@given(st.data())
def test_checkpoints(data):
    """A resumed training uses a checkpoint that is whole, else skips it (noted) or stops with one line."""
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp)
        how = data.draw(st.sampled_from(["damaged", "forged", "random"]))
        blob = {"damaged": lambda: damage(CHECKPOINT, data.draw), "forged": lambda: _forge_checkpoint(data),
                "random": lambda: data.draw(st.binary(max_size=500))}[how]()
        path = ckpt / "checkpoint-000002.cadence"
        path.write_bytes(blob)
        notes: list[str] = []
        state = expect_clear(f"checkpoint: {how}", lambda: read_checkpoint(ckpt, "sig", notes), [str(path)],
                             outcome=lambda r: "skipped with a note" if r is None else "resumed")
        if state is REJECTED:
            pass
        elif state is None:
            # skipped, and the note that `cadence train` prints names the file
            assert any(path.name in note for note in notes), notes
        else:
            _works(state.model)
            if state.best is not None:
                _works(state.best)
            state.order_rng.permutation(5)


# -- the feature cache ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(5)
    out = []
    for i in range(6):
        path = folder / f"clip{i}.wav"
        soundfile.write(path, (rng.normal(size=16000) * 0.1).astype(np.float32), 16000)  # 1 s: one window
        out.append(Clip(path, "ab"[i % 2], f"r{i}"))
    return out


@pytest.fixture(scope="module")
def cache_template(clips, tmp_path_factory) -> Path:
    """A valid cache of the clips (two shards), copied for each example."""
    root = tmp_path_factory.mktemp("cache")
    with FeatureCache(root, SimpleFeaturePrint(), shard_size=4) as cache:
        cache.update(clips)
    return root


def _cache_folder(template: Path, root: Path) -> FeatureCache:
    shutil.copytree(template, root, dirs_exist_ok=True)
    return FeatureCache(root, SimpleFeaturePrint(), shard_size=4)


def _use_cache(target: str, root: Path, clips, mentions) -> None:
    cache = FeatureCache(root, SimpleFeaturePrint(), shard_size=4)
    keys = list(cache.index["entries"])

    def read_as_is():  # the reader's own checks, before any repair
        cache.check_consistency()  # reports (does not raise) shards whose checksum is wrong
        return [x for x, _ in cache.iter_chunks(keys, 3)]

    expect_clear(f"{target} (read as is)", read_as_is, mentions)
    # training always runs update() first: it must repair the cache (extract again), never fail
    with cache:
        report, hashes = cache.update(clips)
    x, _ = cache.read([hashes[c.path] for c in clips])
    assert x.shape == (len(clips), SimpleFeaturePrint().dimension) and np.all(np.isfinite(x))
    assert not cache.check_consistency()
    record(f"{target} (repaired by update)", f"re-extracted {report.extracted}")


@fuzz_settings(100)
@given(st.data())
def test_feature_cache_index(clips, cache_template, data):
    """``index.json`` with fields replaced by any JSON: the cache starts over or reads what is valid."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = _cache_folder(cache_template, Path(tmp))
        index_path = cache.directory / "index.json"
        index = json.loads(index_path.read_text())
        for _ in range(data.draw(st.integers(1, 3))):
            key = data.draw(st.sampled_from(["dimension", "scales", "next_shard", "shards", "entries", "files", "version"]))
            index[key] = data.draw(json_values)
        if data.draw(st.booleans()) and isinstance(index.get("shards"), dict) and index["shards"]:
            name = data.draw(st.sampled_from(sorted(index["shards"])))
            index["shards"][name] = data.draw(json_values)
        if data.draw(st.booleans()) and isinstance(index.get("entries"), dict) and index["entries"]:
            key = data.draw(st.sampled_from(sorted(index["entries"])))
            index["entries"][key] = data.draw(json_values)
        index_path.write_text(json.dumps(index))
        _use_cache("feature cache: forged index", Path(tmp), clips, ["feature cache", "index"])


@fuzz_settings(150)
@given(st.data())
def test_feature_cache_shards(clips, cache_template, data):
    """Shard files truncated, bit-flipped or replaced: clips are extracted again, or one clear line."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = _cache_folder(cache_template, Path(tmp))
        shards = sorted(cache.directory.glob("shard-*.npy"))
        shard = data.draw(st.sampled_from(shards))
        blob = shard.read_bytes()
        shard.write_bytes(damage(blob, data.draw) if data.draw(st.booleans()) else data.draw(st.binary(max_size=300)))
        _use_cache("feature cache: damaged shard", Path(tmp), clips, ["feature cache", shard.name])
