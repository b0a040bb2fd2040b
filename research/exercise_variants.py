"""Variants of the shipped exercise method, measured with research/exercise_cv.py's
cross-validation (the same folds, the same windows, the same decision), issue 15.

* ``--plausible T``: before pooling a window's statistics, skip the frames whose
  skeleton is implausible (score above ``T``, see ``plausibility``), when at least
  ``MIN_POSE_FRAMES`` plausible frames remain (otherwise the window is pooled as
  before, so the set of windows and their rep-ending flags do not change).
* ``--ensemble K``: average the probabilities of K networks trained with seeds
  ``seed, seed + 100, …`` (the open set is the same for all: it is calibrated on the windows).
* ``--augment roll|yaw|tempo`` (comma-separated for several at once): extra training windows, augmented
  copies of the training material, trained on only in the folds that do not hold their source out
  (``exercise_cv.evaluate``'s ``extra``; held-out sequences and videos are never augmented). ``roll``
  turns each window in the picture by up to ±``--roll-deg`` about its centre; ``yaw`` turns the body
  about the vertical axis by up to ±``--yaw-deg`` (x' = x cos θ + z sin θ, z rescaled per frame to the
  x range, as the repcount-dev sequences hold it); ``tempo`` replays each real sequence at a speed of
  0.8–1.25 (log-uniform; landmarks interpolated between frames) before cutting its windows. ``roll``
  and ``yaw`` apply to ``--augment-on real`` windows (of the sequences) or ``all`` (also the synthetic
  key-pose windows); each copy has its own angle. ``--copies N`` copies of each. Seeded (``AUG_SEED``).
  ``copy`` adds the same windows unchanged: the control for training on twice as many windows.
  ``limb`` breaks the skeleton as the pose estimator does: one or both legs, or one arm, turned about
  its root by 45–180° (bones keep their lengths), labelled with the window's exercise.

    python research/exercise_variants.py --seed 0 [--plausible 1.0 --score bone_max] [--ensemble 3] [--out F]
    python research/exercise_variants.py --seed 0 --augment roll --roll-deg 15 [--augment-on real] [--epochs 20]

The augmentation rows of docs/exercise.md (seeds 0-5 each) are in research/exercise_augment.json.

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
from device.pose.exercise_data import load_key_poses, load_sequences, synthetic_windows  # noqa: E402

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


AUG_SEED = 1
TEMPO = (0.8, 1.25)


def _centre(frame_xy: np.ndarray) -> np.ndarray:
    return np.nanmean(frame_xy.reshape(-1, frame_xy.shape[-1]), axis=0)


def rolled(window: np.ndarray, rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """The window turned in the picture by one angle (uniform ±max_deg) about its centre."""
    out = np.array(window, dtype=np.float64)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg))
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = out[:, :, :2]
    centre = _centre(xy)
    out[:, :, :2] = (xy - centre) @ turn.T + centre
    return out


def yawed(window: np.ndarray, rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """The body turned about the vertical axis by one angle (uniform ±max_deg): x' = x cos θ + z sin θ,
    with each frame's z rescaled to its x range (the key poses hold z in pixels, exaggerated ~3× by
    the estimator; the repcount-dev sequences min–max normalised per axis, i.e. already this form)."""
    out = np.array(window, dtype=np.float64)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg))
    x, z = out[:, :, 0], out[:, :, 2]
    x_range = np.nanmax(x, axis=1, keepdims=True) - np.nanmin(x, axis=1, keepdims=True)
    z_range = np.nanmax(z, axis=1, keepdims=True) - np.nanmin(z, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (z - np.nanmean(z, axis=1, keepdims=True)) * np.where(z_range > 0, x_range / z_range, 0.0)
    cx = np.nanmean(x, axis=1, keepdims=True)
    out[:, :, 0] = cx + (x - cx) * np.cos(angle) + z * np.sin(angle)
    out[:, :, 2] = z * np.cos(angle) - (x - cx) * np.sin(angle)
    return out


# BlazePose chains: (root, joints moved with it) — a leg turns about its hip, an arm about its shoulder
CHAINS = {"left_leg": (23, (25, 27, 29, 31)), "right_leg": (24, (26, 28, 30, 32)),
          "left_arm": (11, (13, 15, 17, 19, 21)), "right_arm": (12, (14, 16, 18, 20, 22))}
LIMB_GROUPS = (("left_leg", "right_leg"), ("left_leg",), ("right_leg",), ("left_arm",), ("right_arm",))
LIMB_P = (0.4, 0.15, 0.15, 0.15, 0.15)


def broken(window: np.ndarray, rng: np.random.Generator, min_deg: float = 45.0) -> np.ndarray:
    """The window with one or both legs, or one arm, where no limb is: each chain turned in the picture
    about its root by one angle (uniform |θ| in [min_deg, 180]) plus per-frame jitter (±10°) — the bones
    keep their lengths, as the estimator's broken skeletons do (``stu9_17``'s legs are wrong but of
    plausible length)."""
    out = np.array(window, dtype=np.float64)
    group = LIMB_GROUPS[rng.choice(len(LIMB_GROUPS), p=LIMB_P)]
    for name in group:
        root, joints = CHAINS[name]
        base = np.deg2rad(rng.uniform(min_deg, 180.0) * rng.choice((-1.0, 1.0)))
        angles = base + np.deg2rad(rng.uniform(-10.0, 10.0, size=len(out)))
        c, s = np.cos(angles)[:, None], np.sin(angles)[:, None]
        origin = out[:, root, :2][:, None, :]
        rel = out[:, list(joints), :2] - origin
        x = rel[..., 0] * c - rel[..., 1] * s
        y = rel[..., 0] * s + rel[..., 1] * c
        out[:, list(joints), 0] = origin[..., 0] + x
        out[:, list(joints), 1] = origin[..., 1] + y
    return out


def retimed(poses: np.ndarray, speed: float) -> np.ndarray:
    """The sequence replayed at ``speed`` (frames interpolated linearly; NaN where a neighbour is)."""
    poses = np.asarray(poses, dtype=np.float64)
    at = np.arange(0.0, len(poses) - 1 + 1e-9, speed)
    lo = np.floor(at).astype(int)
    hi = np.minimum(lo + 1, len(poses) - 1)
    w = (at - lo)[:, None, None]
    return (1.0 - w) * poses[lo] + w * poses[hi]


def _pooled(windows: list[np.ndarray]) -> list[np.ndarray]:
    rows = (ef.pool(ef.frame_descriptors(w)) for w in windows)
    return [r for r in rows if r is not None]


def augmented_windows(data: Path, kinds: list[str], on: str, copies: int, roll_deg: float, yaw_deg: float):
    """(raw, labels, sources) of the augmented copies of the training material (sources named as in the
    base set, so a fold that holds a sequence or video out holds its copies out too)."""
    build = cv.build_module()
    features = ef.ExerciseFeatures()
    rng = np.random.default_rng(AUG_SEED)

    def turned(window: np.ndarray) -> np.ndarray:
        if "roll" in kinds:
            window = rolled(window, rng, roll_deg)
        if "yaw" in kinds:
            window = yawed(window, rng, yaw_deg)
        if "limb" in kinds:
            window = broken(window, rng)
        return window

    rows: list[np.ndarray] = []
    labels: list[str] = []
    sources: list[str] = []
    for seq in load_sequences(data):
        for _ in range(copies):
            poses = seq.poses
            if "tempo" in kinds:
                poses = retimed(poses, float(np.exp(rng.uniform(*np.log(TEMPO)))))
            kept = _pooled([turned(poses[a:b]) for a, b in features.window_bounds(len(poses))])
            rows += kept
            labels += [seq.exercise] * len(kept)
            sources += [seq.name] * len(kept)
    if on == "all" and {"roll", "yaw", "copy", "limb"} & set(kinds):
        synth_rng = np.random.default_rng(build.SEED)  # the build's synthetic windows, drawn as it draws them
        for video in load_key_poses(data):
            windows = list(synthetic_windows(video, build.SYNTHETIC_PER_VIDEO, synth_rng))
            for _ in range(copies):
                kept = _pooled([turned(w) for w in windows])
                rows += kept
                labels += [video.exercise] * len(kept)
                sources += [video.name] * len(kept)
    return np.stack(rows), labels, sources


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
    ap.add_argument("--augment", default="", help="roll, yaw, tempo, copy, limb (comma-separated)")
    ap.add_argument("--augment-on", choices=("real", "all"), default="all")
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--roll-deg", type=float, default=15.0)
    ap.add_argument("--yaw-deg", type=float, default=30.0)
    ap.add_argument("--epochs", type=int, default=40, help="network epochs (fewer: as many updates as the base on more windows)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    t0 = time.time()
    tag = "base" if args.plausible is None else f"{args.score}_{args.plausible}"
    if args.plausible is not None:
        ef.pool = filtered_pool(args.plausible, args.score)
    cv.CACHE = Path(f"/tmp/ex15/windows_{tag}_{ef.ExerciseFeatures().fingerprint()[:12]}.npz")
    cv.CACHE.parent.mkdir(parents=True, exist_ok=True)
    raw, labels, sources = cv.training_data(cv.DATA)
    if args.epochs != 40:
        tag += f"_e{args.epochs}"
    seqs, vids = load_sequences(cv.DATA), load_key_poses(cv.DATA)
    hold_out = cv.folds_of([s.name for s in seqs], [s.exercise for s in seqs])
    hold_out.update(cv.folds_of([v.name for v in vids], [v.exercise for v in vids]))
    extra = None
    kinds = [k for k in args.augment.split(",") if k]
    if kinds:
        unknown = set(kinds) - {"roll", "yaw", "tempo", "copy", "limb"}
        if unknown:
            ap.error(f"unknown augmentation {sorted(unknown)}")
        aug = (f"{'+'.join(kinds)}_{args.augment_on}_x{args.copies}_r{args.roll_deg:g}_y{args.yaw_deg:g}")
        tag += f"_aug_{aug}"
        cache = cv.CACHE.with_name(f"aug_{aug}_{cv.CACHE.stem}.npz")
        if cache.is_file():
            z = np.load(cache, allow_pickle=False)
            extra = (z["raw"], z["labels"].tolist(), z["sources"].tolist())
        else:
            extra = augmented_windows(cv.DATA, kinds, args.augment_on, args.copies, args.roll_deg, args.yaw_deg)
            np.savez(cache, raw=extra[0], labels=np.asarray(extra[1]), sources=np.asarray(extra[2]))
        print(f"{len(extra[1])} augmented windows", flush=True)
    if args.ensemble > 1:
        seeds = [args.seed + 100 * k for k in range(args.ensemble)]
        cv.fit_classifier = lambda r, lab, seed=0, **kw: Ensemble([fit_classifier(r, lab, seed=s, **kw) for s in seeds])
    result = cv.evaluate(raw, labels, sources, seqs, vids, hold_out, cv.FOLDS, extra=extra, seed=args.seed,
                         epochs=args.epochs)
    table = cv.summarise(result)
    a = table["all"]
    wrong = {n: (r["true"], r["predicted"]) for n, r in result["sequences"].items() if r["predicted"] != r["true"]}
    print(f"{tag} ensemble={args.ensemble} seed={args.seed}: seq {a['sequence_accuracy']:.3f} "
          f"single {a['single_window_accuracy']:.3f} live {a['causal_window_accuracy']:.3f} "
          f"synth {a['synthetic_accuracy']:.3f} wrong {wrong} ({time.time() - t0:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps({"variant": tag, "ensemble": args.ensemble, "seed": args.seed,
                                        "augmented_windows": 0 if extra is None else len(extra[1]),
                                        "table": table, "sequences": result["sequences"]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
