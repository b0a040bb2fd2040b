#!/usr/bin/env python3
"""Held-out sound figures on room-sounds-dev, trained and judged the way the device does.

Everything goes through the library the product uses: ``load_dataset`` reads
``DATA/<label>/*``, the default ``AudioFeaturePrint`` fills a ``FeatureCache``
once (kept between runs in --cache, with 8 augmented copies per clip), a
``Trainer`` with the default ``TrainingConfig`` (``auto``: logistic regression
and 8 augmented copies per training clip while the median label has fewer
than 100 clips; windows below the sound pipeline's volume gate left out; its
own 20 % validation split by recording, then the refit on all training clips;
then the reject option) is fitted on the training clips, and every held-out
clip's cached windows (start, end, level and values exactly as the live
stream computed them) are replayed through ``window_pipeline`` — the sound
pipeline after its feature print: volume gate, the model with its reject
option, the ``SoundEventDetector`` with the default ``SoundSettings`` — each
clip its own segment, as ``cadence evaluate sound`` runs a file. The figures
are ``cadence evaluate sound``'s (``EventTally``, ``clip_answer``), pooled
over clip evaluations.

Families (held out by recording **and** by label):

* ``closed`` — all labels taught; per split ~20 % of each label's recordings
  held out (``split_by_recording``). Accuracy, taught sounds with their event,
  background silent / events per hour.
* ``open`` — the issue's setting: ``background`` + 4 labels taught, 2 never
  taught (every one of the 15 pairs of the 6 sound labels, or --deals of
  them). The taught labels' recordings are split as in ``closed``; every clip
  of the two untaught labels is a "should stay silent" case.

* ``shipped`` — would a shipped "other sounds" set help? ``background`` + 2
  owner labels taught, 2 sound labels shipped as extra ``background`` clips
  (balanced: per kind as many as the owner's median label has), 2 never
  taught (--deals of the 90 deals); each model is trained without (``off``,
  ``q…``) and with the set (``ship+…``). ``--collide``: the set also holds
  the owner's first label's kind (its training clips the owner did not use),
  as a broad shipped set would for a common owner label.

Regimes: ``all`` (every training clip of the split), ``10`` (10 clips per
label drawn from them, --draws draws), ``10+bg`` (10 per sound label, every
training clip of ``background``: the owner's room noise is the cheapest data).

Variants, each from the same trained model: ``off`` (reject option off: what
the product did before) and ``q0.90``… (the reject option with its
thresholds at that held-out quantile, --quantiles).

Groupings of clips into recordings for the held-out split: ``clip`` (every
SNU-B36-50 clip its own recording: the protocol of the dev README's reference
points) or ``recording`` (``recording_id``: whole source positions held out,
never heard in training). The trainer itself always groups by
``recording_id``, as ``cadence train sound`` does.

    nice -n 10 .venv/bin/python scripts/eval_sound.py [--family closed,open] [--grouping clip]
        [--splits 5] [--draws 2] [--regimes all,10] [--quantiles 0.9,0.95,0.98] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.audio.augmentation import AudioAugmenter  # noqa: E402
from device.audio.featureprint import AudioFeaturePrint  # noqa: E402
from device.audio.pipeline import ClipSummary, window_pipeline  # noqa: E402
from device.audio.settings import SoundSettings  # noqa: E402
from device.cli.sound import EventTally, clip_answer  # noqa: E402
from device.components import CadenceError, ClassificationMetrics, QuantizedFeature, TemporalFeature, run  # noqa: E402
from device.learn.cache import FeatureCache  # noqa: E402
from device.learn.dataset import Clip, load_dataset, split_by_recording  # noqa: E402
from device.learn.openset import BACKGROUND  # noqa: E402
from device.learn.training import (  # noqa: E402
    AUTO_AUGMENT_COPIES,
    CLASSIFIERS,
    Split,
    Trainer,
    TrainingConfig,
    resolve_duplicates,
)

HELD_OUT = 0.2
FIGURES = ("untaught_silent", "background_silent", "background_events_per_hour", "taught_with_their_event",
           "taught_with_another_event", "accuracy")
TARGETS = {"untaught_silent": 0.80, "background_silent": 0.90, "taught_with_their_event": 0.95}


def regroup(clips: list[Clip], grouping: str) -> list[Clip]:
    """``clip`` grouping: each SNU-B36-50 clip is its own recording."""
    if grouping == "recording":
        return clips
    return [dataclasses.replace(c, recording=c.path.stem) if c.path.stem.startswith("snu_") else c for c in clips]


def draw_per_label(clips: list[Clip], n: int, rng: np.random.Generator, *, all_background: bool = False) -> list[Clip]:
    picked: list[Clip] = []
    for label in sorted({c.label for c in clips}):
        own = [c for c in clips if c.label == label]
        if all_background and label == BACKGROUND:
            picked += own
            continue
        picked += [own[i] for i in sorted(rng.choice(len(own), size=min(n, len(own)), replace=False))]
    return picked


class Runner:
    """Trains on clips of a filled cache and replays held-out clips through the product's window pipeline."""

    def __init__(self, cache: FeatureCache, hashes: dict[Path, str], original: dict[Path, Clip],
                 config: TrainingConfig, copies: dict[str, list[str]], work: Path, quantiles: list[float]) -> None:
        self.cache, self.hashes, self.original, self.config = cache, hashes, original, config
        self.copies, self.work, self.quantiles = copies, work, quantiles
        self.scales = cache.scales
        self.train_seconds: list[float] = []
        self.trainer_grouping = "recording"

    def train(self, train: list[Clip], test: list[Clip]) -> Any:
        """A model as ``cadence train sound`` makes it (the trainer groups clips by ``recording_id``)."""
        held_out = {self.hashes[c.path] for c in test}
        # the product's recordings (recording_id), keeping a label the evaluation gave (a shipped clip is background)
        train = [dataclasses.replace(self.original[c.path], label=c.label) for c in train if self.hashes[c.path] not in held_out]
        if self.trainer_grouping != "recording":  # an experiment: the product groups by recording_id
            train = regroup(train, self.trainer_grouping)
        train, _ = resolve_duplicates(train, self.hashes)
        inner_train, inner_val = split_by_recording(train, self.config.validation_split, self.config.seed)
        started = time.perf_counter()
        trainer = Trainer(self.cache.featurizer, dataclasses.replace(self.config), state_dir=self.work)
        trainer.exclude_negatives = held_out  # the shipped negatives never hold a judged clip
        model = trainer.fit_cached(self.cache, Split.of(inner_train, inner_val, self.hashes), copies=self.copies).model
        self.train_seconds.append(time.perf_counter() - started)
        return model

    def windows(self, clips: list[Clip]) -> list[list[QuantizedFeature]]:
        """Each clip's cached windows as the live stream made them (values, start, end, level)."""
        keys = [self.hashes[c.path] for c in clips]
        x, owner = self.cache.read(keys)
        times, _ = self.cache.window_info(keys)
        values = np.rint(x / self.scales).astype(np.int8)
        out: list[list[QuantizedFeature]] = [[] for _ in clips]
        for v, (start, end, level), i in zip(values, times, owner):
            out[int(i)].append(QuantizedFeature(v, self.scales, float(start), float(end), float(level)))
        return out

    def judge(self, model: Any, clips: list[Clip], windows: list[list[QuantizedFeature]], variant: str) -> tuple[EventTally, ClassificationMetrics]:
        """Replay every clip (its own segment) through the window pipeline; tally events and clip labels."""
        settings = SoundSettings(reject=variant != "off")
        if variant != "off" and model.reject_option is not None:
            model = _with_option(model, model.reject_option.with_quantile(float(variant[1:])))
        summaries = [ClipSummary() for _ in clips]

        async def stream() -> Any:
            for i, ws in enumerate(windows):
                for w in ws:
                    yield TemporalFeature(w, w.end, i)

        pipeline = window_pipeline(settings, model, on_window=lambda item: summaries[int(item.segment)].add(item))
        events: list[list[str]] = [[] for _ in clips]
        for item in run(pipeline(stream())):
            events[int(item.segment)].append(item.value.label)
        tally = EventTally(model.taught_labels)
        metrics = ClassificationMetrics(model.output_labels(settings.reject))
        for clip, ws, evs, summary in zip(clips, windows, events, summaries):
            tally.add(clip.label, evs, max((w.end for w in ws), default=0.0))
            if clip.label in model.taught_labels:
                metrics.add(clip.label, clip_answer(clip.label, self.clip_label(summary.result().label, evs)))
        return tally, metrics

    @staticmethod
    def clip_label(vote: str | None, events: list[str]) -> str | None:
        """A clip's label from its windows' vote and its events: the vote, as the product labels a
        clip (``research/sound_clip_rule.py`` tries others)."""
        return vote

    def variants(self) -> list[str]:
        return ["off"] + [f"q{q:.2f}" for q in self.quantiles]


