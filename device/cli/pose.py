"""``cadence pose`` and ``cadence count``: landmarks and repetition counts of a video.

    cadence pose VIDEO [--out poses.npy] [--json] [--rotate 90] [--selector …]
    cadence pose IMAGE [--json] [--max-poses 4]
    cadence count VIDEO_OR_POSES [--json] [--rotate 90] [--fps 30] [--window 90] …

Both run the repetition pipeline's stages (:mod:`device.pose.pipeline`):
``pose`` its pose stage, ``count`` the whole pipeline — a video from the
frames, a ``.npy`` pose array (as written by ``pose --out``) from the poses.
Their pipeline options come from :class:`~device.pose.PoseSettings`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..components import CadenceError, Tap, TemporalFeature, from_iterable
from ..pose.settings import PoseSettings
from .options import add_settings_options, settings_from_options
from .progress import ProgressLine, bar

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _video_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rotate", type=int, default=0, choices=(0, 90, 180, 270),
                        help="video: degrees clockwise to make the picture upright (default: 0)")


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    pose = subparsers.add_parser(
        "pose",
        help="extract body landmarks from a video (or image) with BlazePose",
        description="Extract one person's 33 BlazePose landmarks per video frame "
        "(x, y image-normalised, z, visibility).",
    )
    pose.add_argument("source", type=Path, help=f"video file (as `cadence count` reads) or image ({', '.join(s[1:] for s in IMAGE_SUFFIXES)})")
    pose.add_argument("--out", type=Path, help="write a (frames, 33, 4) .npy (NaN rows: no person) and a .json beside it")
    pose.add_argument("--json", action="store_true", help="print one JSON object per frame (or per image)")
    _video_options(pose)
    add_settings_options(pose, PoseSettings, only=("selector", "threads", "landmark_model"))
    pose.add_argument("--max-poses", type=int, default=1, help="people to look for (default: 1)")
    pose.add_argument("--max-frames", type=int, default=None, help="stop after this many frames (default: all)")
    pose.set_defaults(handler=_cmd_pose)

    count = subparsers.add_parser(
        "count",
        help="count repetitions in a video or a pose array (.npy)",
        description="Count the repetitions of whatever exercise one person does, in a video file "
        "or a (frames, 33, 2|3|4) pose array saved by `cadence pose --out`.",
    )
    count.add_argument("source", type=Path, help="video file or .npy pose array")
    count.add_argument("--json", action="store_true", help="print one JSON object per update")
    _video_options(count)
    count.add_argument("--fps", type=float, default=None,
                       help="pose array: frames per second (default: from the .json beside it, else 30)")
    add_settings_options(count, PoseSettings)
    count.add_argument("--exercise-model", type=Path, default=None, metavar="MODEL",
                       help="an exercise model of `cadence train exercise` (default: the shipped one)")
    count.set_defaults(handler=_cmd_count)


# --------------------------------------------------------------------------- count
def _cmd_count(args: argparse.Namespace) -> int:
    from ..pose.pipeline import counting_pipeline, repetition_pipeline
    from ..pose.posefile import MAX_FPS, frames_of, load_poses

    settings = settings_from_options(PoseSettings, args)
    if args.fps is not None and not 0 < args.fps <= MAX_FPS:
        raise CadenceError(f"--fps must be between 0 and {MAX_FPS:g}, got {args.fps}")
    exercise_model = None
    if args.exercise_model is not None:
        if not settings.recognize_exercise:
            raise CadenceError("--exercise-model needs the exercise recogniser (leave out --no-recognize-exercise)")
        from ..pose.exercise import ExerciseClassifier

        exercise_model = ExerciseClassifier.load(args.exercise_model)
    if args.source.suffix.lower() == ".npy":
        poses, fps = load_poses(args.source, args.fps, mmap=True)
        total, what = len(poses), "poses"
        source: Any = from_iterable(frames_of(poses), rate=fps, segment=args.source.name)
        pipeline = counting_pipeline(settings, fps, exercise_model=exercise_model)
    else:
        from ..video import read_video

        video = read_video(args.source, rotate=args.rotate)
        fps, total, what, source = video.fps, video.frame_count, "frames", video
        pipeline = repetition_pipeline(settings, fps, exercise_model=exercise_model)
    seen = [0]

    def arrived(item: TemporalFeature[Any]) -> None:
        seen[0] += 1

    live = ProgressLine(sys.stdout, quiet=args.json or not sys.stdout.isatty())
    final = None

    async def go() -> None:
        nonlocal final
        async for item in (Tap(arrived) | pipeline)(source):
            state = item.value
            if state.final:
                final = state
                continue
            done = min(1.0, (item.timestamp * fps + 1) / total) if total else 0.0
            if args.json:
                print(json.dumps({"time": round(item.timestamp, 3), "progress": round(done, 4), **state.to_dict()}),
                      flush=True)
                continue
            rate = f"{state.rate:5.1f}/min" if state.rate else "    -    "
            text = (f"t={item.timestamp:6.1f}s  count {state.count:6.2f}  set {state.set_number}"
                    f" ({state.set_count:.2f})  rate {rate}" + (f"  {state.exercise}" if state.exercise else ""))
            if live.tty:
                live.show(done, text)
            else:
                print(f"{bar(done)}  {text}", flush=True)

    asyncio.run(go())
    live.close()
    _warn_if_short(args.source, seen[0], total, what)
    count = final.count if final is not None else 0.0
    sets = list(final.sets) if final is not None else []
    exercises = list(final.set_exercises) if final is not None else []
    if args.json:
        print(json.dumps({"final": True, "count": count, "sets": sets, "set_exercises": exercises,
                          "exercise": _exercise_of(final), "source": str(args.source)}))
    else:
        plural = "s" if count != 1 else ""
        if len(sets) > 1:
            named = [f"{s:g}" + (f" {e}" if e else "") for s, e in zip(sets, exercises + [None] * len(sets))]
            detail = f" in {len(sets)} sets ({', '.join(named)})"
        else:
            exercise = _exercise_of(final)
            detail = f" ({exercise})" if exercise else ""
        print(f"{args.source.name}: {count:g} repetition{plural}{detail}")
    return 0


def _exercise_of(final: Any) -> str | None:
    """The exercise of a one-set clip (or the last one recognised when nothing was counted)."""
    if final is None or final.exercise is None:
        return None
    named = [e for e in final.set_exercises if e]
    return named[-1] if named else final.exercise


def _warn_if_short(source: Path, seen: int, total: int, what: str) -> None:
    """A file that ends well before its header says is reported, not silently counted short."""
    if total and seen < 0.98 * total - 1:
        print(f"cadence: warning: {source.name} ended early: analysed {seen} of {total} {what} "
              f"({seen / total:.0%}); the file may be truncated", file=sys.stderr)


# --------------------------------------------------------------------------- pose
def _cmd_pose(args: argparse.Namespace) -> int:
    settings = settings_from_options(PoseSettings, args)
    if args.max_poses < 1:
        raise CadenceError(f"--max-poses must be ≥ 1, got {args.max_poses}")
    if args.max_frames is not None and args.max_frames < 1:
        raise CadenceError(f"--max-frames must be ≥ 1, got {args.max_frames}")
    if args.source.suffix.lower() in IMAGE_SUFFIXES:
        return _image(args, settings)
    from ..pose.landmarks import empty_landmarks
    from ..pose.posestage import make_extractor, pose_stage
    from ..pose.posefile import PoseWriter
    from ..video import read_video

    video = read_video(args.source, rotate=args.rotate, max_frames=args.max_frames)
    extractor = make_extractor(settings, video.fps, max_poses=args.max_poses)
    total = min(video.frame_count, args.max_frames or video.frame_count)
    writer = PoseWriter(args.out) if args.out is not None else None
    progress = ProgressLine(sys.stderr, quiet=args.json)
    stamps: list[float] = []
    found = 0

    async def go() -> None:
        nonlocal found
        async for item in pose_stage(settings, extractor)(video):
            pose = item.value
            index = len(stamps)
            stamps.append(round(item.timestamp, 6))
            found += pose is not None
            if writer is not None:
                writer.append(pose.landmarks if pose is not None else empty_landmarks())
            if args.json:
                print(json.dumps({"frame": index, "timestamp": round(item.timestamp, 4),
                                  "pose": pose.to_dict() if pose is not None else None}))
            elif total:
                progress.show((index + 1) / total, f"frame {index + 1}/{total}, person on {found}")

    t0 = time.perf_counter()
    try:
        asyncio.run(go())
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    elapsed = time.perf_counter() - t0
    progress.close()
    n = len(stamps)
    if writer is not None:
        writer.close({
            "source": str(args.source), "rotate": args.rotate, "fps": video.fps, "size": list(video.size),
            "frames": n, "frames_with_pose": found, "timestamps": stamps,
        })
    _warn_if_short(args.source, n, total, "frames")
    stats = extractor.stats
    print(
        f"{args.source.name}: {n} frames ({video.size[0]}x{video.size[1]}, {video.fps:.2f} fps), "
        f"person found on {found} ({found / max(n, 1):.1%}), "
        f"{n / max(elapsed, 1e-9):.1f} frames/s, detector ran on {stats.detector_calls}"
        + (f"; wrote {writer.path}" if writer is not None else ""),
        file=sys.stderr if args.json else sys.stdout,
    )
    return 0


def _image(args: argparse.Namespace, settings: PoseSettings) -> int:
    import cv2

    from ..pose.landmarks import empty_landmarks
    from ..pose.posefile import save_poses
    from ..pose.posestage import make_extractor
    from ..pose.selection import PoseSelector
    from ..video.errors import VideoFileError

    if not args.source.is_file():
        raise VideoFileError(f"image file {args.source} does not exist")
    image = cv2.imread(str(args.source), cv2.IMREAD_COLOR)
    if image is None:
        raise VideoFileError(f"{args.source}: cannot decode as an image")
    if args.rotate:
        from ..video.file import orient

        image = orient(image, args.rotate, None)
    extractor = make_extractor(settings, 30.0, max_poses=args.max_poses, tracking=False)
    poses = extractor(image)
    if args.out is not None:
        pose = PoseSelector(settings.selector)(poses)
        save_poses(args.out, (pose.landmarks if pose is not None else empty_landmarks())[None], {
            "source": str(args.source), "rotate": args.rotate, "fps": 0.0, "size": [image.shape[1], image.shape[0]],
            "frames": 1, "frames_with_pose": int(pose is not None), "timestamps": [0.0],
        })
    if args.json:
        print(json.dumps({"image": str(args.source), "poses": [p.to_dict() for p in poses]}))
    else:
        print(f"{args.source.name}: {len(poses)} person(s) found")
        for i, pose in enumerate(poses):
            x0, y0, x1, y1 = pose.bbox
            print(f"  #{i}: score {pose.score:.2f}, box ({x0:.3f}, {y0:.3f})–({x1:.3f}, {y1:.3f})")
    return 0

