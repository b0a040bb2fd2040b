"""TFLite inference through ``ai-edge-litert`` (or ``tflite-runtime``).

One small wrapper shared by the pose and audio models: load a verified model
file, set the thread count, run named or positional inputs, and report the
tensors' shapes so callers can check what they were given.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .components.errors import CadenceError
from .stderr import redirect_lock


class InferenceError(CadenceError):
    """A model could not be loaded or run."""


def interpreter_class() -> Any:
    """The TFLite ``Interpreter`` class of whichever runtime is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter
    except ImportError as exc:
        raise InferenceError(
            "no TFLite runtime: install ai-edge-litert (pip install ai-edge-litert) or tflite-runtime"
        ) from exc


def drop_file_pages(path: str | Path) -> int:
    """Drop this process's resident pages of the read-only file ``path``.

    TFLite maps a model file and XNNPACK copies (packs) its weights when the
    interpreter is built, so the mapped pages are not read again (the few
    that are — tensor metadata — fault back in from the page cache). The
    pages are clean and file-backed: dropping them costs no I/O and takes the
    file's size off RSS. Returns the bytes of mapping advised (0 if none or
    not Linux).
    """
    import ctypes
    import mmap

    target = str(Path(path).resolve())
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = [line.split(maxsplit=5) for line in maps]
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    dropped = 0
    for fields in lines:
        if len(fields) < 6 or fields[5].strip() != target or "w" in fields[1]:
            continue  # only read-only mappings of this very file
        start, end = (int(v, 16) for v in fields[0].split("-"))
        if madvise(start, end - start, mmap.MADV_DONTNEED) == 0:
            dropped += end - start
    return dropped


# The TFLite runtime writes this to stderr (fd 2, from C++) when the process's first
# interpreter is built; it has no Python switch. Every command would start with it.
DELEGATE_NOTE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
_note_seen = False


@contextlib.contextmanager
def without_delegate_note() -> Iterator[None]:
    """Build interpreters inside this: until the runtime's one-time note has been seen,
    fd 2 goes to a temporary file meanwhile, and everything written there except the
    note is passed on afterwards (another thread's log lines are delayed, never lost).
    Holds :data:`device.stderr.redirect_lock` meanwhile."""
    global _note_seen
    if _note_seen:
        yield
        return
    with redirect_lock:
        if _note_seen:
            yield
            return
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield  # no stderr to redirect
            return
        try:
            capture = tempfile.TemporaryFile()
        except OSError:  # no writable temporary folder (a read-only system): the note shows, the model loads
            os.close(saved)
            yield
            return
        with capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                written = capture.read()
                if DELEGATE_NOTE in written:
                    _note_seen = True
                    written = written.replace(DELEGATE_NOTE, b"", 1)
                if written:
                    os.write(2, written)


class TFLiteModel:
    """A loaded TFLite model; call :meth:`run` with input arrays in order."""

    def __init__(
        self,
        path: str | Path,
        *,
        num_threads: int = 1,
        input_shapes: list[tuple[int, ...]] | None = None,
        content: bytes | None = None,
    ) -> None:
        """Load ``path`` (or, with ``content``, that model's bytes as given —
        e.g. a pruned copy; ``path`` then only names it in messages)."""
        if num_threads < 1:
            raise InferenceError(f"num_threads must be ≥ 1, got {num_threads}")
        self.path = Path(path)
        self.num_threads = num_threads
        interpreter_class_ = interpreter_class()
        try:
            with without_delegate_note():
                if content is not None:
                    self.interpreter = interpreter_class_(model_content=content, num_threads=num_threads)
                else:
                    self.interpreter = interpreter_class_(model_path=str(self.path), num_threads=num_threads)
                if input_shapes is not None:  # models with a variable dimension
                    for detail, shape in zip(self.interpreter.get_input_details(), input_shapes):
                        self.interpreter.resize_tensor_input(detail["index"], list(shape))
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InferenceError(f"{self.path}: not a loadable TFLite model ({str(exc).splitlines()[0]})") from exc
        if content is None:
            drop_file_pages(self.path)  # the weights are packed into the interpreter by now
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in d["shape"]) for d in self.inputs]

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in d["shape"]) for d in self.outputs]

    def resize_input(self, index: int, shape: tuple[int, ...]) -> None:
        """Change an input's shape (for models with a variable dimension)."""
        self.interpreter.resize_tensor_input(self.inputs[index]["index"], list(shape))
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()

    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Run once; returns copies of all outputs in the model's order."""
        if len(arrays) != len(self.inputs):
            raise InferenceError(f"{self.path.name}: expects {len(self.inputs)} inputs, got {len(arrays)}")
        for detail, array in zip(self.inputs, arrays):
            array = np.asarray(array, dtype=detail["dtype"])
            if tuple(array.shape) != tuple(detail["shape"]):
                raise InferenceError(
                    f"{self.path.name}: input {detail['name']} wants shape {tuple(detail['shape'])}, "
                    f"got {tuple(array.shape)}"
                )
            self.interpreter.set_tensor(detail["index"], array)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self.outputs]
