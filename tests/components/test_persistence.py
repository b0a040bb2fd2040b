"""Safe persistence: round trip, corruption, truncation, foreign files, atomicity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from device.components import PersistenceError, StorageFullError, atomic_write, load_state, save_state
from device.components import persistence


def sample():
    return {"labels": ["a", "b"], "epoch": 3}, {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4)}


def test_round_trip(tmp_path):
    meta, arrays = sample()
    path = save_state(tmp_path / "m.cadence", "classifier", meta, arrays)
    got_meta, got = load_state(path, kind="classifier")
    assert got_meta["labels"] == ["a", "b"] and got_meta["epoch"] == 3
    assert np.array_equal(got["w"], arrays["w"]) and got["w"].dtype == np.float32
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_wrong_kind_is_refused(tmp_path):
    path = save_state(tmp_path / "m", "checkpoint", *sample())
    with pytest.raises(PersistenceError, match="holds a 'checkpoint', expected a 'classifier'"):
        load_state(path, kind="classifier")


def test_corrupt_payload_is_detected(tmp_path):
    path = save_state(tmp_path / "m", "classifier", *sample())
    data = bytearray(path.read_bytes())
    # flip a byte inside the stored arrays.npz (stored uncompressed, so it's a payload byte)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("arrays.npz")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size // 2
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PersistenceError, match="corrupt|truncated|checksum"):
        load_state(path)


def test_truncated_file(tmp_path):
    path = save_state(tmp_path / "m", "classifier", *sample())
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 5):
        path.write_bytes(data[:cut])
        with pytest.raises(PersistenceError):
            load_state(path)


def test_foreign_and_missing_files(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(PersistenceError, match="not a Cadence file"):
        load_state(tmp_path / "x.json")
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(PersistenceError, match="not a Cadence file"):
        load_state(tmp_path / "plain.npz")
    with pytest.raises(PersistenceError, match="no such file"):
        load_state(tmp_path / "nope")
    with pytest.raises(PersistenceError, match="directory"):
        load_state(tmp_path)


def test_newer_format_version_refused(tmp_path):
    path = tmp_path / "m"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("meta.json", json.dumps({"format": "cadence", "format_version": 99, "kind": "x"}))
        z.writestr("arrays.npz", b"")
    with pytest.raises(PersistenceError, match="format version 99 is not supported"):
        load_state(path)


def test_object_arrays_and_pickles_never_load(tmp_path):
    with pytest.raises(PersistenceError, match="dtype object"):
        save_state(tmp_path / "m", "x", {}, {"o": np.array([{"a": 1}], dtype=object)})
    # hand-craft a container whose npz holds a pickled object array with a valid checksum
    import hashlib
    import io

    buf = io.BytesIO()
    np.savez(buf, o=np.array([{"a": 1}], dtype=object))
    payload = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "evil", "w") as z:
        z.writestr("meta.json", json.dumps({"format": "cadence", "format_version": 1, "kind": "x",
                                            "payload_sha256": hashlib.sha256(payload).hexdigest(), "meta": {}}))
        z.writestr("arrays.npz", payload)
    with pytest.raises(PersistenceError, match="corrupt arrays"):
        load_state(tmp_path / "evil")


def test_atomic_write_keeps_old_file_when_disk_is_full(tmp_path, monkeypatch):
    target = tmp_path / "model"
    atomic_write(target, b"old")

    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(StorageFullError, match="storage is full"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # temp file cleaned up


def test_kill_during_write_leaves_old_or_new(tmp_path):
    """A process killed mid-write never leaves a half-written target."""
    target = tmp_path / "model"
    save_state(target, "classifier", {"v": 0}, {"w": np.zeros(10)})
    code = (
        "import numpy as np, sys\n"
        "from device.components import save_state\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        f"    save_state({str(target)!r}, 'classifier', {{'v': i}}, {{'w': np.full(200000, i, dtype=np.float64)}})\n"
    )
    for delay in (0.3, 0.45, 0.6):
        proc = subprocess.Popen([sys.executable, "-c", code])
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        meta, arrays = load_state(target, kind="classifier")  # always loads
        assert (arrays["w"] == meta["v"]).all()


def _container(payload: bytes, *, meta: dict | None = None, extra: dict[str, bytes] | None = None,
               compress: bool = False) -> bytes:
    """A Cadence container built by hand around ``payload`` (a valid checksum)."""
    import hashlib
    import io
    import zipfile

    header = {"format": "cadence", "format_version": 1, "kind": "classifier", "meta": meta or {},
              "payload_sha256": hashlib.sha256(payload).hexdigest()}
    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        archive.writestr("meta.json", json.dumps(header))
        archive.writestr("arrays.npz", payload)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def _npz(members: dict[str, bytes], compress: bool = False) -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_zip_bombs_are_refused_before_anything_is_unpacked(tmp_path):
    """A small file that would unpack to a lot of memory never gets that far (issue 17)."""
    import tracemalloc

    weights = _npy(np.ones(4, dtype=np.float32))
    bomb = np.zeros(64 << 20, dtype=np.uint8).tobytes()  # 64 MB of zeros: a few hundred KB compressed
    cases = {
        "compressed extra array": _container(_npz({"w.npy": weights, "junk.npy": bomb}, compress=True)),
        "compressed container": _container(_npz({"w.npy": weights}), extra={"pad.bin": bomb}, compress=True),
        "extra stored array": _container(_npz({"w.npy": weights, "junk.npy": _npy(np.zeros(1000))})),
        "extra member": _container(_npz({"w.npy": weights}), extra={"evil.bin": b"x" * 100}),
    }
    for what, data in cases.items():
        path = tmp_path / "model.cadence"
        path.write_bytes(data)
        assert len(data) < 2 << 20, what
        tracemalloc.start()
        with pytest.raises(PersistenceError, match="compressed|unexpected members|not a Cadence file"):
            load_state(path, arrays={"w"})
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 16 << 20, f"{what}: {peak} bytes allocated before refusing"
    # the honest file of the same arrays loads
    path.write_bytes(_container(_npz({"w.npy": weights})))
    meta, arrays = load_state(path, arrays={"w"})
    assert list(arrays) == ["w"] and arrays["w"].tolist() == [1.0] * 4


def test_a_file_larger_than_any_cadence_file_is_refused_unread(tmp_path):
    from device.components.persistence import MAX_STATE_BYTES

    path = tmp_path / "huge.cadence"
    with open(path, "wb") as f:
        f.truncate(MAX_STATE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(PersistenceError, match="larger than such a Cadence file can be"):
        load_state(path)


def test_the_same_state_gives_the_same_bytes():
    """Built model files are pinned by SHA-256: writing must not stamp the time."""
    import time

    from device.components import encode_state

    first = encode_state("classifier", *sample())
    time.sleep(2.1)  # zip timestamps have a 2-second resolution
    assert encode_state("classifier", *sample()) == first


def test_a_device_or_pipe_in_place_of_a_file_is_refused_at_once(tmp_path):
    # /dev/zero was read without end (memory until the OOM killer) and a pipe waited for a
    # writer forever (e.g. `cadence config check` with a model linked to either)
    (tmp_path / "zero.model").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.model")
    for name in ("zero.model", "pipe.model"):
        with pytest.raises(PersistenceError, match="is not a regular file"):
            load_state(tmp_path / name)
