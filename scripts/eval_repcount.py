#!/usr/bin/env python3
"""Accuracy of the repetition counter, cross-validated (the headline), per exercise, with error classes.

    python scripts/eval_repcount.py [--data DIR] [--videos DIR] [--pose-cache DIR] [--set key=value ...]
                                    [--grid default|thresholds|none] [--select argmin|1se] [--folds 5]
                                    [--hint] [--no-cv] [--no-videos] [--verbose] [--json PATH]

What it measures, in order:

1. **Cross-validated** (the headline): for each fold, a setting of a small
   grid (``--grid``) is chosen on the other folds — the best there
   (``--select argmin``), or the default unless something beats it by more
   than one standard error (``1se``) — and the fold is counted with it. Two
   splits: leave one exercise out (8 folds), and grouped k-fold where a group
   is a recording's person (``stu4_*`` is one person) or a single clip.
   Pooled held-out predictions, per exercise.
2. **Short sets**: sub-clips of 2, 3 and 5 annotated repetitions cut out of the
   same sequences, each twice: with a second of the boundary pose held before and
   after (a person standing at rest) and bare (cut at the annotated boundaries,
   as RepCount's own clips often are) — the set sizes whose misses and overcounts
   dominate the error on unseen data. Scored in the same folds.
3. For reference, the default settings on all 45 sequences (which earlier
   choices were made on: optimistic).
4. The shared videos end to end: video → BlazePose → one person (the poses
   cached under ``--pose-cache`` by ``python -m device pose VIDEO --out``) →
   ``device.pose.count_repetitions``.

``--hint`` tells the counter each sequence's exercise (the optional hint; the
rest sides it uses are learned from other videos, ``scripts/build_rest_model.py``).

MAE is the mean over sequences of |predicted − true| / true, OBO the share with
|predicted − true| ≤ 1 (RepCount-A's metrics). Error classes: ``±1`` (within one),
``half/double`` (within 15 % of half or twice the count), ``miss`` (a quarter of
the count or less), ``over`` (more than 1.5 × the count + 1), ``off`` (the rest).
Exercise spelling variants (``squant``, ``jumpjacks``…) are merged (``device.pose.rest.canonical_exercise``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import subprocess
import sys
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.pose import count_repetitions  # noqa: E402
from device.pose.rest import canonical_exercise  # noqa: E402

# shared/ beside the repository (or beside the folder of a git worktree)
SHARED = next((p for p in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data") if p.is_dir()),
              ROOT.parent / "shared" / "data")
# The grids the folds choose from (around the defaults; the defaults are in each).
_THRESHOLDS = {"min_periodicity": (0.2, 0.3, 0.4), "hysteresis": (0.4, 0.5, 0.6)}
GRIDS: dict[str, dict[str, tuple]] = {
    "none": {},
    "thresholds": _THRESHOLDS,  # what earlier counters had (to compare with them)
    "default": {**_THRESHOLDS, "stillness": (0.03, 0.05, 0.1)},
}
CLASSES = ("±1", "half/double", "miss", "over", "off")


@dataclasses.dataclass
class Sequence:
    name: str
    exercise: str
    count: int
    poses: np.ndarray
    fps: float = 30.0
    group: str = ""  # recordings of one person share a group (never split across folds)
    lo: int = -1  # acceptable range (videos); the count itself otherwise
    hi: int = -1

    def __post_init__(self) -> None:
        self.group = self.group or self.name
        self.lo = self.count if self.lo < 0 else self.lo
        self.hi = self.count if self.hi < 0 else self.hi


def person(name: str) -> str:
    """``stu4_27`` → ``stu4`` (one person, several clips); other names are single clips."""
    head, _, tail = name.partition("_")
    return head if head.startswith("stu") and tail else name


def load_repcount(data: Path) -> tuple[list[Sequence], dict[str, list[tuple[int, int]]]]:
    seqs, cycles = [], {}
    with open(data / "annotations.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            poses = np.load(data / "poses" / f"{r['name']}.npy", allow_pickle=False)
            seqs.append(Sequence(r["name"], canonical_exercise(r["exercise"]), int(r["count"]), poses, group=person(r["name"])))
            cycles[r["name"]] = [tuple(int(v) for v in c.split("-")) for c in r["cycles"].split(";") if "-" in c]
    return seqs, cycles


def short_sets(seqs: list[Sequence], cycles: dict[str, list[tuple[int, int]]], sizes: tuple[int, ...] = (2, 3, 5),
               hold: float = 1.0) -> list[Sequence]:
    """The middle ``k`` annotated repetitions of each sequence that has more, with the
    first and last frame held for ``hold`` seconds (a person at rest, slight jitter);
    ``hold=0``: the bare cut, no rest before or after (named ``name[k bare]``)."""
    out = []
    for s in seqs:
        cyc = [c for c in cycles[s.name] if c[1] > c[0]]
        for k in sizes:
            if len(cyc) <= k:
                continue
            i = (len(cyc) - k) // 2
            a, b = cyc[i][0], min(cyc[i + k - 1][1], len(s.poses) - 1)
            clip = s.poses[a : b + 1]
            body = clip[:, 11:29, :2]  # shoulders … ankles
            if not np.isfinite(body[[0, -1]]).all():
                continue
            # only where the annotated boundaries are one position (some annotations cut
            # mid-movement): the ends closer to each other than a third of the motion's reach
            reach = np.nanmax(np.sqrt(np.nansum((body - body[0]) ** 2, axis=(1, 2))))
            if np.sqrt(np.sum((body[-1] - body[0]) ** 2)) > reach / 3:
                continue
            n = int(round(hold * s.fps))
            if n == 0:  # cut at the annotated boundaries and nothing else: how RepCount's own clips come
                out.append(Sequence(f"{s.name}[{k} bare]", s.exercise, k, clip, s.fps, s.group))
                continue
            rng = np.random.default_rng(zlib.crc32(f"{s.name}/{k}".encode()))
            # jitter like the data's own (pose noise smoothed over 5 frames, as repcount-dev was)
            jitter = rng.normal(0, 0.012, (2, n + 4) + clip.shape[1:]).cumsum(axis=1)
            jitter = (jitter[:, 4:] - np.concatenate([np.zeros((2, 1) + clip.shape[1:]), jitter[:, :n - 1]], axis=1)) / 5
            lead, tail = clip[0] + jitter[0], clip[-1] + jitter[1]
            out.append(Sequence(f"{s.name}[{k}]", s.exercise, k, np.concatenate([lead, clip, tail]), s.fps, s.group))
    return out


def at_tempo(seq: Sequence, speed: float) -> Sequence:
    """``seq`` played ``speed`` times as fast (same count, periods / speed): landmarks linearly
    interpolated between frames, the nearest frame where a neighbour has no pose."""
    n = len(seq.poses)
    src = np.linspace(0.0, n - 1, max(2, int(round(n / speed))))
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (src - i0)[:, None, None]
    poses = seq.poses[i0] * (1 - w) + seq.poses[i1] * w
    bad = ~np.isfinite(poses)
    poses[bad] = seq.poses[np.where(w[:, 0, 0] < 0.5, i0, i1)][bad]
    return dataclasses.replace(seq, name=f"{seq.name}@{speed:g}", poses=poses)


def eval_tempo(seqs: list[Sequence], speeds: tuple[float, ...], settings: dict[str, Any]) -> dict[str, Any]:
    """The same sequences at other tempos: people repeat at other speeds than the 45 dev
    sequences' (settings chosen on them); a counter that generalises keeps its figures."""
    out = {}
    print("\ntempo stress (all 45 at other speeds, the given settings):")
    print(f"  {'speed':>6s} {'MAE':>6s} {'OBO':>6s}  " + " ".join(f"{c:>11s}" for c in CLASSES))
    for speed in speeds:
        moved = [at_tempo(s, speed) for s in seqs]
        preds = predict(moved, settings)
        summary = summarise([(s, preds[s.name]) for s in moved])["ALL"]
        out[f"{speed:g}"] = summary
        print(f"  {speed:6g} {summary['mae']:6.3f} {summary['obo']:6.3f}  " + " ".join(f"{summary[c]:11d}" for c in CLASSES))
    return out


