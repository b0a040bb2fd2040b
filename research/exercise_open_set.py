"""Open set of the exercise classifier: what it says about things it was not taught.

* random poses (uniform landmarks; a random walk of them) → ``unknown``/``none``;
* static poses (each key pose held for 5 s with BlazePose-like jitter, each
  repcount-dev sequence frozen on one frame) → ``none``;
* the ten real clips of ``videos/`` (never trained on; poses from
  ``cadence pose --out`` in POSES_DIR): five of known exercises, five of
  exercises the model does not know (curls, lateral raises, seated rows).

    python research/exercise_open_set.py [--model models/exercise.model] [--poses /tmp/exvid]
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device.pose.exercise import ExerciseClassifier  # noqa: E402
from device.pose.exercise_data import canonical, load_key_poses, load_sequences  # noqa: E402

DATA = REPO / ".." / "shared" / "data"
VIDEO_LABELS = {"jumping_jacks": "jumping_jack", "barbell_squat": "squat", "pull_up": "pull_up", "push_up": "push_up"}


def random_poses(rng: np.random.Generator, n: int, frames: int = 150) -> list[np.ndarray]:
    out = []
    for i in range(n):
        if i % 2:
            out.append(rng.uniform(0, 1, (frames, 33, 3)))
        else:
            steps = rng.normal(0, 0.02, (frames, 33, 3))
            out.append(np.clip(0.5 + np.cumsum(steps, axis=0), 0, 1))
    return out


def static_poses(rng: np.random.Generator, frames: int = 150) -> list[np.ndarray]:
    out = []
    for v in load_key_poses(DATA):
        if not len(v.start):
            continue
        pose = v.start[0]
        size = np.ptp(pose[:, :2], axis=0).max()
        out.append(pose[None] + rng.normal(0, 0.003 * size, (frames, 33, 3)))
    for s in load_sequences(DATA):
        ok = np.flatnonzero(np.isfinite(s.poses[:, 0, 0]))
        pose = s.poses[ok[len(ok) // 2]]
        out.append(pose[None] + rng.normal(0, 0.003, (frames, 33, 3)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=REPO / "models" / "exercise.model")
    ap.add_argument("--poses", type=Path, default=Path("/tmp/exvid"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    clf = ExerciseClassifier.load(args.model)
    rng = np.random.default_rng(1)
    report: dict = {}
    for name, seqs in (("random", random_poses(rng, 200)), ("static", static_poses(rng))):
        labels = [clf.classify_sequence(s).label for s in seqs]
        report[name] = dict(collections.Counter(labels).most_common())
        print(f"{name}: {len(seqs)} sequences -> {report[name]}")
    videos = {}
    with open(DATA / "videos" / "annotations.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            path = args.poses / (Path(row["file"]).stem + ".npy")
            if not path.is_file():
                continue
            poses = np.load(path)
            fps = float(row["fps"])
            guess = clf.classify_sequence(poses, fps)
            tracker = clf.tracker()
            win = [tracker.push(poses[a:b]).label for a, b in clf.features.window_bounds(len(poses))]
            expected = VIDEO_LABELS.get(row["exercise"], "unknown")
            videos[row["file"]] = {"exercise": canonical(row["exercise"]), "expected": expected,
                                   "predicted": guess.label, "confidence": round(guess.confidence, 3),
                                   "windows": dict(collections.Counter(win).most_common())}
            print(f"{row['file']:22s} {row['exercise']:18s} expected {expected:13s} -> {guess.label:13s} "
                  f"({guess.confidence:.2f}); windows {videos[row['file']]['windows']}")
    report["videos"] = videos
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
