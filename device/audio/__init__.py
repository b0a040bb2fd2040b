"""Hear: audio sources, the audio feature print and sound events.

Names are exported lazily so that ``import device.audio`` stays cheap (no
PortAudio or TFLite until they are used).
"""

from __future__ import annotations

from ..lazy import lazy_exports

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
    "write_wav": "sources",
    "input_devices": "sources",
    "AudioFeaturePrint": "featureprint",
    "ClipFeaturePrint": "featureprint",
    "QuantizedFeature": "featureprint",
    "FeaturePrintError": "featureprint",
    "SoundEventDetector": "events",
    "SoundEvent": "events",
    "WindowPrediction": "events",
    "WindowClassifier": "events",
    "SoundSettings": "settings",
    "sound_pipeline": "pipeline",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
