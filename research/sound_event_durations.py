#!/usr/bin/env python3
"""Do never-taught sounds make longer event runs than the taught label they fire? (issue 18)

The idea tested: hammering is a sustained series of blows, a hammer drop one
impact, so a run of ``hammer_drop`` windows that lasts much longer than the
label's taught runs could be treated as "not a taught sound". Before building
it, this measures the run durations the product produces, through the
product path of ``scripts/eval_sound.py`` (its ``Runner``: the default
``Trainer`` with the reject option, every held-out clip's cached windows
replayed through ``window_pipeline`` with the default ``SoundSettings``, each
clip its own segment; open family, clip grouping, regime ``all``). The
cool-down is set to 0 here so every run of a label is seen as an event
(an event's span is its run's span).

It prints, per fired label: the durations of runs in held-out clips of that
label ("own clips", taught) and in clips of never-taught kinds, then what an
**oracle** limit would do — per deal and label, the q-quantile of the own-clip
durations *of the very clips judged* (an upper bound on any limit fitted on
training folds): clips of never-taught kinds left silent, taught clips still
firing their own event.

    nice -n 10 python research/sound_event_durations.py [--deals all | --deals chair_drag+hammering]

Result (2026-12-07, docs/audio.md "An event-duration check: measured, not
built"): no separation — the runs measure the clip and the window grid, not
the sound.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import eval_sound as es  # noqa: E402

from device.audio.augmentation import AudioAugmenter  # noqa: E402
from device.audio.featureprint import AudioFeaturePrint  # noqa: E402
from device.audio.pipeline import window_pipeline  # noqa: E402
from device.audio.settings import SoundSettings  # noqa: E402
from device.components import TemporalFeature, run  # noqa: E402
from device.learn.cache import FeatureCache  # noqa: E402
from device.learn.dataset import load_dataset, split_by_recording  # noqa: E402
from device.learn.training import AUTO_AUGMENT_COPIES, TrainingConfig  # noqa: E402


def measure(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Events (reject option on, cool-down 0) and the judged clips, over the chosen deals."""
    fp = AudioFeaturePrint()
    data = load_dataset(args.data.resolve(), fp.suffixes)
    config = TrainingConfig(min_level_db=SoundSettings().min_volume_db)
    events: list[dict[str, Any]] = []
    judged: list[dict[str, Any]] = []
    with FeatureCache(args.cache, fp) as cache, tempfile.TemporaryDirectory() as work:
        _, hashes = cache.update(data.clips)
        clips = [c for c in data.clips if c.path in hashes]
        _, copies = cache.augment([(c, hashes[c.path]) for c in clips], AudioAugmenter(), AUTO_AUGMENT_COPIES)
        runner = es.Runner(cache, hashes, {c.path: c for c in clips}, config, copies, Path(work), [])
        grouped = es.regroup(clips, "clip")
        every = es.deals(sorted({c.label for c in clips}), None)
        chosen = every if args.deals == "all" else [tuple(sorted(args.deals.split("+")))]
        for untaught in chosen:
            seed = args.first_seed + every.index(untaught)  # the deal's seed in eval_sound.py
            deal = "+".join(untaught)
            taught = [c for c in grouped if c.label not in untaught]
            train, test = split_by_recording(taught, es.HELD_OUT, seed=1000 + seed)
            test = test + [c for c in grouped if c.label in untaught]
            windows = runner.windows(test)
            model = runner.train(train, test)
            judged += [dict(deal=deal, clip=str(c.path), kind=c.label, taught=c.label not in untaught) for c in test]

            async def stream() -> Any:
                for i, ws in enumerate(windows):
                    for w in ws:
                        yield TemporalFeature(w, w.end, i)

            for item in run(window_pipeline(SoundSettings(cooldown=0.0), model)(stream())):
                c = test[int(item.segment)]
                events.append(dict(deal=deal, clip=str(c.path), kind=c.label, taught=c.label not in untaught,
                                   label=item.value.label, start=item.value.start, end=item.value.end,
                                   dur=item.value.duration))
            print(f"  never taught {deal}: {len(train)} training clips, {len(test)} held out", flush=True)
    return events, judged


def report(events: list[dict[str, Any]], judged: list[dict[str, Any]]) -> None:
    groups: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for e in events:
        if e["taught"] and e["kind"] == e["label"]:
            groups[(e["label"], "own clips")].append(e["dur"])
        elif not e["taught"]:
            groups[(e["label"], f"never-taught {e['kind']}")].append(e["dur"])
    print(f"\n{'fired label':15s} {'in clips of':26s} {'runs':>5s}  q10 / q50 / q90 / max (s)   runs by duration (s, to 0.5)")
    for (label, where), v in sorted(groups.items()):
        d = np.array(v)
        hist = " ".join(f"{a:.1f}:{b}" for a, b in zip(*np.unique(np.round(d * 2) / 2, return_counts=True)))
        print(f"{label:15s} {where:26s} {len(d):5d}  " + " / ".join(f"{x:.2f}" for x in np.quantile(d, [.1, .5, .9, 1]))
              + f"   {hist}")
    own: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for e in events:
        if e["taught"] and e["kind"] == e["label"]:
            own[(e["deal"], e["label"])].append(e["dur"])
    by_clip: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for e in events:
        by_clip[(e["deal"], e["clip"])].append(e)
    print("\noracle limit (per deal and label: the q-quantile of own-clip runs of the judged clips themselves)")
    for q in (None, 0.90, 0.95, 1.0):
        def kept(e: dict[str, Any]) -> bool:
            ref = own.get((e["deal"], e["label"]))
            return q is None or not ref or e["dur"] <= float(np.quantile(ref, q)) + 1e-6

        def silent(c: dict[str, Any]) -> bool:
            return not any(kept(e) for e in by_clip[(c["deal"], c["clip"])])

        untaught = [silent(c) for c in judged if not c["taught"]]
        hammering = [silent(c) for c in judged if not c["taught"] and c["kind"] == "hammering"]
        background = [silent(c) for c in judged if c["kind"] == es.BACKGROUND]
        caught = [any(kept(e) and e["label"] == c["kind"] for e in by_clip[(c["deal"], c["clip"])])
                  for c in judged if c["taught"] and c["kind"] != es.BACKGROUND]
        print(f"  {'no limit' if q is None else f'q = {q:.2f}':9s}: untaught silent {np.mean(untaught):.3f} ({len(untaught)} clips), "
              f"hammering silent {np.mean(hammering) if hammering else float('nan'):.3f}, "
              f"background silent {np.mean(background):.3f}, caught {np.mean(caught):.3f} ({len(caught)} clips)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "room-sounds-dev")
    parser.add_argument("--deals", default="all", help="all, or the never-taught pair as a+b (e.g. chair_drag+hammering)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cadence-eval-sound",
                        help="feature cache folder (eval_sound.py's)")
    args = parser.parse_args()
    report(*measure(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
