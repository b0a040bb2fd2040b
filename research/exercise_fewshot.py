"""Few-shot: is a new exercise recognised after three recordings of ~10 repetitions?

For each exercise E, every trace of E is removed from the training data
(its sequences and its key-pose videos), then E is taught from three
recordings: three ``repcount-dev`` sequences cut after their 10th repetition
(for lunge and rope pushdown, which have no sequences, three key-pose videos'
synthetic windows). The model is retrained with the build's method
(``fit_classifier``: a new exercise's few windows are repeated up to
``min_windows``) on the other exercises minus one cross-validation fold plus
the three recordings, and checked on

* E's other sequences (sequence label, windows ending a repetition as the
  live tracker labels them) — or E's other videos' synthetic windows;
* the held-out fold of the other exercises (does teaching E hurt them?).

Three rotations of the teaching recordings per exercise where there are enough.

    python research/exercise_fewshot.py [--out research/exercise_fewshot.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "research"))
sys.path.insert(0, str(REPO))

from exercise_cv import DATA, causal_labels, training_data  # noqa: E402

from device.pose.exercise import fit_classifier  # noqa: E402
from device.pose.exercise_data import (  # noqa: E402
    EXERCISES,
    FOLDS,
    REPS,
    TEACH,
    folds_of,
    load_key_poses,
    load_sequences,
    sequence_windows,
    varied_windows,
)
from device.pose.exercise_features import ExerciseFeatures  # noqa: E402


def same_person(raw, labels_arr, sources, seqs, fold, features) -> list[dict]:
    """The owner's case: the same person and camera teach and use the exercise.
    Sequences with at least 34 repetitions give three recordings of 10
    repetitions (the first 30) and a test sequence (the rest); every other
    trace of the exercise is removed from the training data."""
    out = []
    for seq in seqs:
        ends = seq.cycle_ends
        if len(ends) < 3 * REPS + 4:
            continue
        cuts = [0] + [ends[k * REPS - 1] + 1 for k in (1, 2, 3)]
        base = (labels_arr != seq.exercise) & np.array([fold.get(s, -1) != fold[seq.name] for s in sources])
        xs, ys = [raw[base]], labels_arr[base].tolist()
        for a, b in zip(cuts[:-1], cuts[1:]):
            x = np.stack([r for r in (features.raw(seq.poses[i:j]) for i, j in features.window_bounds(b - a)
                                      for i, j in [(a + i, a + j)]) if r is not None])
            xs.append(x)
            ys += [seq.exercise] * len(x)
        clf = fit_classifier(np.concatenate(xs), ys)
        rest = seq.poses[cuts[-1]:]
        guess = clf.classify_sequence(rest)
        bounds = list(features.window_bounds(len(rest)))
        tracker = clf.tracker()
        live = [tracker.push(rest[i:j]).label for i, j in bounds]
        window_ends = np.array([j for _, j in bounds])
        firsts = {int(np.argmax(window_ends > e - cuts[-1])) for e in ends[3 * REPS:] if (window_ends > e - cuts[-1]).any()}
        flags = [k in firsts for k in range(len(bounds))]
        row = {"exercise": seq.exercise, "same_person": seq.name, "test_repetitions": len(ends) - 3 * REPS,
               "predicted": guess.label, "confidence": round(guess.confidence, 3),
               "rep_window_accuracy": float(np.mean([l == seq.exercise for l, f in zip(live, flags) if f]))}
        others = [s for s in seqs if s.exercise != seq.exercise and fold[s.name] == fold[seq.name]]
        row["others_sequence_accuracy"] = float(np.mean([clf.classify_sequence(s.poses).label == s.exercise
                                                         for s in others]))
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--rotations", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="only these exercises")
    ap.add_argument("--same-person", action="store_true",
                    help="also teach from the first 3 x 10 repetitions of a long sequence and test on its rest")
    ap.add_argument("--vary", type=int, default=0, help="varied windows added per teaching recording")
    args = ap.parse_args()
    t0 = time.time()
    features = ExerciseFeatures()
    raw, labels, sources = training_data(DATA)
    labels_arr, src = np.asarray(labels), np.asarray(sources)
    seqs, vids = load_sequences(DATA), load_key_poses(DATA)
    seq_x = {s.name: sequence_windows(features, s) for s in seqs}
    fold = folds_of([s.name for s in seqs], [s.exercise for s in seqs])
    fold.update(folds_of([v.name for v in vids], [v.exercise for v in vids]))
    results = []
    rng = np.random.default_rng(0)
    for ex in args.only or EXERCISES:
        mine = sorted(s.name for s in seqs if s.exercise == ex)
        from_videos = len(mine) < TEACH + 1
        pool_names = sorted(v.name for v in vids if v.exercise == ex) if from_videos else mine
        for rot in range(min(args.rotations, len(pool_names) // TEACH)):
            teach = pool_names[rot * TEACH : (rot + 1) * TEACH]
            test = [n for n in pool_names if n not in teach]
            f = rot % FOLDS
            base = (labels_arr != ex) & np.array([fold.get(s, -1) != f for s in sources])
            xs, ys = [raw[base]], labels_arr[base].tolist()
            if from_videos:
                sel = np.isin(src, teach)
                xs.append(raw[sel])
                ys += labels_arr[sel].tolist()
            else:
                for name in teach:
                    x, ends, _ = seq_x[name]
                    seq = next(s for s in seqs if s.name == name)
                    cut = seq.cycle_ends[min(REPS, len(seq.cycle_ends)) - 1] + 1
                    keep = ends <= cut
                    xs.append(x[keep])
                    ys += [ex] * int(keep.sum())
                    if args.vary:
                        varied = [features.raw(w) for w in varied_windows(seq.poses[:cut], args.vary, rng)]
                        varied = [v for v in varied if v is not None]
                        xs += [np.stack(varied)] if varied else []
                        ys += [ex] * len(varied)
            clf = fit_classifier(np.concatenate(xs), ys)
            taught = len(ys) - int(base.sum())
            row = {"exercise": ex, "rotation": rot, "taught_from": teach, "teaching_windows": taught}
            if from_videos:
                sel = np.isin(src, test)
                logp, moving, dist = clf.scores(raw[sel])
                pred = [clf.decide(lp[None], m[None], d[None]).label for lp, m, d in zip(logp, moving, dist)]
                row["new_synthetic_accuracy"] = float(np.mean([p == ex for p in pred]))
                row["new_predicted"] = dict(collections.Counter(pred).most_common(4))
                row["new_windows"] = len(pred)
            else:
                seq_ok, win, said = [], [], []
                for name in test:
                    x, _, flags = seq_x[name]
                    logp, moving, dist = clf.scores(x)
                    said.append(clf.decide(logp, moving, dist).label)
                    seq_ok.append(said[-1] == ex)
                    causal = causal_labels(clf, logp, moving, dist)
                    win += [causal[i] == ex for i in np.flatnonzero(flags)]
                row["new_sequences"] = len(test)
                row["new_predicted"] = said
                row["new_sequence_accuracy"] = float(np.mean(seq_ok))
                row["new_rep_window_accuracy"] = float(np.mean(win)) if win else None
            others = [s for s in seqs if s.exercise != ex and fold[s.name] == f]
            ok = [clf.classify_sequence(s.poses).label == s.exercise for s in others]
            row["others_sequences"] = len(ok)
            row["others_sequence_accuracy"] = float(np.mean(ok)) if ok else None
            results.append(row)
            print(json.dumps(row), flush=True)
    if args.same_person:
        results += same_person(raw, labels_arr, sources, seqs, fold, features)
    print(f"{time.time() - t0:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