def _with_option(model: Any, option: Any) -> Any:
    """A shallow copy of ``model`` carrying another reject option (the trained classifier is shared)."""
    other = object.__new__(type(model))
    other.__dict__.update(model.__dict__)
    other.reject_option = option
    return other


class Pool:
    """Clip evaluations pooled over deals and draws, per variant (taught and never-taught kept apart)."""

    def __init__(self) -> None:
        self.tally: dict[str, EventTally] = {}
        self.metrics: dict[str, ClassificationMetrics] = {}
        self.runs: dict[str, list[dict[str, Any]]] = {}

    def add(self, variant: str, tally: EventTally, metrics: ClassificationMetrics) -> None:
        pooled = self.tally.setdefault(variant, EventTally([]))
        for label, stats in tally.labels.items():
            key = label if stats["taught"] else f"{label} (never taught)"
            if stats["taught"]:
                pooled.taught.add(key)
            into = pooled.labels.setdefault(key, {**{k: 0 for k in stats if k not in ("taught", "event_labels")},
                                                  "taught": stats["taught"], "event_labels": {}})
            for k, v in stats.items():
                if k == "event_labels":
                    for e, n in v.items():
                        into["event_labels"][e] = into["event_labels"].get(e, 0) + n
                elif k != "taught":
                    into[k] += v
        self.metrics[variant] = metrics if variant not in self.metrics else self.metrics[variant] + metrics
        self.runs.setdefault(variant, []).append(_figures(tally.summary(), metrics))

    def result(self) -> dict[str, Any]:
        out = {}
        for variant, tally in self.tally.items():
            summary = tally.summary()
            runs = self.runs[variant]
            out[variant] = {
                **_figures(summary, self.metrics[variant]),
                "range": {f: [min(r[f] for r in runs if r[f] is not None), max(r[f] for r in runs if r[f] is not None)]
                          for f in FIGURES if any(r[f] is not None for r in runs)},
                "runs": len(runs),
                "clips": {"taught": self.metrics[variant].count,
                          "untaught": sum(v["clips"] for v in tally.labels.values() if not v["taught"]),
                          "background": tally.labels.get(BACKGROUND, {}).get("clips", 0)},
                "per_label": summary["per_label"],
                "per_class": self.metrics[variant].to_dict().get("per_class"),
            }
        return out


