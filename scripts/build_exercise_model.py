#!/usr/bin/env python3
"""Build the shipped exercise model ``models/exercise.model`` from the shared data.

    python scripts/build_exercise_model.py [--data ../shared/data] [--out models/exercise.model]
                                           [--exclude NAME ...] [--no-manifest]

Training windows: every window (90 frames every 15) of the ``repcount-dev``
sequences, plus windows synthesised from the key poses of each
``exercise-poses`` video (see ``device/pose/exercise_data.py``). The model is
the small network of ``device.learn`` with the exercise open set
(``device/pose/exercise.py``). Everything is seeded and the model's creation
time is fixed, so a rebuild from the same data is byte-identical; the file's
SHA-256 is written into ``models/manifest.json`` (entry ``exercise.model``,
``"built_by"`` instead of a package: it is committed, not fetched).

``--exclude`` leaves sequences or key-pose videos out by name (the tests
build a model this way on a split they then check on).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device.components.persistence import atomic_write, encode_state, sha256_file  # noqa: E402
from device.pose.exercise import MODEL_FILE, UNKNOWN, ExerciseClassifier, fit_classifier  # noqa: E402
from device.pose import exercise_data as material  # noqa: E402
from device.pose.exercise_base import BASE_FILE  # noqa: E402
from device.pose.exercise_features import ExerciseFeatures, frame_descriptors, pool, save_windows  # noqa: E402

SYNTHETIC_PER_VIDEO = 20
NONSENSE_WINDOWS = 900  # the open set's background class ("unknown")
SEED = 0
# fixed "created" time of the shipped model: a rebuild must be byte-identical
CREATED = "2025-01-01T00:00:00+00:00"
BUILT_BY = "make exercise-model (scripts/build_exercise_model.py)"


def training_windows(
    data: Path, per_video: int = SYNTHETIC_PER_VIDEO, seed: int = SEED
) -> tuple[np.ndarray, list[str], list[str]]:
    """(raw window features, labels, source names) of the real sequences and
    the synthetic key-pose windows. Windows are drawn for every video in
    name order, so leaving a source out leaves the others' windows unchanged."""
    features = ExerciseFeatures()
    rows: list[np.ndarray] = []
    labels: list[str] = []
    sources: list[str] = []
    for seq in material.load_sequences(data):
        x, _, _ = material.sequence_windows(features, seq)
        rows.append(x)
        labels += [seq.exercise] * len(x)
        sources += [seq.name] * len(x)
    rng = np.random.default_rng(seed)
    videos = material.load_key_poses(data)
    groups = [(v.name, v.exercise, list(material.synthetic_windows(v, per_video, rng))) for v in videos]
    key_poses = np.concatenate([v.start for v in videos] + [v.middle for v in videos])
    groups.append(("nonsense", UNKNOWN, list(material.nonsense_windows(key_poses, NONSENSE_WINDOWS, rng))))
    for name, label, windows in groups:
        if not windows:
            continue
        desc = frame_descriptors(np.concatenate(windows))
        n = len(windows[0])
        kept = [r for r in (pool(desc[k * n : (k + 1) * n]) for k in range(len(windows))) if r is not None]
        rows.append(np.stack(kept))
        labels += [label] * len(kept)
        sources += [name] * len(kept)
    return np.concatenate(rows), labels, sources


def windows_cache() -> Path:
    """Where :func:`cached_training_windows` keeps the windows by default (named by the features'
    fingerprint: windows of other features are never reused)."""
    return Path(f"/tmp/exercise_cv_windows_{ExerciseFeatures().fingerprint()[:12]}.npz")


def cached_training_windows(data: Path, cache: Path | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """:func:`training_windows` of ``data``, kept in ``cache`` (default :func:`windows_cache`) for the
    evaluations that retrain on them (research/exercise_cv.py, scripts/eval_exercise_teaching.py)."""
    cache = cache or windows_cache()
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return z["raw"], z["labels"].tolist(), z["sources"].tolist()
    raw, labels, sources = training_windows(data)
    np.savez(cache, raw=raw, labels=np.asarray(labels), sources=np.asarray(sources))
    return raw, labels, sources


def build(data: Path, out: Path, exclude: set[str] = frozenset(), base: Path | None = None) -> ExerciseClassifier:
    """Fit and write the shipped model; with ``base``, also its training windows
    (int8), which `cadence train exercise` adds the owner's exercises to."""
    raw, labels, sources = training_windows(data)
    keep = np.array([s not in exclude for s in sources])
    labels = [label for label, k in zip(labels, keep) if k]
    classifier = fit_classifier(raw[keep], labels, seed=SEED, created=CREATED)
    if base is not None:
        features = ExerciseFeatures()
        save_windows(base, features.quantize(raw[keep]), labels, features)
    classifier.model.metadata["training"] = {
        "windows": len(labels),
        "per_label": {label: labels.count(label) for label in sorted(set(labels))},
        "sources": ["repcount-dev (all windows)", f"exercise-poses ({SYNTHETIC_PER_VIDEO} synthetic windows per video)",
                    f"{NONSENSE_WINDOWS} windows of landmarks that are no body (unknown)"],
        "excluded": sorted(exclude),
    }
    meta, arrays = classifier.model.state()
    atomic_write(out, encode_state(classifier.model.kind, meta, arrays))  # fixed zip times: same bytes every build
    return classifier




WHAT = {
    MODEL_FILE: "exercise classifier: pose windows to 10 exercises (+ open set), small network over 162-d features",
    BASE_FILE: "the exercise classifier's training windows (int8): what an owner's exercises are added to",
}


def pin(manifest_path: Path, name: str, digest: str) -> None:
    """Record the built file's SHA-256 in the manifest (kept otherwise as it is)."""
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][name] = {"built_by": BUILT_BY, "sha256": digest, "what": WHAT[name]}
    atomic_write(manifest_path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "models" / MODEL_FILE)
    ap.add_argument("--exclude", nargs="*", default=[], help="sequence or video names to leave out")
    ap.add_argument("--no-manifest", action="store_true", help="do not pin the file in models/manifest.json")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    base = args.out.parent / BASE_FILE
    classifier = build(args.data.resolve(), args.out, set(args.exclude), base=None if args.exclude else base)
    digest = sha256_file(args.out)
    if not args.no_manifest:
        pin(args.out.parent / "manifest.json", args.out.name, digest)
        if not args.exclude:
            pin(args.out.parent / "manifest.json", BASE_FILE, sha256_file(base))
    counts = classifier.model.metadata["training"]["per_label"]
    print(f"{args.out}: {args.out.stat().st_size} bytes, sha256 {digest}, labels {classifier.labels}, "
          f"{sum(counts.values())} windows, {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
