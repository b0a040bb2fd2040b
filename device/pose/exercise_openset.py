"""The exercise open set's calibration: what a model carries in ``metadata["open_set"]``.

Per exercise, the centre and half-range (5th–95th percentile) of every raw
window feature, and a distance limit; :class:`~device.pose.exercise.ExerciseClassifier`
calls a window whose distance to every exercise is beyond the limit ``unknown``.
Both the build of the shipped model (``fit_classifier``) and the device's
trainer (through :meth:`~device.pose.exercise_features.ExerciseFeatures.model_metadata`)
calibrate with :func:`calibrate_open_set`, so every exercise model brings its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

UNKNOWN = "unknown"
# window motion (mean std of the body's normalised positions) below which nobody exercises
MIN_MOTION = 0.012
# a label needs at least this mean probability over the windows that back it
MIN_CONFIDENCE = 0.25
# distance to the nearest exercise beyond which a window is unknown (a model without
# calibration); calibrated models accept DISTANCE_MARGIN × what 99 % of their training windows reach
MAX_DISTANCE = 1.0
DISTANCE_MARGIN = 3.0


def calibrate_open_set(raw: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """The open set of a model trained on these raw windows (``metadata["open_set"]``):
    per exercise the centre and half-range (5th–95th percentile) of every
    dimension, and the distance limit (``DISTANCE_MARGIN`` × the distance that
    99 % of the training windows stay within). A trainer working from quantised
    windows passes ``values * scales + centres``."""
    raw = np.asarray(raw, dtype=np.float64)
    names = np.asarray([str(label) for label in labels])
    exercises = sorted(set(names) - {UNKNOWN})
    bounds = [np.percentile(raw[names == label], [5, 95], axis=0) for label in exercises]
    centres = np.round(np.asarray([(lo + hi) / 2 for lo, hi in bounds]), 5)
    spreads = np.round(np.asarray([np.maximum((hi - lo) / 2, 0.02) for lo, hi in bounds]), 5)
    reach = float(np.percentile(nearest_distance(raw[names != UNKNOWN], centres, spreads), 99))
    return {
        "min_motion": MIN_MOTION,
        "min_confidence": MIN_CONFIDENCE,
        "max_distance": round(max(reach, 1e-3) * DISTANCE_MARGIN, 6),
        "centres": centres.tolist(),
        "spreads": spreads.tolist(),
    }


def nearest_distance(raw: np.ndarray, centres: np.ndarray, spreads: np.ndarray, rows: int = 256) -> np.ndarray:
    """Per window, the distance to the nearest class, ``rows`` windows at a time (the
    windows × classes × dimensions excess of a whole training set would not fit a Pi)."""
    raw = np.atleast_2d(raw)
    out = np.empty(len(raw))
    for a in range(0, len(raw), rows):
        z = np.abs(raw[a : a + rows, None, :] - centres[None]) / spreads[None]
        excess = np.maximum(z - 1.0, 0.0)
        out[a : a + rows] = (excess * excess).mean(axis=2).min(axis=1)
    return out
