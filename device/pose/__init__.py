"""Body pose: BlazePose extraction, pose selection, repetition counting.

Names are imported lazily so that ``import device.pose`` stays cheap and the
counter can be used without the TFLite runtime.
"""

from __future__ import annotations

from ..lazy import lazy_exports

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
    # device/pose/settings.py, device/pose/pipeline.py — the repetition pipeline
    "PoseSettings": "settings",
    "counting_pipeline": "pipeline",
    "repetition_pipeline": "pipeline",
    "count_repetitions": "pipeline",
    # device/pose/exercise.py, exercise_features.py — which exercise
    "classify_exercise": "exercise",
    "ExerciseClassifier": "exercise",
    "ExerciseGuess": "exercise",
    "ExerciseRecognizer": "exercise",
    "ExerciseFeatures": "exercise_features",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
