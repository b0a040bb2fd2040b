"""``cadence pose``: extract one person's landmarks per frame of a video.

    cadence pose VIDEO [--out poses.npy] [--json] [--rotate 90] [--selector …]
    cadence pose IMAGE [--json] [--max-poses 4]

For a video, ``--out`` writes a ``(frames, 33, 4)`` float32 array (x, y, z,
visibility; a NaN row where nobody was found) and beside it ``poses.json``
with the frame rate, timestamps and source, which the repetition counter and
training tools read back. ``--json`` prints one JSON object per frame.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    from .selection import STRATEGIES

    parser = subparsers.add_parser(
        "pose",
        help="extract body landmarks from a video (or image) with BlazePose",
        description="Extract one person's 33 BlazePose landmarks per video frame "
        "(x, y image-normalised, z, visibility).",
    )
    parser.add_argument("source", type=Path, help="video file (mp4, avi, mkv, webm, mov) or image")
    parser.add_argument("--out", type=Path, help="write a (frames, 33, 4) .npy (NaN rows: no person) and a .json beside it")
    parser.add_argument("--json", action="store_true", help="print one JSON object per frame (or per image)")
    parser.add_argument("--rotate", type=int, default=0, choices=(0, 90, 180, 270), help="degrees clockwise")
    parser.add_argument("--selector", default="maximum_bounding_box_area", choices=STRATEGIES,
                        help="which person to keep when several are found")
    parser.add_argument("--max-poses", type=int, default=1, help="people to look for (default 1)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads")
    parser.set_defaults(handler=_cmd_pose)


def _save(out: Path, landmarks: np.ndarray, meta: dict[str, Any]) -> None:
    from ..components.persistence import atomic_write, atomic_write_json

    if out.suffix != ".npy":
        out = out.with_suffix(out.suffix + ".npy") if out.suffix else out.with_suffix(".npy")
    buffer = io.BytesIO()
    np.save(buffer, landmarks.astype(np.float32), allow_pickle=False)
    atomic_write(out, buffer.getvalue())
    atomic_write_json(out.with_suffix(".json"), meta)


def _cmd_pose(args: argparse.Namespace) -> int:
    from ..components.errors import CadenceError
    from .extractor import HumanBodyPoseExtractor
    from .landmarks import empty_landmarks
    from .selection import PoseSelector

    if args.max_poses < 1:
        raise CadenceError(f"--max-poses must be ≥ 1, got {args.max_poses}")
    if args.threads < 1:
        raise CadenceError(f"--threads must be ≥ 1, got {args.threads}")
    selector = PoseSelector(args.selector)
    if args.source.suffix.lower() in IMAGE_SUFFIXES:
        return _image(args, selector)

    from ..video import read_video

    video = read_video(args.source, rotate=args.rotate, max_frames=args.max_frames, in_thread=False)
    extractor = HumanBodyPoseExtractor(max_poses=args.max_poses, num_threads=args.threads, fps=video.fps)
    rows, stamps = [], []
    started = time.perf_counter()
    for index, item in enumerate(video.frames()):
        pose = selector(extractor.process(item.value, item.timestamp))
        rows.append(pose.landmarks if pose is not None else empty_landmarks())
        stamps.append(round(item.timestamp, 6))
        if args.json:
            print(json.dumps({"frame": index, "timestamp": round(item.timestamp, 4),
                              "pose": pose.to_dict() if pose is not None else None}))
    elapsed = time.perf_counter() - started
    landmarks = np.stack(rows) if rows else np.zeros((0, 33, 4), dtype=np.float32)
    found = int((~np.isnan(landmarks[:, 0, 0])).sum()) if len(rows) else 0
    if args.out is not None:
        _save(args.out, landmarks, {
            "format": "cadence-poses", "version": 1, "source": str(args.source), "rotate": args.rotate,
            "fps": video.fps, "size": list(video.size), "frames": len(rows), "frames_with_pose": found,
            "timestamps": stamps, "columns": ["x", "y", "z", "visibility"],
        })
    stats = extractor.stats
    print(
        f"{args.source.name}: {len(rows)} frames ({video.size[0]}x{video.size[1]}, {video.fps:.2f} fps), "
        f"person found on {found} ({found / max(len(rows), 1):.1%}), "
        f"{len(rows) / max(elapsed, 1e-9):.1f} frames/s, detector ran on {stats.detector_calls}"
        + (f"; wrote {args.out}" if args.out is not None else ""),
        file=sys.stderr if args.json else sys.stdout,
    )
    return 0


def _image(args: argparse.Namespace, selector: Any) -> int:
    import cv2

    from ..video.errors import VideoFileError
    from .extractor import HumanBodyPoseExtractor

    if not args.source.is_file():
        raise VideoFileError(f"image file {args.source} does not exist")
    image = cv2.imread(str(args.source), cv2.IMREAD_COLOR)
    if image is None:
        raise VideoFileError(f"{args.source}: cannot decode as an image")
    if args.rotate:
        from ..video.file import orient

        image = orient(image, args.rotate, None)
    extractor = HumanBodyPoseExtractor(max_poses=args.max_poses, tracking=False, num_threads=args.threads)
    poses = extractor(image)
    if args.out is not None:
        from .landmarks import empty_landmarks

        pose = selector(poses)
        _save(args.out, (pose.landmarks if pose is not None else empty_landmarks())[None], {
            "format": "cadence-poses", "version": 1, "source": str(args.source), "rotate": args.rotate,
            "fps": 0.0, "size": [image.shape[1], image.shape[0]], "frames": 1,
            "frames_with_pose": int(pose is not None), "timestamps": [0.0], "columns": ["x", "y", "z", "visibility"],
        })
    if args.json:
        print(json.dumps({"image": str(args.source), "poses": [p.to_dict() for p in poses]}))
    else:
        print(f"{args.source.name}: {len(poses)} person(s) found")
        for i, pose in enumerate(poses):
            x0, y0, x1, y1 = pose.bbox
            print(f"  #{i}: score {pose.score:.2f}, box ({x0:.3f}, {y0:.3f})–({x1:.3f}, {y1:.3f})")
    return 0
