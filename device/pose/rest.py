"""Which end of a known exercise's motion is its rest (start) position.

Learned by ``scripts/build_rest_model.py`` from the labelled key poses of
``shared/data/exercise-poses`` (the start and the turning point of
repetitions in 343 videos): per exercise, the direction in the counter's body
features (``device/pose/body.py``) from the turning point to the start. The
counter uses it only when told the exercise; without a hint it stays
class-agnostic — no direction learned from some exercises predicts the rest
side of another (leave-one-exercise-out accuracy is below chance: the start of
a front raise is the turning point of a rope push-down), see docs/counter.md.

The parameters are a JSON file beside this module with a format version,
pinned by its SHA-256 here: a rebuilt file that differs is refused.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

FORMAT = 1
PATH = Path(__file__).with_name("rest_sides.json")
SHA256 = "2adc92ed11555897d5eb883b34ba9fbe3d1231cc0d5b7a1a6f64f0adf3c1a18c"
# Names used across the project's data for the same exercise → one name.
ALIASES = {
    "bench_pressing": "bench_press", "benchpressing": "bench_press",
    "frontraise": "front_raise",
    "jump_jack": "jumping_jack", "jumping_jacks": "jumping_jack", "jumpjacks": "jumping_jack",
    "pullups": "pull_up", "pull_ups": "pull_up", "pullup": "pull_up",
    "pushups": "push_up", "push_ups": "push_up", "pushup": "push_up",
    "situp": "sit_up", "situps": "sit_up", "sit_ups": "sit_up",
    "squant": "squat", "squats": "squat",
    "pommelhorse": "pommel_horse",
    "lunges": "lunge",
    "rope_push_down": "rope_pushdown", "rope_pushdowns": "rope_pushdown",
}


def canonical_exercise(name: str) -> str:
    """``"Bench Pressing"`` → ``"bench_press"``: lower case, underscores, one name per exercise."""
    key = "_".join(name.strip().lower().replace("-", " ").split())
    return ALIASES.get(key, key)


@functools.cache
def _directions() -> dict[str, np.ndarray]:
    raw = PATH.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{PATH.name}: SHA-256 {digest} is not the pinned {SHA256} (rebuild and re-pin it)")
    doc = json.loads(raw)
    if doc.get("format") != FORMAT:
        raise ValueError(f"{PATH.name}: format {doc.get('format')!r}, this version reads {FORMAT}")
    return {name: np.asarray(entry["rest_direction"], dtype=np.float64) for name, entry in doc["exercises"].items()}


def rest_direction(exercise: str | None) -> np.ndarray | None:
    """Unit vector in body-feature space pointing from the turning point to the rest
    position of ``exercise``, or None when the exercise is not known to the model."""
    if not exercise:
        return None
    return _directions().get(canonical_exercise(exercise))


def known_exercises() -> list[str]:
    return sorted(_directions())
