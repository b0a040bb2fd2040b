"""Training material for the exercise classifier, read from the shared data.

Two sources, one form (windows of poses → :mod:`.exercise_features`):

* ``repcount-dev`` — real pose sequences (the benchmark's form: per-frame
  min–max normalised, smoothed) cut into the pipeline's windows;
* ``exercise-poses`` — single key poses (``start`` and ``middle`` of a
  repetition) of many more videos. A key pose alone is only one moment, so
  windows are synthesised from each video's own key poses: the body moves
  between a start and a middle pose along a cosine, one cycle every 1.2–4 s,
  with a little landmark noise. The window statistics of such a synthetic
  repetition are what a real window of that exercise shows (the same pose
  range, the same shapes at both ends), which lets both sources train one
  window model.

Everything is seeded: the same data gives the same windows, byte for byte.

The evaluations' splits of this material live here too, so that the product's
scripts and the research scripts hold out the same sources: :func:`folds_of`
and the few-shot teaching protocol (``TEACH`` recordings of ``REPS`` repetitions).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .exercise_features import ExerciseFeatures

EXERCISES = (
    "bench_press", "front_raise", "jumping_jack", "lunge", "pommel_horse",
    "pull_up", "push_up", "rope_pushdown", "sit_up", "squat",
)  # fmt: skip
# spellings used across the project's data (see exercise-poses/README.md)
ALIASES = {
    "bench_pressing": "bench_press", "benchpressing": "bench_press", "frontraise": "front_raise",
    "jump_jack": "jumping_jack", "jumpjacks": "jumping_jack", "jumping_jacks": "jumping_jack",
    "pullups": "pull_up", "pull_ups": "pull_up", "pushups": "push_up", "situp": "sit_up",
    "squant": "squat", "pommelhorse": "pommel_horse",
}  # fmt: skip
SYNTH_PERIOD_S = (1.2, 4.0)
SYNTH_NOISE = 0.01  # landmark noise, share of the body's size
NONSENSE_KINDS = 3
FOLDS = 5  # cross-validation folds of the evaluations
# the owner teaches a new exercise from TEACH recordings of REPS repetitions each (the few-shot evaluations)
TEACH = 3
REPS = 10


def canonical(name: str) -> str:
    """The project's name of an exercise (``jumpjacks`` → ``jumping_jack``)."""
    name = name.strip().lower()
    return ALIASES.get(name, name)


@dataclasses.dataclass(frozen=True)
class Sequence:
    """A real pose sequence with its exercise and repetition end frames."""

    name: str
    exercise: str
    poses: np.ndarray  # (frames, 33, 3)
    cycle_ends: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class KeyPoseVideo:
    """The key poses of one video of ``exercise-poses``."""

    name: str
    exercise: str
    start: np.ndarray  # (k, 33, 3)
    middle: np.ndarray  # (m, 33, 3)


