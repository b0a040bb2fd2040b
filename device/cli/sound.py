"""``cadence classify FILE`` and ``cadence evaluate sound DIR``.

Both run the sound pipeline (:func:`device.audio.pipeline.sound_pipeline`)
over the file as a stream — the windows and events the daemon would report,
in memory bounded by a window whatever the file's length. ``classify``
prints every window, the events and the clip's label (the highest mean
window probability); ``evaluate sound`` measures that clip label over a
folder ``DIR/<label>/*`` and how often clips fire events. Options come from
:class:`~device.audio.settings.SoundSettings`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.settings import SoundSettings
from ..components import CadenceError, ClassificationMetrics, ModelSlot, TemporalFeature
from .options import add_settings_options, settings_from_options
from .progress import ProgressLine

BACKGROUND = "background"
SILENT = "<silent>"  # a clip whose every window was below the volume gate


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    classify = subparsers.add_parser("classify", help="classify the sounds in an audio file (windows and events)")
    classify.add_argument("file", help="audio file (WAV, FLAC, OGG, MP3)")
    classify.add_argument("--model", required=True, help="trained sound model (from cadence train sound)")
    classify.add_argument("--json", action="store_true", help="one JSON object with windows, events and the clip")
    _detector_options(classify)
    classify.set_defaults(handler=_cmd_classify)

    evaluate_sub = groups.get("evaluate")
    if evaluate_sub is None:
        evaluate = subparsers.add_parser("evaluate", help="measure a trained model on labelled data")
        evaluate_sub = evaluate.add_subparsers(dest="evaluate_command", metavar="WHAT")
        evaluate.set_defaults(handler=lambda a: (evaluate.print_help(), 2)[1])
        groups["evaluate"] = evaluate_sub
    sound = evaluate_sub.add_parser(
        "sound",
        help="clip accuracy and events of a sound model on DIR/<label>/*",
        description="Run the sound pipeline over every clip of DIR/<label>/*: the clip's label (highest mean "
        "window probability) against its folder, and whether it fired events. Folders of labels the model "
        "was not taught are sounds that should stay silent.",
    )
    sound.add_argument("dir", metavar="DIR", help="folder with one sub-folder of clips per label")
    sound.add_argument("--model", required=True, help="trained sound model")
    sound.add_argument("--json", action="store_true", help="one JSON object: accuracy, per_class, confusion, events, …")
    _detector_options(sound)
    sound.set_defaults(handler=_cmd_evaluate_sound)


def _detector_options(parser: argparse.ArgumentParser) -> None:
    add_settings_options(parser, SoundSettings)
    parser.add_argument("--allow", default=None, help="comma-separated labels to report (default: all)")


def _settings(args: argparse.Namespace) -> SoundSettings:
    fixed: dict[str, Any] = {}
    if args.allow is not None:
        fixed["allow"] = [a.strip() for a in args.allow.split(",") if a.strip()]
    return settings_from_options(SoundSettings, args, **fixed)


def _prepare(args: argparse.Namespace) -> tuple[SoundSettings, Any, Any]:
    """Settings, feature print and model (refusing one made for another feature print)."""
    from ..audio.pipeline import make_feature_print
    from ..learn import load_classifier

    settings = _settings(args)
    fp = make_feature_print(settings)
    if not Path(args.model).exists():
        raise CadenceError(f"{args.model}: no such model file")
    return settings, fp, load_classifier(args.model, feature_print=fp)


async def _run_clip(path: Path, settings: SoundSettings, fp: Any, model: Any, on_window: Any) -> tuple[list[Any], float, str | None]:
    """(events, seconds analysed, problem) of one file through the sound pipeline."""
    from ..audio.pipeline import sound_pipeline
    from ..audio.sources import SAMPLE_RATE, AudioFileError, read_audio

    pipeline = sound_pipeline(settings, ModelSlot(model), feature_print=fp, on_window=on_window)
    events: list[Any] = []
    analysed = [0.0]

    async def chunks() -> Any:
        async for item in read_audio(path):
            analysed[0] = item.timestamp + len(item.value) / SAMPLE_RATE
            yield item

    try:
        async for item in pipeline(chunks()):
            events.append(item.value)
    except AudioFileError as exc:
        if analysed[0] == 0.0:
            raise
        return events, analysed[0], str(exc)
    return events, analysed[0], None


def _cmd_classify(args: argparse.Namespace) -> int:
    from ..audio.pipeline import ClipSummary
    from ..audio.sources import audio_info

    settings, fp, model = _prepare(args)
    path = Path(args.file)
    native_rate, duration = audio_info(path)
    summary = ClipSummary()
    windows: list[dict[str, Any]] = []
    if not args.json:
        print(f"{path}  {duration:.2f} s at {native_rate} Hz  model {args.model} ({len(model.labels)} labels)")
        print(f"windows of {settings.window:g} s every {settings.hop:g} s:")

    def on_window(item: TemporalFeature[Any]) -> None:
        summary.add(item)
        p = item.value
        if args.json:
            windows.append(p.to_dict())
            return
        level = f"{p.rms_db:6.1f} dB" if np.isfinite(p.rms_db) else "  silent"
        if p.probabilities is None:
            print(f"  {p.start:7.2f}–{p.end:7.2f} s  {level}  (below {settings.min_volume_db:g} dB: not classified)")
        else:
            print(f"  {p.start:7.2f}–{p.end:7.2f} s  {level}  {p.label:<20s} {p.confidence:.3f}", flush=True)

    events, analysed, problem = asyncio.run(_run_clip(path, settings, fp, model, on_window))
    short = _short_note(path, analysed, duration, problem)
    clip = _clip_result(summary, settings)
    if args.json:
        print(json.dumps({
            "file": str(path), "duration": round(duration, 3), "analysed": round(analysed, 3),
            "native_rate": native_rate, "model": str(args.model), "labels": list(model.labels),
            "windows": windows, "events": [e.to_dict() for e in events], "clip": clip,
            "warnings": [short] if short else [],
        }))
    else:
        if not summary.windows:
            print("  (none)")
        if events:
            print("events:")
            for ev in events:
                print(f"  {ev.label:<20s} {ev.confidence:.3f}  {ev.start:7.2f}–{ev.end:7.2f} s")
        else:
            print("events: none")
        print(f"whole clip: {clip['label']} ({clip['confidence']:.3f})" if clip["label"] else f"whole clip: {clip['note']}")
    if short:
        print(f"cadence: warning: {short}", file=sys.stderr)
    return 0


def _clip_result(summary: Any, settings: SoundSettings) -> dict[str, Any]:
    clip = summary.result()
    probs = clip.probabilities if clip.label is not None else None
    if probs is None:
        note = (f"too short: no {settings.window:g} s window (at least 0.5 s of audio is needed)" if not summary.windows
                else f"silent: every window was below {settings.min_volume_db:g} dBFS")
        return {"label": None, "confidence": 0.0, "probabilities": None, "note": note}
    label = clip.label
    return {"label": label, "confidence": round(probs[label], 4), "probabilities": {k: round(v, 4) for k, v in probs.items()},
            "windows": summary.classified}


def _short_note(path: Path, analysed: float, duration: float, problem: str | None) -> str | None:
    """Say when a file ended before its header said, or broke off: what was analysed."""
    if problem:
        return f"{path.name}: {problem}; analysed the first {analysed:.1f} s of {duration:.1f} s"
    if duration > 0 and analysed < duration - max(0.5, 0.02 * duration):
        return f"{path.name} ended early: analysed {analysed:.1f} s of the {duration:.1f} s its header announces"
    return None


# --------------------------------------------------------------------------- evaluate
def _cmd_evaluate_sound(args: argparse.Namespace) -> int:
    from ..audio.pipeline import ClipSummary
    from ..audio.sources import AudioFileError
    from ..learn.dataset import scan_folder

    settings, fp, model = _prepare(args)
    data = scan_folder(args.dir)
    if not data.clips:
        raise CadenceError(f"{args.dir}: no audio clips found (expected DIR/<label>/*.wav|flac|ogg|mp3)")
    taught = set(model.labels)
    metrics = ClassificationMetrics(list(model.labels))
    problems = list(data.problems)
    fired: dict[str, list[int]] = {}  # folder label -> [clips, clips with an event]
    fired_own: dict[str, list[int]] = {}  # taught label -> [clips, clips whose event was their own label]
    untaught: dict[str, dict[str, int]] = {}
    hours_background = 0.0
    background_events = 0
    progress = ProgressLine(sys.stderr, quiet=args.json)
    for i, clip in enumerate(data.clips):
        progress.show(i / len(data.clips), f"clip {i + 1}/{len(data.clips)}: {clip.label}/{clip.path.name}")
        summary = ClipSummary()
        try:
            events, analysed, problem = asyncio.run(_run_clip(clip.path, settings, fp, model, summary.add))
        except AudioFileError as exc:
            problems.append(f"skipped: {exc}")
            continue
        if problem:
            problems.append(problem)
        labels = {e.label for e in events}
        counts = fired.setdefault(clip.label, [0, 0])
        counts[0] += 1
        counts[1] += bool(events)
        if clip.label == BACKGROUND:
            hours_background += analysed / 3600
            background_events += len(events)
        if clip.label not in taught:
            stats = untaught.setdefault(clip.label, {"clips": 0, "silent": 0})
            stats["clips"] += 1
            stats["silent"] += not events
            continue
        if clip.label != BACKGROUND:
            own = fired_own.setdefault(clip.label, [0, 0])
            own[0] += 1
            own[1] += clip.label in labels
        predicted = summary.result().label
        metrics.add(clip.label, predicted if predicted is not None else SILENT)
    progress.show(1.0, f"{len(data.clips)} clips", force=True)
    progress.close()
    for problem in problems:
        print(f"cadence: warning: {problem}", file=sys.stderr)
    if metrics.count == 0 and not untaught:
        raise CadenceError(f"{args.dir}: no readable clips to evaluate")
    events_summary = _events_summary(fired, fired_own, untaught, hours_background, background_events)
    if args.json:
        result = metrics.to_dict() if metrics.count else {"count": 0}
        result.update(skipped=problems, model=str(args.model), events=events_summary)
        print(json.dumps(result))
        return 0
    print(f"{args.dir}: {metrics.count} clips of taught labels, model {args.model}")
    if metrics.count:
        print(metrics.format_table())
    for line in _events_lines(events_summary):
        print(line)
    return 0


def _share(pair: list[int]) -> float | None:
    return round(pair[1] / pair[0], 4) if pair[0] else None


def _events_summary(
    fired: dict[str, list[int]],
    fired_own: dict[str, list[int]],
    untaught: dict[str, dict[str, int]],
    hours_background: float,
    background_events: int,
) -> dict[str, Any]:
    """How often clips fire events: taught sounds should, background and untaught ones should not."""
    own = [sum(v[0] for v in fired_own.values()), sum(v[1] for v in fired_own.values())]
    silent_untaught = [sum(v["clips"] for v in untaught.values()), sum(v["silent"] for v in untaught.values())]
    background = fired.get(BACKGROUND, [0, 0])
    return {
        "taught_with_their_event": _share(own),
        "background_silent": _share([background[0], background[0] - background[1]]),
        "background_events_per_hour": round(background_events / hours_background, 2) if hours_background else None,
        "untaught_silent": _share(silent_untaught),
        "per_label": {label: {"clips": n, "with_event": k} for label, (n, k) in sorted(fired.items())},
        "untaught": untaught,
    }


def _events_lines(summary: dict[str, Any]) -> list[str]:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    lines = ["events:",
             f"  taught sounds with their event: {pct(summary['taught_with_their_event'])}",
             f"  background clips without event: {pct(summary['background_silent'])}"
             + (f" ({summary['background_events_per_hour']:g} events per hour)" if summary["background_events_per_hour"] is not None else "")]
    if summary["untaught"]:
        lines.append(f"  never-taught sounds without event (should stay silent): {pct(summary['untaught_silent'])}"
                     f" — {', '.join(sorted(summary['untaught']))}")
    return lines
