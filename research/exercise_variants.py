"""Variants of the shipped exercise method, measured with research/exercise_cv.py's
cross-validation (the same folds, the same windows, the same decision), issue 15.

* ``--plausible T``: before pooling a window's statistics, skip the frames whose
  skeleton is implausible (score above ``T``, see ``plausibility``), when at least
  ``MIN_POSE_FRAMES`` plausible frames remain (otherwise the window is pooled as
  before, so the set of windows and their rep-ending flags do not change).
* ``--ensemble K``: average the probabilities of K networks trained with seeds
  ``seed, seed + 100, …`` (the open set is the same for all: it is calibrated on the windows).

    python research/exercise_variants.py --seed 0 [--plausible 1.0 --score bone_max] [--ensemble 3] [--out F]

The issue-15 rows of docs/exercise.md's research runs were measured on features v3, before the
filter was adopted (v4 filters at ``MAX_BONE_RATIO`` = 1.25 in ``pool`` itself, so ``--plausible``
now filters on top of it; the windows cache is in /tmp/ex15, named by the variant and the features' fingerprint).
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
sys.path.insert(0, str(REPO / "research"))

import exercise_cv as cv  # noqa: E402
from device.pose import exercise_features as ef  # noqa: E402
from device.pose.exercise import ExerciseClassifier, fit_classifier  # noqa: E402
from device.pose.exercise_data import load_key_poses, load_sequences  # noqa: E402

_ORIGINAL_POOL = ef.pool
BONES = slice(33, 37)  # |log| left/right length ratios of upper arm, forearm, thigh, shin


def plausibility(descriptors: np.ndarray, score: str) -> np.ndarray:
    """Per-frame implausibility (larger: less like a body) from the descriptor's bone ratios."""
    bones = descriptors[:, BONES]
    if score == "bone_max":
        return bones.max(axis=1)
    if score == "bone_mean":
        return bones.mean(axis=1)
    if score == "bone_second":  # the second largest: one foreshortened limb is normal, two are not
        return np.sort(bones, axis=1)[:, -2]
    raise ValueError(score)


def filtered_pool(threshold: float, score: str):
    def pool(descriptors: np.ndarray) -> np.ndarray | None:
        finite = np.isfinite(descriptors[:, 0])
        keep = finite & ~(plausibility(np.nan_to_num(descriptors), score) > threshold)
        if keep.sum() >= ef.MIN_POSE_FRAMES:
            return _ORIGINAL_POOL(descriptors[keep])
        return _ORIGINAL_POOL(descriptors)

    return pool


class Ensemble:
    """Classifiers of one training set with different seeds: mean probabilities."""

    def __init__(self, members: list[ExerciseClassifier]) -> None:
        self.members = members
        first = members[0]
        self.min_motion, self.labels = first.min_motion, first.labels

    def scores(self, raw):
        parts = [m.scores(raw) for m in self.members]
        p = np.mean([np.exp(lp) for lp, _, _ in parts], axis=0)
        return np.log(np.maximum(p, 1e-9)), parts[0][1], parts[0][2]

    def decide(self, logp, moving, distance):
        return self.members[0].decide(logp, moving, distance)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plausible", type=float)
    ap.add_argument("--score", default="bone_max")
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    t0 = time.time()
    tag = "base" if args.plausible is None else f"{args.score}_{args.plausible}"
    if args.plausible is not None:
        ef.pool = filtered_pool(args.plausible, args.score)
    cv.CACHE = Path(f"/tmp/ex15/windows_{tag}_{ef.ExerciseFeatures().fingerprint()[:12]}.npz")
    cv.CACHE.parent.mkdir(parents=True, exist_ok=True)
    raw, labels, sources = cv.training_data(cv.DATA)
    seqs, vids = load_sequences(cv.DATA), load_key_poses(cv.DATA)
    hold_out = cv.folds_of([s.name for s in seqs], [s.exercise for s in seqs])
    hold_out.update(cv.folds_of([v.name for v in vids], [v.exercise for v in vids]))
    if args.ensemble > 1:
        seeds = [args.seed + 100 * k for k in range(args.ensemble)]
        cv.fit_classifier = lambda r, lab, seed=0, **kw: Ensemble([fit_classifier(r, lab, seed=s, **kw) for s in seeds])
    result = cv.evaluate(raw, labels, sources, seqs, vids, hold_out, cv.FOLDS, seed=args.seed)
    table = cv.summarise(result)
    a = table["all"]
    wrong = {n: (r["true"], r["predicted"]) for n, r in result["sequences"].items() if r["predicted"] != r["true"]}
    print(f"{tag} ensemble={args.ensemble} seed={args.seed}: seq {a['sequence_accuracy']:.3f} "
          f"single {a['single_window_accuracy']:.3f} live {a['causal_window_accuracy']:.3f} "
          f"synth {a['synthetic_accuracy']:.3f} wrong {wrong} ({time.time() - t0:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps({"variant": tag, "ensemble": args.ensemble, "seed": args.seed,
                                        "table": table, "sequences": result["sequences"]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