def load_sequences(data: Path) -> list[Sequence]:
    """The ``repcount-dev`` sequences, in file order."""
    root = Path(data) / "repcount-dev"
    out = []
    with open(root / "annotations.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            ends = tuple(int(c.split("-")[1]) for c in row["cycles"].split(";") if "-" in c)
            poses = np.load(root / "poses" / f"{row['name']}.npy", allow_pickle=False)
            out.append(Sequence(row["name"], canonical(row["exercise"]), poses, ends))
    return out


def load_key_poses(data: Path) -> list[KeyPoseVideo]:
    """The ``exercise-poses`` videos, sorted by name."""
    root = Path(data) / "exercise-poses"
    poses = np.load(root / "poses.npy", allow_pickle=False)
    rows: dict[str, dict[str, list[int]]] = {}
    exercise: dict[str, str] = {}
    with open(root / "frames.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["video"], {"start": [], "middle": []})[row["phase"]].append(int(row["index"]))
            exercise[row["video"]] = canonical(row["exercise"])
    return [
        KeyPoseVideo(v, exercise[v], poses[rows[v]["start"]], poses[rows[v]["middle"]]) for v in sorted(rows)
    ]


def synthetic_windows(
    video: KeyPoseVideo, count: int, rng: np.random.Generator, frames: int = 90, fps: float = 30.0
) -> Iterator[np.ndarray]:
    """``count`` windows of poses moving between the video's start and middle poses."""
    if not len(video.start) or not len(video.middle):
        return
    t = np.arange(frames) / fps
    for _ in range(count):
        period = rng.uniform(*SYNTH_PERIOD_S)
        phase = rng.uniform(0.0, 2 * np.pi)
        cycles = int(np.ceil(frames / fps / period)) + 1
        a = video.start[rng.integers(len(video.start), size=cycles)]
        b = video.middle[rng.integers(len(video.middle), size=cycles)]
        turn = (t / period + phase / (2 * np.pi)).astype(np.float64)
        k = np.minimum(turn.astype(int), cycles - 1)
        alpha = 0.5 * (1.0 - np.cos(2 * np.pi * turn))[:, None, None]
        window = a[k] + alpha * (b[k] - a[k])
        size = np.ptp(window[:, :, :2].reshape(-1, 2), axis=0).max()
        window = window + rng.normal(0.0, SYNTH_NOISE * size, window.shape)
        yield window.astype(np.float32)


def varied_windows(
    poses: np.ndarray, count: int, rng: np.random.Generator, frames: int = 90
) -> Iterator[np.ndarray]:
    """``count`` windows cut from one recording at random places, each replayed
    at 0.7–1.4× speed, turned in the picture by up to ±15°, stretched on one
    axis by up to 20 % (before the per-frame normalisation: another body shape)
    and jittered: more of what a few recordings of a new exercise can show."""
    poses = np.asarray(poses, dtype=np.float64)
    for _ in range(count):
        speed = rng.uniform(0.7, 1.4)
        span = min(len(poses) - 1, int(round(frames * speed)))
        start = rng.integers(0, max(1, len(poses) - span))
        at = start + np.linspace(0.0, span, frames)
        lo = np.floor(at).astype(int)
        hi = np.minimum(lo + 1, len(poses) - 1)
        w = (at - lo)[:, None, None]
        window = (1.0 - w) * poses[lo] + w * poses[hi]
        xy = window[:, :, :2]
        centre = np.nanmean(xy.reshape(-1, 2), axis=0)
        angle = np.deg2rad(rng.uniform(-15.0, 15.0))
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        stretch = np.array([1.0, rng.uniform(0.8, 1.2)])[rng.permutation(2)]
        xy = ((xy - centre) @ turn.T) * stretch
        flat = xy.reshape(-1, 2)
        size = float(np.nanmax(np.nanmax(flat, axis=0) - np.nanmin(flat, axis=0))) if np.isfinite(flat).any() else 1.0
        window[:, :, :2] = xy + rng.normal(0.0, SYNTH_NOISE * size, xy.shape)
        yield window.astype(np.float32)


def nonsense_windows(
    poses: np.ndarray, count: int, rng: np.random.Generator, frames: int = 90
) -> Iterator[np.ndarray]:
    """``count`` windows of moving landmarks that are no body: uniformly random,
    a random walk, or a real pose (from ``poses``) whose landmarks trade places
    and drift. The classifier learns them as ``unknown`` (the open set's
    background class), because a model trained on bodies alone maps such
    clouds confidently onto some exercise once they are normalised."""
    for i in range(count):
        kind = i % NONSENSE_KINDS
        if kind == 0:
            window = rng.uniform(0.0, 1.0, (frames, 33, 3))
        elif kind == 1:
            window = 0.5 + np.cumsum(rng.normal(0.0, rng.uniform(0.005, 0.03), (frames, 33, 3)), axis=0)
        else:
            pose = poses[rng.integers(len(poses))]
            size = np.ptp(pose[:, :2], axis=0).max()
            drift = np.cumsum(rng.normal(0.0, 0.01 * size, (frames, 33, 3)), axis=0)
            window = pose[rng.permutation(33)][None] + drift
        yield window.astype(np.float32)


def sequence_windows(features: ExerciseFeatures, seq: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw features (w, d), window end frames (w,), rep-ending flags (w,)) of a sequence.

    A window *ends a repetition* when it is the first window whose frames
    include a repetition's last frame (the window at which the counter can
    count that repetition)."""
    from .exercise_features import frame_descriptors, pool

    desc = frame_descriptors(seq.poses)
    rows, ends = [], []
    for a, b in features.window_bounds(len(seq.poses)):
        raw = pool(desc[a:b])
        if raw is not None:
            rows.append(raw)
            ends.append(b)
    ends_arr = np.asarray(ends, dtype=np.int64)
    flags = np.zeros(len(ends_arr), dtype=bool)
    for e in seq.cycle_ends:
        after = np.flatnonzero(ends_arr > e)
        if after.size:
            flags[after[0]] = True
    x = np.stack(rows) if rows else np.zeros((0, features.dimension))
    return x, ends_arr, flags


def folds_of(names: list[str], labels: list[str]) -> dict[str, int]:
    """Deterministic stratified fold of each name (round robin within each label)."""
    fold = {}
    for label in sorted(set(labels)):
        for k, name in enumerate(sorted(n for n, lab in zip(names, labels) if lab == label)):
            fold[name] = k % FOLDS
    return fold
