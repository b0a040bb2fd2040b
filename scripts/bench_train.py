#!/usr/bin/env python3
"""Benchmark on-device training: incremental retrain vs full retrain, and memory.

1. Incremental retrain. ~1000 clips are synthesised from the 437 dev clips
   (gain, time shift, mixing in a background clip) into a temp folder with a
   CSV manifest that keeps every copy in its source's recording (so the
   validation split never sees a copy of a training recording). Then:

   - full retrain from raw audio: empty state dir, ``Trainer.train`` on all
     clips (every feature print computed, then training);
   - incremental: the cache already holds the first ~1000 clips (from an
     earlier run, not timed); 50 new clips are added and ``Trainer.train`` runs
     again (only the 50 are extracted).

   Prints both times, the ratio (target >= 10x) and both validation accuracies
   (target: within 1 point).

2. Few-shot training, as an owner starting out would run it: 10 clips per
   label (70 dev clips), the default ``TrainingConfig`` (``auto``: logistic
   regression and 8 augmented copies per clip). Prints the time to extract the
   clips, to extract their copies (the cost of augmentation, paid once: the
   copies are cached) and to fit, then the time of a second run on the filled
   cache.

3. Memory. Peak RSS of training (``Trainer.fit_cached``) in a fresh process
   on feature caches of two sizes, both larger than one chunk: the increase
   over the process's baseline stays bounded by the chunk size (and the
   cache's in-memory budget, ``IN_MEMORY_BYTES``), not the cache. Memory of
   the whole command on long clips: ``scripts/bench_memory_train.py``.

Usage: python scripts/bench_train.py [--clips 1000] [--new 50] [--classifier network]
       [--feature-print audio | path/to/module.py:Class] [--memory-sizes 4000,32000] [--chunk-size 1024]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device.audio.sources import load_audio as read_clip  # noqa: E402
from device.learn.dataset import load_dataset, recording_id  # noqa: E402
from device.learn.training import Split, Trainer, TrainingConfig  # noqa: E402

DATA = REPO / ".." / "shared" / "data" / "room-sounds-dev"


def load_feature_print(spec: str):
    if spec == "audio":
        from device.audio.featureprint import AudioFeaturePrint

        return AudioFeaturePrint()
    path, _, cls = spec.partition(":")
    sys.path.insert(0, str(Path(path).resolve().parent))
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    assert module_spec.loader is not None
    module_spec.loader.exec_module(module)
    return getattr(module, cls)()


def synthesise(dest: Path, total: int, seed: int = 0) -> Path:
    """Write ``total`` clips (originals first, then augmented copies) and a manifest."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    data = load_dataset(DATA)
    clips = [(c, read_clip(c.path)) for c in data.clips]
    backgrounds = [s for c, s in clips if c.label == "background"]
    rows = []
    order = rng.permutation(len(clips))
    for i in range(total):
        clip, samples = clips[order[i % len(clips)]]
        if i >= len(clips):  # augmented copy
            gain = 10 ** (rng.uniform(-6, 6) / 20)
            shift = int(rng.integers(0, len(samples)))
            samples = np.roll(samples, shift) * gain
            if clip.label != "background" and backgrounds:
                noise = backgrounds[int(rng.integers(len(backgrounds)))]
                noise = np.resize(noise, len(samples))
                level = 10 ** (rng.uniform(-30, -15) / 20)
                rms_s = math.sqrt(float(np.mean(samples**2)) + 1e-12)
                rms_n = math.sqrt(float(np.mean(noise**2)) + 1e-12)
                samples = samples + noise * (rms_s / rms_n) * level
            samples = np.clip(samples, -1, 1).astype(np.float32)
        folder = dest / clip.label
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}_{clip.path.stem}.flac"
        sf.write(path, samples, 16000, subtype="PCM_16")
        rows.append((str(path), clip.label, f"{clip.label}:{recording_id(clip.path)}"))
    manifest = dest / "all.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "recording"])
        w.writerows(rows)
    return manifest


def write_manifest(src: Path, dest: Path, n: int) -> Path:
    lines = src.read_text().splitlines()
    dest.write_text("\n".join(lines[: n + 1]) + "\n")
    return dest


