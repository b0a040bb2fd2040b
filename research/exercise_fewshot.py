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
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "research"))
sys.path.insert(0, str(REPO))

from exercise_cv import DATA, FOLDS, causal_labels, folds_of, training_data  # noqa: E402

from device.pose.exercise import fit_classifier  # noqa: E402
from device.pose.exercise_data import EXERCISES, load_key_poses, load_sequences, sequence_windows  # noqa: E402
from device.pose.exercise_features import ExerciseFeatures  # noqa: E402

TEACH = 3
REPS = 10


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--rotations", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="only these exercises")
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
            clf = fit_classifier(np.concatenate(xs), ys)
            taught = len(ys) - int(base.sum())
            row = {"exercise": ex, "rotation": rot, "taught_from": teach, "teaching_windows": taught}
            if from_videos:
                sel = np.isin(src, test)
                logp, moving, dist = clf.scores(raw[sel])
                pred = [clf.decide(lp[None], m[None], d[None]).label for lp, m, d in zip(logp, moving, dist)]
                row["new_synthetic_accuracy"] = float(np.mean([p == ex for p in pred]))
                row["new_windows"] = len(pred)
            else:
                seq_ok, win = [], []
                for name in test:
                    x, _, flags = seq_x[name]
                    logp, moving, dist = clf.scores(x)
                    seq_ok.append(clf.decide(logp, moving, dist).label == ex)
                    causal = causal_labels(clf, logp, moving, dist)
                    win += [causal[i] == ex for i in np.flatnonzero(flags)]
                row["new_sequences"] = len(test)
                row["new_sequence_accuracy"] = float(np.mean(seq_ok))
                row["new_rep_window_accuracy"] = float(np.mean(win)) if win else None
            others = [s for s in seqs if s.exercise != ex and fold[s.name] == f]
            ok = [clf.classify_sequence(s.poses).label == s.exercise for s in others]
            row["others_sequences"] = len(ok)
            row["others_sequence_accuracy"] = float(np.mean(ok)) if ok else None
            results.append(row)
            print(json.dumps(row), flush=True)
    print(f"{time.time() - t0:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
