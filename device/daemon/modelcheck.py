"""What `cadence config check` says about the model files a configuration makes the daemon run.

A configuration can be valid and still name a model the daemon cannot run (a pinned file
missing or altered, an owner's model file damaged or made for other features): the check
says so before the daemon starts, one line per file, instead of at the first frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config


@dataclass(frozen=True)
class ModelCheck:
    what: str  # "sound model", "pose_detection.tflite"…
    path: Path | None
    problem: str | None  # None: fine
    note: str = ""  # e.g. the labels, or "the shipped one runs"
    present: bool = True  # False: an owner's model not made yet (not a problem)

    def line(self) -> str:
        """How `cadence config check` shows it."""
        if self.problem:
            return f"{self.what}: PROBLEM (below)"
        where = f"{self.path} ok" if self.present else f"none at {self.path}"
        return f"{self.what}: {where}{' — ' + self.note if self.note else ''}"


def pinned_files(config: Config) -> list[str]:
    """The pinned (manifest) model files the enabled pipelines load."""
    from ..audio.frontend import EMBEDDING_MODEL, MELSPECTROGRAM_MODEL
    from ..pose.exercise import MODEL_FILE
    from ..pose.extractor import DETECTOR_MODEL, LANDMARK_MODEL

    names: list[str] = []
    if config.camera.enabled:
        camera = config.camera.for_board()
        names += [DETECTOR_MODEL, camera.landmark_model or LANDMARK_MODEL]
        if camera.recognize_exercise:
            names.append(MODEL_FILE)
    if config.microphone.enabled:
        names += [MELSPECTROGRAM_MODEL, EMBEDDING_MODEL]
    return names


def check_models(config: Config, *, sound_loader: Callable[[Path], Any], exercise_loader: Callable[[Path], Any]) -> list[ModelCheck]:
    """Each model file the configuration's daemon would load, checked as the daemon loads it."""
    from ..pretrained import ModelFileError, model_path

    checks = []
    for name in pinned_files(config):
        try:
            checks.append(ModelCheck(name, model_path(name), None))
        except ModelFileError as exc:
            checks.append(ModelCheck(name, None, str(exc)))
    owned = []
    if config.microphone.enabled:
        owned.append(("sound model", config.sound_model_path, sound_loader,
                      "no sound events until one is trained (`cadence retrain sound`)"))
    if config.camera.enabled and config.camera.recognize_exercise:
        owned.append(("exercise model", config.exercise_model_path, exercise_loader,
                      "the shipped one runs"))
    for what, path, loader, absent in owned:
        try:
            exists = path.exists()
            # a link that leads nowhere (dangling, or a loop) is no "not trained yet"
            broken_link = not exists and path.is_symlink()
        except OSError as exc:  # e.g. a state folder this user may not look into
            checks.append(ModelCheck(what, path, f"{what} {path}: cannot be looked at ({exc.strerror or exc})"))
            continue
        if broken_link:
            checks.append(ModelCheck(what, path, f"{what} {path}: a symbolic link that leads to no file (dangling or a loop)"))
            continue
        if not exists:
            checks.append(ModelCheck(what, path, None, absent, present=False))
            continue
        try:
            model = loader(path)
        except Exception as exc:  # whatever the loader refuses, said as it says it
            said = str(exc)
            checks.append(ModelCheck(what, path, f"{what} {said}" if str(path) in said else f"{what} {path}: {said}"))
            continue
        labels = list(getattr(model, "labels", None) or [])
        checks.append(ModelCheck(what, path, None, f"{len(labels)} labels ({', '.join(map(str, labels))})" if labels else ""))
    return checks
