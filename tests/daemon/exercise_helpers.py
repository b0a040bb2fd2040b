"""Real exercise models for the daemon tests, trained in seconds on the shared pose data.

(A uniquely named module: several test folders have helper modules.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from daemon_helpers import SHARED


def _rows(features, poses: np.ndarray) -> list[np.ndarray]:
    from device.pose.exercise_features import frame_descriptors, pool

    desc = frame_descriptors(np.asarray(poses, dtype=np.float64))
    return [r for r in (pool(desc[a:b]) for a, b in features.window_bounds(len(poses))) if r is not None]


def sequences(rename: Mapping[str, str] | None = None) -> list[tuple[str, np.ndarray]]:
    """The ``repcount-dev`` sequences as (label, poses), exercises renamed by ``rename``."""
    from device.pose.exercise_data import load_sequences

    rename = rename or {}
    return [(rename.get(s.exercise, s.exercise), s.poses) for s in load_sequences(SHARED)]


def train_exercise_model(examples: Iterable[tuple[str, np.ndarray]], out: Path) -> list[str]:
    """Fit an exercise classifier on (label, poses) examples plus a background of landmarks that
    are no body (``unknown``), write it atomically to ``out``; returns its labels."""
    from device.components import encode_state
    from device.pose.exercise import UNKNOWN, fit_classifier
    from device.pose.exercise_data import nonsense_windows
    from device.pose.exercise_features import ExerciseFeatures

    features = ExerciseFeatures()
    raw: list[np.ndarray] = []
    labels: list[str] = []
    bodies = []
    for label, poses in examples:
        rows = _rows(features, poses)
        raw += rows
        labels += [label] * len(rows)
        bodies.append(np.asarray(poses)[::15])
    rng = np.random.default_rng(1)
    for window in nonsense_windows(np.concatenate(bodies), 300, rng):
        rows = _rows(features, window)
        raw += rows
        labels += [UNKNOWN] * len(rows)
    classifier = fit_classifier(np.stack(raw), labels, epochs=20, min_windows=100)
    meta, arrays = classifier.model.state()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(encode_state(classifier.model.kind, meta, arrays))
    os.replace(tmp, out)  # the daemon never sees half a file
    return classifier.labels


def inverted(poses: np.ndarray) -> np.ndarray:
    """The poses upside down: a motion no shipped exercise has (a "new exercise" to teach)."""
    flipped = np.array(poses, dtype=np.float32, copy=True)
    flipped[:, :, 1] = 1.0 - flipped[:, :, 1]
    return flipped
