"""Frame sources: video files and live cameras as async temporal streams.

Each yields ``TemporalFeature(frame, timestamp, segment)`` with ``frame`` a BGR
``uint8`` array, and exposes ``fps``.
"""

from .camera import CameraConfig, CameraSource, read_camera
from .errors import CameraError, CameraLost, SourceError, SourceLost, VideoFileError
from .file import VIDEO_SUFFIXES, VideoSource, read_video

__all__ = [
    "CameraConfig",
    "CameraError",
    "CameraLost",
    "CameraSource",
    "SourceError",
    "SourceLost",
    "VIDEO_SUFFIXES",
    "VideoFileError",
    "VideoSource",
    "read_camera",
    "read_video",
]
