"""The shipped exercises' training windows, so an owner's exercises are added to them.

``models/exercise-base.cadence`` holds the int8 windows the shipped model was
trained on (pinned by SHA-256 like the model, rebuilt by ``make
exercise-model``). ``cadence train exercise`` (and ``cadence retrain
exercise``) trains on them plus the owner's recordings: they are laid out
once as one windows file per shipped exercise under the state directory, which
the feature cache then treats like any recording of that exercise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .exercise_features import WINDOWS_SUFFIX, ExerciseFeatures, read_windows, save_windows

BASE_FILE = "exercise-base.cadence"


def shipped_windows_files(state_dir: Path, features: ExerciseFeatures | None = None) -> dict[str, Path]:
    """One windows file per shipped exercise (label → path) under ``state_dir``,
    written from the shipped set the first time (then reused: the cache knows them)."""
    from ..pretrained import model_path

    features = features or ExerciseFeatures()
    folder = Path(state_dir) / "exercise-base" / features.fingerprint()[:12]
    out: dict[str, Path] = {}
    for path in sorted(folder.glob(f"*{WINDOWS_SUFFIX}")) if folder.is_dir() else []:
        out[path.stem] = path
    if out:
        return out
    values, labels = read_windows(model_path(BASE_FILE), features)
    names = np.array(labels)
    for label in sorted(set(labels)):
        out[label] = save_windows(folder / f"{label}{WINDOWS_SUFFIX}", values[names == label], [label] * int((names == label).sum()),
                                  features)
    return out
