"""glibc malloc settings for the long-running daemon (found by scripts/soak.py).

One place for the three C-heap knobs the soak needed to keep RSS flat and
under 200 MB; each does nothing off glibc and defers to the operator's own
``MALLOC_*`` environment variables.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8


@functools.cache
def _glibc() -> Any:
    """The C library if it is glibc (has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both must exist (musl lacks them)
    except (OSError, AttributeError):
        return None
    return libc


def _mallopt(env_name: str, option: int, value: int) -> bool:
    libc = _glibc()
    if libc is None or env_name in os.environ:
        return False
    return bool(libc.mallopt(option, value))


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (unless ``MALLOC_ARENA_MAX`` is set).

    glibc gives each thread that allocates its own arena (up to 8 per core);
    the daemon's worker threads take turns at pose and audio inference, and
    every new arena fills with its own free-but-kept pages: the soak saw RSS
    step up and creep for minutes each time the pool grew a thread. Two
    arenas keep that bounded and RSS lower.
    """
    return _mallopt("MALLOC_ARENA_MAX", M_ARENA_MAX, arenas)


def pin_malloc_thresholds(mmap_threshold: int = 1 << 20, trim_threshold: int = 512 << 10) -> bool:
    """Fix glibc's mmap and trim thresholds (each unless its ``MALLOC_*_`` variable is set).

    By default glibc raises its mmap threshold to the size of each large
    block freed (up to 32 MB): the XNNPACK delegate's multi-megabyte scratch
    while the models load lifts it, and every later block up to that size is
    carved out of the arenas, where it fragments them and stays resident. A
    fixed 1 MB threshold keeps the frames and inference buffers (< 1 MB at
    720p) in the arenas and gives bigger ones back when freed; a 512 KB
    trim threshold (glibc's default, 128 KB, once the threshold is fixed,
    cost ~5 % of a core in page faults) returns a freed heap top. The soak
    measured 7–9 MB less RSS at the same CPU.
    """
    mmap_done = _mallopt("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, mmap_threshold)
    trim_done = _mallopt("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, trim_threshold)
    return mmap_done or trim_done


def release_free_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``).

    Frames, audio windows and interpreter scratch are freed every few ms, but
    glibc keeps freed pages below the top of a heap mapped; the daemon trims
    once per stats interval (a few ms of work) so RSS shows what is in use.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
