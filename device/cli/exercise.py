"""``cadence train exercise`` and ``cadence record exercise``: teach the device an exercise.

    cadence record exercise LABEL [--seconds 30] [--count 3] [--camera SOURCE]
    cadence train exercise DATA_DIR --out MODEL     (DATA_DIR/<label>/*.npy|*.mp4 …)

Recording runs the camera through the repetition pipeline's own pose stage
and keeps the poses (a ``.npy`` pose array per recording, as ``cadence pose
--out`` writes them), not the pictures. Training is the sound trainer's
machinery over the exercise featurizer (:class:`~device.pose.ExerciseFeatures`):
the windows of each recording are extracted once into the feature cache, then
the classifier is fitted with early stopping and checkpoints and published
with its earlier versions kept for rollback.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any, TextIO

from ..components import CadenceError
from .learn import add_training_options, check_label, label_folder, run_train
from .options import add_state_dir_option, state_dir

EXERCISE_DATA = "exercise-data"  # under the state dir, beside the sound's training-data: what `retrain exercise` reads


def run_train_exercise(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """Train on the owner's recordings plus (unless ``--without-shipped``) the shipped exercises' windows."""
    from ..learn.dataset import SHIPPED_RECORDING, Clip, DatasetError, load_dataset, scan_folder
    from ..pose.exercise_base import shipped_windows_files
    from ..pose.exercise_features import ExerciseFeatures

    features = ExerciseFeatures()
    if args.without_shipped:
        data = load_dataset(args.data, features.suffixes)
        for label in {clip.label for clip in data.clips}:
            check_exercise_label(label)
        return run_train(args, feature_print=features, out=out, data=data)
    data = scan_folder(args.data, features.suffixes)
    if not data.clips:
        raise DatasetError(f"{args.data}: no recordings found (expected <label>/*{'|'.join(features.suffixes)})")
    for label in {clip.label for clip in data.clips}:
        check_exercise_label(label)
    for label, path in shipped_windows_files(state_dir(args), features).items():
        data.clips.append(Clip(path, label, f"{SHIPPED_RECORDING}{label}"))  # one recording each: it stays in training
    return run_train(args, feature_print=features, out=out, data=data)


def check_exercise_label(text: str) -> str:
    """An exercise's name: a label (:func:`check_label`) other than the recogniser's own answer
    ``none`` (nobody exercising), which no set, sensor or day total ever names."""
    from ..learn.labels import label_key
    from ..pose.exercise import NONE

    label = check_label(text)
    if label_key(label) == NONE:
        raise CadenceError(f"label {label!r} is the recogniser's answer when nobody exercises, so that exercise "
                           "would never be named; give it another name")
    return label


def run_record_exercise(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """Record ``--count`` recordings of ``--seconds`` of poses from the camera into DATA/LABEL/."""
    from ..pose.landmarks import empty_landmarks
    from ..pose.posefile import PoseWriter
    from ..pose.posestage import make_extractor, pose_stage
    from ..pose.settings import PoseSettings
    from ..video import read_camera

    out = out or sys.stdout
    label = check_exercise_label(args.label)
    if not 3 <= args.seconds <= 600:
        raise CadenceError(f"--seconds must be between 3 and 600, got {args.seconds}")
    if args.count < 1:
        raise CadenceError(f"--count must be at least 1, got {args.count}")
    data_dir = Path(args.data) if args.data else state_dir(args) / EXERCISE_DATA
    source = int(args.camera) if str(args.camera).isdigit() else args.camera
    settings = PoseSettings()
    folder = data_dir / label
    probe = read_camera(source)  # a camera that cannot be opened is said now, not after the countdown
    grabber = getattr(probe, "grabber", None)  # (a video file opened already)
    if grabber is not None:
        grabber.open()
        grabber.close()
    made = not folder.exists()
    label_folder(data_dir, label)
    session = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    extractor = None

    async def record_one(path: Path) -> tuple[int, int, float]:
        nonlocal extractor
        camera = read_camera(source)
        fps = float(getattr(camera, "fps", None) or 30.0)
        if extractor is None:
            extractor = make_extractor(settings, fps)
        extractor.reset()
        writer = PoseWriter(path)
        frames = found = 0
        first: float | None = None
        try:
            async for item in pose_stage(settings, extractor)(camera):
                first = item.timestamp if first is None else first
                pose = item.value
                writer.append(pose.landmarks if pose is not None else empty_landmarks())
                frames += 1
                found += pose is not None
                if item.timestamp - first >= args.seconds:
                    break
        except BaseException:
            writer.discard()
            raise
        if frames == 0:
            writer.discard()
            raise CadenceError(f"the camera {args.camera!r} delivered no frames")
        writer.close({"source": f"camera {args.camera}", "fps": fps, "frames": frames, "frames_with_pose": found,
                      "label": label})
        return frames, found, fps

    for i in range(1, args.count + 1):
        for n in range(args.countdown, 0, -1):
            print(f"recording {i}/{args.count} '{label}': starting in {n}…", file=out, flush=True)
            asyncio.run(asyncio.sleep(1))
        print(f"recording {i}/{args.count}: {args.seconds:g} s — do about ten repetitions now", file=out, flush=True)
        path = folder / f"{label}_{session}_{i}.npy"
        try:
            frames, found, fps = asyncio.run(record_one(path))
        except BaseException:
            if made and not any(folder.iterdir()):
                folder.rmdir()  # no empty label folder left behind by a failed first recording
            raise
        note = "" if found >= 0.5 * frames else " — you were out of view most of the time: record it again"
        print(f"saved {path} ({frames} frames at {fps:.0f} fps, a person on {found}){note}", file=out, flush=True)
    print(f"{args.count} recording(s) in {folder}; teach them with: cadence train exercise {data_dir} --out MODEL "
          f"(or `cadence retrain exercise` on an installed device)", file=out)
    return 0


def exercise_training_config() -> Any:
    """The trainer's defaults for exercises: the shipped model's network (a small one, light
    dropout), no augmented copies (poses are not augmented)."""
    from ..learn.config import TrainingConfig
    from ..pose.exercise import NETWORK

    return TrainingConfig(classifier="network", hidden_unit_counts=(NETWORK["hidden"],), max_epochs=NETWORK["epochs"],
                          dropout=NETWORK["dropout"], network_l2=NETWORK["l2"], augment_copies=0)


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    train = groups["train"].add_parser(
        "exercise",
        help="train an exercise classifier from DATA_DIR/<label>/ videos or .npy pose arrays",
        description="Extract the pose windows of every recording once (cached; videos go through the pose "
        "pipeline), train with early stopping and checkpoints, write the model atomically (previous version "
        "kept for rollback) with a JSON report and a PNG curve.",
    )
    add_training_options(train, examples="recordings", defaults=exercise_training_config())
    train.add_argument("--without-shipped", action="store_true",
                       help="train on DATA_DIR alone (default: DATA_DIR's exercises added to the shipped ones)")
    train.set_defaults(handler=run_train_exercise)

    record = groups["record"].add_parser(
        "exercise", help="record an exercise from the camera (poses only, not pictures)",
        description="Record COUNT recordings of SECONDS each from the camera into DATA_DIR/LABEL/ as pose arrays: "
        "three recordings of about ten repetitions are enough to teach a new exercise.")
    record.add_argument("label", metavar="LABEL", help="the exercise's name (a folder name)")
    record.add_argument("--seconds", type=float, default=30.0, help="length of each recording, 3–600 (default: 30)")
    record.add_argument("--count", type=int, default=3, help="recordings one after another (default: 3)")
    record.add_argument("--camera", default="0", help="camera index, device, stream URL or a video file (default: 0)")
    record.add_argument("--data", metavar="DATA_DIR",
                        help=f"data folder (default: <state dir>/{EXERCISE_DATA})")
    record.add_argument("--countdown", type=int, default=3, help=argparse.SUPPRESS)
    add_state_dir_option(record)
    record.set_defaults(handler=run_record_exercise)
