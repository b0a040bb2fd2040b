"""Saved pose sequences: a ``(frames, 33, 2|3|4)`` ``.npy`` and a ``.json`` beside it.

``cadence pose --out`` writes them; the counter, ``cadence count`` and the
exercise tools read them back. The array is float (NaN rows where nobody was
found); the JSON holds the frame rate, timestamps and source. Files are
checked before use and written atomically.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..components import CadenceError, atomic_write, atomic_write_json
from ..components.persistence import fsync_directory

FORMAT = "cadence-poses"
VERSION = 1
SUFFIX = ".npy"
DEFAULT_FPS = 30.0
# a pose array is small (33 × 4 float32 = 528 bytes a frame): 2 GB is over a day of video at 30 fps
MAX_BYTES = 2 << 30
COLUMNS = ("x", "y", "z", "visibility")  # what the last axis holds (the first 2, 3 or 4 of these)


class PoseFileError(CadenceError, ValueError):
    """A pose array that cannot be read or has the wrong shape."""


def _array_path(out: str | Path) -> Path:
    """``out`` with the ``.npy`` suffix (added after any other suffix)."""
    out = Path(out)
    path = out if out.suffix == SUFFIX else out.with_suffix(out.suffix + SUFFIX)
    for given in {out, path}:  # a folder given (trailing slash or not) was written beside as <folder>.npy
        if given.is_dir():
            raise PoseFileError(f"{given}: is a folder; name the .npy file to write")
    return path


def _header(meta: dict[str, Any], columns: int) -> dict[str, Any]:
    """The JSON beside an array: format, version, what its columns are, then ``meta``."""
    return {"format": FORMAT, "version": VERSION, "columns": list(COLUMNS[:columns]), **meta}


def save_poses(out: str | Path, landmarks: np.ndarray, meta: dict[str, Any]) -> Path:
    """Write ``landmarks`` as float32 ``.npy`` and ``meta`` as JSON beside it; returns the array's path."""
    out = _array_path(out)
    array = np.asarray(landmarks, dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write(out, buffer.getvalue())
    atomic_write_json(out.with_suffix(".json"), _header(meta, array.shape[-1]))
    return out


#: the highest frame rate a pose file's JSON may give (as `--fps` allows)
MAX_FPS = 1000.0


def load_poses(path: str | Path, fps: float | None = None, *, mmap: bool = False) -> tuple[np.ndarray, float]:
    """A pose array and its frame rate (``fps`` if given, else the .json beside it, else 30).

    ``mmap``: map the file instead of reading it (long recordings stay on disk).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
        raise PoseFileError(f"pose file {path} {what}")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise PoseFileError(f"{path}: {size} bytes is more than a pose array can be ({MAX_BYTES})")
    try:
        poses = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except Exception as exc:  # numpy raises several types for a bad file
        raise PoseFileError(f"{path}: not a readable .npy array ({exc.__class__.__name__})") from None
    if poses.ndim != 3 or poses.shape[1] != 33 or poses.shape[2] not in (2, 3, 4):
        raise PoseFileError(f"{path}: poses must have shape (frames, 33, 2|3|4), got {poses.shape}")
    if not np.issubdtype(poses.dtype, np.floating):
        raise PoseFileError(f"{path}: poses must be floating point, got {poses.dtype}")
    if fps is None:
        fps = DEFAULT_FPS
        meta = path.with_suffix(".json")
        if meta.is_file():
            try:
                given = json.loads(meta.read_text()).get("fps")
                if isinstance(given, bool):  # true would read as 1 fps
                    raise TypeError(given)
                value = float(given or 0)
            except (ValueError, AttributeError, TypeError):
                raise PoseFileError(f"{meta}: not a valid pose metadata file (JSON with an fps)") from None
            if not 0 <= value <= MAX_FPS:  # JSON lets Infinity and NaN through
                raise PoseFileError(f"{meta}: fps must be between 0 and {MAX_FPS:g}, got {value:g}")
            if value > 0:
                fps = value
    return poses, fps


def frames_of(poses: np.ndarray) -> Iterator[np.ndarray | None]:
    """Per frame: the (33, k) landmarks, or None where nobody was found (a NaN row)."""
    for pose in poses:
        yield None if not np.isfinite(pose[:, :2]).any() else pose


class PoseWriter:
    """Writes a pose array frame by frame, in bounded memory, and publishes it atomically.

    Rows go to a temporary file next to the target as they come; :meth:`close`
    puts the ``.npy`` header in front (the frame count is known only then),
    renames it over the target and writes the JSON beside it.
    """

    def __init__(self, out: str | Path, columns: int = 4) -> None:
        self.path = _array_path(out)
        self.columns = columns
        self.frames = 0
        self._rows_path = self.path.with_name(f".{self.path.name}.rows")
        try:  # before any frame is processed
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rows = open(self._rows_path, "wb")
        except OSError as exc:
            raise self._unwritable(exc) from None

    def append(self, landmarks: np.ndarray) -> None:
        row = np.asarray(landmarks, dtype="<f4")
        if row.shape != (33, self.columns):
            raise PoseFileError(f"a pose row must have shape (33, {self.columns}), got {row.shape}")
        try:
            self._rows.write(row.tobytes())
        except OSError as exc:  # a full disk: one line (the caller discards the rows)
            raise self._unwritable(exc) from None
        self.frames += 1

    def close(self, meta: dict[str, Any]) -> Path:
        """Finish the ``.npy`` (header + rows) and write ``meta`` as JSON beside it."""
        header = {"descr": "<f4", "fortran_order": False, "shape": (self.frames, 33, self.columns)}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self._rows.close()  # the last rows are written now: a full disk may say so only here
            with open(tmp, "wb") as out, open(self._rows_path, "rb") as rows:
                np.lib.format.write_array_header_1_0(out, header)
                for block in iter(lambda: rows.read(1 << 20), b""):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            fsync_directory(self.path.parent)
        except OSError as exc:
            raise self._unwritable(exc) from None
        finally:
            tmp.unlink(missing_ok=True)
            self._rows_path.unlink(missing_ok=True)
        atomic_write_json(self.path.with_suffix(".json"), _header(meta, self.columns))
        return self.path

    def discard(self) -> None:
        """Give up: remove the partial rows; an existing target is left as it was."""
        try:
            self._rows.close()
        except OSError:  # the buffered rows could not be written either (a full disk): they go anyway
            pass
        self._rows_path.unlink(missing_ok=True)

    def _unwritable(self, exc: OSError) -> PoseFileError:
        return PoseFileError(f"{self.path}: could not write: {exc.strerror or exc}")
