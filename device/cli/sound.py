"""``cadence classify FILE`` and ``cadence evaluate sound DIR``.

Both run the sound pipeline (:func:`device.audio.pipeline.sound_pipeline`)
over the file as a stream — the windows and events the daemon would report,
in memory bounded by a window whatever the file's length. ``classify``
prints every window, the events and the clip's label (the highest mean
window probability); ``evaluate sound`` measures that clip label over a
folder ``DIR/<label>/*`` and how often clips fire events — taught sounds
should, ``background`` and folders of labels the model was never taught
should not (the false-alarm figures). A window the model's reject option
judged unlike every taught sound is shown as "not a taught sound"
(``_other``). Options come from :class:`~device.audio.settings.SoundSettings`
(``--no-reject`` turns the reject option off).
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
from ..learn.openset import BACKGROUND, OTHER, SILENT_LABELS
from .options import add_settings_options, command_group, settings_from_options
from .progress import ProgressLine

SILENT = "<silent>"  # a clip whose every window was below the volume gate
NOT_TAUGHT = "not a taught sound"  # how ``_other`` (the reject option's answer) is shown


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    classify = subparsers.add_parser(
        "classify", help="classify the sounds in an audio file (windows and events)",
        description="Stream an audio file through the device's sound pipeline (feature print, volume gate, the model "
        "with its reject option, event detector): each window's label, the events the daemon would send, and the "
        "clip's label (highest mean window probability). Memory does not grow with the file's length.")
    classify.add_argument("file", help="audio file (WAV, FLAC, OGG, MP3)")
    classify.add_argument("--model", required=True, help="trained sound model (from cadence train sound)")
    classify.add_argument("--json", action="store_true", help="one JSON object with windows, events and the clip")
    _detector_options(classify)
    classify.set_defaults(handler=_cmd_classify)

    evaluate_sub = command_group(subparsers, groups, "evaluate", "measure a trained model on labelled data", "WHAT")
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
        reject = "on" if settings.reject and model.reject_option is not None else "off"
        print(f"{path}  {duration:.2f} s at {native_rate} Hz  model {args.model} ({len(model.taught_labels)} labels, "
              f"reject option {reject})")
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
        elif p.rejected:
            print(f"  {p.start:7.2f}–{p.end:7.2f} s  {level}  {NOT_TAUGHT} (unlike every taught sound)", flush=True)
        else:
            print(f"  {p.start:7.2f}–{p.end:7.2f} s  {level}  {p.label:<20s} {p.confidence:.3f}", flush=True)

    events, analysed, problem = asyncio.run(_run_clip(path, settings, fp, model, on_window))
    short = _short_note(path, analysed, duration, problem)
    clip = _clip_result(summary, settings)
    if args.json:
        print(json.dumps({
            "file": str(path), "duration": round(duration, 3), "analysed": round(analysed, 3),
            "native_rate": native_rate, "model": str(args.model), "labels": list(model.taught_labels),
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
        if clip["label"] == OTHER:
            print(f"whole clip: {NOT_TAUGHT} ({clip['confidence']:.3f} of its windows)")
        else:
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
            "windows": summary.classified, "rejected": label == OTHER}


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
    from ..audio.sources import AUDIO_EXTENSIONS, AudioFileError
    from ..learn.dataset import scan_folder

    settings, fp, model = _prepare(args)
    data = scan_folder(args.dir)
    if not data.clips:
        raise CadenceError(f"{args.dir}: no audio clips found (expected <label>/*{'|'.join(AUDIO_EXTENSIONS)})")
    metrics = ClassificationMetrics(model.output_labels(settings.reject))
    tally = EventTally(model.taught_labels)
    problems = list(data.problems)
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
        tally.add(clip.label, [e.label for e in events], analysed)
        if clip.label in tally.taught:
            metrics.add(clip.label, clip_answer(clip.label, summary.result().label))
    progress.show(1.0, f"{len(data.clips)} clips", force=True)
    progress.close()
    for problem in problems:
        print(f"cadence: warning: {problem}", file=sys.stderr)
    if metrics.count == 0 and not tally.untaught_clips:
        raise CadenceError(f"{args.dir}: no readable clips to evaluate")
    events_summary = tally.summary()
    if args.json:
        result = metrics.to_dict() if metrics.count else {"count": 0}
        result.update(skipped=problems, model=str(args.model), reject=settings.reject and model.reject_option is not None,
                      events=events_summary)
        print(json.dumps(result))
        return 0
    print(f"{args.dir}: {metrics.count} clips of taught labels, model {args.model}")
    if metrics.count:
        print(metrics.format_table())
    for line in _events_lines(events_summary):
        print(line)
    return 0


def clip_answer(truth: str, predicted: str | None) -> str:
    """A clip's label for accuracy: none (all gated) is :data:`SILENT`; the silent labels are one answer
    ("nothing to report"), so a background clip the reject option calls ``_other`` is right."""
    if predicted is None:
        return SILENT
    return truth if truth in SILENT_LABELS and predicted in SILENT_LABELS else predicted


class EventTally:
    """Which clips fire events, per folder label: taught sounds should (their own label);
    ``background`` and labels the model was never taught should stay silent."""

    def __init__(self, taught: list[str]) -> None:
        self.taught = set(taught)
        self.labels: dict[str, dict[str, Any]] = {}

    @property
    def untaught_clips(self) -> int:
        return sum(v["clips"] for k, v in self.labels.items() if k not in self.taught)

    def add(self, label: str, events: list[str], seconds: float) -> None:
        """One clip of folder ``label`` that fired ``events`` (their labels) over ``seconds`` of audio."""
        stats = self.labels.setdefault(label, {"taught": label in self.taught, "clips": 0, "silent": 0, "own_event": 0,
                                               "other_event": 0, "events": 0, "seconds": 0.0, "event_labels": {}})
        stats["clips"] += 1
        stats["silent"] += not events
        stats["own_event"] += label in events
        stats["other_event"] += any(e != label for e in events)
        stats["events"] += len(events)
        stats["seconds"] += seconds
        for e in events:
            stats["event_labels"][e] = stats["event_labels"].get(e, 0) + 1

    def _pooled(self, which: Any) -> dict[str, float]:
        rows = [v for k, v in self.labels.items() if which(k)]
        return {key: sum(v[key] for v in rows) for key in ("clips", "silent", "own_event", "other_event", "events", "seconds")}

    def summary(self) -> dict[str, Any]:
        """The false-alarm figures (pooled and per label)."""
        sounds = self._pooled(lambda k: k in self.taught and k not in SILENT_LABELS)
        background = self._pooled(lambda k: k == BACKGROUND)
        untaught = self._pooled(lambda k: k not in self.taught)
        per_label = {}
        for label, v in sorted(self.labels.items()):
            row = {"taught": v["taught"], "clips": v["clips"], "with_event": v["clips"] - v["silent"],
                   "silent": _share(v["silent"], v["clips"]), "events": v["events"],
                   "events_per_hour": _rate(v["events"], v["seconds"]), "event_labels": dict(sorted(v["event_labels"].items()))}
            if v["taught"] and label not in SILENT_LABELS:
                row["with_their_event"] = _share(v["own_event"], v["clips"])
            per_label[label] = row
        return {
            "taught_with_their_event": _share(sounds["own_event"], sounds["clips"]),
            "taught_with_another_event": _share(sounds["other_event"], sounds["clips"]),
            "background_silent": _share(background["silent"], background["clips"]),
            "background_events_per_hour": _rate(background["events"], background["seconds"]),
            "untaught_silent": _share(untaught["silent"], untaught["clips"]),
            "untaught_fired": _share(untaught["clips"] - untaught["silent"], untaught["clips"]),
            "untaught_events_per_hour": _rate(untaught["events"], untaught["seconds"]),
            "per_label": per_label,
            "untaught": {k: {"clips": v["clips"], "silent": v["silent"]} for k, v in sorted(self.labels.items()) if not v["taught"]},
        }


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _rate(events: float, seconds: float) -> float | None:
    return round(events * 3600 / seconds, 2) if seconds else None


def _events_lines(summary: dict[str, Any]) -> list[str]:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    lines = ["events:",
             f"  taught sounds with their event: {pct(summary['taught_with_their_event'])}"
             f" (with another label's: {pct(summary['taught_with_another_event'])})",
             f"  background clips without event: {pct(summary['background_silent'])}"
             + (f" ({summary['background_events_per_hour']:g} events per hour)" if summary["background_events_per_hour"] is not None else "")]
    if summary["untaught"]:
        lines.append(f"  never-taught sounds without event (should stay silent): {pct(summary['untaught_silent'])}"
                     f" — {', '.join(sorted(summary['untaught']))}")
    for label, row in summary["per_label"].items():
        kind = "taught" if row["taught"] else "never taught"
        own = f", with their event {pct(row['with_their_event'])}" if "with_their_event" in row else ""
        lines.append(f"    {label:<20s} {kind:<12s} {row['clips']:4d} clips, silent {pct(row['silent'])}{own}")
    return lines
