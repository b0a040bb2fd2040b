"""The feature cache: every clip's feature print computed once, stored int8 on disk.

Layout under ``<state dir>/feature-cache/<fingerprint[:16]>/``::

    index.json              the commit point: shards, entries, file-hash memo
    shard-000004.values.npy int8 (rows, dimension)
    shard-000004.scales.npy float32 (rows, s), only if the print gives per-clip scales

Entries are keyed by the SHA-256 of the clip's bytes, so a renamed or
relabelled clip is not extracted again; the folder is named after the
feature print's fingerprint, so a changed feature print starts a new cache
and the old one is removed. Shards and the index are written atomically and
in that order: after a power cut the index only names complete shards, and
shard files it does not name are removed on the next run. A shard whose
checksum no longer matches is dropped and its clips extracted again.

Augmented copies of a clip (:meth:`FeatureCache.augment`, for training from
few clips) are entries keyed ``<content hash>~<augmenter settings>~<copy>``;
they live as long as their clip does.

Training reads the cache in chunks (:meth:`FeatureCache.iter_chunks`) through
memory maps opened per chunk, so memory is bounded by the chunk size, not by
the size of the cache.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import io
import json
import os
import shutil
import tokenize
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from device.components import (
    CadenceError,
    EventHandler,
    PersistenceError,
    StorageFullError,
    atomic_write,
    atomic_write_json,
    emit,
    first_line,
    sha256_file,
)

from .dataset import Clip, UnreadableClipError, read_clip

INDEX_FORMAT = "cadence.feature_cache"
INDEX_VERSION = 1
DEFAULT_SHARD_SIZE = 128  # clips per shard file
COPY_SEPARATOR = "~"  # <content hash>~<augmenter key>~<copy number>


def copy_key(source: str, augmenter_key: str, index: int) -> str:
    """Cache key of augmented copy ``index`` of the clip with content hash ``source``."""
    return f"{source}{COPY_SEPARATOR}{augmenter_key}{COPY_SEPARATOR}{index}"


def source_of(key: str) -> str:
    """The content hash a cache key belongs to (itself for an original clip)."""
    return key.split(COPY_SEPARATOR, 1)[0]


def settings_of(key: str) -> str | None:
    """The augmenter settings key of a copy's cache key (None for an original clip)."""
    parts = key.split(COPY_SEPARATOR)
    return parts[1] if len(parts) == 3 else None


class FeaturePrint(Protocol):
    """What the cache needs from a feature print."""

    def fingerprint(self) -> str: ...

    def transform_clip(self, samples: np.ndarray) -> Any: ...


class CacheBusyError(CadenceError):
    """Another Cadence process is using the feature cache."""


@dataclasses.dataclass
class CacheReport:
    extracted: int = 0
    reused: int = 0
    removed: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fingerprint_of(feature_print: Any) -> str:
    fp = feature_print.fingerprint
    return str(fp() if callable(fp) else fp)