def video_sequences(folder: Path, cache: Path) -> list[Sequence]:
    """The annotated videos' poses, extracted once by the pose pipeline and cached."""
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    with open(folder / "annotations.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        stem = Path(r["file"]).stem
        npy = cache / f"{stem}.npy"
        if not npy.exists():
            print(f"extracting poses of {r['file']} …", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-m", "device", "pose", str(folder / r["file"]), "--rotate",
                            str(int(r.get("rotate_clockwise") or 0)), "--out", str(npy)],
                           check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        fps = float(json.loads(npy.with_suffix(".json").read_text()).get("fps") or r["fps"])
        out.append(Sequence(stem, r["exercise"], int(r["count"]), np.load(npy, allow_pickle=False), fps,
                            lo=int(r["count_min"]), hi=int(r["count_max"])))
    return out


# ---------------------------------------------------------------------------------- scoring


def error_class(true: int, pred: float) -> str:
    if abs(pred - true) <= 1:
        return "±1"
    if true >= 4 and (abs(pred - true / 2) <= 0.15 * true / 2 or abs(pred - 2 * true) <= 0.15 * 2 * true):
        return "half/double"
    if pred <= 0.25 * true:
        return "miss"
    if pred > 1.5 * true + 1:
        return "over"
    return "off"


def summarise(pairs: list[tuple[Sequence, float]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[tuple[Sequence, float]]] = defaultdict(list)
    for s, p in pairs:
        groups[s.exercise].append((s, p))
        groups["ALL"].append((s, p))
    out = {}
    for ex, items in groups.items():
        t = np.array([s.count for s, _ in items], float)
        p = np.array([q for _, q in items], float)
        pos = t > 0
        classes = {c: 0 for c in CLASSES}
        for s, q in items:
            classes[error_class(s.count, q)] += 1
        out[ex] = {"n": len(items), "mae": float(np.mean(np.abs(p[pos] - t[pos]) / t[pos])) if pos.any() else float("nan"),
                   "obo": float(np.mean(np.abs(p - t) <= 1)), "exact": int(np.sum(p == t)),
                   "over": int(np.sum(p > t)), "under": int(np.sum(p < t)), **classes}
    return out


def table(title: str, pairs: list[tuple[Sequence, float]]) -> dict[str, dict[str, Any]]:
    summary = summarise(pairs)
    print(f"\n{title}")
    print(f"  {'exercise':14s} {'n':>4s} {'MAE':>6s} {'OBO':>6s}  " + " ".join(f"{c:>11s}" for c in CLASSES)
          + "  exact/over/under")
    for ex in sorted(k for k in summary if k != "ALL") + ["ALL"]:
        s = summary[ex]
        print(f"  {ex:14s} {s['n']:4d} {s['mae']:6.3f} {s['obo']:6.3f}  " + " ".join(f"{s[c]:11d}" for c in CLASSES)
              + f"  {s['exact']}/{s['over']}/{s['under']}")
    return summary


def score(pairs: list[tuple[Sequence, float]]) -> tuple[float, float]:
    s = summarise(pairs)["ALL"]
    return s["mae"], -s["obo"]


# ---------------------------------------------------------------------------------- cross-validation


HINT = False  # --hint: tell the counter each sequence's exercise


def predict(seqs: list[Sequence], settings: dict[str, Any]) -> dict[str, float]:
    return {s.name: count_repetitions(s.poses, s.fps, **settings, **({"exercise": s.exercise} if HINT else {}))
            for s in seqs}


def folds_by(seqs: list[Sequence], key: str, k: int) -> dict[str, list[str]]:
    """Fold name → group keys: by exercise, or the groups dealt round-robin by size."""
    if key == "exercise":
        return {ex: [ex] for ex in sorted({s.exercise for s in seqs})}
    sizes: dict[str, int] = defaultdict(int)
    for s in seqs:
        sizes[s.group] += 1
    folds: dict[str, list[str]] = {f"fold{i + 1}": [] for i in range(k)}
    load = dict.fromkeys(folds, 0)
    for g in sorted(sizes, key=lambda g: (-sizes[g], g)):
        f = min(folds, key=lambda f: (load[f], f))
        folds[f].append(g)
        load[f] += sizes[g]
    return folds


def pick(configs: list[dict[str, Any]], preds: list[dict[str, float]], train: list[Sequence], default: int,
         rule: str) -> int:
    """The setting a fold chooses: the best on its training part (``argmin``), or the
    default unless something beats it by more than one standard error of the
    MAE (``1se``: differences smaller than that are noise)."""
    scores = [score([(s, p[s.name]) for s in train]) for p in preds]
    best = min(range(len(configs)), key=lambda c: scores[c])
    if rule == "argmin":
        return best
    errors = np.array([abs(preds[best][s.name] - s.count) / s.count for s in train if s.count > 0])
    return default if scores[default][0] <= scores[best][0] + errors.std() / np.sqrt(len(errors)) else best


def cross_validate(seqs: list[Sequence], shorts: list[Sequence], grid: dict[str, tuple], base: dict[str, Any],
                   k: int, verbose: bool, rule: str = "argmin") -> dict[str, Any]:
    configs = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    default = next((i for i, c in enumerate(configs) if all(base.get(key, DEFAULTS.get(key)) == v for key, v in c.items())), 0)
    everything = seqs + shorts
    preds = []
    for i, cfg in enumerate(configs):
        t0 = time.perf_counter()
        preds.append(predict(everything, {**base, **cfg}))
        tty = sys.stderr.isatty()  # one line redrawn on a terminal, a line each in a log
        line = f"setting {i + 1}/{len(configs)} ({time.perf_counter() - t0:.0f} s)"
        print("\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    out: dict[str, Any] = {}
    for split in ("exercise", "group"):
        folds = folds_by(seqs, split, k)
        held: list[tuple[Sequence, float]] = []
        held_short: list[tuple[Sequence, float]] = []
        chosen = {}
        for fold, keys in folds.items():
            def inside(s: Sequence) -> bool:
                return (s.exercise if split == "exercise" else s.group) in keys

            train = [s for s in everything if not inside(s)]
            ci = pick(configs, preds, train, default, rule)
            chosen[fold] = configs[ci]
            held += [(s, preds[ci][s.name]) for s in seqs if inside(s)]
            held_short += [(s, preds[ci][s.name]) for s in shorts if inside(s)]
        name = "leave one exercise out" if split == "exercise" else f"grouped {k}-fold (a person's clips together)"
        if len(configs) > 1:
            print(f"\n{name}: settings chosen per fold: " + "; ".join(f"{f} {c}" for f, c in chosen.items()))
        out[split] = {"full": table(f"CROSS-VALIDATED, {name}: repcount-dev held out ({len(held)} sequences)", held),
                      "short": table(f"  … short sets held out in the same folds ({len(held_short)})", held_short),
                      "chosen": chosen}
        if verbose:
            for s, p in held + held_short:
                cls = error_class(s.count, p)
                print(f"    {s.name:14s} {s.exercise:13s} true {s.count:3d} pred {p:5g}  {cls}")
    out["reference"] = table("for reference, the default settings on all of repcount-dev (choices were made on it)",
                             [(s, preds[default][s.name]) for s in seqs])
    return out


def _defaults() -> dict[str, Any]:
    from device.components import find_stage
    from device.pose import PoseSettings, counting_pipeline
    from device.pose.counter import HumanBodyActionCounter

    c = find_stage(counting_pipeline(PoseSettings(), 30.0), HumanBodyActionCounter)  # as the product builds it
    return {key: getattr(c, key) for key in itertools.chain.from_iterable(GRIDS.values()) if hasattr(c, key)}


DEFAULTS = _defaults()


def eval_videos(videos: list[Sequence], settings: dict[str, Any]) -> dict[str, Any]:
    print("\nshared videos end to end (video → BlazePose → one person → count_repetitions):")
    inside = exact = 0
    rows = []
    for v in videos:
        pred = count_repetitions(v.poses, v.fps, **settings)
        ok = v.lo <= pred <= v.hi
        inside += ok
        exact += pred == v.count
        rows.append({"file": v.name, "count": v.count, "lo": v.lo, "hi": v.hi, "counted": pred})
        print(f"  {v.name:18s} {v.exercise:17s} count {v.count:2d} ({v.lo}–{v.hi})  counted {pred:4g}"
              f"  {'exact' if pred == v.count else ('in range' if ok else 'OUT')}")
    print(f"  {exact}/{len(videos)} exact, {inside}/{len(videos)} within count_min..count_max")
    return {"exact": exact, "inside": inside, "n": len(videos), "rows": rows}


def parse_value(text: str) -> Any:
    if "," in text:
        return tuple(parse_value(t) for t in text.split(",") if t)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED / "repcount-dev")
    ap.add_argument("--videos", type=Path, default=SHARED / "videos")
    ap.add_argument("--pose-cache", type=Path, default=Path("/tmp/cadence-video-poses"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="counter setting")
    ap.add_argument("--grid", choices=sorted(GRIDS), default="default", help="settings the folds choose from")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--select", choices=("argmin", "1se"), default="argmin",
                    help="how a fold chooses: the best on its training part, or the default unless beaten by > 1 s.e.")
    ap.add_argument("--no-cv", action="store_true", help="only the default settings on all sequences")
    ap.add_argument("--no-videos", action="store_true")
    ap.add_argument("--verbose", "-v", action="store_true", help="one line per sequence")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--tempo", type=lambda t: tuple(float(v) for v in t.split(",")), default=(),
                    metavar="SPEEDS", help="also count all 45 played at these speeds (e.g. 0.7,0.85,1.2,1.4)")
    ap.add_argument("--hint", action="store_true", help="tell the counter each sequence's exercise (the optional hint)")
    args = ap.parse_args(argv)
    global HINT
    HINT = args.hint
    settings = {k: parse_value(v) for k, _, v in (i.partition("=") for i in args.set)}
    if not (args.data / "annotations.csv").exists():
        print(f"eval_repcount: no annotations.csv in {args.data}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    seqs, cycles = load_repcount(args.data)
    shorts = short_sets(seqs, cycles) + short_sets(seqs, cycles, hold=0.0)
    report: dict[str, Any] = {"settings": settings}
    if args.no_cv:
        preds = predict(seqs + shorts, settings)
        report["all"] = table(f"default settings on all of repcount-dev ({len(seqs)})", [(s, preds[s.name]) for s in seqs])
        report["short"] = table(f"short sets ({len(shorts)})", [(s, preds[s.name]) for s in shorts])
        if args.verbose:
            for s in seqs + shorts:
                print(f"    {s.name:14s} {s.exercise:13s} true {s.count:3d} pred {preds[s.name]:5g}  {error_class(s.count, preds[s.name])}")
    else:
        report["cv"] = cross_validate(seqs, shorts, GRIDS[args.grid], settings, args.folds, args.verbose, args.select)
    if args.tempo:
        report["tempo"] = eval_tempo(seqs, args.tempo, settings)
    if not args.no_videos and (args.videos / "annotations.csv").exists():
        report["videos"] = eval_videos(video_sequences(args.videos, args.pose_cache), settings)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
