"""The feature cache: every clip's windows computed once, stored int8 on disk.

A clip's training examples are the windows its featurizer's stream computes
over the file (``featurizer.file_windows(path)``: for sound, exactly the
windows the device classifies live). Layout under
``<state dir>/feature-cache/<fingerprint[:16]>/``::

    index.json              the commit point: shards, entries, file-hash memo
    shard-000004.values.npy int8 (windows, dimension)
    shard-000004.times.npy  float32 (windows, 3): start, end (s) and level (rms_db, dBFS) of each window

An entry maps a clip key to ``[shard, first row, windows]``: a clip's windows
are consecutive rows of one shard, in stream order. Entries are keyed by the
SHA-256 of the clip's bytes, so a renamed or relabelled clip is not extracted
again; the folder is named after the featurizer's fingerprint, so a changed
featurizer starts a new cache and the old one is removed (only the old
one of the same kind: the sound and the exercise caches live side by side). Shards and the
index are written atomically and in that order: after a power cut the index
only names complete shards, and shard files it does not name are removed on
the next run. A shard whose checksum no longer matches is dropped and its
clips extracted again. A clip that yields no window (a sound shorter than
0.5 s) is reported as too short and not used.

Augmented copies of a clip (:meth:`FeatureCache.augment`, for training from
few clips) are entries keyed ``<content hash>~<augmenter settings>~<copy>``;
they live as long as their clip does.

Training reads the cache in chunks of windows (:meth:`FeatureCache.examples`,
:meth:`FeatureCache.iter_chunks`) with ``pread`` from shard files held open
for a pass, so memory is bounded by the chunk size, not the cache. With
``min_level`` the windows quieter than the volume gate are left out: the
device never classifies them, so nothing should learn from them (a quiet tail
trained as ``ball_drop`` teaches "near-silence is a ball drop"). A window's
start, end and level (:meth:`FeatureCache.window_info`) let an evaluation
replay cached windows through the live detector.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.components import (
    CadenceError,
    EventHandler,
    Examples,
    Featurizer,
    PersistenceError,
    StorageFullError,
    atomic_write,
    atomic_write_json,
    emit,
    sha256_file,
)

from . import shards
from .dataset import Clip
from .shards import Extracted, ShardReader, extract_one, npy_bytes

INDEX_FORMAT = "cadence.feature_cache"
# 3: each window's start, end and level beside its values; 2: the windows of each clip's stream; 1: one vector per clip
INDEX_VERSION = 3
DEFAULT_SHARD_SIZE = 128  # clips per shard file
MAX_SHARD_ROWS = 8192  # and at most this many windows (8192 × 688 bytes ≈ 5.6 MB)
IN_MEMORY_BYTES = 32 << 20  # training windows held in memory up to this size (float32), else read per pass
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


class CacheBusyError(CadenceError):
    """Another Cadence process is using the feature cache."""


@dataclasses.dataclass
class CacheReport:
    extracted: int = 0
    reused: int = 0
    removed: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class FeatureCache:
    """The windows of clips, keyed by content hash, for one featurizer."""

    def __init__(self, root: str | os.PathLike[str], featurizer: Featurizer, *, shard_size: int | None = None) -> None:
        shard_size = DEFAULT_SHARD_SIZE if shard_size is None else shard_size
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        self.root = Path(root)
        self.featurizer = featurizer
        self.fingerprint = str(featurizer.fingerprint())
        self.directory = self.root / self.fingerprint[:16]
        self.kind = type(featurizer).__name__  # caches of other kinds (sound, exercise) share the root
        self.shard_size = int(shard_size)
        self._lock_handle: Any = None
        self.notes: list[str] = []  # said once by the next update (an old cache rebuilt)
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
            "kind": self.kind,
            "dimension": int(self.featurizer.dimension),
            "scales": [float(v) for v in np.asarray(self.featurizer.scales, dtype=np.float32).reshape(-1)],
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
        if isinstance(index, dict) and index.get("format") == INDEX_FORMAT and index.get("version") != INDEX_VERSION:
            self.notes.append(
                f"{self.directory}: the feature cache was written by another Cadence (format {index.get('version')!r}, "
                f"this one uses {INDEX_VERSION}); it is rebuilt"
            )
            return self._empty_index()
        if (
            not isinstance(index, dict)
            or index.get("format") != INDEX_FORMAT
            or index.get("fingerprint") != self.fingerprint
            or not _well_formed(index)
            or index["dimension"] != self.featurizer.dimension
        ):
            return self._empty_index()
        return index

    def _write_index(self) -> None:
        atomic_write_json(self.directory / "index.json", self.index)

    @property
    def dimension(self) -> int:
        return int(self.index["dimension"])

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
    def _shard_file(self, name: str) -> Path:
        return self.directory / f"shard-{name}.values.npy"

    def _times_file(self, name: str) -> Path:
        return self.directory / f"shard-{name}.times.npy"

    def _remove_other_fingerprints(self) -> int:
        """Remove the caches of older versions of this featurizer (a changed feature print);
        another kind's cache (sound beside exercise) is kept."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for other in self.root.iterdir():
            if other.is_dir() and other.name != self.directory.name and self._same_kind(other):
                shutil.rmtree(other, ignore_errors=True)
                removed += 1
        return removed

    def _same_kind(self, folder: Path) -> bool:
        """Whether ``folder`` holds a cache of this featurizer's kind (an index written before
        kinds were recorded: of the same dimension). A folder without a readable index holds
        nothing a cache names (the index is written atomically, under the root's lock): removed."""
        try:
            index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return True
        if not isinstance(index, dict):
            return True
        if "kind" in index:
            return index["kind"] == self.kind
        return index.get("dimension") == int(self.featurizer.dimension)

    def _remove_orphans(self) -> None:
        if not self.directory.is_dir():
            return
        known = {f(name).name for name in self.index["shards"] for f in (self._shard_file, self._times_file)}
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
            for path, digest in ((self._shard_file(name), shard["sha256"]), (self._times_file(name), shard["times_sha256"])):
                if not path.is_file() or deep and sha256_file(path) != digest:
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
        for key, (name, row, count) in self.index["entries"].items():
            shard = self.index["shards"].get(name)
            if shard is None:
                problems.append(f"entry {key[:12]} points at unknown shard {name}")
            elif not (0 <= row and 1 <= count and row + count <= shard["rows"]):
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
        report = CacheReport(notes=self.notes)
        self.notes = []
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
        are cached (``augmenter.file_windows(featurizer, path, hash, i)``);
        returns the report and each hash's copy keys. Like clips, copies are
        extracted once and reused by later trainings."""
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
        buffer: list[tuple[str, np.ndarray, np.ndarray]] = []
        failed: set[str] = set()
        repeats: dict[str, int] = {}  # one line per problem: a clip's copies all fail alike
        for i, (clip, key, outcome) in enumerate(self._extract(todo, jobs)):
            if isinstance(outcome, str):
                if outcome not in repeats:
                    report.skipped.append(outcome)
                repeats[outcome] = repeats.get(outcome, 0) + 1
                failed.add(key)
            else:
                buffer.append((key, *outcome))
            if len(buffer) >= self.shard_size or sum(len(v) for _, v, _ in buffer) >= MAX_SHARD_ROWS:
                self._flush(buffer)
                report.extracted += len(buffer)
                buffer = []
            emit(on_event, origin, i + 1, len(todo), extracted=report.extracted + len(buffer))
        if buffer:
            self._flush(buffer)
            report.extracted += len(buffer)
        report.skipped[:] = [f"{m} ({repeats[m]} times)" if repeats.get(m, 1) > 1 else m for m in report.skipped]
        self._write_index()
        return failed

    def store(self, items: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> int:
        """Add windows made elsewhere — ``(key, int8 values (n, d), times (n, 3))``, the shipped
        negatives (:mod:`device.learn.negatives`) — under their keys; keys already cached are kept.
        Like any entry whose clip the next :meth:`update` does not name, they are pruned then."""
        buffer: list[tuple[str, np.ndarray, np.ndarray]] = []
        stored = 0
        taken: set[str] = set()
        for key, values, times in items:
            if key in self.index["entries"] or key in taken:
                continue
            taken.add(key)
            buffer.append((key, np.asarray(values, np.int8), np.asarray(times, np.float32)))
            if len(buffer) >= self.shard_size or sum(len(v) for _, v, _ in buffer) >= MAX_SHARD_ROWS:
                self._flush(buffer)
                stored, buffer = stored + len(buffer), []
        if buffer:
            self._flush(buffer)
            stored += len(buffer)
        return stored

    def _extract(self, todo: list[tuple[Clip, str, Any]], jobs: int) -> Iterator[tuple[Clip, str, Extracted]]:
        """(clip, key, windows or an error line) in ``todo`` order."""
        if jobs <= 1 or len(todo) < 2 * jobs:
            for clip, key, variant in todo:
                yield clip, key, extract_one(self.featurizer, clip.path, variant)
            return
        import multiprocessing

        shards.WORKER = self.featurizer  # inherited by the forked workers
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(jobs) as pool:
            results = pool.imap(shards.extract_in_worker, [(clip.path, variant) for clip, _, variant in todo], chunksize=2)
            for (clip, key, _), outcome in zip(todo, results):
                yield clip, key, outcome
        shards.WORKER = None

    def _flush(self, buffer: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        """Write ``(key, int8 values (n, d), times (n, 3))`` clips as one new shard, then the index."""
        import hashlib

        name = f"{int(self.index['next_shard']):06d}"
        self.index["next_shard"] = int(self.index["next_shard"]) + 1
        data = npy_bytes(np.concatenate([v for _, v, _ in buffer]).astype(np.int8, copy=False))
        times = npy_bytes(np.concatenate([t for _, _, t in buffer]).astype(np.float32, copy=False))
        atomic_write(self._shard_file(name), data)
        atomic_write(self._times_file(name), times)
        row = 0
        for key, values, _ in buffer:
            self.index["entries"][key] = [name, row, len(values)]
            row += len(values)
        self.index["shards"][name] = {
            "rows": row, "sha256": hashlib.sha256(data).hexdigest(), "times_sha256": hashlib.sha256(times).hexdigest(),
        }
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
        live_entries: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        for k, (name, row, count) in self.index["entries"].items():
            live_entries[name].append((k, row, count))
        obsolete = []
        for name, shard in list(self.index["shards"].items()):
            alive = live_entries.get(name, [])
            if not alive:
                obsolete.append(name)
            elif sum(c for _, _, c in alive) < shard["rows"] // 2:
                # rewrite the live windows into a new shard
                with self._reader() as reader:
                    self._flush([(k, reader.rows(name, np.arange(r, r + c)), reader.times(name)[r : r + c])
                                 for k, r, c in alive])
                obsolete.append(name)
        if dead or obsolete:
            for name in obsolete:
                self.index["shards"].pop(name, None)
            self._write_index()
            for name in obsolete:
                for path in (self._shard_file(name), self._times_file(name)):
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        pass
        return len(dead)

    # -- reading ----------------------------------------------------------------
    def _reader(self) -> ShardReader:
        return ShardReader(self.directory, self.dimension)

    @property
    def scales(self) -> np.ndarray:
        """The featurizer's per-dimension scales (int8 values * scales = features)."""
        return np.asarray(self.index["scales"], dtype=np.float32)

    def window_counts(self, keys: Sequence[str]) -> np.ndarray:
        """Windows per key."""
        entries = self.index["entries"]
        try:
            return np.fromiter((entries[k][2] for k in keys), dtype=np.int64, count=len(keys))
        except KeyError as exc:
            raise CadenceError(f"clip {str(exc)[:14]} is not in the feature cache") from exc

    def _windows(
        self, keys: Sequence[str], min_level: float | None = None
    ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(shard names, shard index, row, owner position in ``keys``) of every window of ``keys``
        (with ``min_level``: of every window at least that loud)."""
        names = sorted(self.index["shards"])
        number = {name: i for i, name in enumerate(names)}
        entries = self.index["entries"]
        counts = self.window_counts(keys)
        shard = np.fromiter((number[entries[k][0]] for k in keys), dtype=np.int32, count=len(keys))
        first = np.fromiter((entries[k][1] for k in keys), dtype=np.int64, count=len(keys))
        owner = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
        starts = np.cumsum(counts) - counts
        row = first[owner] + (np.arange(len(owner), dtype=np.int64) - starts[owner])
        shard = shard[owner]
        if min_level is not None:
            loud = self._times_of(names, shard, row)[:, 2] >= min_level
            shard, row, owner = shard[loud], row[loud], owner[loud]
        return names, shard, row, owner

    def _times_of(self, names: list[str], shard_of: np.ndarray, row_of: np.ndarray) -> np.ndarray:
        out = np.empty((len(shard_of), 3), dtype=np.float32)
        with self._reader() as reader:
            for i in np.unique(shard_of):
                at = shard_of == i
                out[at] = reader.times(names[int(i)])[row_of[at]]
        return out

    def window_info(self, keys: Sequence[str], *, min_level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(times, owner)``: each window's (start, end, level in dBFS) as float32 ``(n, 3)`` and its
        position in ``keys``, in the order of :meth:`read` with the same arguments."""
        names, shard_of, row_of, owner = self._windows(keys, min_level)
        return self._times_of(names, shard_of, row_of), owner

    def _gather(self, reader: ShardReader, names: list[str], shard_of: np.ndarray, row_of: np.ndarray) -> np.ndarray:
        out = np.empty((len(shard_of), self.dimension), dtype=np.float32)
        order = np.argsort(shard_of, kind="stable")
        bounds = np.flatnonzero(np.diff(shard_of[order])) + 1
        scales = self.scales
        for group in np.split(order, bounds):
            if group.size:
                out[group] = reader.rows(names[int(shard_of[group[0]])], row_of[group]).astype(np.float32) * scales
        return out

    def read(self, keys: Sequence[str], *, min_level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(float windows, owner position in ``keys`` per window) of ``keys``, in order
        (use :meth:`iter_chunks` for many); ``min_level``: only windows at least that loud."""
        names, shard_of, row_of, owner = self._windows(keys, min_level)
        with self._reader() as reader:
            return self._gather(reader, names, shard_of, row_of), owner

    def iter_chunks(
        self, keys: Sequence[str], chunk_size: int, *, rng: np.random.Generator | None = None,
        min_level: float | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(float windows, owner position in keys)`` in chunks of at most ``chunk_size`` windows.

        The chunks depend only on ``keys``, their windows and ``rng`` (windows
        shuffled with it when given), never on how the cache happens to be
        split into shards, so a run resumed after a power cut sees the same
        chunks. Memory stays at one chunk, whatever the cache size.
        ``min_level``: only windows at least that loud (dBFS).
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if not len(keys):
            return
        names, shard_of, row_of, owner = self._windows(keys, min_level)
        order = rng.permutation(len(owner)) if rng is not None else np.arange(len(owner))
        with self._reader() as reader:
            for start in range(0, len(order), chunk_size):
                positions = order[start : start + chunk_size]
                yield self._gather(reader, names, shard_of[positions], row_of[positions]), owner[positions]

    def examples(
        self, keys: Sequence[str], names: Sequence[str], labels: Sequence[str], chunk_size: int,
        *, min_level: float | None = None,
    ) -> Examples:
        """The windows of ``keys`` labelled with their clip's name, as estimator :class:`Examples`.

        Up to ``IN_MEMORY_BYTES`` of float windows are read once and held (an
        L-BFGS fit reads its data once per iteration); a larger set is read
        from the shards on every pass. Both give the same chunks in the same
        order.
        """
        names = np.asarray(names)
        shard_names, shard_of, row_of, owner = self._windows(keys, min_level)  # with min_level: the levels read once
        count = len(owner)
        if count * self.dimension * 4 <= IN_MEMORY_BYTES:
            with self._reader() as reader:
                x = self._gather(reader, shard_names, shard_of, row_of)
            return Examples.of(x, names[owner], labels=labels, chunk_size=chunk_size)

        def source(rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for x, owner in self.iter_chunks(keys, chunk_size, rng=rng, min_level=min_level):
                yield x, names[owner]

        return Examples(source, labels, dimension=self.dimension, count=count)

    def size_bytes(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.directory.iterdir() if f.is_file())


def _well_formed(index: dict[str, Any]) -> bool:
    """The index's fields have the types this code reads (else: start over)."""

    def count(v: Any, low: int = 0) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    dim = index.get("dimension")
    scales, shards, entries, files = index.get("scales"), index.get("shards"), index.get("entries"), index.get("files")
    return (
        count(dim, 1)
        and isinstance(scales, list) and len(scales) == dim
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in scales)
        and count(index.get("next_shard"))
        and isinstance(shards, dict)
        and all(
            isinstance(v, dict) and count(v.get("rows")) and isinstance(v.get("sha256"), str)
            and isinstance(v.get("times_sha256"), str)
            for v in shards.values()
        )
        and isinstance(entries, dict)
        and all(
            isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and count(v[1]) and count(v[2], 1)
            and v[0] in shards and v[1] + v[2] <= shards[v[0]]["rows"]
            for v in entries.values()
        )
        and isinstance(files, dict)
        and all(isinstance(v, list) and len(v) == 3 for v in files.values())
    )


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, StorageFullError) or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT))
