"""The owner teaches a new exercise from three recordings — measured through the product path.

``research/exercise_fewshot.py --same-person`` retrains with the build's
method (``fit_classifier``). On the device the owner teaches with ``cadence
train exercise DATA_DIR --out MODEL`` (the learn trainer over
``ExerciseFeatures``, the shipped exercises' windows added from
``models/exercise-base.cadence``) and counts with the exercise recogniser in
the pose pipeline. This script measures that path, with the product's own
functions:

for each long ``repcount-dev`` sequence (>= 34 repetitions, as the research
script): the first 30 repetitions are cut into three recordings of 10, the
rest is the test sequence;

1. the shipped windows set (the arrays of ``models/exercise-base.cadence``)
   without the exercise and without one cross-validation fold (the research
   script's fold of that sequence: the other exercises' held-out sequences),
   laid out as ``shipped_windows_files`` lays it out in a temporary state dir;
2. the three recordings written as ``.npy`` pose arrays in DATA/<exercise>/;
3. ``cadence train exercise DATA --out MODEL --state-dir STATE`` (its parser,
   its handler ``run_train_exercise``, the default training settings);
4. the test sequence and the held-out fold's sequences of the other
   exercises through ``counting_pipeline(PoseSettings(), 30, exercise_model=
   ExerciseClassifier.load(MODEL))`` — what ``cadence count --exercise-model``
   and the daemon run.

    python scripts/eval_exercise_teaching.py [--json OUT] [--only jumping_jack ...]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from build_exercise_model import cached_training_windows, windows_cache  # noqa: E402

from device.cli import build_parser  # noqa: E402
from device.cli.exercise import run_train_exercise  # noqa: E402
from device.components import collect, from_iterable  # noqa: E402
from device.pose.exercise import ExerciseClassifier  # noqa: E402
from device.pose.exercise_base import BASE_FILE, shipped_windows_files  # noqa: E402
from device.pose.exercise_data import REPS, TEACH, folds_of, load_key_poses, load_sequences  # noqa: E402
from device.pose.exercise_features import WINDOWS_SUFFIX, ExerciseFeatures, read_windows, save_windows  # noqa: E402
from device.pose.pipeline import counting_pipeline  # noqa: E402
from device.pose.posefile import frames_of  # noqa: E402
from device.pose.settings import PoseSettings  # noqa: E402
from device.pretrained import model_path  # noqa: E402

DATA = REPO / ".." / "shared" / "data"
FPS = 30.0  # repcount-dev: "roughly 30 frames per second"


def teaching_cuts(ends: tuple[int, ...]) -> list[int] | None:
    """Frame bounds of the three teaching recordings (10 repetitions each) and the test's start,
    as ``research/exercise_fewshot.py``'s ``same_person`` cuts them; None when the sequence is too short."""
    if len(ends) < TEACH * REPS + 4:
        return None
    return [0] + [ends[k * REPS - 1] + 1 for k in range(1, TEACH + 1)]


def shipped_sources(features: ExerciseFeatures, data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shipped windows set (int8, labels) and the source of each window. The set carries no
    sources: they come from the build's own windows (``cached_training_windows``, the cache
    research/exercise_cv.py uses too), which must quantise to exactly the shipped file's arrays."""
    values, labels = read_windows(model_path(BASE_FILE), features)
    raw, built_labels, sources = cached_training_windows(data)
    if raw.shape != values.shape or list(built_labels) != labels or not np.array_equal(features.quantize(raw), values):
        raise SystemExit(f"{model_path(BASE_FILE)} is not the build's windows of {data} (stale "
                         f"{windows_cache()}? delete it, or rebuild with `make exercise-model`)")
    return values, np.asarray(labels), np.asarray(sources)


def lay_out_shipped(state: Path, values: np.ndarray, labels: np.ndarray, features: ExerciseFeatures) -> dict[str, Path]:
    """Write the filtered shipped set where ``shipped_windows_files`` looks first (one file per label)."""
    folder = state / "exercise-base" / features.fingerprint()[:12]
    for label in sorted(set(labels.tolist())):
        rows = values[labels == label]
        save_windows(folder / f"{label}{WINDOWS_SUFFIX}", rows, [label] * len(rows), features)
    return shipped_windows_files(state, features)


def count_through_pipeline(poses: np.ndarray, model: ExerciseClassifier) -> tuple[list[Any], Any]:
    """(every non-final RepetitionCount, the final one) of the product pipeline over a pose array."""
    pipeline = counting_pipeline(PoseSettings(), FPS, exercise_model=model)
    outputs = asyncio.run(collect(pipeline(from_iterable(frames_of(poses), rate=FPS))))
    states = [o.value for o in outputs]
    finals = [s for s in states if s.final]
    return [s for s in states if not s.final], (finals[-1] if finals else None)


