"""The feature cache's files: extracting a clip's windows, and reading shard rows back.

A shard is two files written atomically before the index names them:
``shard-N.values.npy`` (int8 windows × dimension, read row by row with
``pread`` so a training pass never loads a whole shard) and
``shard-N.times.npy`` (float32 start, end and level of each window: small,
read whole). Extraction runs in the caller's process or in forked workers
(``WORKER`` is the featurizer they inherit).
"""

from __future__ import annotations

import io
import os
import tokenize
from pathlib import Path
from typing import Any

import numpy as np

from device.components import CadenceError, Featurizer, PersistenceError, first_line


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


WORKER: Any = None


Extracted = tuple[np.ndarray, np.ndarray] | str  # (int8 values (n, d), times (n, 3)) or an error line


def extract_one(featurizer: Featurizer, path: Path, variant: tuple[Any, str, int] | None = None) -> Extracted:
    """The windows of a clip, or of augmented copy ``variant = (augmenter, hash, i)``; or an error line."""
    if variant is None:
        try:
            return _stack(featurizer, featurizer.file_windows(path), path)
        except TooShortError as exc:
            return str(exc)
        except (CadenceError, ValueError, OSError) as exc:
            return f"{path}: no feature windows ({first_line(exc)})"
    augmenter, source, index = variant
    try:
        return _stack(featurizer, augmenter.file_windows(featurizer, path, source, index), path)
    except Exception as exc:  # noqa: BLE001 - a failed copy must not stop training; its clip is fine
        # no copy number: a clip whose copies all fail alike is said once (the cache counts them)
        return f"{path}: augmented copies failed ({first_line(exc)}); the clip itself is used"


class TooShortError(CadenceError):
    """A clip yields no window."""


def _stack(featurizer: Featurizer, windows: Any, path: Path) -> tuple[np.ndarray, np.ndarray]:
    scales = np.asarray(featurizer.scales, dtype=np.float32)
    rows, times = [], []
    for w in windows:
        if w.values.shape != (featurizer.dimension,) or w.values.dtype != np.int8:
            raise ValueError(f"a window of {w.values.shape} {w.values.dtype}, expected ({featurizer.dimension},) int8")
        if not np.array_equal(w.scales, scales):
            raise ValueError("a window's scales differ from the featurizer's")
        rows.append(w.values)
        times.append((w.start, w.end, w.rms_db))
    if not rows:
        reason = getattr(featurizer, "no_window", None) or "too short for one feature window"
        raise TooShortError(f"{path}: {reason}; not used")
    return np.stack(rows), np.array(times, dtype=np.float32)


def extract_in_worker(task: tuple[Path, Any]) -> Extracted:
    return extract_one(WORKER, *task)


class ShardReader:
    """Shard files opened once per pass and read row by row with ``pread``."""

    def __init__(self, directory: Path, dimension: int) -> None:
        self.directory = directory
        self.dimension = dimension
        self.files: dict[str, tuple[int, int, int]] = {}  # path -> (fd, data offset, row bytes)
        self._times: dict[str, np.ndarray] = {}  # shard name -> its windows' (start, end, level): small, read whole

    def __enter__(self) -> "ShardReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        for fd, _, _ in self.files.values():
            os.close(fd)
        self.files.clear()
        self._times.clear()

    def times(self, name: str) -> np.ndarray:
        """(start, end, level) of every window of shard ``name``, float32 (rows, 3)."""
        if name not in self._times:
            path = self.directory / f"shard-{name}.times.npy"
            try:
                times = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise PersistenceError(
                    f"feature cache file {path.name} cannot be read ({first_line(exc)}); run the training again to rebuild it"
                ) from exc
            if times.dtype != np.float32 or times.ndim != 2 or times.shape[1] != 3:
                raise PersistenceError(f"feature cache file {path.name} has an unexpected layout")
            self._times[name] = times
        return self._times[name]

    def _open(self, path: Path) -> tuple[int, int, int]:
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
            if fortran or np.dtype(file_dtype) != np.int8 or len(shape) != 2 or shape[1] != self.dimension:
                raise PersistenceError(f"feature cache file {path.name} has an unexpected layout")
            fd = os.open(path, os.O_RDONLY)
            self.files[key] = (fd, offset, int(shape[1]))
        return self.files[key]

    def rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """int8 rows ``rows`` of shard ``name``."""
        path = self.directory / f"shard-{name}.values.npy"
        fd, offset, row_bytes = self._open(path)
        lo, hi = int(rows.min()), int(rows.max())
        if len(rows) * 4 >= hi - lo + 1:  # dense: one read of the span
            data = os.pread(fd, (hi - lo + 1) * row_bytes, offset + lo * row_bytes)
            if len(data) != (hi - lo + 1) * row_bytes:
                raise PersistenceError(f"feature cache file {path.name} is truncated")
            block = np.frombuffer(data, dtype=np.int8).reshape(hi - lo + 1, -1)
            return block[rows - lo].copy()
        parts = []
        for r in rows.tolist():
            data = os.pread(fd, row_bytes, offset + r * row_bytes)
            if len(data) != row_bytes:
                raise PersistenceError(f"feature cache file {path.name} is truncated")
            parts.append(data)
        return np.frombuffer(b"".join(parts), dtype=np.int8).reshape(len(rows), -1).copy()