def _figures(summary: dict[str, Any], metrics: ClassificationMetrics) -> dict[str, Any]:
    return {f: summary.get(f) for f in FIGURES if f != "accuracy"} | {"accuracy": metrics.accuracy if metrics.count else None}


def deals(labels: list[str], count: int | None) -> list[tuple[str, ...]]:
    sounds = [label for label in labels if label != BACKGROUND]
    pairs = list(itertools.combinations(sounds, 2))
    return pairs if count is None else pairs[:count]


def shipped_deals(labels: list[str], count: int | None) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(never taught, shipped) pairs of sound labels; the other two are the owner's. Spread over all 90."""
    sounds = [label for label in labels if label != BACKGROUND]
    out = []
    for untaught in itertools.combinations(sounds, 2):
        rest = [s for s in sounds if s not in untaught]
        out += [(untaught, shipped) for shipped in itertools.combinations(rest, 2)]
    step = max(1, len(out) // count) if count else 1
    return out[::step][:count] if count else out


def with_shipped(picked: list[Clip], shipped: list[Clip], rng: np.random.Generator) -> list[Clip]:
    """The owner's clips plus a shipped "other sounds" set as ``background``, balanced: per shipped
    kind as many clips as the owner's median label has (more drown a few-shot owner's labels)."""
    counts = [sum(c.label == label for c in picked) for label in {c.label for c in picked}]
    per_kind = int(np.median(counts))
    extra: list[Clip] = []
    for kind in sorted({c.label for c in shipped}):
        own = [c for c in shipped if c.label == kind]
        take = sorted(rng.choice(len(own), size=min(per_kind, len(own)), replace=False))
        extra += [dataclasses.replace(own[i], label=BACKGROUND) for i in take]
    return picked + extra


def run_family(runner: Runner, clips: list[Clip], family: str, grouping: str, args: argparse.Namespace) -> dict[str, Any]:
    """Pooled figures per regime and variant for one family and grouping."""
    grouped = regroup(clips, grouping)
    labels = sorted({c.label for c in clips})
    if family == "open":
        settings = [(untaught, ()) for untaught in deals(labels, args.deals)]
    elif family == "shipped":
        settings = shipped_deals(labels, args.deals)
    else:
        settings = [((), ())] * args.splits
    pools: dict[str, Pool] = {r: Pool() for r in args.regimes}
    for n, (untaught, shipped_kinds) in enumerate(settings):
        seed = args.first_seed + n
        taught = [c for c in grouped if c.label not in untaught and c.label not in shipped_kinds]
        train, test = split_by_recording(taught, HELD_OUT, seed=1000 + seed)
        test = test + [c for c in grouped if c.label in untaught]
        shipped = [c for c in grouped if c.label in shipped_kinds]
        windows = runner.windows(test)
        rng = np.random.default_rng(2000 + seed)
        for regime in args.regimes:
            draws = 1 if regime == "all" else args.draws
            for _ in range(draws):
                picked = train if regime == "all" else draw_per_label(train, args.few, rng, all_background=regime == "10+bg")
                model = runner.train(picked, test)
                for variant in runner.variants():
                    pools[regime].add(variant, *runner.judge(model, test, windows, variant))
                if not shipped:
                    continue
                owner = sorted({c.label for c in picked} - {BACKGROUND})[0]
                extra = shipped + ([c for c in train if c.label == owner and c not in picked] if args.collide else [])
                if args.collide:  # the set also holds the owner's own kind: their clips the owner did not use
                    extra = [dataclasses.replace(c, label=f"shipped {c.label}") if c.label == owner else c for c in extra]
                model = runner.train(with_shipped(picked, extra, rng), test)
                for variant in runner.variants():
                    pools[regime].add(f"ship+{variant}", *runner.judge(model, test, windows, variant))
        what = f"never taught {'+'.join(untaught)}" if untaught else "all labels taught"
        if shipped_kinds:
            what += f", shipped {'+'.join(shipped_kinds)}" + (" + the owner's first label" if args.collide else "")
        print(f"  {family}/{grouping} {n + 1}/{len(settings)} ({what}): {len(train)} training clips, {len(test)} held out; "
              f"training {np.mean(runner.train_seconds[-3:]):.0f} s per model", flush=True)
    return {regime: pool.result() for regime, pool in pools.items()}


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'family/grouping':18s} {'regime':6s} {'variant':7s} {'untaught':>9s} {'bg silent':>9s} {'bg ev/h':>8s} "
          f"{'caught':>7s} {'wrong':>6s} {'accuracy':>8s}   clips (taught/untaught/bg), runs")
    for name, regimes in results.items():
        for regime, variants in regimes.items():
            for variant, r in variants.items():
                def f(key: str, fmt: str = "{:.3f}") -> str:
                    return "-" if r.get(key) is None else fmt.format(r[key])
                print(f"{name:18s} {regime:6s} {variant:7s} {f('untaught_silent'):>9s} {f('background_silent'):>9s} "
                      f"{f('background_events_per_hour', '{:.0f}'):>8s} {f('taught_with_their_event'):>7s} "
                      f"{f('taught_with_another_event'):>6s} {f('accuracy'):>8s}   "
                      f"{r['clips']['taught']}/{r['clips']['untaught']}/{r['clips']['background']}, {r['runs']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "room-sounds-dev")
    parser.add_argument("--family", default="closed,open", help="closed, open, shipped (comma-separated)")
    parser.add_argument("--grouping", default="clip", help="clip, recording or both (comma-separated)")
    parser.add_argument("--splits", type=int, default=5, help="closed family: random held-out splits by recording")
    parser.add_argument("--deals", type=int, default=None,
                        help="open: the first N of the 15 untaught pairs; shipped: N of the 90 (untaught, shipped) deals")
    parser.add_argument("--collide", action="store_true",
                        help="shipped family: the shipped set also holds the owner's first label's kind (its unused clips)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first split (others: other splits)")
    parser.add_argument("--regimes", default="all,10", help="all, 10, 10+bg (comma-separated)")
    parser.add_argument("--few", type=int, default=10, help="clips per label in the few-shot regimes")
    parser.add_argument("--draws", type=int, default=2, help="few-shot draws per split or deal")
    parser.add_argument("--quantiles", default="0.90,0.95,0.98", help="reject option quantiles to judge (no refit)")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default=TrainingConfig.classifier)
    parser.add_argument("--augment", type=int, default=None, metavar="N",
                        help="augmented copies per training clip (default: as cadence train sound, auto)")
    parser.add_argument("--l2-penalty", type=float, default=TrainingConfig.l2_penalty, help="logistic regression's L2 penalty")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cadence-eval-sound",
                        help="feature cache folder, kept between runs")
    parser.add_argument("--jobs", type=int, default=1, help="feature extraction processes")
    parser.add_argument("--trainer-grouping", choices=("recording", "clip"), default="recording",
                        help="recordings as the trainer sees them (its validation split, the reject option's folds); "
                        "recording = recording_id, as cadence train sound")
    parser.add_argument("--no-shipped-negatives", action="store_true",
                        help="train without the shipped negatives (models/sound-negatives.npz), as before issue 18's set")
    parser.add_argument("--json", type=Path, default=None, help="write every figure (pooled, ranges, per label) here")
    args = parser.parse_args()
    args.regimes = [r for r in args.regimes.split(",") if r]
    if set(args.regimes) - {"all", "10", "10+bg"}:
        parser.error("--regimes: all, 10, 10+bg")
    quantiles = [float(q) for q in args.quantiles.split(",") if q]

    fp = AudioFeaturePrint()  # the default, as `cadence train sound` uses
    data = load_dataset(args.data.resolve(), fp.suffixes)
    for problem in data.problems:
        print(f"warning: {problem}", file=sys.stderr)
    gate = SoundSettings().min_volume_db  # what `cadence train sound` leaves out
    config = TrainingConfig(classifier=args.classifier, augment_copies=args.augment, min_level_db=gate, l2_penalty=args.l2_penalty,
                            shipped_negatives=False if args.no_shipped_negatives else None)  # None: as the product decides
    config.validate()
    started = time.perf_counter()
    with FeatureCache(args.cache, fp) as cache, tempfile.TemporaryDirectory(prefix="cadence-eval-sound-") as work:
        report, hashes = cache.update(data.clips, jobs=args.jobs)
        for problem in report.skipped:
            print(f"warning: {problem}", file=sys.stderr)
        clips = [c for c in data.clips if c.path in hashes]
        most = max(AUTO_AUGMENT_COPIES, args.augment or 0)
        copy_report, copies = cache.augment([(c, hashes[c.path]) for c in clips], AudioAugmenter(), most, jobs=args.jobs)
        print(f"{args.data.resolve()}: {len(clips)} clips, {len(data.labels)} labels; feature print {cache.fingerprint[:12]}; "
              f"{report.extracted} clips and {copy_report.extracted} copies extracted, the rest cached in {args.cache}; "
              f"gate {gate:g} dBFS; reject option judged at quantiles {quantiles}", flush=True)
        runner = Runner(cache, hashes, {c.path: c for c in clips}, config, copies, Path(work), quantiles)
        runner.trainer_grouping = args.trainer_grouping
        results = {}
        for family in args.family.split(","):
            for grouping in ("clip", "recording") if args.grouping == "both" else args.grouping.split(","):
                results[f"{family}/{grouping}"] = run_family(runner, clips, family, grouping, args)
    print_table(results)
    print(f"\ntargets (issue 18): {TARGETS}; accuracy ≥ 0.985 with all clips, ≥ 0.90 with 10 per label")
    print(f"({time.perf_counter() - started:.0f} s; {len(runner.train_seconds)} models, "
          f"{np.median(runner.train_seconds):.1f} s median training)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))
        print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except CadenceError as exc:
        print(f"eval_sound: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