def sequence_label(final: Any) -> str | None:
    """What the device says the sequence was: the final state's exercise (else its sets' most common)."""
    if final is None:
        return None
    if final.exercise:
        return final.exercise
    named = [e for e in final.set_exercises if e]
    return collections.Counter(named).most_common(1)[0][0] if named else None


def evaluate(seq: Any, cuts: list[int], base: tuple[np.ndarray, np.ndarray, np.ndarray], fold: dict[str, int],
             seqs: list[Any], work: Path, features: ExerciseFeatures, quiet: bool) -> dict[str, Any]:
    values, labels, sources = base
    ex, f = seq.exercise, fold[seq.name]
    keep = (labels != ex) & np.array([fold.get(s, -1) != f for s in sources])
    state, data, model_file = work / "state", work / "data", work / "exercise.model"
    laid = lay_out_shipped(state, values[keep], labels[keep], features)
    assert ex not in laid, f"{ex} is still among the shipped windows"
    (data / ex).mkdir(parents=True, exist_ok=True)
    for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:]), 1):
        np.save(data / ex / f"{seq.name}_{k}.npy", np.asarray(seq.poses[a:b], dtype=np.float32))
    args = build_parser().parse_args(["train", "exercise", str(data), "--out", str(model_file),
                                      "--state-dir", str(state), "--quiet"])
    log = io.StringIO()
    t0 = time.perf_counter()
    if run_train_exercise(args, out=log) != 0:
        raise SystemExit(f"training failed:\n{log.getvalue()}")
    trained_s = time.perf_counter() - t0
    model = ExerciseClassifier.load(model_file)
    assert ex in model.exercises, f"{ex} is not among the trained model's exercises {model.exercises}"

    rest = np.asarray(seq.poses[cuts[-1]:])
    states, final = count_through_pipeline(rest, model)
    said = [s.exercise for s in states]
    moving = [e for e in said if e not in (None, "none")]
    row: dict[str, Any] = {
        "exercise": ex, "sequence": seq.name, "test_repetitions": len(seq.cycle_ends) - TEACH * REPS,
        "teaching_frames": int(cuts[-1]), "shipped_windows_kept": int(keep.sum()),
        "train_seconds": round(trained_s, 1),
        "test_label": sequence_label(final),
        "test_set_exercises": list(final.set_exercises) if final is not None else [],
        "test_count": float(final.count) if final is not None else 0.0,
        "windows": len(said),
        "windows_new_share": round(float(np.mean([e == ex for e in said])), 3) if said else None,
        "moving_windows_new_share": round(float(np.mean([e == ex for e in moving])), 3) if moving else None,
        "windows_said": dict(collections.Counter(map(str, said)).most_common(4)),
    }
    others = [s for s in seqs if s.exercise != ex and fold[s.name] == f]
    wrong = []
    for other in others:
        _, other_final = count_through_pipeline(np.asarray(other.poses), model)
        got = sequence_label(other_final)
        if got != other.exercise:
            wrong.append(f"{other.name}:{other.exercise}->{got}")
    row["others_sequences"] = len(others)
    row["others_right"] = len(others) - len(wrong)
    row["others_wrong"] = wrong
    if not quiet:
        print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| exercise | sequence | test repetitions | test sequence labelled (sets) | windows labelled new "
             "(of moving) | other exercises' held-out sequences right |", "|---|---|---|---|---|---|"]
    for r in rows:
        sets = ", ".join(str(e) for e in r["test_set_exercises"]) or "–"
        lines.append(f"| {r['exercise']} | {r['sequence']} | {r['test_repetitions']} | {r['test_label']} ({sets}) | "
                     f"{r['windows_new_share']:.2f} ({r['moving_windows_new_share'] or 0:.2f}) | "
                     f"{r['others_right']}/{r['others_sequences']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path, metavar="OUT", help="write the rows as JSON")
    ap.add_argument("--only", nargs="*", help="only these exercises")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    features = ExerciseFeatures()
    base = shipped_sources(features, args.data)
    seqs, vids = load_sequences(args.data), load_key_poses(args.data)
    fold = folds_of([s.name for s in seqs], [s.exercise for s in seqs])  # the research scripts' folds
    fold.update(folds_of([v.name for v in vids], [v.exercise for v in vids]))
    rows = []
    for seq in seqs:
        cuts = teaching_cuts(seq.cycle_ends)
        if cuts is None or (args.only and seq.exercise not in args.only):
            continue
        with tempfile.TemporaryDirectory(prefix="cadence-teach-") as tmp:
            rows.append(evaluate(seq, cuts, base, fold, seqs, Path(tmp), features, args.quiet))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{table(rows)}\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
