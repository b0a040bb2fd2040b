#!/usr/bin/env python3
"""Peak memory of ``cadence train sound`` on 5-second clips and with a 10- and a 60-minute clip.

Training streams every clip (its examples are the feature print's windows over
the file, decoded block by block), so memory is bounded by the window, not the
clip: the issue's target is that a folder with a 10-minute and a 60-minute
clip stays within +50 MB of the peak on 5-second clips.

The script writes the data sets into a temp folder with soundfile, block by
block (long clips are dev clips of one label looped end to end):

* ``short`` — two labels, 6 five-second dev clips each;
* ``10 min`` — the same plus one 10-minute clip under the first label;
* ``60 min`` — the same plus one 60-minute clip under the first label.

Each is trained by the real CLI (default settings: ``auto`` → logistic
regression and augmented copies of at most 30 s of each clip) in a fresh
process with an empty state folder, and the peak RSS of that process is read
with ``resource.getrusage(RUSAGE_CHILDREN)`` in a small wrapper process (so
each run's peak is its own). Printed: one line per run and the difference to
``short``. Targets are printed, never asserted.

Usage: python scripts/bench_memory_train.py [--work DIR] [--keep] [--minutes 10,60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data" / "room-sounds-dev"
TARGET_MB = 50.0
RATE = 16000

WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": done.returncode, "peak_mib": peak_kib / 1024, "seconds": time.perf_counter() - started,
                  "tail": (done.stdout + done.stderr).strip().splitlines()[-3:]}))
"""


def write_long_clip(path: Path, sources: list[Path], minutes: float) -> None:
    """``minutes`` of audio made of ``sources`` looped, written in blocks (never whole in memory)."""
    import soundfile as sf

    total = int(minutes * 60 * RATE)
    written = 0
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, subtype="PCM_16") as out:
        while written < total:
            for src in sources:
                block, rate = sf.read(str(src), dtype="float32")
                assert rate == RATE, f"{src}: {rate} Hz"
                block = block[: total - written]
                out.write(block)
                written += len(block)
                if written >= total:
                    break


def make_sets(work: Path, minutes: list[float]) -> dict[str, Path]:
    labels = ("crying_baby", "vacuum_cleaner")
    short = work / "short"
    for label in labels:
        (short / label).mkdir(parents=True, exist_ok=True)
        for f in sorted((DATA / label).glob("*.flac"))[:6]:
            shutil.copy2(f, short / label / f.name)
    sets = {"short": short}
    for m in minutes:
        name = f"{m:g} min"
        folder = work / f"long-{m:g}"
        shutil.copytree(short, folder)
        write_long_clip(folder / labels[0] / f"long_{m:g}min.flac", sorted((DATA / labels[0]).glob("*.flac"))[:10], m)
        sets[name] = folder
    return sets


def train(data: Path, state: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "device.cli", "train", "sound", str(data), "--out", str(out),
           "--state-dir", str(state), "--quiet"]
    done = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="folder for the data sets (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--minutes", default="10,60", help="lengths of the long clips, in minutes")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"no dev data at {DATA}", file=sys.stderr)
        return 1
    work = args.work or Path(tempfile.mkdtemp(prefix="cadence-bench-memory-train-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        sets = make_sets(work, [float(m) for m in args.minutes.split(",") if m])
        print(f"data sets written in {time.perf_counter() - started:.0f} s under {work}", flush=True)
        results = {}
        for name, folder in sets.items():
            r = train(folder, work / f"state-{folder.name}", work / f"model-{folder.name}.model")
            results[name] = r
            status = "ok" if r["code"] == 0 else f"FAILED ({r['code']}): {' | '.join(r['tail'])}"
            print(f"{name:8s} peak RSS {r['peak_mib']:7.1f} MiB  ({r['seconds']:.0f} s)  {status}", flush=True)
        base = results["short"]["peak_mib"]
        print()
        print(f"{'data':8s}  peak MiB  over short  target ≤ +{TARGET_MB:g} MiB")
        for name, r in results.items():
            extra = r["peak_mib"] - base
            verdict = "" if name == "short" else ("met" if extra <= TARGET_MB and r["code"] == 0 else "NOT met")
            print(f"{name:8s}  {r['peak_mib']:8.1f}  {extra:+9.1f}  {verdict}")
        print(json.dumps({name: {k: r[k] for k in ("code", "peak_mib", "seconds")} for name, r in results.items()}))
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
