"""How the daemon words a failure it survives: one line for the log, MQTT and state."""

from __future__ import annotations

from ..components import CadenceError, first_line


def one_line(exc: BaseException) -> str:
    """A Cadence error's own line; any other exception's first line with its type
    (a bare ``ValueError: x`` says little without its type; our own errors are written to be read)."""
    text = first_line(exc)
    return text if isinstance(exc, CadenceError) or text == type(exc).__name__ else f"{type(exc).__name__}: {text}"
