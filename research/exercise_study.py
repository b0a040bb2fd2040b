"""Exercise classifier study: features, models and open set, cross-validated.

Holds out whole sequences (repcount-dev) and whole videos (exercise-poses) in
5 folds, trains on the rest and reports sequence-level accuracy, the accuracy
of the windows that end a repetition, and the accuracy on synthetic windows of
held-out key-pose videos (the only check for lunge and rope pushdown, which
have no real sequences here).

    python research/exercise_study.py [--variant window|frame] [--classifier lr|net]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device.pose.exercise_data import (  # noqa: E402
    EXERCISES,
    load_key_poses,
    load_sequences,
    sequence_windows,
    synthetic_windows,
)
from device.pose.exercise_features import ExerciseFeatures, frame_descriptors, pool  # noqa: E402

DATA = Path("/work/shared/data")
FOLDS = 5


def folds_of(names: list[str], labels: list[str]) -> np.ndarray:
    """Deterministic stratified fold of each item (round robin within each label)."""
    fold = np.zeros(len(names), dtype=int)
    for label in sorted(set(labels)):
        idx = sorted((n, i) for i, (n, lab) in enumerate(zip(names, labels)) if lab == label)
        for k, (_, i) in enumerate(idx):
            fold[i] = k % FOLDS
    return fold


def synth_features(videos, per_video: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, owner = [], []
    for vi, v in enumerate(videos):
        wins = list(synthetic_windows(v, per_video, rng))
        if not wins:
            continue
        desc = frame_descriptors(np.concatenate(wins))
        for k in range(len(wins)):
            raw = pool(desc[k * 90 : (k + 1) * 90])
            if raw is not None:
                rows.append(raw)
                owner.append(vi)
    return np.stack(rows), np.asarray(owner)


def fit(x: np.ndarray, y: list[str], classifier: str, l2: float, hidden: int = 64, epochs: int = 40):
    from device.learn import FullyConnectedNetworkClassifier, LogisticRegressionClassifier
    from device.components import Examples

    data = Examples.of(x.astype(np.float32), y)
    if classifier == "lr":
        return LogisticRegressionClassifier(l2_penalty=l2, max_iterations=500).fit(data)
    return FullyConnectedNetworkClassifier(hidden_unit_counts=(hidden,), max_iterations=epochs, dropout=0.2,
                                           l2_penalty=1e-4).fit(data)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classifier", default="lr", choices=("lr", "net"))
    ap.add_argument("--l2", type=float, default=1e-2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--per-video", type=int, default=20)
    ap.add_argument("--real-weight", type=int, default=1, help="repeat real windows this many times")
    ap.add_argument("--no-real", action="store_true", help="train on synthetic windows only (+ real for classes without key poses)")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    feats = ExerciseFeatures()
    t0 = time.time()
    seqs = load_sequences(DATA)
    vids = load_key_poses(DATA)
    seq_x = [sequence_windows(feats, s) for s in seqs]
    sx, sowner = synth_features(vids, args.per_video, seed=0)
    print(f"data ready in {time.time() - t0:.1f}s: {len(seqs)} sequences, {len(vids)} videos, {len(sx)} synthetic windows")
    sfold = folds_of([s.name for s in seqs], [s.exercise for s in seqs])
    vfold = folds_of([v.name for v in vids], [v.exercise for v in vids])
    key_classes = {v.exercise for v in vids}

    seq_pred, win_total, win_ok, win_causal_ok = {}, {}, {}, {}
    win_pairs = []  # (true, single-window prediction) of the windows that end a repetition
    synth_pred = []
    for f in range(FOLDS):
        xs, ys = [], []
        for s, (x, _, _), fo in zip(seqs, seq_x, sfold):
            if fo == f or args.no_real and s.exercise in key_classes:
                continue
            xs += [x] * args.real_weight
            ys += [s.exercise] * len(x) * args.real_weight
        if not args.no_synth:
            train_v = np.array([vfold[o] != f for o in sowner])
            xs.append(sx[train_v])
            ys += [vids[o].exercise for o in sowner[train_v]]
        model = fit(np.concatenate(xs), ys, args.classifier, args.l2, args.hidden, args.epochs)
        labels = model.labels
        for s, (x, ends, flags), fo in zip(seqs, seq_x, sfold):
            if fo != f:
                continue
            logp = np.log(np.maximum(model.predict_proba(x.astype(np.float32)), 1e-9))
            seq_pred[s.name] = labels[int(np.argmax(logp.mean(0)))]
            single = [labels[i] for i in np.argmax(logp, 1)]
            causal = [labels[i] for i in np.argmax(np.cumsum(logp, 0), 1)]
            win_pairs += [(s.exercise, p) for p, fl in zip(single, flags) if fl]
            win_total[s.name] = int(flags.sum())
            win_ok[s.name] = int(sum(p == s.exercise for p, fl in zip(single, flags) if fl))
            win_causal_ok[s.name] = int(sum(p == s.exercise for p, fl in zip(causal, flags) if fl))
        test_v = np.array([vfold[o] == f for o in sowner])
        if test_v.any():
            pred = model.predict(sx[test_v].astype(np.float32))
            synth_pred += [(vids[o].exercise, p) for o, p in zip(sowner[test_v], pred)]

    report = {}
    print(f"\n{'exercise':14s} seqs  seq-acc  rep-windows  single  causal  synth-windows(held-out videos)")
    for ex in EXERCISES:
        names = [s.name for s in seqs if s.exercise == ex]
        n = len(names)
        acc = np.mean([seq_pred[m] == ex for m in names]) if n else float("nan")
        wt = sum(win_total[m] for m in names)
        w1 = sum(win_ok[m] for m in names) / max(wt, 1)
        wc = sum(win_causal_ok[m] for m in names) / max(wt, 1)
        sp = [p == t for t, p in synth_pred if t == ex]
        sacc = np.mean(sp) if sp else float("nan")
        report[ex] = {"sequences": n, "sequence_accuracy": acc, "rep_windows": wt, "single": w1, "causal": wc,
                      "synthetic_accuracy": sacc}
        print(f"{ex:14s} {n:4d}  {acc:7.3f}  {wt:11d}  {w1:6.3f}  {wc:6.3f}  {sacc:.3f}")
    total = len(seqs)
    acc = np.mean([seq_pred[s.name] == s.exercise for s in seqs])
    wt = sum(win_total.values())
    print(f"{'all':14s} {total:4d}  {acc:7.3f}  {wt:11d}  {sum(win_ok.values()) / wt:6.3f}  "
          f"{sum(win_causal_ok.values()) / wt:6.3f}  {np.mean([p == t for t, p in synth_pred]):.3f}")
    wrong = {s.name: (s.exercise, seq_pred[s.name]) for s in seqs if seq_pred[s.name] != s.exercise}
    print("wrong sequences:", wrong)
    labels = sorted(set(EXERCISES))
    print("rep-window confusion (rows true, cols predicted):", " ".join(l[:5] for l in labels))
    for t in labels:
        row = [sum(1 for a, b in win_pairs if a == t and b == p) for p in labels]
        if sum(row):
            print(f"{t:14s}", " ".join(f"{v:5d}" for v in row))
    if args.out:
        args.out.write_text(json.dumps({"per_exercise": report, "sequence_predictions": seq_pred}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
