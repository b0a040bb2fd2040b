"""Body pose: BlazePose extraction, pose selection, repetition counting.

Names are imported lazily so that ``import device.pose`` stays cheap and the
counter can be used without the TFLite runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # device/pose/landmarks.py — Pose type, landmark names and indices
    "Pose": "landmarks",
    "LANDMARK_NAMES": "landmarks",
    # device/pose/extractor.py — BlazePose detector + landmarks + tracking
    "HumanBodyPoseExtractor": "extractor",
    # device/pose/selection.py
    "PoseSelector": "selection",
    "JointsSelector": "selection",
    # device/pose/counter.py
    "HumanBodyActionCounter": "counter",
    "RepetitionCount": "counter",
    "count_repetitions": "counter",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'device.pose' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
