"""Exceptions shared by every layer, so callers can catch one family."""


class CadenceError(Exception):
    """Base class: an error whose message is fit to show a user as one line."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none),
    for wrapping a library's error into a one-line Cadence message."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class CompositionError(CadenceError, TypeError):
    """Two stages cannot be composed (wrong kinds or incompatible types)."""


class PersistenceError(CadenceError, ValueError):
    """A file on disk is missing, corrupt, foreign, or of an unsupported version."""


class StorageFullError(PersistenceError, OSError):
    """A write failed because the storage is full; nothing was replaced."""
