"""Progress on a terminal: one redrawn line; quiet in pipes and with ``--json``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def bar(fraction: float, width: int = 24) -> str:
    """``[######......]  42%``"""
    fraction = max(0.0, min(1.0, fraction))
    done = int(round(fraction * width))
    return "[" + "#" * done + "." * (width - done) + f"] {fraction:4.0%}"


class ProgressLine:
    """Redraws one status line on a terminal; elsewhere prints a line at most every ``every`` seconds
    (and always the last one), or nothing when ``quiet``."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, every: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self._last = 0.0
        self._drawn = False

    def show(self, fraction: float, text: str, *, force: bool = False) -> None:
        if self.quiet:
            return
        line = f"{bar(fraction)}  {text}"
        if self.tty:
            self.stream.write("\r" + line[:118].ljust(100))
            self.stream.flush()
            self._drawn = True
            return
        now = time.monotonic()
        if force or fraction >= 1.0 or now - self._last >= self.every:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last = now

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
