"""``cadence classify FILE`` and ``cadence evaluate sound DIR``.

classify: windows and debounced events of one audio file with a trained sound
model. evaluate sound: clip-level accuracy, per-class precision/recall/F1 and
the confusion matrix over a folder laid out as ``DIR/<label>/*.{wav,flac,ogg}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..components import CadenceError, ClassificationMetrics, TemporalFeature, collect

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")


def _feature_print(args: argparse.Namespace) -> Any:
    from .featureprint import AudioFeaturePrint

    options = {}
    if getattr(args, "window", None) is not None:
        options["window_duration"] = args.window
    if getattr(args, "overlap", None) is not None:
        options["overlap_factor"] = args.overlap
    try:
        return AudioFeaturePrint(**options)
    except ValueError as exc:
        raise CadenceError(str(exc)) from exc


def _load_model(path: str, feature_print: Any) -> Any:
    try:
        from ..learn.classifiers import load_classifier
    except ImportError as exc:  # the learn area is not installed
        raise CadenceError(f"sound classifiers are not available ({exc})") from exc
    if not Path(path).exists():
        raise CadenceError(f"{path}: no such model file")
    return load_classifier(path, feature_print=feature_print)


def _add_detector_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window", type=float, default=None, help="seconds of audio per window (default 3)")
    parser.add_argument("--overlap", type=float, default=None, help="overlap of successive windows, 0 ≤ f < 1 (default 0.5)")
    parser.add_argument("--threshold", type=float, default=0.5, help="minimum smoothed probability for an event")
    parser.add_argument("--min-volume-db", type=float, default=-70.0, help="windows quieter than this (dBFS) are not classified")
    parser.add_argument("--smoothing", type=int, default=2, help="windows averaged per decision")
    parser.add_argument("--min-duration", type=float, default=0.0, help="shortest event reported (s)")
    parser.add_argument("--cooldown", type=float, default=2.0, help="seconds before the same label is reported again")
    parser.add_argument("--allow", default=None, help="comma-separated labels to report (default: all)")


def _cmd_classify(args: argparse.Namespace) -> int:
    from .events import SoundEventDetector, WindowPrediction
    from .sources import SAMPLE_RATE, audio_info, load_audio, read_audio

    fp = _feature_print(args)
    model = _load_model(args.model, fp)
    path = Path(args.file)
    native_rate, duration = audio_info(path)
    try:
        detector = SoundEventDetector(
            model,
            default_threshold=args.threshold,
            min_volume_db=args.min_volume_db,
            smoothing=args.smoothing,
            min_duration=args.min_duration,
            cooldown=args.cooldown,
            allow=None if args.allow is None else [a.strip() for a in args.allow.split(",") if a.strip()],
            window_duration=fp.window_duration,
        )
    except ValueError as exc:
        raise CadenceError(str(exc)) from exc

    async def go() -> tuple[list[TemporalFeature[WindowPrediction]], list[Any]]:
        windows = await collect(detector.predictions(fp(read_audio(path))))

        async def replay() -> Any:
            for w in windows:
                yield w

        events = await collect(detector.events(replay()))
        return windows, events

    windows, events = asyncio.run(go())
    samples = load_audio(path)
    clip = model(fp.feature(samples))
    clip_label = max(clip, key=clip.__getitem__)
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(path),
                    "duration": round(len(samples) / SAMPLE_RATE, 3),
                    "native_rate": native_rate,
                    "model": str(args.model),
                    "labels": list(model.labels),
                    "windows": [w.value.to_dict() for w in windows],
                    "events": [e.value.to_dict() for e in events],
                    "clip": {
                        "label": clip_label,
                        "confidence": round(clip[clip_label], 4),
                        "probabilities": {k: round(v, 4) for k, v in clip.items()},
                    },
                }
            )
        )
        return 0
    print(f"{path}  {duration:.2f} s at {native_rate} Hz  model {args.model} ({len(model.labels)} labels)")
    print(f"windows of {fp.window_duration:g} s every {fp.hop_duration:g} s:")
    for w in windows:
        p = w.value
        level = f"{p.rms_db:6.1f} dB" if np.isfinite(p.rms_db) else "  silent"
        if p.probabilities is None:
            print(f"  {p.start:7.2f}–{p.end:7.2f} s  {level}  (below {args.min_volume_db:g} dB: not classified)")
        else:
            print(f"  {p.start:7.2f}–{p.end:7.2f} s  {level}  {p.label:<20s} {p.confidence:.3f}")
    if events:
        print("events:")
        for e in events:
            ev = e.value
            print(f"  {ev.label:<20s} {ev.confidence:.3f}  {ev.start:7.2f}–{ev.end:7.2f} s")
    else:
        print("events: none")
    print(f"whole clip: {clip_label} ({clip[clip_label]:.3f})")
    return 0


def labelled_clips(root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """(path, label) pairs of ``root/<label>/*.<audio>`` and the problems found."""
    if not root.is_dir():
        raise CadenceError(f"{root}: not a folder (expected DIR/<label>/*.wav|flac|ogg)")
    clips, problems = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES:
                clips.append((f, folder.name))
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
    if loose:
        problems.append(f"{len(loose)} audio files directly in {root} (not in a label folder) were skipped")
    if not clips:
        raise CadenceError(f"{root}: no audio clips found (expected DIR/<label>/*.wav|flac|ogg)")
    return clips, problems


def evaluate_folder(root: Path, model: Any, feature_print: Any) -> tuple[ClassificationMetrics, list[str]]:
    """Clip-level metrics of ``model`` over ``root/<label>/*`` (unreadable clips skipped)."""
    from .sources import AudioFileError, load_audio

    clips, problems = labelled_clips(root)
    features, truth = [], []
    for path, label in clips:
        try:
            samples = load_audio(path)
        except AudioFileError as exc:
            problems.append(f"skipped: {exc}")
            continue
        features.append(feature_print.transform_clip(samples))
        truth.append(label)
    metrics = ClassificationMetrics(list(model.labels))
    if features:
        predicted = model.predict([(f, feature_print.scales) for f in features])
        metrics.update(truth, predicted)
    return metrics, problems


def _cmd_evaluate_sound(args: argparse.Namespace) -> int:
    fp = _feature_print(args)
    model = _load_model(args.model, fp)
    metrics, problems = evaluate_folder(Path(args.dir), model, fp)
    for problem in problems:
        print(f"cadence: warning: {problem}", file=sys.stderr)
    if metrics.count == 0:
        raise CadenceError(f"{args.dir}: no readable clips to evaluate")
    if args.json:
        result = metrics.to_dict()
        result["skipped"] = problems
        result["model"] = str(args.model)
        print(json.dumps(result))
    else:
        print(f"{args.dir}: {metrics.count} clips, model {args.model}")
        print(metrics.format_table())
        if metrics.unknown_count:
            print(f"{metrics.unknown_count} clips had labels the model does not know (counted as {metrics.labels[-1]})")
    return 0


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    classify = subparsers.add_parser("classify", help="classify the sounds in an audio file (windows and events)")
    classify.add_argument("file", help="audio file (WAV, FLAC, OGG, MP3)")
    classify.add_argument("--model", required=True, help="trained sound model (from cadence train sound)")
    classify.add_argument("--json", action="store_true", help="one JSON object with windows, events and the clip")
    _add_detector_options(classify)
    classify.set_defaults(handler=_cmd_classify)

    evaluate_sub = groups.get("evaluate")
    if evaluate_sub is None:
        evaluate = subparsers.add_parser("evaluate", help="measure a trained model on labelled data")
        evaluate_sub = evaluate.add_subparsers(dest="evaluate_command", metavar="WHAT")
        evaluate.set_defaults(handler=lambda a: (evaluate.print_help(), 2)[1])
        groups["evaluate"] = evaluate_sub
    sound = evaluate_sub.add_parser("sound", help="clip-level accuracy of a sound model on DIR/<label>/*")
    sound.add_argument("dir", metavar="DIR", help="folder with one sub-folder of clips per label")
    sound.add_argument("--model", required=True, help="trained sound model")
    sound.add_argument("--json", action="store_true", help="one JSON object: accuracy, per_class, confusion, …")
    sound.set_defaults(handler=_cmd_evaluate_sound)
