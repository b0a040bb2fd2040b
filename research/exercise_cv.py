"""Cross-validated figures of the shipped exercise method (docs/exercise.md).

Exactly the build path (scripts/build_exercise_model.py: the same windows,
the same network, the same open set), five folds that hold out whole
``repcount-dev`` sequences and whole ``exercise-poses`` videos (stratified by
exercise, round robin by name). Reports, per exercise:

* sequence accuracy — the label of a whole held-out sequence
  (``ExerciseClassifier.classify_sequence``'s decision over its windows);
* rep-window accuracy — the windows that end a repetition (the first window
  containing a repetition's last frame), labelled alone (``single``) and as
  the live tracker labels them with the evidence of the set so far (``causal``);
* synthetic-window accuracy on held-out key-pose videos (the only check for
  lunge and rope pushdown, which have no real sequences here).

    python research/exercise_cv.py [--out research/exercise_cv.json] [--png docs/exercise_confusion.png]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device.pose.exercise import EVIDENCE_SECONDS, NONE, UNKNOWN, WINDOW_FPS, ExerciseClassifier, fit_classifier  # noqa: E402
from device.pose.exercise_data import EXERCISES, FOLDS, folds_of, load_key_poses, load_sequences, sequence_windows  # noqa: E402
from device.pose.exercise_features import ExerciseFeatures  # noqa: E402

DATA = REPO / ".." / "shared" / "data"
# where the training windows are cached (None: the build script's windows_cache(); research/exercise_variants.py sets its own)
CACHE: Path | None = None


def build_module():
    spec = importlib.util.spec_from_file_location("build_exercise_model", REPO / "scripts" / "build_exercise_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_data(data: Path) -> tuple[np.ndarray, list[str], list[str]]:
    return build_module().cached_training_windows(data, CACHE)


def causal_labels(clf: ExerciseClassifier, logp: np.ndarray, moving: np.ndarray, dist: np.ndarray,
                  memory: int = 40, times: np.ndarray | None = None, forget_after: float | None = None,
                  horizon: float = EVIDENCE_SECONDS) -> list[str]:
    """What ExerciseTracker says at each window (the same memory of moving windows; with ``times``, the
    windows' ends in seconds, only those of the last ``horizon`` s, forgotten after ``forget_after`` s still)."""
    forget_after = clf.tracker().forget_after if forget_after is None else forget_after
    out, kept = [], []
    last = None
    for i in range(len(logp)):
        if times is not None and last is not None and times[i] - last >= forget_after:
            kept, last = [], None
        if moving[i] < clf.min_motion:
            out.append(NONE)
            continue
        last = None if times is None else times[i]
        kept = (kept + [i])[-memory:]
        if times is not None:
            kept = [k for k in kept if times[k] > times[i] - horizon]
        out.append(clf.decide(logp[kept], moving[kept], dist[kept]).label)
    return out


def evaluate(raw, labels, sources, seqs, vids, hold_out: dict[str, int], folds: int, extra=None, **fit_kw) -> dict:
    """``extra``: (raw, labels, sources) of additional training windows (augmented copies), trained on
    only in the folds that do not hold their source out, never evaluated."""
    features = ExerciseFeatures()
    seq_x = {s.name: sequence_windows(features, s) for s in seqs}
    labels_arr = np.asarray(labels)
    src = np.asarray(sources)
    result = {"sequences": {}, "rep_windows": [], "synthetic": []}
    for f in range(folds):
        test_names = {n for n, k in hold_out.items() if k == f}
        train = np.array([s not in test_names for s in sources])
        x_train, y_train = raw[train], labels_arr[train].tolist()
        if extra is not None:
            more = np.array([name not in test_names for name in extra[2]], dtype=bool)
            x_train = np.concatenate([x_train, extra[0][more]])
            y_train = y_train + np.asarray(extra[1])[more].tolist()
        clf = fit_classifier(x_train, y_train, **fit_kw)
        for s in seqs:
            if s.name not in test_names:
                continue
            x, ends, flags = seq_x[s.name]
            logp, moving, dist = clf.scores(x)
            guess = clf.decide(logp, moving, dist)
            result["sequences"][s.name] = {"true": s.exercise, "predicted": guess.label,
                                          "confidence": round(guess.confidence, 3), "fold": f}
            causal = causal_labels(clf, logp, moving, dist, times=ends / WINDOW_FPS)
            for i in np.flatnonzero(flags):
                single = clf.decide(logp[i : i + 1], moving[i : i + 1], dist[i : i + 1]).label
                result["rep_windows"].append((s.exercise, single, causal[i]))
        test_v = np.isin(src, [v.name for v in vids if v.name in test_names])
        if test_v.any():
            logp, moving, dist = clf.scores(raw[test_v])
            for t, lp, m, d in zip(labels_arr[test_v], logp, moving, dist):
                result["synthetic"].append((t, clf.decide(lp[None], np.array([m]), np.array([d])).label))
        print(f"fold {f}: trained on {len(y_train)} windows", flush=True)
    return result


def summarise(result: dict) -> dict:
    table = {}
    seq = result["sequences"].values()
    for ex in EXERCISES:
        s = [r for r in seq if r["true"] == ex]
        w = [r for r in result["rep_windows"] if r[0] == ex]
        y = [r for r in result["synthetic"] if r[0] == ex]
        table[ex] = {
            "sequences": len(s),
            "sequence_accuracy": float(np.mean([r["predicted"] == ex for r in s])) if s else None,
            "rep_windows": len(w),
            "single_window_accuracy": float(np.mean([r[1] == ex for r in w])) if w else None,
            "causal_window_accuracy": float(np.mean([r[2] == ex for r in w])) if w else None,
            "synthetic_windows": len(y),
            "synthetic_accuracy": float(np.mean([r[1] == ex for r in y])) if y else None,
        }
    w, y = result["rep_windows"], result["synthetic"]
    table["all"] = {
        "sequences": len(seq),
        "sequence_accuracy": float(np.mean([r["predicted"] == r["true"] for r in seq])),
        "rep_windows": len(w),
        "single_window_accuracy": float(np.mean([r[1] == r[0] for r in w])),
        "causal_window_accuracy": float(np.mean([r[2] == r[0] for r in w])),
        "synthetic_windows": len(y),
        "synthetic_accuracy": float(np.mean([r[1] == r[0] for r in y])),
    }
    return table


def confusion(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str], np.ndarray]:
    rows = [e for e in EXERCISES if any(t == e for t, _ in pairs)]
    cols = list(EXERCISES) + [UNKNOWN, NONE]
    m = np.zeros((len(rows), len(cols)), dtype=int)
    for t, p in pairs:
        m[rows.index(t), cols.index(p)] += 1
    return rows, cols, m


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("held-out sequences", [(r["true"], r["predicted"]) for r in result["sequences"].values()]),
        ("windows ending a repetition (live tracker)", [(t, c) for t, _, c in result["rep_windows"]]),
        ("synthetic windows of held-out key-pose videos", result["synthetic"]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(21, 6.5))
    for ax, (title, pairs) in zip(axes, panels):
        rows, cols, m = confusion(pairs)
        share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(rows)):
            for j in range(len(cols)):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title, fontsize=10)
    fig.suptitle("Exercise classifier, 5-fold cross-validation holding out whole sequences and videos")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--png", type=Path)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0, help="network seed (another seed: how much the figures move)")
    args = ap.parse_args()
    t0 = time.time()
    raw, labels, sources = training_data(DATA)
    seqs, vids = load_sequences(DATA), load_key_poses(DATA)
    hold_out = folds_of([s.name for s in seqs], [s.exercise for s in seqs])
    hold_out.update(folds_of([v.name for v in vids], [v.exercise for v in vids]))
    result = evaluate(raw, labels, sources, seqs, vids, hold_out, FOLDS, hidden=args.hidden, epochs=args.epochs,
                      seed=args.seed)
    table = summarise(result)
    print(f"\n{'exercise':14s} seqs seq-acc rep-windows single causal synth-windows synth-acc")
    fmt = lambda v: "   -  " if v is None else f"{v:6.3f}"  # noqa: E731
    for ex, r in table.items():
        print(f"{ex:14s} {r['sequences']:4d} {fmt(r['sequence_accuracy'])} {r['rep_windows']:11d} "
              f"{fmt(r['single_window_accuracy'])} {fmt(r['causal_window_accuracy'])} {r['synthetic_windows']:13d} "
              f"{fmt(r['synthetic_accuracy'])}")
    wrong = {n: (r["true"], r["predicted"]) for n, r in result["sequences"].items() if r["predicted"] != r["true"]}
    print("wrong sequences:", wrong)
    print(f"{time.time() - t0:.0f} s")
    if args.out:
        args.out.write_text(json.dumps({"table": table, "sequences": result["sequences"],
                                        "rep_window_confusion": confusion([(t, c) for t, _, c in result["rep_windows"]])[2].tolist()},
                                       indent=1) + "\n")
    if args.png:
        plot(result, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
