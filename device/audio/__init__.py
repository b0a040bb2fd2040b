"""Hear: audio sources, the audio feature print and sound events.

Names are exported lazily so that ``import device.audio`` stays cheap (no
PortAudio or TFLite until they are used).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SAMPLE_RATE": "sources",
    "AudioError": "sources",
    "AudioFileError": "sources",
    "MicrophoneError": "sources",
    "MicrophoneLost": "sources",
    "MicrophoneConfig": "sources",
    "Microphone": "sources",
    "StreamResampler": "sources",
    "load_audio": "sources",
    "audio_info": "sources",
    "read_audio": "sources",
    "read_microphone": "sources",
    "input_devices": "sources",
    "AudioFeaturePrint": "featureprint",
    "ClipFeaturePrint": "featureprint",
    "QuantizedFeature": "featureprint",
    "FeaturePrintError": "featureprint",
    "SoundEventDetector": "events",
    "SoundEvent": "events",
    "WindowPrediction": "events",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'device.audio' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
