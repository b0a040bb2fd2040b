"""Errors raised by video and camera sources.

The daemon tells two cases apart: a source that cannot be used at all (a
missing or undecodable file, a camera that will not open: fix the config) and
a live source that went away mid-stream (:class:`SourceLost`, e.g. a camera
unplugged or a network stream that stopped: wait and retry).
"""

from __future__ import annotations

from ..components.errors import CadenceError


class SourceError(CadenceError):
    """A frame source cannot be opened or read."""


class VideoFileError(SourceError, ValueError):
    """A video file is missing, empty, or cannot be decoded."""


class CameraError(SourceError):
    """A camera (or stream URL) cannot be opened or configured."""


class SourceLost(SourceError):
    """A live source stopped delivering frames mid-stream; retrying may help."""


class CameraLost(SourceLost):
    """The camera disappeared (unplugged, driver error, stream stopped)."""
