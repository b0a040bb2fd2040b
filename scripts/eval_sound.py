#!/usr/bin/env python3
"""Held-out sound accuracy on room-sounds-dev, trained the way the device trains.

Everything goes through the library the product uses: ``load_dataset`` reads
``DATA/<label>/*``, the default ``AudioFeaturePrint`` fills a
``FeatureCache`` once (kept between runs in --cache), and for each of
``--splits`` random splits **by recording** (``split_by_recording``: per label,
about 20 % of the recordings held out, never a take of a training recording)
a ``Trainer`` with the default ``TrainingConfig`` (``auto``: logistic
regression and 8 augmented copies per training clip while the median label
has fewer than 100 clips, else the network with early stopping on its own
20 % split by recording, then the refit on all training clips) is fitted on
the training clips and the held-out clips are classified. A clip's examples
are the windows of the feature print's stream over the file (what the device
classifies live); a held-out clip's label is the highest mean window
probability over its windows (``device.learn.ClipVote``, the rule of
``classify_clip``). Clip accuracy is the headline; window accuracy is printed
beside it. A training clip whose audio is identical to a held-out clip is
never used (that would be training on the test clip); identical audio under
two labels in the training clips is kept and warned about, as ``cadence
train sound`` does (``resolve_duplicates``). Augmented copies of every clip
are extracted once into the cache.

Two regimes (the issue's two targets):

* **all** — every training clip of the split ("a few hundred": ~350 here);
  target ≥ 0.97;
* **10/class** — 10 clips per label drawn from the training clips
  (--few-draws draws per split); target ≥ 0.90.

Two groupings of clips into recordings:

* ``recording`` — the device's own guess (``recording_id``): SNU-B36-50
  clips ``snu_PPPNNN`` of one source position are one recording, so held-out
  positions were never heard in training (strict);
* ``clip`` — every SNU clip is its own recording (they are separate events;
  the protocol of the dev README's reference points and the headline figures
  in docs/audio.md); ESC-50 ids and crying-baby sources stay grouped.

Printed: accuracy pooled over all held-out predictions (and the range over
splits) per grouping and regime, then the per-class table and confusion
matrix of the "all" regime.

    .venv/bin/python scripts/eval_sound.py [--data DIR] [--splits 10] [--few-draws 3]
        [--grouping both|clip|recording] [--classifier auto|network|logistic] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.audio.featureprint import AudioFeaturePrint  # noqa: E402
from device.audio.augmentation import AudioAugmenter  # noqa: E402
from device.components import CadenceError, ClassificationMetrics  # noqa: E402
from device.learn import ClipVote  # noqa: E402
from device.learn.cache import FeatureCache  # noqa: E402
from device.learn.dataset import Clip, load_dataset, split_by_recording  # noqa: E402
from device.learn.training import (  # noqa: E402
    AUTO_AUGMENT_COPIES,
    CLASSIFIERS,
    Split,
    Trainer,
    TrainingConfig,
    resolve_duplicates,
)

HELD_OUT = 0.2
TARGETS = {"all": 0.97, "10/class": 0.90}


def regroup(clips: list[Clip], grouping: str) -> list[Clip]:
    """``clip`` grouping: each SNU-B36-50 clip is its own recording."""
    if grouping == "recording":
        return clips
    return [dataclasses.replace(c, recording=c.path.stem) if c.path.stem.startswith("snu_") else c for c in clips]


def draw_per_label(clips: list[Clip], n: int, rng: np.random.Generator) -> list[Clip]:
    picked: list[Clip] = []
    for label in sorted({c.label for c in clips}):
        own = [c for c in clips if c.label == label]
        picked += [own[i] for i in sorted(rng.choice(len(own), size=min(n, len(own)), replace=False))]
    return picked


class Evaluation:
    """Fits on some clips of a filled cache and scores held-out clips."""

    def __init__(
        self, cache: FeatureCache, hashes: dict[Path, str], config: TrainingConfig, work: Path,
        copies: dict[str, list[str]],
    ) -> None:
        self.cache, self.hashes, self.config, self.work, self.copies = cache, hashes, config, work, copies

    def score(self, train: list[Clip], test: list[Clip]) -> tuple[ClassificationMetrics, ClassificationMetrics]:
        """(clip metrics, window metrics) of a model fitted on ``train``, on ``test``."""
        held_out = {self.hashes[c.path] for c in test}
        train, _ = resolve_duplicates([c for c in train if self.hashes[c.path] not in held_out], self.hashes)
        inner_train, inner_val = split_by_recording(train, self.config.validation_split, self.config.seed)
        trainer = Trainer(self.cache.featurizer, dataclasses.replace(self.config), state_dir=self.work)
        model = trainer.fit_cached(self.cache, Split.of(inner_train, inner_val, self.hashes), copies=self.copies).model
        x, owner = self.cache.read([self.hashes[c.path] for c in test])
        p = model.predict_proba(x)
        vote = ClipVote(model.labels, len(test))
        vote.add(p, owner)
        truth = [c.label for c in test]
        clips = ClassificationMetrics(model.labels)
        clips.update(truth, vote.predicted())
        windows = ClassificationMetrics(model.labels)
        windows.update([truth[i] for i in owner], [model.labels[i] for i in np.argmax(p, axis=1)])
        return clips, windows


def evaluate_grouping(
    ev: Evaluation, clips: list[Clip], grouping: str, splits: int, few: int, draws: int, first_seed: int = 0
) -> dict:
    clips = regroup(clips, grouping)
    pooled: dict[str, ClassificationMetrics | None] = {"all": None, "10/class": None}
    windows: dict[str, ClassificationMetrics | None] = {"all": None, "10/class": None}
    per_split: dict[str, list[float]] = {"all": [], "10/class": []}

    def add(regime: str, scored: tuple[ClassificationMetrics, ClassificationMetrics]) -> None:
        m, w = scored
        pooled[regime] = m if pooled[regime] is None else pooled[regime] + m
        windows[regime] = w if windows[regime] is None else windows[regime] + w

    for i, seed in enumerate(range(first_seed, first_seed + splits)):
        train, test = split_by_recording(clips, HELD_OUT, seed=1000 + seed)
        scored = ev.score(train, test)
        add("all", scored)
        per_split["all"].append(scored[0].accuracy)
        rng = np.random.default_rng(2000 + seed)
        few_split = None
        for _ in range(draws):
            scored = ev.score(draw_per_label(train, few, rng), test)
            add("10/class", scored)
            few_split = scored[0] if few_split is None else few_split + scored[0]
        per_split["10/class"].append(few_split.accuracy)
        print(f"  {grouping:9s} split {i + 1}/{splits}: {len(train)} training clips, {len(test)} held out; "
              f"all {per_split['all'][-1]:.3f}, 10/class {per_split['10/class'][-1]:.3f}", flush=True)
    return {"pooled": pooled, "windows": windows, "per_split": per_split, "recordings": len({c.group for c in clips})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "room-sounds-dev")
    parser.add_argument("--splits", type=int, default=10, help="random held-out splits by recording")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seed of the first split (other seeds give other splits: how much the figures move)")
    parser.add_argument("--few", type=int, default=10, help="clips per label in the few-shot regime")
    parser.add_argument("--few-draws", type=int, default=3, help="few-shot draws per split")
    parser.add_argument("--grouping", choices=("both", "clip", "recording"), default="both")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default=TrainingConfig.classifier)
    parser.add_argument("--augment", type=int, default=None, metavar="N",
                        help="augmented copies per training clip (default: as cadence train sound, auto)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cadence-eval-sound",
                        help="feature cache folder, kept between runs")
    parser.add_argument("--jobs", type=int, default=1, help="feature extraction processes")
    parser.add_argument("--json", action="store_true", help="also print one JSON object at the end")
    args = parser.parse_args()

    fp = AudioFeaturePrint()  # the default, as `cadence train sound` uses
    data = load_dataset(args.data.resolve(), fp.suffixes)
    for problem in data.problems:
        print(f"warning: {problem}", file=sys.stderr)
    config = TrainingConfig(classifier=args.classifier, augment_copies=args.augment)
    config.validate()
    started = time.perf_counter()
    cache = FeatureCache(args.cache, fp)
    with cache, tempfile.TemporaryDirectory(prefix="cadence-eval-sound-") as work:
        report, hashes = cache.update(data.clips, jobs=args.jobs)
        for problem in report.skipped:
            print(f"warning: {problem}", file=sys.stderr)
        clips = [c for c in data.clips if c.path in hashes]
        for warning in resolve_duplicates(clips, hashes)[1]:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{args.data.resolve()}: {len(clips)} clips, {len(data.labels)} labels; feature print "
              f"{cache.fingerprint[:12]} (d={cache.dimension}); {int(cache.window_counts(list(hashes.values())).sum())} "
              f"windows; {report.extracted} clips extracted, the rest cached "
              f"in {args.cache}", flush=True)
        print(f"classifier {config.classifier} (default TrainingConfig), {args.splits} splits by recording "
              f"({HELD_OUT:.0%} of each label's recordings held out), 10/class: {args.few_draws} draws per split",
              flush=True)
        most = max(AUTO_AUGMENT_COPIES, args.augment or 0)
        started_copies = time.perf_counter()
        copy_report, copies = cache.augment([(c, hashes[c.path]) for c in clips], AudioAugmenter(), most, jobs=args.jobs)
        print(f"augmented copies: {most} per clip, {copy_report.extracted} extracted "
              f"({time.perf_counter() - started_copies:.0f} s), {copy_report.reused} cached", flush=True)
        ev = Evaluation(cache, hashes, config, Path(work), copies)
        groupings = ("clip", "recording") if args.grouping == "both" else (args.grouping,)
        results = {
            g: evaluate_grouping(ev, clips, g, args.splits, args.few, args.few_draws, args.first_seed) for g in groupings
        }

    print()
    print(f"{'grouping':9s}  {'regime':8s}  clip acc  (splits min–max)  clips  window acc  target")
    for g, r in results.items():
        for regime, m in r["pooled"].items():
            accs = r["per_split"][regime]
            verdict = "met" if m.accuracy >= TARGETS[regime] else "not met"
            print(f"{g:9s}  {regime:8s}  {m.accuracy:8.3f}  ({min(accs):.3f}–{max(accs):.3f})   "
                  f"{m.count:5d}  {r['windows'][regime].accuracy:10.3f}  ≥ {TARGETS[regime]:.2f} {verdict}")
    for g, r in results.items():
        print(f"\n{g} grouping, all training clips, pooled over the splits:")
        print(r["pooled"]["all"].format_table())
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if args.json:
        print(json.dumps({
            g: {
                regime: {**m.to_dict(), "per_split": r["per_split"][regime], "target": TARGETS[regime],
                         "window_accuracy": r["windows"][regime].accuracy}
                for regime, m in r["pooled"].items()
            } | {"recordings": r["recordings"]}
            for g, r in results.items()
        }))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except CadenceError as exc:
        print(f"eval_sound: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
