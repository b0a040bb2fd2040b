"""CPU cost per window of the exercise classifier (target ≤ 1 ms on one core; `make bench-exercise`).

Measures process CPU time (not wall time, so other jobs on a shared machine
count less) of: the features of one 90-frame window, the network and the open
set on them, and the live tracker's whole step; prints the load average too.

    python scripts/bench_exercise.py [--model models/exercise.model] [--windows 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device.pose.exercise import ExerciseClassifier  # noqa: E402


def per_call_ms(fn, n: int) -> float:
    fn()
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e3


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=REPO / "models" / "exercise.model")
    ap.add_argument("--windows", type=int, default=2000)
    ap.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    args = ap.parse_args()
    clf = ExerciseClassifier.load(args.model)
    poses = np.load(args.data / "repcount-dev" / "poses" / "stu4_27.npy")
    image = poses.astype(np.float32)
    bounds = list(clf.features.window_bounds(len(image)))
    n = args.windows
    windows = [image[a:b] for a, b in bounds]
    raw = clf.features.raw(windows[0])
    tracker = clf.tracker()
    k = iter(range(10**9))
    step = lambda: tracker.push(windows[next(k) % len(windows)])  # noqa: E731
    # the pipeline's form: lists of per-frame arrays, consecutive windows sharing 75 of 90 frames
    frames = list(image)
    lists = [frames[a:b] for a, b in bounds]
    live = clf.tracker()
    j = iter(range(10**9))

    def from_list() -> None:
        i = next(j) % len(lists)
        if i == 0:
            live.reset()
        live.push(lists[i])

    print(f"load average {os.getloadavg()[0]:.2f}; {len(windows)} windows of 90 frames (stu4_27), {n} calls each")
    print(f"features of a window      {per_call_ms(lambda: clf.features.feature(windows[0]), n):.3f} ms")
    print(f"network + open set        {per_call_ms(lambda: clf.scores(raw), n):.3f} ms")
    print(f"tracker step, array windows (every frame described again)  {per_call_ms(step, n):.3f} ms")
    print(f"tracker step, the pipeline's windows (frames described once) {per_call_ms(from_list, n):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
