#!/usr/bin/env python3
"""Build device/pose/rest_sides.json: which end of each known exercise's motion is its rest position.

    python scripts/build_rest_model.py [--data DIR] [--out PATH] [--check]

From ``shared/data/exercise-poses`` (labelled ``start`` / ``middle`` key poses of
343 videos): each pose in the counter's body features (``device/pose/body.py``),
then per video the mean start pose minus the mean turning-point pose, and per
exercise the unit mean of those differences (the rest direction). Also measured
and written beside the directions, so the file says how far to trust them:

- per exercise, leave one *video* out: does the direction from the exercise's
  other videos point from the held-out video's turning point to its start?
- leave one *exercise* out: does the pooled direction of the other exercises
  (the class-agnostic case) get the held-out exercise right? It does not
  (below chance), which is why the counter uses a direction only when told
  the exercise.

Deterministic (sorted inputs, rounded output): rebuilding gives the same bytes.
``--check`` rebuilds in memory and compares with the committed file and its pin.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.pose import rest  # noqa: E402
from device.pose.body import body_features  # noqa: E402

SHARED = next((p for p in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data") if p.is_dir()),
              ROOT.parent / "shared" / "data")


def video_differences(data: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Exercise → [(video, mean start features − mean turning-point features)]."""
    poses = np.load(data / "poses.npy", allow_pickle=False).astype(np.float64)
    feats, _, _ = body_features(list(poses))
    groups: dict[tuple[str, str], dict[str, list[np.ndarray]]] = defaultdict(lambda: {"start": [], "middle": []})
    with open(data / "frames.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            key = (rest.canonical_exercise(row["exercise"]), row["video"])
            groups[key][row["phase"]].append(feats[int(row["index"])])
    out: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
    for (exercise, video), phases in sorted(groups.items()):
        if phases["start"] and phases["middle"]:
            out[exercise].append((video, np.mean(phases["start"], axis=0) - np.mean(phases["middle"], axis=0)))
    return out


def unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def build(data: Path) -> dict:
    diffs = video_differences(data)
    exercises = {}
    for exercise, items in diffs.items():
        d = np.array([v for _, v in items])
        total = d.sum(axis=0)
        held_out = float(np.mean([(d[i] @ (total - d[i])) > 0 for i in range(len(d))]))
        exercises[exercise] = {
            "rest_direction": [round(float(x), 6) for x in unit(d.mean(axis=0))],
            "videos": len(d),
            "leave_one_video_out_accuracy": round(held_out, 3),
        }
    agnostic = {}
    for exercise in diffs:
        others = unit(np.mean([unit(np.mean([v for _, v in items], axis=0))
                               for name, items in diffs.items() if name != exercise], axis=0))
        agnostic[exercise] = round(float(np.mean([v @ others > 0 for _, v in diffs[exercise]])), 3)
    return {
        "format": rest.FORMAT,
        "about": "Rest (start) direction per exercise in the repetition counter's body features "
                 "(device/pose/body.py: nose and six left/right midpoints, x then y, per-frame min-max normalised); "
                 "built by scripts/build_rest_model.py from shared/data/exercise-poses.",
        "source": {"videos": int(sum(len(v) for v in diffs.values())), "exercises": len(diffs)},
        "exercises": dict(sorted(exercises.items())),
        "class_agnostic_leave_one_exercise_out_accuracy": dict(sorted(agnostic.items())),
    }


def encode(doc: dict) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED / "exercise-poses")
    ap.add_argument("--out", type=Path, default=rest.PATH)
    ap.add_argument("--check", action="store_true", help="rebuild in memory and compare with --out and the pin")
    args = ap.parse_args(argv)
    if not (args.data / "frames.csv").exists():
        print(f"build_rest_model: no frames.csv in {args.data}", file=sys.stderr)
        return 1
    doc = build(args.data)
    blob = encode(doc)
    digest = hashlib.sha256(blob).hexdigest()
    for name, entry in doc["exercises"].items():
        print(f"{name:14s} {entry['videos']:3d} videos, held-out video accuracy {entry['leave_one_video_out_accuracy']:.2f};"
              f" class-agnostic (other exercises' direction) {doc['class_agnostic_leave_one_exercise_out_accuracy'][name]:.2f}")
    if args.check:
        same = args.out.exists() and args.out.read_bytes() == blob
        print(f"{args.out}: {'identical' if same else 'DIFFERENT'}; SHA-256 {digest} "
              f"({'pinned' if digest == rest.SHA256 else 'NOT the pin ' + rest.SHA256})")
        return 0 if same and digest == rest.SHA256 else 1
    args.out.write_bytes(blob)
    print(f"wrote {args.out} (SHA-256 {digest}; pin it in device/pose/rest.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
