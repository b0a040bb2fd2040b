#!/usr/bin/env python3
"""Accuracy of the repetition counter on repcount-dev (MAE, OBO; overall and per exercise).

    python scripts/eval_repcount.py [--data DIR] [--set key=value ...] [--verbose]
                                    [--split all|half-a|half-b] [--json] [--cross-validate] [--videos]
                                    [--phases]

``--videos`` runs the whole live pipeline (video → BlazePose → one person →
sliding windows → counter) over ``../shared/data/videos`` and compares with
its annotations (count, and the acceptable count_min..count_max).

``--phases`` shows where in each annotated cycle the repetitions are counted
(diagnostic for the choice of the rest side).

``--cross-validate`` checks that the settings generalise: over a small grid of
the counter's main thresholds it picks the best setting on one part of the
data and reports the accuracy on the part left out — for the two halves
(A→B, B→A) and leaving one exercise out at a time.

MAE is the mean over sequences of |predicted − true| / true, OBO the share of
sequences with |predicted − true| ≤ 1 — as in the RepCount-A benchmark.
Exercise spelling variants (``squant``, ``jumpjacks``…) are merged.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.pose.counter import HumanBodyActionCounter, count_repetitions  # noqa: E402

HumanBodyActionCounterDefaults = {k: getattr(HumanBodyActionCounter(), k) for k in ("min_periodicity", "hysteresis", "smoothing")}

CANONICAL = {
    "benchpressing": "bench_pressing",
    "bench_pressing": "bench_pressing",
    "jumpjacks": "jump_jack",
    "jump_jack": "jump_jack",
    "squat": "squat",
    "squant": "squat",
    "pullups": "pull_up",
    "pull_up": "pull_up",
    "frontraise": "front_raise",
    "front_raise": "front_raise",
    "situp": "situp",
    "push_up": "push_up",
    "pommelhorse": "pommelhorse",
}


def canonical(name: str) -> str:
    key = name.strip().lower()
    return CANONICAL.get(key, CANONICAL.get(key.replace(" ", ""), key))


def load_rows(data: Path) -> list[dict[str, str]]:
    with open(data / "annotations.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def split_rows(rows: list[dict[str, str]], split: str) -> list[dict[str, str]]:
    """Deterministic halves: alternate sequences within each exercise (sorted by name)."""
    if split == "all":
        return rows
    by_ex: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["name"]):
        by_ex[canonical(r["exercise"])].append(r)
    want = 0 if split == "half-a" else 1
    return [r for ex in by_ex.values() for i, r in enumerate(ex) if i % 2 == want]


def summarise(results: list[tuple[str, str, int, float]]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for _, ex, true, pred in results:
        groups[ex].append((true, pred))
        groups["ALL"].append((true, pred))
    out = {}
    for ex, pairs in groups.items():
        t = np.array([p[0] for p in pairs], float)
        p = np.array([p[1] for p in pairs], float)
        pos = t > 0
        mae = float(np.mean(np.abs(p[pos] - t[pos]) / t[pos])) if pos.any() else float("nan")
        obo = float(np.mean(np.abs(p - t) <= 1))
        out[ex] = {"n": len(pairs), "mae": mae, "obo": obo}
    return out


GRID = {  # around the defaults
    "min_periodicity": (0.2, 0.3, 0.4),
    "hysteresis": (0.4, 0.5, 0.6),
    "smoothing": (0.25, 0.35, 0.45),
}


def score(results: list[tuple[str, str, int, float]]) -> tuple[float, float]:
    s = summarise(results)["ALL"]
    return s["mae"], s["obo"]


def cross_validate(rows: list[dict[str, str]], data: Path, fps: float, base: dict) -> int:
    import itertools

    keys = list(GRID)
    configs = [dict(zip(keys, values)) for values in itertools.product(*GRID.values())]
    poses = {r["name"]: np.load(data / "poses" / f"{r['name']}.npy") for r in rows}
    preds: list[dict[str, float]] = []
    for i, cfg in enumerate(configs):
        preds.append({name: count_repetitions(p, fps, **{**base, **cfg}) for name, p in poses.items()})
        print(f"\rgrid {i + 1}/{len(configs)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    def results_for(ci: int, subset: list[dict[str, str]]) -> list[tuple[str, str, int, float]]:
        return [(r["name"], canonical(r["exercise"]), int(r["count"]), preds[ci][r["name"]]) for r in subset]

    def pick(subset: list[dict[str, str]]) -> int:
        return min(range(len(configs)), key=lambda ci: (score(results_for(ci, subset))[0], -score(results_for(ci, subset))[1]))

    default = next((ci for ci, cfg in enumerate(configs) if all(HumanBodyActionCounterDefaults.get(k) == v for k, v in cfg.items())), None)
    if default is not None:
        mae, obo = score(results_for(default, rows))
        print(f"default settings on all {len(rows)}: MAE {mae:.3f} OBO {obo:.3f}")
    best_all = pick(rows)
    mae, obo = score(results_for(best_all, rows))
    print(f"best grid setting on all (optimistic): {configs[best_all]} MAE {mae:.3f} OBO {obo:.3f}")
    print("\nhalves (tune on one, test on the other):")
    halves = {h: split_rows(rows, h) for h in ("half-a", "half-b")}
    for train, test in (("half-a", "half-b"), ("half-b", "half-a")):
        ci = pick(halves[train])
        mae, obo = score(results_for(ci, halves[test]))
        dmae, dobo = score(results_for(default, halves[test])) if default is not None else (float("nan"),) * 2
        print(f"  {train}→{test}: chose {configs[ci]}  held-out MAE {mae:.3f} OBO {obo:.3f}"
              f"  (defaults on {test}: MAE {dmae:.3f} OBO {dobo:.3f})")
    print("\nleave one exercise out (tune on the others, test on it):")
    held: list[tuple[str, str, int, float]] = []
    for ex in sorted({canonical(r["exercise"]) for r in rows}):
        train = [r for r in rows if canonical(r["exercise"]) != ex]
        test = [r for r in rows if canonical(r["exercise"]) == ex]
        ci = pick(train)
        res = results_for(ci, test)
        held += res
        mae, obo = score(res)
        print(f"  {ex:15s} n={len(test):2d} chose {configs[ci]}  MAE {mae:.3f} OBO {obo:.3f}")
    mae, obo = score(held)
    print(f"  all held-out predictions: MAE {mae:.3f} OBO {obo:.3f}")
    return 0


def counting_phases(rows: list[dict[str, str]], data: Path, fps: float, settings: dict) -> int:
    """Where in the annotated cycle each repetition is counted (diagnostic).

    The counter counts a repetition when the motion returns to the side it
    takes for rest. If that side is right, the counting point lies near the end
    of each annotated cycle (phase 0.6–1); if it is the far side, mid-cycle
    (0.2–0.6) — then a clip ending half-way through one more movement is
    over-counted, and one starting half-way through one under-counted.
    """
    from device.components import SlidingWindow, from_iterable, run

    settings = dict(settings)
    window = int(settings.pop("window", 90))
    stride = int(settings.pop("stride", 15))
    if settings.pop("downsample", 1) != 1:
        print("eval_repcount: --phases does not support downsample", file=sys.stderr)
        return 1
    allph: list[float] = []
    late_seqs = 0
    signed = []
    for r in rows:
        poses = np.load(data / "poses" / f"{r['name']}.npy")
        counter = HumanBodyActionCounter(fps=fps, **settings)
        frames = [None if not np.isfinite(f[:, :2]).any() else f for f in poses]
        run((SlidingWindow(window, stride, emit_partial=True) | counter)(from_iterable(frames, rate=fps)))
        cycles = [tuple(int(v) for v in c.split("-")) for c in r["cycles"].split(";") if "-" in c]
        ph = np.array([next(((e - a) / (b - a) for a, b in cycles if a <= e <= b and b > a), np.nan)
                       for e in counter._tracker.events])
        ph = ph[np.isfinite(ph)]  # counted outside every annotated cycle: left out
        allph += ph.tolist()
        late = float(np.mean(ph >= 0.6)) if ph.size else float("nan")
        late_seqs += bool(ph.size and late >= 0.5)
        signed.append(counter.final_count - int(r["count"]))
        print(f"{r['name']:12s} {canonical(r['exercise']):15s} true {int(r['count']):3d} pred {counter.final_count:4g}"
              f"  counted in a cycle {ph.size:3d}, median phase {np.median(ph) if ph.size else float('nan'):.2f}")
    hist, _ = np.histogram(allph, bins=10, range=(0, 1))
    print("phase of the counting point in the annotated cycle (10 bins 0..1):", " ".join(str(int(h)) for h in hist))
    print(f"sequences counted mostly late in the cycle (≥ 0.6): {late_seqs}/{len(rows)}")
    sg = np.array(signed)
    print(f"signed error: {int((sg > 0).sum())} over, {int((sg < 0).sum())} under, {int((sg == 0).sum())} exact")
    return 0


def eval_videos(folder: Path, settings: dict) -> int:
    """End to end: every annotated video through the pose pipeline and the counter."""
    import asyncio

    from device.components import SlidingWindow
    from device.pose.counter import HumanBodyActionCounter
    from device.pose.extractor import HumanBodyPoseExtractor, PoseStream
    from device.pose.selection import PoseSelector
    from device.video import read_video

    with open(folder / "annotations.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    inside = exact = 0
    for r in rows:
        video = read_video(folder / r["file"], rotate=int(r.get("rotate_clockwise") or 0))
        counter = HumanBodyActionCounter(fps=video.fps, **settings)
        pipeline = (PoseStream(HumanBodyPoseExtractor(fps=video.fps), in_thread=True) | PoseSelector()
                    | SlidingWindow(90, 15, emit_partial=True) | counter)

        async def go() -> None:
            async for _ in pipeline(video):
                pass

        t0 = time.perf_counter()
        asyncio.run(go())
        pred = counter.final_count
        lo, hi, true = int(r["count_min"]), int(r["count_max"]), int(r["count"])
        inside += lo <= pred <= hi
        exact += pred == true
        mark = "ok" if lo <= pred <= hi else "OUT"
        print(f"{r['file']:22s} {r['exercise']:17s} count {true:2d} ({lo}–{hi})  counted {pred:4g}  {mark}"
              f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"{inside}/{len(rows)} within count_min..count_max, {exact}/{len(rows)} equal to count")
    return 0


def parse_value(text: str):
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
    ap.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "repcount-dev")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="counter setting")
    ap.add_argument("--split", choices=("all", "half-a", "half-b"), default="all")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--verbose", "-v", action="store_true", help="one line per sequence")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--cross-validate", action="store_true", help="held-out checks over a small settings grid")
    ap.add_argument("--phases", action="store_true",
                    help="diagnostic: where in the annotated cycles the repetitions are counted")
    ap.add_argument("--videos", nargs="?", type=Path, const=ROOT / ".." / "shared" / "data" / "videos",
                    help="end to end over annotated videos (default ../shared/data/videos)")
    args = ap.parse_args(argv)
    if args.videos is not None:
        if not (args.videos / "annotations.csv").exists():
            print(f"eval_repcount: no annotations.csv in {args.videos}", file=sys.stderr)
            return 1
        return eval_videos(args.videos, {k: parse_value(v) for k, _, v in (i.partition("=") for i in args.set)})
    if not (args.data / "annotations.csv").exists():
        print(f"eval_repcount: no annotations.csv in {args.data}", file=sys.stderr)
        return 1
    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = parse_value(value)
    rows = split_rows(load_rows(args.data), args.split)
    if args.cross_validate:
        return cross_validate(rows, args.data, args.fps, settings)
    if args.phases:
        return counting_phases(rows, args.data, args.fps, settings)
    results = []
    t0 = time.perf_counter()
    for r in rows:
        poses = np.load(args.data / "poses" / f"{r['name']}.npy")
        pred = count_repetitions(poses, args.fps, **settings)
        true = int(r["count"])
        results.append((r["name"], canonical(r["exercise"]), true, pred))
        if args.verbose:
            flag = "" if abs(pred - true) <= 1 else "  <-- off"
            print(f"{r['name']:12s} {canonical(r['exercise']):15s} true {true:3d}  pred {pred:6.2f}{flag}")
    elapsed = time.perf_counter() - t0
    summary = summarise(results)
    if args.json:
        print(json.dumps({"settings": settings, "split": args.split, "summary": summary}))
        return 0
    print(f"{'exercise':15s} {'n':>3s} {'MAE':>6s} {'OBO':>6s}")
    for ex in sorted(k for k in summary if k != "ALL") + ["ALL"]:
        s = summary[ex]
        print(f"{ex:15s} {s['n']:3d} {s['mae']:6.3f} {s['obo']:6.3f}")
    print(f"({len(rows)} sequences, split {args.split}, {elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
