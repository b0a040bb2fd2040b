#!/usr/bin/env python3
"""Peak memory of the sound commands on long clips: bounded by the window, not the clip.

Makes a 5-second, a 10-minute and a 60-minute recording (real dev clips of
every label one after another, written as FLAC under a temporary folder),
trains a small model once, then runs each command on each length in its own
process and prints its peak RSS (``ru_maxrss`` of that process alone):

    cadence classify CLIP --model M --json
    cadence evaluate sound DIR --model M --json      (DIR holds the one clip)
    cadence train sound DATA --out M2               (DATA: the clip + short clips of other labels)

Target (issue 13): each command within +50 MB of its peak on the 5-second
clip. Usage: ``scripts/bench_memory.py [--minutes 10,60] [--commands classify,evaluate,train]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "room-sounds-dev"
RATE = 16000
TARGET_MB = 50.0

_MEASURE = (
    "import resource, subprocess, sys, json, time\n"
    "t = time.monotonic()\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "print(json.dumps({'rc': p.returncode, 'kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    " 'seconds': time.monotonic() - t, 'err': p.stderr[-400:]}))\n"
)


def peak(argv: list[str]) -> dict:
    """Run ``argv`` as the only child of a fresh process; its peak RSS in MB and time."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(argv[:3])} … failed ({result['rc']}): {result['err']}")
    return {"mb": result["kb"] / 1024, "seconds": result["seconds"]}


def long_clip(path: Path, seconds: float) -> Path:
    """Dev clips of every label one after another, written in blocks (never all in memory)."""
    clips = sorted(DEV.glob("*/*.flac"))
    written = 0
    with sf.SoundFile(path, "w", samplerate=RATE, channels=1, format="FLAC", subtype="PCM_16") as out:
        i = 0
        while written < seconds * RATE:
            data, rate = sf.read(clips[(i * 37) % len(clips)], dtype="float32")
            i += 1
            if rate != RATE:
                continue
            data = data[: int(seconds * RATE) - written]
            out.write(data)
            written += len(data)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", default="10,60", help="long clip lengths in minutes (default 10,60)")
    parser.add_argument("--commands", default="classify,evaluate,train")
    args = parser.parse_args()
    if not DEV.is_dir():
        raise SystemExit(f"no development data at {DEV}")
    cadence = [sys.executable, "-m", "device"]
    commands = args.commands.split(",")
    lengths = [5.0] + [60.0 * float(m) for m in args.minutes.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="cadence-mem-") as tmp:
        work = Path(tmp)
        state = work / "state"
        small = work / "small"
        for label in ("crying_baby", "vacuum_cleaner", "background"):
            (small / label).mkdir(parents=True)
            for clip in sorted((DEV / label).glob("*.flac"))[:6]:
                (small / label / clip.name).symlink_to(clip)
        model = work / "sound.model"
        print(f"training a small model on {small} …", flush=True)
        subprocess.run([*cadence, "train", "sound", str(small), "--out", str(model), "--state-dir", str(state),
                        "--quiet"], check=True, stdout=subprocess.DEVNULL)
        rows = []
        for seconds in lengths:
            clip = long_clip(work / f"clip-{int(seconds)}s.flac", seconds)
            folder = work / f"eval-{int(seconds)}" / "crying_baby"
            folder.mkdir(parents=True)
            (folder / clip.name).symlink_to(clip)
            data = work / f"data-{int(seconds)}"
            for label in ("vacuum_cleaner", "background"):
                (data / label).mkdir(parents=True)
                for c in sorted((small / label).iterdir()):
                    (data / label / c.name).symlink_to(c.resolve())
            (data / "crying_baby").mkdir(parents=True)
            (data / "crying_baby" / clip.name).symlink_to(clip)
            for c in sorted((small / "crying_baby").iterdir())[:2]:
                (data / "crying_baby" / c.name).symlink_to(c.resolve())
            runs = {
                "classify": [*cadence, "classify", str(clip), "--model", str(model), "--json"],
                "evaluate": [*cadence, "evaluate", "sound", str(folder.parent), "--model", str(model), "--json"],
                "train": [*cadence, "train", "sound", str(data), "--out", str(work / f"m-{int(seconds)}.model"),
                          "--state-dir", str(work / f"state-{int(seconds)}"), "--quiet"],
            }
            for name in commands:
                result = peak(runs[name])
                rows.append((name, seconds, result))
                print(f"{name:9s} {seconds / 60:6.1f} min clip: peak RSS {result['mb']:7.1f} MB  ({result['seconds']:.0f} s)",
                      flush=True)
            clip.unlink()
        print()
        print(f"{'command':9s} {'5 s':>9s} " + " ".join(f"{s / 60:>7.0f} min" for s in lengths[1:]) + "   growth   within +50 MB?")
        for name in commands:
            mine = [r for r in rows if r[0] == name]
            base = mine[0][2]["mb"]
            growth = max(r[2]["mb"] for r in mine) - base
            print(f"{name:9s} {base:7.1f}MB " + " ".join(f"{r[2]['mb']:8.1f}MB" for r in mine[1:])
                  + f"  {growth:+7.1f} MB   {'yes' if growth <= TARGET_MB else 'NO'}")
    print(f"(load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
