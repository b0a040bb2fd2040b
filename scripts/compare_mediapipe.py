#!/usr/bin/env python3
"""Compare Cadence's BlazePose with MediaPipe's own legacy Pose solution.

MediaPipe is never a Cadence dependency: this script makes a throwaway venv
(default ``/tmp/cadence-mp-venv``) with ``mediapipe==0.10.21`` and runs
``mp.solutions.pose`` there in a subprocess (this same file, in ``--worker``
mode), on the same frames Cadence sees. Both run in video mode (tracking and
smoothing on, model complexity 1 = the full landmark model, detection and
tracking confidence 0.5).

Prints, per video and overall: the share of frames where each finds a person,
and on frames where both do, the mean distance between corresponding
landmarks (x, y in pixels, all 33) divided by the torso size (shoulder-centre
to hip-centre distance, from MediaPipe's landmarks).

    .venv/bin/python scripts/compare_mediapipe.py              # all shared videos
    .venv/bin/python scripts/compare_mediapipe.py --videos jumping_jacks_11.mp4 --max-frames 150
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "videos"
MP_VENV = Path(os.environ.get("CADENCE_MP_VENV", "/tmp/cadence-mp-venv"))
MP_REQUIREMENT = "mediapipe==0.10.21"


# ---------------------------------------------------------------------------
# Worker: runs inside the MediaPipe venv (imports nothing from Cadence)
# ---------------------------------------------------------------------------
def _worker(args: argparse.Namespace) -> int:
    import cv2
    import mediapipe as mp
    import numpy as np

    rotations = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    capture = cv2.VideoCapture(args.video)
    if hasattr(cv2, "CAP_PROP_ORIENTATION_AUTO"):
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)  # frames as stored, like Cadence's read_video
    rows, times = [], []
    empty = np.full((33, 4), np.nan, dtype=np.float32)
    with mp.solutions.pose.Pose(
        static_image_mode=False,
        model_complexity=1,
        smooth_landmarks=True,
        enable_segmentation=False,
        min_detection_confidence=0.5,
        min_tracking_confidence=0.5,
    ) as pose:
        while args.max_frames is None or len(rows) < args.max_frames:
            ok, frame = capture.read()  # decoded one at a time: memory as in a live pipeline
            if not ok:
                break
            if args.rotate in rotations:
                frame = cv2.rotate(frame, rotations[args.rotate])
            t0 = time.perf_counter()
            result = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            times.append(time.perf_counter() - t0)
            if result.pose_landmarks is not None:
                rows.append(np.array([[lm.x, lm.y, lm.z, lm.visibility] for lm in result.pose_landmarks.landmark],
                                     dtype=np.float32))
            else:
                rows.append(empty)
    capture.release()
    out = np.stack(rows) if rows else np.zeros((0, 33, 4), np.float32)
    import resource

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.savez(args.out, landmarks=out, seconds=np.array(times), peak_rss_kb=np.array(peak_kb))
    return 0


# ---------------------------------------------------------------------------
# Driver side
# ---------------------------------------------------------------------------
def ensure_mediapipe_venv(venv: Path = MP_VENV, log=print) -> Path:
    """Python of a venv with MediaPipe (created once; a big download)."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mediapipe, sys; print(mediapipe.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    log(f"creating {venv} with {MP_REQUIREMENT} (one-off, large download)…")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", MP_REQUIREMENT], check=True)
    return python


