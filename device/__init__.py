"""Cadence: camera and microphone in, repetition counts and sound events out.

Layers (lower never import higher): ``device.components`` (the library core)
← ``device.video`` / ``device.pose`` / ``device.audio`` / ``device.learn``
← ``device.daemon`` ← ``device.cli``.
"""

import os

__version__ = "0.1.0"

# FFmpeg's and OpenCV's own console chatter (e.g. "moov atom not found") would
# precede Cadence's one-line errors; silence it unless the user asks for it by
# setting these variables themselves. Must happen before cv2 is imported.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
