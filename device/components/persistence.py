"""Safe, atomic storage of learned parameters: JSON metadata + ``.npz`` arrays.

A saved file is a small zip archive holding ``meta.json`` and ``arrays.npz``.
``meta.json`` records the format name and version, what *kind* of object the
file holds, the object's own metadata, and the SHA-256 of ``arrays.npz``.
Loading checks all of these and refuses a corrupt, truncated, foreign or
newer file with one clear line. Arrays are read with ``allow_pickle=False``:
nothing on disk can run code.

Every write goes through :func:`atomic_write`: temp file in the same folder,
fsync, rename over the target, fsync the folder — so after a power cut the
target is either the old file or the new one, never half of each.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import stat
import tempfile
import tokenize
import zipfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PersistenceError, StorageFullError, first_line

FORMAT_NAME = "cadence"
FORMAT_VERSION = 1
# no Cadence file comes near these: models and checkpoints are kilobytes to a few megabytes
MAX_STATE_BYTES = 256 << 20
MAX_META_BYTES = 16 << 20


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> Path:
    """Replace ``path`` with ``data`` atomically and durably.

    On any failure (including a full disk) the temp file is removed, the old
    file is left as it was, and a :class:`PersistenceError` (or
    :class:`StorageFullError`) names the path and the problem.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:  # read-only or full storage before a byte was written
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _write_error(path, exc) from exc
    fsync_directory(directory)
    return path


