"""Cadence: camera and microphone in, repetition counts and sound events out.

Layers (lower never import higher): ``device.components`` (the library core)
← ``device.video`` / ``device.pose`` / ``device.audio`` / ``device.learn``
← ``device.daemon`` ← ``device.cli``.
"""

__version__ = "0.1.0"