def bench_incremental(args, fp, work: Path) -> dict:
    print(f"synthesising {args.clips + args.new} clips from the dev set…", flush=True)
    t = time.perf_counter()
    manifest = synthesise(work / "clips", args.clips + args.new)
    print(f"  done in {time.perf_counter() - t:.1f} s", flush=True)
    old = write_manifest(manifest, work / "old.csv", args.clips)
    cfg = dict(classifier=args.classifier, seed=0)

    # incremental: cache holds the old clips from an earlier training
    state_inc = work / "state-incremental"
    Trainer(fp, TrainingConfig(**cfg), state_dir=state_inc).train(load_dataset(old), state_inc / "m.model")
    t = time.perf_counter()
    inc = Trainer(fp, TrainingConfig(**cfg), state_dir=state_inc).train(load_dataset(manifest), state_inc / "m.model")
    t_inc = time.perf_counter() - t

    # full retrain from raw audio
    state_full = work / "state-full"
    t = time.perf_counter()
    full = Trainer(fp, TrainingConfig(**cfg), state_dir=state_full).train(load_dataset(manifest), state_full / "m.model")
    t_full = time.perf_counter() - t

    out = {
        "clips": args.clips,
        "new": args.new,
        "classifier": args.classifier,
        "full_seconds": t_full,
        "full_extracted": full.report["feature_cache"]["extracted"],
        "full_extract_seconds": full.report["feature_cache"]["seconds"],
        "incremental_seconds": t_inc,
        "incremental_extracted": inc.report["feature_cache"]["extracted"],
        "incremental_extract_seconds": inc.report["feature_cache"]["seconds"],
        "ratio": t_full / t_inc,
        "full_accuracy": full.validation.accuracy,
        "incremental_accuracy": inc.validation.accuracy,
        "epochs": inc.report["epochs"],
        "validation_clips": inc.report["clips"]["validation"],
    }
    print(
        f"full retrain from raw audio: {t_full:.1f} s ({out['full_extracted']} clips extracted in "
        f"{out['full_extract_seconds']:.1f} s), validation accuracy {out['full_accuracy']:.4f}"
    )
    print(
        f"incremental retrain:         {t_inc:.1f} s ({out['incremental_extracted']} clips extracted in "
        f"{out['incremental_extract_seconds']:.1f} s), validation accuracy {out['incremental_accuracy']:.4f}"
    )
    print(f"ratio: {out['ratio']:.1f}x faster (target >= 10x); accuracy difference "
          f"{abs(out['full_accuracy'] - out['incremental_accuracy']) * 100:.2f} points (target <= 1)")
    return out


# ---------------------------------------------------------------------------
# memory
class SyntheticPrint:
    """Stands in for the featurizer when a cache is filled with synthetic windows."""

    suffixes = (".none",)

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.scales = np.ones(dimension, dtype=np.float32)

    def fingerprint(self) -> str:
        return f"synthetic-{self.dimension}".ljust(16, "0")

    def file_windows(self, path):  # never called: the cache is filled directly
        raise RuntimeError("synthetic")


def build_synthetic_cache(state: Path, n: int, dimension: int, labels: int = 7, seed: int = 0) -> None:
    from device.learn.cache import FeatureCache

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 30, size=(labels, dimension))
    cache = FeatureCache(state / "feature-cache", SyntheticPrint(dimension))
    cache.directory.mkdir(parents=True, exist_ok=True)
    names = []
    for start in range(0, n, cache.shard_size):
        rows = []
        for i in range(start, min(n, start + cache.shard_size)):
            y = i % labels
            x = np.clip(np.round(centres[y] + rng.normal(0, 25, dimension)), -127, 127).astype(np.int8)
            rows.append((f"{i:064x}", x[None, :]))  # one window per synthetic clip
            names.append(f"label{y}")
        cache._flush(rows)
    (state / "labels.json").write_text(json.dumps(names))