def _write_error(path: Path, exc: OSError) -> PersistenceError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"{path}: storage is full, nothing was written (old file kept)")
    return PersistenceError(f"{path}: could not write: {exc.strerror or exc}")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def encode_state(kind: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise metadata and arrays into the Cadence container (bytes)."""
    clean: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype == object:
            raise PersistenceError(f"array {name!r} has dtype object, which cannot be stored safely")
        clean[name] = array
    payload = _stored_zip([(f"{name}.npy", _npy(array)) for name, array in clean.items()])
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "meta": dict(meta),
    }
    try:
        header_bytes = json.dumps(header, indent=2, sort_keys=True, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise PersistenceError(f"metadata of {kind!r} is not JSON-serialisable: {exc}") from exc
    return _stored_zip([("meta.json", header_bytes), ("arrays.npz", payload)])


# members are stamped with a fixed time, so the same state gives the same bytes
# (models built from the shared data rebuild bit-identically; their SHA-256 is pinned)
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _stored_zip(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, date_time=_EPOCH), data)
    return out.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


Allowed = Collection[str] | Callable[[str], bool] | None  # member names, or a test of a name


def _check_members(archive: zipfile.ZipFile, size: int, allowed: Allowed, source: str, what: str) -> None:
    """Before anything is unpacked: only the expected members, stored (not
    compressed, so nothing expands), and together no larger than the file
    that holds them — a forged size or an extra member is refused up front."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise PersistenceError(f"{source}: {what} has duplicate members")
    if allowed is not None:
        unknown = sorted(n for n in names if not (allowed(n) if callable(allowed) else n in allowed))
        if unknown:
            shown = ", ".join(repr(n[:40]) for n in unknown[:3])
            raise PersistenceError(f"{source}: not a Cadence file ({what} holds unexpected members: {shown})")
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise PersistenceError(f"{source}: {what} member {info.filename[:40]!r} is compressed; Cadence files never are")
    if sum(info.file_size for info in infos) > size:
        raise PersistenceError(f"{source}: {what} declares more data than it holds")


def decode_state(
    data: bytes, *, kind: str | None = None, source: str = "<bytes>",
    arrays: Collection[str] | Callable[[str], bool] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse and verify a Cadence container; returns (meta, arrays).

    ``arrays``: the array names the caller reads (or a test of a name); any
    other is refused (so nothing unexpected is even unpacked).
    """
    if len(data) > MAX_STATE_BYTES:
        raise PersistenceError(f"{source}: {len(data)} bytes is larger than any Cadence file ({MAX_STATE_BYTES})")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_members(archive, len(data), ("meta.json", "arrays.npz"), source, "the file")
            names = set(archive.namelist())
            if not {"meta.json", "arrays.npz"} <= names:
                raise PersistenceError(f"{source}: not a Cadence file (missing meta.json or arrays.npz)")
            if archive.getinfo("meta.json").file_size > MAX_META_BYTES:
                raise PersistenceError(f"{source}: metadata larger than {MAX_META_BYTES} bytes; refusing it")
            header = json.loads(archive.read("meta.json").decode("utf-8"))
            payload = archive.read("arrays.npz")
    except PersistenceError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PersistenceError(f"{source}: corrupt metadata ({exc})") from exc
    # a damaged zip directory can also surface as ValueError (negative seek),
    # NotImplementedError (unknown compression) or RuntimeError (encrypted member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError) as exc:
        raise PersistenceError(f"{source}: not a Cadence file or truncated ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise PersistenceError(f"{source}: not a Cadence file (format {found!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise PersistenceError(
            f"{source}: format version {version!r} is not supported (this Cadence reads up to {FORMAT_VERSION})"
        )
    if kind is not None and header.get("kind") != kind:
        raise PersistenceError(f"{source}: holds a {header.get('kind')!r}, expected a {kind!r}")
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise PersistenceError(f"{source}: checksum mismatch, the file is corrupt")
    expected: Allowed
    if arrays is None:
        expected = None
    elif callable(arrays):
        test = arrays
        expected = lambda member: member.endswith(".npy") and test(member[:-4])  # noqa: E731
    else:
        expected = {f"{name}.npy" for name in arrays}
    try:
        _check_array_sizes(payload, expected, source)
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            loaded = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, SyntaxError, tokenize.TokenError, NotImplementedError,
            RuntimeError, MemoryError) as exc:
        raise PersistenceError(f"{source}: corrupt arrays ({first_line(exc)})") from exc
    meta = header.get("meta") or {}
    if not isinstance(meta, dict):
        raise PersistenceError(f"{source}: corrupt metadata (meta is a {type(meta).__name__}, expected an object)")
    meta = dict(meta)
    meta.setdefault("kind", header.get("kind"))
    return meta, loaded


def _check_array_sizes(payload: bytes, expected: Collection[str] | None, source: str) -> None:
    """Refuse unexpected or compressed members, and an array whose header
    declares more data than its member holds, before numpy allocates it (a
    forged shape must not exhaust memory)."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        _check_members(archive, len(payload), expected, source, "its arrays")
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            declared = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
            if declared > info.file_size:
                raise ValueError(f"array {info.filename!r} declares shape {shape} but holds {info.file_size} bytes")


def save_state(
    path: str | os.PathLike[str], kind: str, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> Path:
    """Atomically write a Cadence container holding ``kind``."""
    return atomic_write(path, encode_state(kind, meta, arrays))


def read_state_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_STATE_BYTES) -> bytes:
    """A Cadence file's bytes, read once (a regular file no larger than ``max_bytes``, not empty);
    :func:`decode_state` verifies them."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
            # a device (/dev/zero: read without end) or a pipe (waits for a writer forever)
            raise PersistenceError(f"{path}: is not a regular file (a device, pipe or socket); expected a file")
        size = info.st_size
        if size > max_bytes:
            raise PersistenceError(f"{path}: {size} bytes is larger than such a Cadence file can be ({max_bytes}); "
                                   "refusing it")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise PersistenceError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise PersistenceError(f"{path}: is a directory, expected a file") from exc
    except OSError as exc:
        raise PersistenceError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise PersistenceError(f"{path}: file is empty")
    return data


def load_state(
    path: str | os.PathLike[str], *, kind: str | None = None,
    arrays: Collection[str] | Callable[[str], bool] | None = None, max_bytes: int = MAX_STATE_BYTES,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a Cadence container; refuses anything corrupt, foreign,
    oversized or holding arrays other than ``arrays`` (when given)."""
    return decode_state(read_state_file(path, max_bytes=max_bytes), kind=kind, source=str(path), arrays=arrays)


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