def run_mediapipe(video: Path, rotate: int, max_frames: int | None, python: Path, with_rss: bool = False):
    """MediaPipe's landmarks ``(frames, 33, 4)`` (NaN where no person) and per-frame seconds
    (and the worker's peak RSS in kB with ``with_rss``)."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="cadence-mp-") as tmp:
        out = Path(tmp) / "mp.npz"
        command = [str(python), str(Path(__file__).resolve()), "--worker", "--video", str(video),
                   "--rotate", str(rotate), "--out", str(out)]
        if max_frames is not None:
            command += ["--max-frames", str(max_frames)]
        env = dict(os.environ, GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"MediaPipe worker failed on {video.name}: {done.stderr.strip()[-800:]}")
        data = np.load(out)
        if with_rss:
            return data["landmarks"], data["seconds"], int(data["peak_rss_kb"])
        return data["landmarks"], data["seconds"]


def run_cadence(video: Path, rotate: int, max_frames: int | None, num_threads: int = 1, mediapipe_clock: bool = True):
    """Cadence's landmarks ``(frames, 33, 4)``, per-frame seconds and the extractor (for its stats).

    With ``mediapipe_clock`` the smoothing filters get the timestamps MediaPipe's
    legacy solution uses (one frame every 1/30 s, whatever the video's rate), so
    both filters see the same clock; otherwise the video's own timestamps.
    """
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from device.pose.extractor import HumanBodyPoseExtractor
    from device.video import read_video

    extractor = HumanBodyPoseExtractor(num_threads=num_threads)
    rows, times = [], []
    for i, item in enumerate(read_video(video, rotate=rotate, max_frames=max_frames)):
        t0 = time.perf_counter()
        poses = extractor.process(item.value, i / 30.0 if mediapipe_clock else item.timestamp)
        times.append(time.perf_counter() - t0)
        rows.append(poses[0].landmarks if poses else np.full((33, 4), np.nan, dtype=np.float32))
    return np.stack(rows), np.array(times), extractor


def compare(cadence, mediapipe, size: tuple[int, int]) -> dict:
    """Detection shares and torso-normalised landmark distance on frames both found."""
    import numpy as np

    n = min(len(cadence), len(mediapipe))
    cadence, mediapipe = cadence[:n], mediapipe[:n]
    found_c = ~np.isnan(cadence[:, 0, 0])
    found_m = ~np.isnan(mediapipe[:, 0, 0])
    both = found_c & found_m
    result = {
        "frames": int(n),
        "cadence_found": float(found_c.mean()) if n else 0.0,
        "mediapipe_found": float(found_m.mean()) if n else 0.0,
        "cadence_frames": int(found_c.sum()),
        "mediapipe_frames": int(found_m.sum()),
        "both_frames": int(both.sum()),
    }
    if both.any():
        from device.pose.landmarks import landmark_distance  # the one definition of the measure

        per_frame = landmark_distance(mediapipe, cadence, size)
        result.update(
            mean_distance_torso=float(per_frame.mean()),
            median_distance_torso=float(np.median(per_frame)),
            p95_distance_torso=float(np.percentile(per_frame, 95)),
        )
    return result


def load_rotations(data: Path) -> dict[str, int]:
    import csv

    rotations = {}
    path = data / "annotations.csv"
    if path.is_file():
        with path.open() as f:
            for row in csv.DictReader(f):
                rotations[row["file"]] = int(float(row.get("rotate_clockwise") or 0))
    return rotations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--rotate", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=DATA, help="folder of videos (default ../shared/data/videos)")
    parser.add_argument("--videos", nargs="*", help="only these file names")
    parser.add_argument("--max-frames", type=int, default=None, help="first N frames of each video")
    parser.add_argument("--threads", type=int, default=1, help="Cadence interpreter threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)

    import numpy as np

    data = args.data.resolve()
    if not data.is_dir():
        print(f"no video folder at {data}", file=sys.stderr)
        return 1
    rotations = load_rotations(data)
    names = args.videos or sorted(p.name for p in data.iterdir() if p.suffix.lower() in (".mp4", ".mov", ".avi", ".mkv", ".webm"))
    python = ensure_mediapipe_venv(log=lambda m: print(m, file=sys.stderr))
    report: dict[str, dict] = {}
    all_c, all_m, all_sizes = [], [], []
    for name in names:
        video = data / name
        rotate = rotations.get(name, 0)
        cadence, c_sec, _ = run_cadence(video, rotate, args.max_frames, args.threads)
        mediapipe, m_sec = run_mediapipe(video, rotate, args.max_frames, python)
        from device.video import read_video

        size = read_video(video, rotate=rotate).size
        row = compare(cadence, mediapipe, size)
        row["cadence_fps"] = float(len(c_sec) / c_sec.sum()) if len(c_sec) else 0.0
        row["mediapipe_fps"] = float(len(m_sec) / m_sec.sum()) if len(m_sec) else 0.0
        report[name] = row
        n = min(len(cadence), len(mediapipe))
        all_c.append(cadence[:n])
        all_m.append(mediapipe[:n])
        all_sizes.append(np.broadcast_to(np.array(size, dtype=np.float64), (n, 2)))
        if not args.json:
            d = row.get("mean_distance_torso", float("nan"))
            print(
                f"{name:22s} frames {row['frames']:4d}  found cadence {row['cadence_found']:6.1%}  "
                f"mediapipe {row['mediapipe_found']:6.1%}  distance {d:.4f} torso "
                f"(median {row.get('median_distance_torso', float('nan')):.4f})",
                flush=True,
            )
    # Overall: pool frames of all videos (each scaled by its own size).
    cad, med, sizes = np.concatenate(all_c), np.concatenate(all_m), np.concatenate(all_sizes)
    found_c, found_m = ~np.isnan(cad[:, 0, 0]), ~np.isnan(med[:, 0, 0])
    both = found_c & found_m
    c = cad[both, :, :2] * sizes[both][:, None, :]
    m = med[both, :, :2] * sizes[both][:, None, :]
    torso = np.linalg.norm((m[:, 11] + m[:, 12]) / 2 - (m[:, 23] + m[:, 24]) / 2, axis=1)
    per_frame = np.linalg.norm(c - m, axis=2).mean(axis=1) / np.maximum(torso, 1e-6)
    overall = {
        "frames": int(len(cad)),
        "cadence_frames": int(found_c.sum()),
        "mediapipe_frames": int(found_m.sum()),
        "both_frames": int(both.sum()),
        "mean_distance_torso": float(per_frame.mean()) if both.any() else None,
        "median_distance_torso": float(np.median(per_frame)) if both.any() else None,
    }
    ok = bool(
        overall["mean_distance_torso"] is not None
        and overall["mean_distance_torso"] <= 0.05
        and overall["cadence_frames"] >= overall["mediapipe_frames"]
    )
    overall["target_met"] = ok
    if args.json:
        print(json.dumps({"videos": report, "overall": overall}, indent=2))
    else:
        print(
            f"{'overall':22s} frames {overall['frames']:4d}  found cadence {overall['cadence_frames']}  "
            f"mediapipe {overall['mediapipe_frames']}  both {overall['both_frames']}  "
            f"mean distance {overall['mean_distance_torso']:.4f} torso (target ≤ 0.05, cadence ≥ mediapipe frames: "
            f"{'met' if ok else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