def _quantise(feature_print: Any, output: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalise a feature print's output to (int8 vector, per-clip scales or None).

    None means the feature print's own per-dimension ``scales``/``offsets``
    (kept once in the index) dequantise it.
    """
    values, scales, offsets = output, None, None
    if isinstance(output, tuple) and len(output) in (2, 3):
        values, scales = output[0], output[1]
        offsets = output[2] if len(output) == 3 else None
    elif hasattr(output, "values") and (hasattr(output, "scales") or hasattr(output, "scale")) and not isinstance(
        output, np.ndarray
    ):
        values = output.values() if callable(output.values) else output.values
        scales = getattr(output, "scales", None) if hasattr(output, "scales") else output.scale
        offsets = getattr(output, "offsets", None)
    values = np.asarray(values)
    if values.ndim != 1:
        values = values.reshape(-1)
    global_scales = getattr(feature_print, "scales", None)
    global_offsets = getattr(feature_print, "offsets", None)
    if values.dtype == np.int8:
        if scales is None:
            return values, None
        if (
            global_scales is not None
            and np.array_equal(np.asarray(scales, dtype=np.float32).reshape(-1), np.asarray(global_scales, dtype=np.float32).reshape(-1))
            and (offsets is None and global_offsets is None or offsets is not None and global_offsets is not None
                 and np.array_equal(np.asarray(offsets, dtype=np.float32).reshape(-1), np.asarray(global_offsets, dtype=np.float32).reshape(-1)))
        ):
            return values, None  # the feature print's own quantisation
        if offsets is None:
            return values, np.atleast_1d(np.asarray(scales, dtype=np.float32))
    floats = values.astype(np.float32)
    if scales is not None:
        floats = floats * np.asarray(scales, dtype=np.float32)
    if offsets is not None:
        floats = floats + np.asarray(offsets, dtype=np.float32)
    if not np.all(np.isfinite(floats)):
        raise ValueError("the feature print produced NaN or infinite values")
    peak = float(np.abs(floats).max()) if floats.size else 0.0
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.round(floats / scale), -127, 127).astype(np.int8)
    return q, np.array([scale], dtype=np.float32)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


class FeatureCache:
    """Feature prints of clips, keyed by content hash, for one feature print."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        feature_print: Any,
        *,
        shard_size: int | None = None,
        reader: Callable[[Path], np.ndarray] = read_clip,
    ) -> None:
        shard_size = DEFAULT_SHARD_SIZE if shard_size is None else shard_size
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        self.root = Path(root)
        self.feature_print = feature_print
        self.fingerprint = fingerprint_of(feature_print)
        self.directory = self.root / self.fingerprint[:16]
        self.shard_size = int(shard_size)
        self.reader = reader
        self._lock_handle: Any = None
        self.index = self._read_index()

    # -- locking --------------------------------------------------------------
    def __enter__(self) -> "FeatureCache":
        self.lock()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unlock()

    def lock(self) -> None:
        """Hold an exclusive lock so two trainings never write one cache."""
        if self._lock_handle is not None:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / "lock", "a+")
        except OSError as exc:  # read-only or full storage, no permission: say so, not a traceback
            raise PersistenceError(f"{self.root}: cannot use the feature cache ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise CacheBusyError(f"{self.root}: the feature cache is in use by another Cadence process") from exc
        self._lock_handle = handle

    def unlock(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    # -- index ----------------------------------------------------------------
    def _empty_index(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "fingerprint": self.fingerprint,
            "dimension": None,
            "scales": None,
            "offsets": None,
            "item_scales": None,
            "next_shard": 0,
            "shards": {},
            "entries": {},
            "files": {},
        }

    def _read_index(self) -> dict[str, Any]:
        path = self.directory / "index.json"
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self._empty_index()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            # the index is only ever replaced atomically; if it is unreadable
            # anyway (disk fault) start over rather than trust anything
            return self._empty_index()
        if (
            not isinstance(index, dict)
            or index.get("format") != INDEX_FORMAT
            or index.get("version") != INDEX_VERSION
            or index.get("fingerprint") != self.fingerprint
            or not _well_formed(index)
        ):
            return self._empty_index()
        return index

    def _write_index(self) -> None:
        atomic_write_json(self.directory / "index.json", self.index)

    @property
    def dimension(self) -> int | None:
        return self.index.get("dimension")

    def __len__(self) -> int:
        """Clips in the cache (augmented copies not counted: see :attr:`copies`)."""
        return sum(1 for k in self.index["entries"] if COPY_SEPARATOR not in k)

    @property
    def copies(self) -> int:
        """Augmented copies in the cache."""
        return len(self.index["entries"]) - len(self)

    def __contains__(self, key: str) -> bool:
        return key in self.index["entries"]

    # -- hashing ----------------------------------------------------------------
    def content_hash(self, path: Path) -> str:
        """SHA-256 of the clip, memoised by (size, mtime) in the index."""
        st = path.stat()
        memo = self.index["files"].get(str(path))
        if memo and memo[0] == st.st_size and memo[1] == st.st_mtime_ns:
            return str(memo[2])
        digest = sha256_file(path)
        self.index["files"][str(path)] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    # -- maintenance ------------------------------------------------------------
    def _shard_files(self, name: str) -> list[Path]:
        return [self.directory / f"shard-{name}.values.npy", self.directory / f"shard-{name}.scales.npy"]

    def _remove_other_fingerprints(self) -> int:
        removed = 0
        if not self.root.is_dir():
            return 0
        for other in self.root.iterdir():
            if other.is_dir() and other.name != self.directory.name:
                shutil.rmtree(other, ignore_errors=True)
                removed += 1
        return removed

    def _remove_orphans(self) -> None:
        if not self.directory.is_dir():
            return
        known = {p.name for name in self.index["shards"] for p in self._shard_files(name)}
        for f in self.directory.iterdir():
            if f.name == "index.json":
                continue
            if f.name.startswith(".") and f.name.endswith(".tmp") or (f.name.startswith("shard-") and f.name not in known):
                try:
                    f.unlink()
                except OSError:
                    pass

    def verify(self, *, deep: bool = True) -> list[str]:
        """Names of shards that are missing or whose checksum is wrong."""
        bad = []
        for name, shard in self.index["shards"].items():
            for kind, digest in shard["files"].items():
                path = self.directory / f"shard-{name}.{kind}.npy"
                if not path.is_file():
                    bad.append(name)
                    break
                if deep and sha256_file(path) != digest:
                    bad.append(name)
                    break
        return bad

    def _drop_shards(self, names: Sequence[str]) -> None:
        names = set(names)
        if not names:
            return
        self.index["entries"] = {k: v for k, v in self.index["entries"].items() if v[0] not in names}
        for name in names:
            self.index["shards"].pop(name, None)

    def check_consistency(self) -> list[str]:
        """Problems found (empty when the cache is consistent): every entry points
        at an existing row of a shard whose checksum matches."""
        problems = [f"shard {name} missing or corrupt" for name in self.verify(deep=True)]
        for key, (name, row) in self.index["entries"].items():
            shard = self.index["shards"].get(name)
            if shard is None:
                problems.append(f"entry {key[:12]} points at unknown shard {name}")
            elif not 0 <= row < shard["rows"]:
                problems.append(f"entry {key[:12]} points past the end of shard {name}")
        return problems

    # -- extraction ------------------------------------------------------------
    def update(
        self,
        clips: Sequence[Clip],
        *,
        on_event: EventHandler | None = None,
        prune: bool = True,
        jobs: int = 1,
    ) -> tuple[CacheReport, dict[Path, str]]:
        """Extract the clips not cached yet; returns the report and each usable
        clip's content hash. Unreadable clips are reported and skipped.

        ``jobs`` > 1 runs the feature print in that many worker processes
        (a Pi 4 has four cores); results are stored in the same order.
        """
        import time

        start = time.perf_counter()
        report = CacheReport()
        self.directory.mkdir(parents=True, exist_ok=True)
        report.removed += self._remove_other_fingerprints()
        bad = self.verify(deep=True)
        if bad:
            self._drop_shards(bad)
            for name in bad:
                report.skipped.append(f"feature cache shard {name} was corrupt; its clips are extracted again")
        self._remove_orphans()

        hashes: dict[Path, str] = {}
        todo: list[tuple[Clip, str]] = []
        queued: set[str] = set()
        for clip in clips:
            try:
                digest = self.content_hash(clip.path)
            except OSError as exc:
                report.skipped.append(f"{clip.path}: cannot read ({exc.strerror or exc})")
                continue
            hashes[clip.path] = digest
            if digest in self.index["entries"]:
                report.reused += 1
            elif digest not in queued:
                queued.add(digest)
                todo.append((clip, digest))
        todo.sort(key=lambda item: item[1])  # content-hash order: shards mix labels
        if prune:
            live = set(hashes.values())
            report.removed += self._prune(live)
            current = {str(c.path) for c in clips}
            self.index["files"] = {k: v for k, v in self.index["files"].items() if k in current}

        failed = self._extract_and_store([(clip, digest, None) for clip, digest in todo], jobs, report, on_event, "preprocess")
        for path, digest in list(hashes.items()):
            if digest in failed:
                del hashes[path]
        report.seconds = time.perf_counter() - start
        return report, hashes

    def augment(
        self,
        clips: Sequence[tuple[Clip, str]],
        augmenter: Any,
        copies: int,
        *,
        on_event: EventHandler | None = None,
        jobs: int = 1,
    ) -> tuple[CacheReport, dict[str, list[str]]]:
        """Make sure ``copies`` augmented copies of each ``(clip, content hash)``
        are cached (``augmenter.copy(samples, hash, i)`` then the feature
        print); returns the report and each hash's copy keys. Like clips,
        copies are extracted once and reused by later trainings."""
        import time

        start = time.perf_counter()
        report = CacheReport()
        out: dict[str, list[str]] = {}
        todo: list[tuple[Clip, str, Any]] = []
        for clip, digest in clips:
            if digest in out:
                continue
            out[digest] = [copy_key(digest, augmenter.key, i) for i in range(copies)]
            for i, key in enumerate(out[digest]):
                if key in self.index["entries"]:
                    report.reused += 1
                else:
                    todo.append((clip, key, (augmenter, digest, i)))
        # copies made with other settings (an older augmenter) are never used again
        report.removed += self._prune({k for k in self.index["entries"] if COPY_SEPARATOR not in k}, augmenter.key)
        failed = self._extract_and_store(todo, jobs, report, on_event, "augment")
        for digest in list(out):
            out[digest] = [k for k in out[digest] if k not in failed]
        report.seconds = time.perf_counter() - start
        return report, out

    def _extract_and_store(
        self, todo: list[tuple[Clip, str, Any]], jobs: int, report: CacheReport, on_event: EventHandler | None,
        origin: str,
    ) -> set[str]:
        """Extract ``(clip, key, variant)`` items into new shards; returns the keys that failed."""
        buffer: list[tuple[str, np.ndarray, np.ndarray | None]] = []
        failed: set[str] = set()
        for i, (clip, key, outcome) in enumerate(self._extract(todo, jobs)):
            if isinstance(outcome, str):
                report.skipped.append(outcome)
                failed.add(key)
            else:
                try:
                    self._check_shape(*outcome)
                    buffer.append((key, outcome[0], outcome[1]))
                except ValueError as exc:
                    report.skipped.append(f"{clip.path}: no feature print ({exc})")
                    failed.add(key)
            if len(buffer) >= self.shard_size:
                self._flush(buffer)
                report.extracted += len(buffer)
                buffer = []
            emit(on_event, origin, i + 1, len(todo), extracted=report.extracted + len(buffer))
        if buffer:
            self._flush(buffer)
            report.extracted += len(buffer)
        self._write_index()
        return failed

    def _extract(self, todo: list[tuple[Clip, str, Any]], jobs: int) -> Iterator[tuple[Clip, str, Any]]:
        """(clip, key, (values, scales) or an error message) in ``todo`` order."""
        if jobs <= 1 or len(todo) < 2 * jobs:
            for clip, key, variant in todo:
                yield clip, key, _extract_one(self.feature_print, self.reader, clip.path, variant)
            return
        import multiprocessing

        global _WORKER
        _WORKER = (self.feature_print, self.reader)  # inherited by the forked workers
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs) as pool:
            results = pool.imap(_extract_in_worker, [(clip.path, variant) for clip, _, variant in todo], chunksize=2)
            for (clip, key, _), outcome in zip(todo, results):
                yield clip, key, outcome
        _WORKER = None

    def _check_shape(self, values: np.ndarray, scales: np.ndarray | None) -> None:
        dim = self.index.get("dimension")
        if dim is None:
            self.index["dimension"] = int(values.shape[0])
            self.index["item_scales"] = None if scales is None else int(scales.shape[0])
            global_scales = getattr(self.feature_print, "scales", None)
            global_offsets = getattr(self.feature_print, "offsets", None)
            if scales is None and global_scales is not None:
                self.index["scales"] = [float(s) for s in np.asarray(global_scales, dtype=np.float32).reshape(-1)]
            if scales is None and global_offsets is not None:
                self.index["offsets"] = [float(s) for s in np.asarray(global_offsets, dtype=np.float32).reshape(-1)]
            return
        if values.shape[0] != dim:
            raise ValueError(f"feature print gave {values.shape[0]} values, the cache holds {dim}")
        want = self.index.get("item_scales")
        got = None if scales is None else int(scales.shape[0])
        if want != got:
            raise ValueError("the feature print changed how it reports its scales")

    def _flush(self, buffer: list[tuple[str, np.ndarray, np.ndarray | None]]) -> None:
        name = f"{int(self.index['next_shard']):06d}"
        self.index["next_shard"] = int(self.index["next_shard"]) + 1
        values = np.stack([b[1] for b in buffer]).astype(np.int8)
        files = {}
        data = _npy_bytes(values)
        atomic_write(self.directory / f"shard-{name}.values.npy", data)
        import hashlib

        files["values"] = hashlib.sha256(data).hexdigest()
        if self.index.get("item_scales"):
            scales = np.stack([b[2] for b in buffer]).astype(np.float32)  # type: ignore[misc]
            data = _npy_bytes(scales)
            atomic_write(self.directory / f"shard-{name}.scales.npy", data)
            files["scales"] = hashlib.sha256(data).hexdigest()
        self.index["shards"][name] = {"rows": len(buffer), "files": files}
        for row, (digest, _, _) in enumerate(buffer):
            self.index["entries"][digest] = [name, row]
        self._write_index()  # the commit point for this shard

    def _prune(self, live: set[str], copies_of: str | None = None) -> int:
        """Drop entries of clips no longer in the data (and, given ``copies_of``,
        augmented copies made with other settings); compact mostly-dead shards."""
        dead = [
            k for k in self.index["entries"]
            if source_of(k) not in live
            or copies_of is not None and settings_of(k) not in (None, copies_of)
        ]
        for k in dead:
            del self.index["entries"][k]
        rows_live: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for k, (name, row) in self.index["entries"].items():
            rows_live[name].append((k, row))
        obsolete = []
        for name, shard in list(self.index["shards"].items()):
            alive = rows_live.get(name, [])
            if not alive:
                obsolete.append(name)
            elif len(alive) < shard["rows"] // 2:
                # rewrite the live rows into a new shard
                x, s = self._read_rows(name, [row for _, row in alive])
                buffer = [(k, x[i], None if s is None else s[i]) for i, (k, _) in enumerate(alive)]
                self._flush(buffer)
                obsolete.append(name)
        if dead or obsolete:
            for name in obsolete:
                self.index["shards"].pop(name, None)
            self._write_index()
            for name in obsolete:
                for f in self._shard_files(name):
                    try:
                        f.unlink()
                    except FileNotFoundError:
                        pass
        return len(dead)

    # -- reading ----------------------------------------------------------------
    def _reader(self) -> "_ShardReader":
        return _ShardReader(self.directory, int(self.index.get("item_scales") or 0), self.index.get("dimension"))

    def _read_rows(self, name: str, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
        with self._reader() as reader:
            return reader.rows(name, np.asarray(rows, dtype=np.int64))

    @property
    def scales(self) -> np.ndarray | None:
        """The feature print's per-dimension scales (None if clips carry their own)."""
        value = self.index.get("scales")
        return None if value is None else np.asarray(value, dtype=np.float32)

    @property
    def offsets(self) -> np.ndarray | None:
        value = self.index.get("offsets")
        return None if value is None else np.asarray(value, dtype=np.float32)

    def dequantise(self, values: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
        x = values.astype(np.float32)
        if scales is not None:
            return x * scales
        if self.index.get("scales") is not None:
            x = x * np.asarray(self.index["scales"], dtype=np.float32)
        if self.index.get("offsets") is not None:
            x = x + np.asarray(self.index["offsets"], dtype=np.float32)
        return x

    def locate(self, keys: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(shard names, shard index per key, row per key) as compact arrays."""
        names = sorted(self.index["shards"])
        number = {name: i for i, name in enumerate(names)}
        entries = self.index["entries"]
        try:
            shard_of = np.fromiter((number[entries[k][0]] for k in keys), dtype=np.int32, count=len(keys))
            row_of = np.fromiter((entries[k][1] for k in keys), dtype=np.int32, count=len(keys))
        except KeyError as exc:
            raise CadenceError(f"clip {str(exc)[:14]} is not in the feature cache") from exc
        return names, shard_of, row_of

    def _gather(
        self, reader: "_ShardReader", names: list[str], shard_of: np.ndarray, row_of: np.ndarray
    ) -> np.ndarray:
        out = np.empty((len(shard_of), int(self.index["dimension"] or 0)), dtype=np.float32)
        order = np.argsort(shard_of, kind="stable")
        bounds = np.flatnonzero(np.diff(shard_of[order])) + 1
        for group in np.split(order, bounds):
            if group.size:
                x, s = reader.rows(names[int(shard_of[group[0]])], row_of[group].astype(np.int64))
                out[group] = self.dequantise(x, s)
        return out

    def read(self, keys: Sequence[str]) -> np.ndarray:
        """Float features of ``keys`` in order (use :meth:`iter_chunks` for many)."""
        names, shard_of, row_of = self.locate(keys)
        with self._reader() as reader:
            return self._gather(reader, names, shard_of, row_of)

    def iter_chunks(
        self, keys: Sequence[str], chunk_size: int, *, rng: np.random.Generator | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(float features, positions in keys)`` for chunks of at most ``chunk_size`` keys.

        The chunks depend only on ``keys`` and ``rng`` (shuffled with it when
        given), never on how the cache happens to be split into shards, so a
        run resumed after a power cut sees the same chunks. Rows are read with
        ``pread`` from shard files held open for the pass: memory stays at one
        chunk (plus at most one shard's span), whatever the cache size.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if not len(keys):
            return
        names, shard_of, row_of = self.locate(keys)
        order = rng.permutation(len(keys)) if rng is not None else np.arange(len(keys))
        with self._reader() as reader:
            for start in range(0, len(order), chunk_size):
                positions = order[start : start + chunk_size]
                yield self._gather(reader, names, shard_of[positions], row_of[positions]), positions

    def size_bytes(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.directory.iterdir() if f.is_file())


def _well_formed(index: dict[str, Any]) -> bool:
    """The index's fields have the types this code reads (else: start over)."""

    def count(v: Any, low: int = 0) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    def numbers(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)

    dim = index.get("dimension")
    shards, entries, files = index.get("shards"), index.get("entries"), index.get("files")
    return (
        (dim is None or count(dim, 1))
        and all(index.get(k) is None or (numbers(index[k]) and len(index[k]) == dim) for k in ("scales", "offsets"))
        and (index.get("item_scales") is None or count(index["item_scales"], 1))
        and count(index.get("next_shard"))
        and isinstance(shards, dict)
        and all(
            isinstance(v, dict) and count(v.get("rows")) and isinstance(v.get("files"), dict)
            and all(k in ("values", "scales") and isinstance(d, str) for k, d in v["files"].items())
            # every shard has values, and scales exactly when the clips carry their own
            and "values" in v["files"] and ("scales" in v["files"]) == bool(index.get("item_scales"))
            and dim is not None
            for v in shards.values()
        )
        and isinstance(entries, dict)
        and all(
            isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and count(v[1])
            and v[0] in shards and v[1] < shards[v[0]]["rows"]
            for v in entries.values()
        )
        and isinstance(files, dict)
        and all(isinstance(v, list) and len(v) == 3 for v in files.values())
    )


_WORKER: Any = None


def _extract_one(
    feature_print: Any, reader: Callable[[Path], np.ndarray], path: Path, variant: tuple[Any, str, int] | None = None
) -> Any:
    """(values, scales) of a clip, or of augmented copy ``variant = (augmenter, hash, i)``; or an error line."""
    what = "" if variant is None else f" for augmented copy {variant[2]}"
    try:
        samples = reader(path)
        if variant is not None:
            augmenter, source, index = variant
            try:
                samples = augmenter.copy(samples, source, index)
            except Exception as exc:  # noqa: BLE001 - a failed copy must not stop training; its clip is fine
                return f"{path}: augmented copy {index} failed ({first_line(exc)}); the clip itself is used"
        return _quantise(feature_print, feature_print.transform_clip(samples))
    except UnreadableClipError as exc:
        return str(exc)
    except (CadenceError, ValueError) as exc:
        return f"{path}: no feature print{what} ({exc})"


def _extract_in_worker(task: tuple[Path, Any]) -> Any:
    feature_print, reader = _WORKER
    return _extract_one(feature_print, reader, *task)


class _ShardReader:
    """Shard files opened once per pass and read row by row with ``pread``."""

    def __init__(self, directory: Path, item_scales: int, dimension: int | None = None) -> None:
        self.directory = directory
        self.item_scales = item_scales
        self.dimension = dimension
        self.files: dict[str, tuple[int, int, int]] = {}  # path -> (fd, data offset, row bytes)

    def __enter__(self) -> "_ShardReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        for fd, _, _ in self.files.values():
            os.close(fd)
        self.files.clear()

    def _open(self, path: Path, dtype: np.dtype, width: int | None = None) -> tuple[int, int, int]:
        key = str(path)
        if key not in self.files:
            try:
                with open(path, "rb") as handle:
                    version = np.lib.format.read_magic(handle)
                    if version == (1, 0):
                        shape, fortran, file_dtype = np.lib.format.read_array_header_1_0(handle)
                    else:
                        shape, fortran, file_dtype = np.lib.format.read_array_header_2_0(handle)
                    offset = handle.tell()
            except (OSError, ValueError, SyntaxError, tokenize.TokenError) as exc:
                raise PersistenceError(
                    f"feature cache file {path.name} cannot be read ({first_line(exc)}); run the training again to rebuild it"
                ) from exc
            if (
                fortran
                or np.dtype(file_dtype) != dtype
                or len(shape) != 2
                or shape[1] < 1
                or (width is not None and shape[1] != width)
            ):
                raise PersistenceError(f"feature cache file {path.name} has an unexpected layout")
            fd = os.open(path, os.O_RDONLY)
            self.files[key] = (fd, offset, int(shape[1]) * dtype.itemsize)
        return self.files[key]

    def _rows(self, path: Path, dtype: np.dtype, rows: np.ndarray, width: int | None = None) -> np.ndarray:
        fd, offset, row_bytes = self._open(path, dtype, width)
        lo, hi = int(rows.min()), int(rows.max())
        if len(rows) * 4 >= hi - lo + 1:  # dense: one read of the span
            data = os.pread(fd, (hi - lo + 1) * row_bytes, offset + lo * row_bytes)
            if len(data) != (hi - lo + 1) * row_bytes:
                raise PersistenceError(f"feature cache file {path.name} is truncated")
            block = np.frombuffer(data, dtype=dtype).reshape(hi - lo + 1, -1)
            return block[rows - lo].copy()
        parts = []
        for r in rows.tolist():
            data = os.pread(fd, row_bytes, offset + r * row_bytes)
            if len(data) != row_bytes:
                raise PersistenceError(f"feature cache file {path.name} is truncated")
            parts.append(data)
        return np.frombuffer(b"".join(parts), dtype=dtype).reshape(len(rows), -1).copy()

    def rows(self, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = self._rows(self.directory / f"shard-{name}.values.npy", np.dtype(np.int8), rows, self.dimension)
        s = None
        if self.item_scales:
            s = self._rows(self.directory / f"shard-{name}.scales.npy", np.dtype(np.float32), rows, self.item_scales)
        return x, s


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, StorageFullError) or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT))
