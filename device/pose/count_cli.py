"""``cadence count``: count repetitions in a video or a saved pose array.

    cadence count VIDEO_OR_POSES [--json] [--rotate 90] [--fps 30] [--window 90] [--stride 15]
                                 [--downsample 1] [--rest-time 8]

A video runs the whole live pipeline (BlazePose → one person → sliding
windows → counter); a ``.npy`` pose array ``(frames, 33, 2|3|4)`` (as written
by ``cadence pose --out``; NaN rows where nobody was found) skips the pose
step. The running count is printed as it goes, with a progress bar, then the
final count (completed repetitions). ``--json`` prints one JSON object per
update and a last one with ``"final": true``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..components import CadenceError


class PoseFileError(CadenceError, ValueError):
    """A pose array that cannot be read or has the wrong shape."""


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    parser = subparsers.add_parser(
        "count",
        help="count repetitions in a video or a pose array (.npy)",
        description="Count the repetitions of whatever exercise one person does, in a video file "
        "or a (frames, 33, 2|3|4) pose array saved by `cadence pose --out`.",
    )
    parser.add_argument("source", type=Path, help="video file or .npy pose array")
    parser.add_argument("--json", action="store_true", help="print one JSON object per update")
    parser.add_argument("--rotate", type=int, default=0, choices=(0, 90, 180, 270),
                        help="video: degrees clockwise to make the picture upright")
    parser.add_argument("--fps", type=float, default=None,
                        help="pose array: frames per second (default: from the .json beside it, else 30)")
    parser.add_argument("--window", type=int, default=90, help="frames per analysis window (default 90)")
    parser.add_argument("--stride", type=int, default=15, help="frames between updates (default 15)")
    parser.add_argument("--downsample", type=int, default=1, help="keep every n-th frame, for slow movements")
    parser.add_argument("--rest-time", type=float, default=8.0, help="seconds of pause that end a set (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="video: TFLite interpreter threads")
    parser.set_defaults(handler=_cmd_count)


def load_poses(path: Path, fps: float | None = None) -> tuple[np.ndarray, float]:
    """A pose array and its frame rate (argument, else the .json beside it, else 30)."""
    if not path.is_file():
        raise PoseFileError(f"pose file {path} does not exist")
    try:
        poses = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a bad file
        raise PoseFileError(f"{path}: not a readable .npy array ({exc.__class__.__name__})") from None
    if poses.ndim != 3 or poses.shape[1] != 33 or poses.shape[2] not in (2, 3, 4):
        raise PoseFileError(f"{path}: poses must have shape (frames, 33, 2|3|4), got {poses.shape}")
    if not np.issubdtype(poses.dtype, np.floating):
        raise PoseFileError(f"{path}: poses must be floating point, got {poses.dtype}")
    if fps is None:
        meta = path.with_suffix(".json")
        fps = 30.0
        if meta.is_file():
            try:
                value = float(json.loads(meta.read_text()).get("fps") or 0)
            except (ValueError, AttributeError, TypeError):
                raise PoseFileError(f"{meta}: not a valid pose metadata file (JSON with an fps)") from None
            if value > 0:
                fps = value
    return poses, fps


def _check(args: argparse.Namespace) -> None:
    if args.window < 2:
        raise CadenceError(f"--window must be ≥ 2, got {args.window}")
    if not 1 <= args.stride <= args.window:
        raise CadenceError(f"--stride must be between 1 and --window ({args.window}), got {args.stride}")
    if args.downsample < 1:
        raise CadenceError(f"--downsample must be ≥ 1, got {args.downsample}")
    if args.rest_time <= 0:
        raise CadenceError(f"--rest-time must be > 0, got {args.rest_time}")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise CadenceError(f"--fps must be between 0 and 1000, got {args.fps}")
    if args.threads < 1:
        raise CadenceError(f"--threads must be ≥ 1, got {args.threads}")


def _bar(fraction: float, width: int = 24) -> str:
    done = int(round(max(0.0, min(1.0, fraction)) * width))
    return "[" + "#" * done + "." * (width - done) + f"] {fraction:4.0%}"


def _cmd_count(args: argparse.Namespace) -> int:
    import asyncio

    from ..components import Downsampler, SlidingWindow, from_iterable
    from .counter import HumanBodyActionCounter

    _check(args)
    if args.source.suffix.lower() == ".npy":
        poses, fps = load_poses(args.source, args.fps)
        frames = [None if not np.isfinite(p[:, :2]).any() else p for p in poses]
        total, source = len(frames), from_iterable(frames, rate=fps, segment=args.source.name)
        pose_stages: list[Any] = [Downsampler(args.downsample)] if args.downsample > 1 else []
    else:
        from ..video import read_video
        from .extractor import HumanBodyPoseExtractor, PoseStream
        from .selection import PoseSelector

        video = read_video(args.source, rotate=args.rotate)
        fps, total, source = video.fps, video.frame_count, video
        extractor = HumanBodyPoseExtractor(num_threads=args.threads, fps=fps / args.downsample)
        pose_stages = ([Downsampler(args.downsample)] if args.downsample > 1 else []) + [
            PoseStream(extractor, in_thread=True), PoseSelector()]
    counter = HumanBodyActionCounter(fps=fps / args.downsample, rest_time=args.rest_time)
    stages = pose_stages + [SlidingWindow(args.window, args.stride, emit_partial=True), counter]
    pipeline = stages[0]
    for stage in stages[1:]:
        pipeline = pipeline | stage
    live = sys.stdout.isatty() and not args.json
    state = None

    async def go() -> None:
        nonlocal state
        async for item in pipeline(source):
            state = item.value
            done = min(1.0, (item.timestamp * fps + 1) / total) if total else 0.0
            if args.json:
                print(json.dumps({"time": round(item.timestamp, 3), "progress": round(done, 4), **state.to_dict()}),
                      flush=True)
                continue
            rate = f"{state.rate:5.1f}/min" if state.rate else "    -    "
            line = (f"{_bar(done)}  t={item.timestamp:6.1f}s  count {state.count:6.2f}  set {state.set_number}"
                    f" ({state.set_count:.2f})  rate {rate}")
            print(("\r" + line) if live else line, end="" if live else "\n", flush=True)

    asyncio.run(go())
    final = counter.final_count
    sets = list(state.sets) if state is not None else []
    if state is not None and state.set_number > len(sets):  # the set still open at the end
        sets.append(float(final - sum(sets)))
    if args.json:
        print(json.dumps({"final": True, "count": final, "sets": sets, "source": str(args.source)}))
    else:
        if live:
            print()
        plural = "s" if final != 1 else ""
        detail = f" in {len(sets)} sets ({', '.join(f'{s:g}' for s in sets)})" if len(sets) > 1 else ""
        print(f"{args.source.name}: {final:g} repetition{plural}{detail}")
    return 0