def bench_few_shot(fp, work: Path, per_label: int = 10) -> dict:
    """Default training on 10 clips per label: extraction, augmentation, fit; then again from the cache."""
    data_dir = work / "few-shot"
    for folder in sorted(p for p in DATA.iterdir() if p.is_dir()):
        (data_dir / folder.name).mkdir(parents=True)
        files = sorted(folder.glob("*.flac"))
        for i in range(min(per_label, len(files))):  # spread over the label's recordings
            f = files[i * len(files) // per_label]
            (data_dir / folder.name / f.name).symlink_to(f)
    data = load_dataset(data_dir)
    out: dict = {"clips": len(data.clips)}
    for run in ("first", "cached"):
        t = time.perf_counter()
        result = Trainer(fp, TrainingConfig(), state_dir=work / "few-shot-state").train(data, work / "few.model")
        total = time.perf_counter() - t
        r = result.report
        out[run] = {
            "seconds": total,
            "extract_seconds": r["feature_cache"]["seconds"],
            "augment_seconds": r["augmentation"]["seconds"],
            "copies_extracted": r["augmentation"]["extracted"],
            "classifier": r["classifier"],
            "validation_accuracy": r["validation"]["accuracy"] if r["validation"] else None,
        }
        f = out[run]
        print(f"few-shot ({run} run): {len(data.clips)} clips, {f['classifier']}, "
              f"{r['augmentation']['copies_per_clip']} copies per clip: {total:.1f} s in all — "
              f"features {f['extract_seconds']:.1f} s, {f['copies_extracted']} augmented copies "
              f"{f['augment_seconds']:.1f} s, the rest fitting and publishing", flush=True)
    return out


def _status_kib(field: str) -> int:
    """VmRSS / VmHWM of this process from /proc (ru_maxrss would carry over the
    parent's peak across exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(state: Path, dimension: int, chunk: int, classifier: str) -> None:
    from device.learn.cache import FeatureCache

    cache = FeatureCache(state / "feature-cache", SyntheticPrint(dimension))
    names = np.array(json.loads((state / "labels.json").read_text()))
    keys = [f"{i:064x}" for i in range(len(names))]
    cut = int(len(keys) * 0.8)
    labels = sorted(set(names.tolist()))
    cfg = TrainingConfig(classifier=classifier, chunk_size=chunk, max_epochs=3, patience=100)
    trainer = Trainer(SyntheticPrint(dimension), cfg, state_dir=state)
    # warm up imports and allocator with a tiny fit, then measure
    trainer.fit_cached(cache, Split(labels, keys[:64], names[:64], keys[64:96], names[64:96]))
    base = _status_kib("VmRSS")
    t = time.perf_counter()
    result = trainer.fit_cached(cache, Split(labels, keys[:cut], names[:cut], keys[cut:], names[cut:]))
    seconds = time.perf_counter() - t
    peak = _status_kib("VmHWM")
    print(json.dumps({"base_kib": base, "peak_kib": peak, "seconds": seconds, "accuracy": result.validation.accuracy}))


def bench_memory(args, dimension: int, work: Path) -> list[dict]:
    rows = []
    for n in args.memory_sizes:
        state = work / f"mem-{n}"
        build_synthetic_cache(state, n, dimension)
        disk = sum(f.stat().st_size for f in (state / "feature-cache").rglob("*.npy"))
        for chunk in args.chunk_sizes:
            r = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(state), "--dimension", str(dimension),
                 "--chunk-size", str(chunk), "--classifier", args.classifier],
                capture_output=True, text=True, check=True,
            )
            child = json.loads(r.stdout.strip().splitlines()[-1])
            row = {
                "clips": n,
                "cache_mib": disk / 2**20,
                "all_float32_mib": n * dimension * 4 / 2**20,
                "chunk": chunk,
                "chunk_float32_mib": chunk * dimension * 4 / 2**20,
                "base_mib": child["base_kib"] / 1024,
                "peak_mib": child["peak_kib"] / 1024,
                "increase_mib": (child["peak_kib"] - child["base_kib"]) / 1024,
                "seconds": child["seconds"],
            }
            rows.append(row)
            print(
                f"cache {n:6d} clips ({row['cache_mib']:.1f} MiB int8 on disk, {row['all_float32_mib']:.1f} MiB as float32), "
                f"chunk {chunk}: peak RSS {row['peak_mib']:.1f} MiB, +{row['increase_mib']:.1f} MiB during training "
                f"(3 epochs in {row['seconds']:.1f} s)",
                flush=True,
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--new", type=int, default=50)
    parser.add_argument("--classifier", default="network", choices=("network", "logistic"))
    parser.add_argument("--feature-print", default="audio")
    parser.add_argument("--memory-sizes", default="4000,32000")
    parser.add_argument("--chunk-size", dest="chunk_sizes", default="1024")
    parser.add_argument("--skip-incremental", action="store_true")
    parser.add_argument("--skip-few-shot", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--dimension", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(Path(args.memory_child), args.dimension, int(args.chunk_sizes), args.classifier)
        return 0
    args.memory_sizes = [int(v) for v in args.memory_sizes.split(",") if v]
    args.chunk_sizes = [int(v) for v in args.chunk_sizes.split(",") if v]
    if not DATA.is_dir():
        print(f"dev data not found at {DATA}", file=sys.stderr)
        return 1
    fp = load_feature_print(args.feature_print)
    print(f"feature print: {type(fp).__name__} ({getattr(fp, 'dimension', '?')} values), "
          f"machine: {os.cpu_count()} cores", flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        if not args.skip_incremental:
            results["incremental"] = bench_incremental(args, fp, work)
        if not args.skip_few_shot:
            results["few_shot"] = bench_few_shot(fp, work)
        dimension = int(getattr(fp, "dimension", 0) or 0) or 128
        results["memory"] = bench_memory(args, dimension, work)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
