#!/usr/bin/env python3
"""Edited shipped negatives: leave out the shipped clips that sound like the owner's labels (issue 18).

With 10 clips per label the shipped negatives, as a gated class (``_negatives``
above 0.9 is silent), keep never-taught sounds silent in 0.82 of clips but cost
4 points of recall (caught 0.967 -> 0.924, the issue asks 0.95); joined to
``background`` with all clips they cost accuracy (0.991 -> 0.978, the issue
asks 0.985). The claim test leaves out a whole *kind* that an owner label
sounds like; within a kept kind, some clips still sound like an owner label
(a hammering clip holding one blow is a hammer drop). Here those clips are
left out too, by Wilson's editing at the clip level: standardised over the
owner's windows (above the volume gate, as the claim test), a shipped clip's
window "sounds like the owner" when its nearest neighbour among the owner's
sound windows (``background`` left out) is nearer than its nearest among the
other shipped clips' windows; a clip whose share of such windows is at least
``e`` is left out before the balanced draw. Paired: the same owner draw and
the same generator state draw the negatives with and without the editing.

Same deals, splits and product path as ``sound_negative_class.py`` (the
issue's deal, every label split by recording, the product's ``Trainer``,
reject option 0.90, held-out clips through ``window_pipeline``): with all
clips the negatives are joined to ``background`` (share 0.23, as the
product), with 10 per label they are the gated class at 0.9.

    nice -n 10 python research/sound_negative_editing.py [--splits 5] [--first-seed 0] [--edits 0.3,0.5]
    nice -n 10 python research/sound_negative_editing.py --diagnose   # window level, 10 per label

Result (2026-12-08, seeds 0-400, docs/audio.md): almost nothing to edit. A shipped clip's
windows have their nearest neighbour among the other shipped clips (other recordings of the same
kind), not among the owner's: the share is 0 for 90 % of clips and at most 0.33-0.67 (at 0.1 and
0.3 alike: all clips 4-6 of ~140 left out, untaught silent 0.928 -> 0.911, caught 0.983 unchanged;
10 per label 0-4, 0.842 -> 0.850, caught 0.939 unchanged). The recall the gate costs is the other way round —
the owner's taught windows that lie in the negatives' region — and there a nearest-neighbour
score (distance to the owner's sound windows minus distance to the negatives', standardised)
separates held-out never-taught from taught sound windows no better than the model's own
``_negatives`` probability: AUC 0.939 against 0.962; at the product's gate (0.9: 3.3 % of taught
windows silenced) the probability silences 0.686 of never-taught windows, the neighbour score at
the same cost 0.667.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "research"))

import sound_negative_class as snc  # noqa: E402  (puts the repository and scripts/ on the path)
import eval_sound as es  # noqa: E402
import sound_negatives as sn  # noqa: E402

from device.learn.dataset import Clip, split_by_recording  # noqa: E402
from device.learn.negatives import _nearest  # noqa: E402
from device.learn.openset import BACKGROUND, NEGATIVES  # noqa: E402


def owner_like_shares(runner: es.Runner, picked: list[Clip], pool: list[Clip], min_level: float) -> np.ndarray:
    """Per pool clip, the share of its windows (above ``min_level``) nearer an owner sound window than any
    window of the other pool clips (standardised over the owner's sound windows)."""
    def loud(clips: list[Clip]) -> tuple[np.ndarray, np.ndarray]:
        keys = [runner.hashes[c.path] for c in clips]
        x, owner = runner.cache.read(keys)
        times, _ = runner.cache.window_info(keys)
        keep = times[:, 2] >= min_level
        return x[keep].astype(np.float64), owner[keep]

    ox, _ = loud([c for c in picked if c.label != BACKGROUND])
    px, pi = loud(pool)
    mu, sd = ox.mean(0), ox.std(0) + 1e-6
    ox, px = (ox - mu) / sd, (px - mu) / sd
    to_owner = _nearest(px, ox)
    shares = np.zeros(len(pool))
    for j in range(len(pool)):
        at = pi == j
        if at.any():
            shares[j] = float(np.mean(to_owner[at] < _nearest(px[at], px[~at])))
    return shares


def run(runner: es.Runner, clips: list[Clip], args: Any) -> dict[str, Any]:
    pools: dict[str, dict[str, es.Pool]] = {r: {} for r in args.regimes}
    level = runner.config.min_level_db
    for s in range(args.splits):
        seed = args.first_seed + 100 * s
        train, test = split_by_recording(clips, es.HELD_OUT, seed=1007 + seed)
        owner = [c for c in train if c.label not in sn.ISSUE_UNTAUGHT]
        pool = [c for c in train if c.label in sn.ISSUE_UNTAUGHT]
        windows = runner.windows(test)
        rng = np.random.default_rng(2000 + seed)
        for regime in args.regimes:
            for _ in range(1 if regime == "all" else args.draws):
                picked, _unused = sn.owner_split(owner, regime, args.few, rng, False)
                shares = owner_like_shares(runner, picked, pool, level)
                order = rng.permutation(len(pool))  # one order: each variant takes the first clips it kept
                per_kind = int(np.median([sum(c.label == label for c in picked) for label in {c.label for c in picked}]))
                variants = {"set": np.ones(len(pool), bool)}
                variants.update({f"edited@{e:g}": shares < e for e in args.edits})
                for name, kept in variants.items():
                    extra: list[Clip] = []
                    for kind in sn.ISSUE_UNTAUGHT:  # es.with_shipped's balance: per kind the median label's count
                        mine = [pool[i] for i in order if kept[i] and pool[i].label == kind][:per_kind]
                        extra += [dataclasses.replace(c, label=BACKGROUND if regime == "all" else NEGATIVES) for c in mine]
                    merged = picked + extra  # all clips: joined (share 0.23); 10 per label: the gated class
                    model = runner.train(merged, test)
                    pools[regime].setdefault(name, es.Pool()).add("q0.90", *runner.judge(model, test, windows, "q0.90"))
                left = {k: int(np.sum([(f >= e) and c.label == k for c, f in zip(pool, shares)]))
                        for e in args.edits[:1] for k in sn.ISSUE_UNTAUGHT}
                q = {k: np.round(np.quantile(shares[[c.label == k for c in pool]], [0.5, 0.9, 1.0]), 2).tolist() for k in sn.ISSUE_UNTAUGHT}
                print(f"    seed {seed} {regime}: {len(picked)} owner clips; left out at {args.edits[0]:g}: {left}; shares q50/q90/max {q}", flush=True)
    return {regime: {v: p.result()["q0.90"] for v, p in by_variant.items()} for regime, by_variant in pools.items()}


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties half)."""
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([pos, neg]))
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def diagnose(runner: es.Runner, clips: list[Clip], args: Any) -> dict[str, Any]:
    """Window level, 10 per label, the gated class: how well the model's ``_negatives`` probability and a
    nearest-neighbour score (distance to the owner's sound windows minus distance to the negatives' windows,
    standardised over the owner's) tell held-out never-taught windows from held-out taught sound windows."""
    level = runner.config.min_level_db
    rows: dict[str, list[np.ndarray]] = {"p_untaught": [], "p_taught": [], "nn_untaught": [], "nn_taught": []}

    def loud(cs: list[Clip]) -> np.ndarray:
        keys = [runner.hashes[c.path] for c in cs]
        x, _ = runner.cache.read(keys)
        times, _ = runner.cache.window_info(keys)
        return x[times[:, 2] >= level].astype(np.float64)

    for s in range(args.splits):
        seed = args.first_seed + 100 * s
        train, test = split_by_recording(clips, es.HELD_OUT, seed=1007 + seed)
        owner = [c for c in train if c.label not in sn.ISSUE_UNTAUGHT]
        pool = [c for c in train if c.label in sn.ISSUE_UNTAUGHT]
        rng = np.random.default_rng(2000 + seed)
        for _ in range(args.draws):
            picked, _unused = sn.owner_split(owner, "10", args.few, rng, False)
            pool_paths = {c.path for c in pool}
            merged = [dataclasses.replace(c, label=NEGATIVES) if c.path in pool_paths else c
                      for c in sn.balanced(picked, pool, rng, args.balance)]
            model = runner.train(merged, test)
            neg = model.labels.index(NEGATIVES)
            ox = loud([c for c in picked if c.label != BACKGROUND])
            nx = loud([c for c in merged if c.label == NEGATIVES])
            mu, sd = ox.mean(0), ox.std(0) + 1e-6
            for part, cs in (("untaught", [c for c in test if c.label in sn.ISSUE_UNTAUGHT]),
                             ("taught", [c for c in test if c.label not in sn.ISSUE_UNTAUGHT and c.label != BACKGROUND])):
                x = loud(cs)
                rows[f"p_{part}"].append(model.predict_proba(x)[:, neg])
                z = (x - mu) / sd
                rows[f"nn_{part}"].append(np.sqrt(_nearest(z, (ox - mu) / sd)) - np.sqrt(_nearest(z, (nx - mu) / sd)))
            print(f"    seed {seed}: {len(rows['p_taught'][-1])} taught / {len(rows['p_untaught'][-1])} untaught windows", flush=True)
    r = {k: np.concatenate(v) for k, v in rows.items()}
    out = {"auc_probability": _auc(r["p_untaught"], r["p_taught"]), "auc_nearest": _auc(r["nn_untaught"], r["nn_taught"])}
    gated = float(np.mean(r["p_taught"] > 0.9))  # the product's gate: taught windows it silences
    cut = float(np.quantile(r["nn_taught"], 1.0 - gated))
    out.update({"taught_gated_at_0.9": gated, "untaught_gated_at_0.9": float(np.mean(r["p_untaught"] > 0.9)),
                "untaught_gated_nearest_same_taught_share": float(np.mean(r["nn_untaught"] > cut))})
    print(out)
    return out


def main() -> int:
    parser = snc.issue_parser(__doc__)
    parser.add_argument("--regimes", default="all,10")
    parser.add_argument("--edits", default="0.3,0.5")
    parser.add_argument("--diagnose", action="store_true", help="window-level: the gate's probability against a nearest-neighbour score")
    args = parser.parse_args()
    args.regimes = args.regimes.split(",")
    args.edits = [float(e) for e in args.edits.split(",")]
    started = time.perf_counter()
    with snc.issue_runner(args) as (runner, clips):
        if args.diagnose:
            diagnose(runner, clips, args)
            return 0
        results = {"issue/clip": run(runner, clips, args)}
    return snc.finish(args, results, started)


if __name__ == "__main__":
    raise SystemExit(main())
