"""``cadence train sound``, ``cadence record``, ``cadence models list|rollback``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from device.components import CadenceError, Event, atomic_write_json

from ..audio.sources import AUDIO_EXTENSIONS
from .options import add_state_dir_option, command_group, state_dir
from .progress import ProgressLine
from ..learn.openset import BACKGROUND
from ..learn.dataset import check_label
from ..learn.quiet import CLIP_SECONDS
from ..learn.registry import keep_reports
from ..learn.report import plot_curve, report_paths
from ..learn.training import AUTO_AUGMENT_COPIES, CLASSIFIERS, Trainer, TrainingConfig, TrainingResult
from ..storage import SOUND_DATA


# ---------------------------------------------------------------------------
# progress display
class Progress:
    """Training events as progress lines (:class:`ProgressLine` draws them: one redrawn line
    on a terminal, sparse lines elsewhere); each stage starts a line of its own."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.line = ProgressLine(stream, quiet=quiet)
        self._last_origin: str | None = None

    def __call__(self, event: Event) -> None:
        if self.line.quiet or event.origin in ("update", "checkpoint"):
            return
        if event.origin != self._last_origin:
            self.line.close()
        self._last_origin = event.origin
        m = event.metrics
        if event.origin == "preprocess":
            text = f"extracting features {event.item_count}/{event.total}"
        elif event.origin == "augment":
            text = f"extracting augmented copies {event.item_count}/{event.total}"
        elif event.origin == "train":
            parts = [f"epoch {event.item_count}/{event.total}", f"loss {m.get('loss', float('nan')):.3f}",
                     f"acc {m.get('accuracy', float('nan')):.3f}"]
            if m.get("validation_accuracy") is not None:
                parts += [f"val loss {m['validation_loss']:.3f}", f"val acc {m['validation_accuracy']:.3f}"]
            text = "  ".join(parts)
        elif event.origin == "fit":
            text = f"fitting (L-BFGS) iteration {event.item_count}/{event.total}"
        elif event.origin == "refit":
            text = f"final training on all clips: epoch {event.item_count}/{event.total}"
        elif event.origin == "reject":
            text = f"fitting the reject option (not a taught sound) {event.item_count}/{event.total}"
        elif event.origin == "publish":
            text = f"model written to {m.get('path')}"
        else:
            text = f"{event.origin} {event.item_count}/{event.total}"
        frac = event.fraction if event.fraction is not None else 0.0
        self.line.show(frac, text, force=event.origin in ("train", "publish"))

    def close(self) -> None:
        self.line.close()


# ---------------------------------------------------------------------------
# helpers
def _feature_print() -> Any:
    try:
        from device.audio.featureprint import AudioFeaturePrint  # type: ignore[import-not-found]
    except ImportError as exc:
        raise CadenceError(f"the audio feature print is not available ({exc})") from exc
    return AudioFeaturePrint()


def _sound_gate() -> float:
    """The sound pipeline's volume gate (its one default): what training leaves out."""
    from device.audio.settings import SoundSettings

    return float(SoundSettings.model_fields["min_volume_db"].default)


def _hidden_units(text: str) -> tuple[int, ...]:
    try:
        units = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden units must be comma-separated integers, got {text!r}") from None
    if not units or any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"hidden units must be positive integers, got {text!r}")
    return units


# options whose name is not the TrainingConfig field they set
_FIELD_OF_OPTION = {"augment": "augment_copies", "hidden_units": "hidden_unit_counts", "min_volume_db": "min_level_db"}


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """The TrainingConfig of the given options: an option sets the field of its name
    (or of ``_FIELD_OF_OPTION``); options not given keep the config's defaults."""
    fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    given = {_FIELD_OF_OPTION.get(k, k): v for k, v in vars(args).items() if v is not None}
    base = getattr(args, "training_defaults", None) or TrainingConfig()
    cfg = dataclasses.replace(base, **{k: v for k, v in given.items() if k in fields})
    cfg.refit = not getattr(args, "no_refit", False)
    # sound only (add_sound_training_options): the reject option (the exercise recogniser has an open set of its own)
    cfg.reject = hasattr(args, "no_reject") and not args.no_reject
    return cfg


def run_train(
    args: argparse.Namespace, *, feature_print: Any = None, out: TextIO | None = None, data: Any = None
) -> int:
    """The ``cadence train …`` handler: ``feature_print`` (default the audio feature
    print) and ``data`` (default ``args.data`` scanned for its suffixes) may be given."""
    from ..learn.dataset import load_dataset

    out = out or sys.stdout
    cfg = config_from_args(args)
    cfg.validate()
    fp = feature_print if feature_print is not None else _feature_print()
    data = data if data is not None else load_dataset(args.data, fp.suffixes)
    progress = Progress(quiet=args.quiet)
    if args.jobs < 1:
        raise CadenceError(f"--jobs must be at least 1, got {args.jobs}")
    trainer = Trainer(
        fp, cfg, state_dir=state_dir(args), on_event=progress, keep_versions=args.keep_versions, jobs=args.jobs
    )
    try:
        result = trainer.train(data, args.out, resume=True if args.resume else "auto" if args.resume_if_interrupted else False)
    finally:
        progress.close()
    report_path, curve_path = report_paths(result.model_path)
    drawn = plot_curve(
        result.history, curve_path, title=f"{result.model_path.name} ({result.report['classifier']})",
        best_epoch=result.report.get("best_epoch"),
    )
    if not drawn:  # no plotting library: never the previous model's curve beside this one
        curve_path.unlink(missing_ok=True)
    result.report["curve"] = str(curve_path) if drawn else None
    result.report["report"] = str(report_path)
    atomic_write_json(report_path, result.report)
    keep_reports(result.model_path)  # with its version: a rollback shows each version's own report
    _print_summary(result, out, drawn, reject_off=bool(getattr(args, "no_reject", False)))
    return 0


def _print_summary(result: TrainingResult, out: TextIO, drawn: bool, *, reject_off: bool = False) -> None:
    r = result.report
    for note in r.get("notes", []):
        print(f"note: {note}", file=out)
    for key in ("skipped", "warnings"):
        items = r.get(key) or []
        for problem in items[:5]:
            print(f"{key[:-1] if key == 'warnings' else key}: {problem}", file=out)
        if len(items) > 5:
            print(f"… and {len(items) - 5} more {key} (see the report)", file=out)
    cache = r["feature_cache"]
    augmented = r.get("augmentation") or {}
    copies = ""
    if augmented.get("copies_per_clip"):
        copies = (f"; {augmented['copies_per_clip']} augmented copies per clip: {augmented['extracted']} extracted "
                  f"in {augmented['seconds']:.0f} s, {augmented['reused']} from cache")
    print(
        f"clips: {r['clips']['train']} training, {r['clips']['validation']} validation "
        f"(clips' windows: {cache['extracted']} extracted, {cache['reused']} from cache{copies}; "
        "accuracy is per clip, from the mean of its windows' probabilities)",
        file=out,
    )
    if r["classifier"] == "logistic":
        print(f"classifier: logistic regression ({r['stop_reason']})", file=out)
    else:
        print(f"stopped after {r['epochs']} epoch(s): {r['stop_reason']}", file=out)
    refit = r.get("refit")
    if refit:
        epochs = f" for {refit['epochs']} epoch(s)" if refit.get("epochs") else ""
        shipped = r.get("shipped_negatives") or {}
        negatives = int(shipped.get("clips") or 0)  # counted in refit's clips, not in `clips:`
        examples = sum(int(n) for n in (shipped.get("examples") or {}).values())
        parts = [f"{refit['clips'] - negatives - examples} yours"] if negatives or examples else []
        parts += [f"+ {examples} shipped examples"] if examples else []
        parts += [f"+ {negatives} shipped negatives"] if negatives else []
        parts = [" ".join(parts)] if parts else []
        parts += [f"+ {refit['augmented_copies']} augmented copies"] if refit.get("augmented_copies") else []
        whose = f" ({', '.join(parts)})" if parts else ""
        print(f"final model: trained again on all {refit['clips']} clips{whose}{epochs}", file=out)
    if result.validation is not None and result.validation.count:
        print("validation metrics" + (" (of the model trained without the validation clips)" if refit else "") + ":", file=out)
        print(result.validation.format_table(), file=out)
    else:
        print(f"training accuracy {r['training_accuracy']:.4f} (no validation split)", file=out)
    reject = r.get("reject_option")
    if reject and reject.get("factor") is not None:
        accepted = {k: v["held_out_accepted"] for k, v in reject["per_label"].items() if v["held_out_accepted"] is not None}
        print(f"reject option: a window farther from its label than its held-out quantile {reject['quantile']:g} is "
              "'not a taught sound'; held-out windows accepted: "
              + ", ".join(f"{k} {v:.2f}" for k, v in accepted.items()), file=out)
    elif reject_off:
        print("reject option: off (--no-reject): every sound gets one of the taught labels", file=out)
    print(f"model:  {result.model_path}", file=out)
    print(f"report: {r['report']}", file=out)
    if drawn:
        print(f"curve:  {r['curve']}", file=out)
    else:
        print("curve:  not drawn (matplotlib is not installed)", file=out)


# ---------------------------------------------------------------------------
# record
def label_folder(data_dir: Path, label: str) -> Path:
    """``DATA_DIR/LABEL/``, made if missing; one that cannot be made (``--data`` names a file,
    read-only or full storage) is one line, before anything is recorded."""
    folder = data_dir / label
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CadenceError(f"{data_dir}: cannot make the folder {label}/ for the recordings there "
                           f"({exc.strerror or exc})") from None
    return folder


def run_record(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    import numpy as np

    from device.audio.sources import SAMPLE_RATE, MicrophoneConfig, find_input_device, read_microphone, write_wav

    out = out or sys.stdout
    label = check_label(args.label)
    if args.auto and label != BACKGROUND:
        raise CadenceError(f"--auto keeps quiet periods: it records '{BACKGROUND}' only, not {label!r}")
    if not 0.5 <= args.seconds <= 600:
        raise CadenceError(f"--seconds must be between 0.5 and 600, got {args.seconds}")
    if args.count < 1:
        raise CadenceError(f"--count must be at least 1, got {args.count}")
    if not args.minutes > 0:
        raise CadenceError(f"--minutes must be positive, got {args.minutes}")
    data_dir = Path(args.data) if args.data else state_dir(args) / SOUND_DATA
    if args.device is not None and Path(str(args.device)).suffix and Path(str(args.device)).exists():
        # the daemon's [microphone] device may be a file; recording from one would only copy it
        raise CadenceError(f"--device {args.device}: record takes a microphone, not a file; to teach from "
                           f"audio files, copy them into {data_dir / label}/")
    mic_cfg = MicrophoneConfig(device=args.device)
    find_input_device(mic_cfg.device)  # no microphone: say so now, not after a countdown
    folder = label_folder(data_dir, label)
    session = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    n_samples = int(round(args.seconds * SAMPLE_RATE))

    async def record_one() -> np.ndarray:
        got: list[np.ndarray] = []
        total = 0
        mic = read_microphone(mic_cfg)
        async for chunk in mic:
            got.append(chunk.value)
            total += len(chunk.value)
            if total >= n_samples:
                break
        return np.concatenate(got)[:n_samples] if got else np.zeros(0, dtype=np.float32)

    def save(samples: np.ndarray, i: int) -> Path:
        return write_wav(folder / f"{label}_{session}_{i}.wav", samples)

    if args.auto:
        return _record_quiet(args, mic_cfg, n_samples, save, folder, data_dir, out)
    for i in range(1, args.count + 1):
        for n in range(args.countdown, 0, -1):
            print(f"clip {i}/{args.count} '{label}': recording in {n}…", file=out, flush=True)
            time.sleep(1)
        print(f"clip {i}/{args.count}: recording {args.seconds:g} s — make the sound now", file=out, flush=True)
        samples = asyncio.run(record_one())
        if len(samples) < n_samples:
            raise CadenceError(f"the microphone delivered only {len(samples) / SAMPLE_RATE:.1f} s of audio")
        path = save(samples, i)
        peak = float(np.abs(samples).max()) if len(samples) else 0.0
        print(f"saved {path} (peak level {peak:.2f})", file=out, flush=True)
    print(f"{args.count} clip(s) in {folder}; train with: cadence train sound {data_dir} --out MODEL", file=out)
    return 0


def _record_quiet(args: argparse.Namespace, mic_cfg: Any, n_samples: int, save: Any, folder: Path, data_dir: Path,
                  out: TextIO) -> int:
    """``record sound background --auto``: one microphone run cut into clips; the quiet ones are kept."""
    import numpy as np

    from device.audio.sources import read_microphone

    from ..learn.quiet import QuietClips

    judge = QuietClips(min_db=_sound_gate())
    deadline = time.monotonic() + args.minutes * 60
    kept: list[Path] = []
    print(f"listening for up to {args.minutes:g} min: keeping {args.count} clip(s) of {args.seconds:g} s "
          "where nothing louder than the room happens (leave the room quiet)", file=out, flush=True)

    async def listen() -> None:
        pending: list[np.ndarray] = []
        have = 0
        heard = 0
        async for chunk in read_microphone(mic_cfg):
            pending.append(chunk.value)
            have += len(chunk.value)
            if have < n_samples:
                continue
            samples = np.concatenate(pending)
            clip, rest = samples[:n_samples], samples[n_samples:]
            pending, have, heard = [rest], len(rest), heard + 1
            keep, why = judge.judge(clip)
            if keep:
                kept.append(save(clip, len(kept) + 1))
                print(f"clip {heard}: kept ({why}) → {kept[-1]}", file=out, flush=True)
            else:
                print(f"clip {heard}: skipped ({why})", file=out, flush=True)
            if len(kept) >= args.count or time.monotonic() >= deadline:
                return

    asyncio.run(listen())
    if not kept:
        raise CadenceError(f"no quiet clip in {args.minutes:g} min (see the lines above for why); try a quieter time")
    print(f"{len(kept)} background clip(s) in {folder}; train with: cadence train sound {data_dir} --out MODEL", file=out)
    return 0


# ---------------------------------------------------------------------------
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}  # the one place for them


def add_training_options(parser: argparse.ArgumentParser, *, examples: str = "clips",
                         defaults: TrainingConfig | None = None) -> None:
    """The trainer's options (sound and exercise alike), each with its help and default;
    ``defaults``: the kind's own TrainingConfig (default: TrainingConfig())."""
    d = _DEFAULTS if defaults is None else dataclasses.asdict(defaults)
    parser.set_defaults(training_defaults=defaults)
    parser.add_argument("data", metavar="DATA_DIR", help="folder with one sub-folder per label, or a .csv manifest")
    parser.add_argument("--out", required=True, metavar="MODEL_PATH", help="where to write the model")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default=d["classifier"],
                        help=f"auto: logistic regression while the median label has fewer than "
                        f"{d['auto_network_min_clips']} {examples}, else the network (default: {d['classifier']})")
    augment_default = (f"{AUTO_AUGMENT_COPIES} while the median label has fewer than {d['auto_network_min_clips']} "
                       f"{examples}, else 0" if d["augment_copies"] is None else str(d["augment_copies"]))
    parser.add_argument("--augment", type=int, default=None, metavar="N",
                        help=f"augmented copies per training {examples[:-1]} (0: none); default: {augment_default} "
                        "(for featurizers that can augment)")
    parser.add_argument("--validation-split", type=float, default=d["validation_split"], metavar="F",
                        help=f"share of the recordings held out to stop training early (default: {d['validation_split']:g})")
    parser.add_argument("--target-accuracy", type=float, default=d["target_accuracy"], metavar="A",
                        help="stop when validation accuracy reaches A (default: never)")
    parser.add_argument("--max-epochs", type=int, default=d["max_epochs"], metavar="N",
                        help=f"most passes over the data (default: {d['max_epochs']})")
    parser.add_argument("--patience", type=int, default=d["patience"], metavar="N",
                        help=f"stop after N epochs without improvement (default: {d['patience']})")
    parser.add_argument("--checkpoint-every", type=int, default=d["checkpoint_every"], metavar="K",
                        help=f"write a checkpoint every K epochs (default: {d['checkpoint_every']})")
    parser.add_argument("--keep-checkpoints", type=int, default=d["keep_checkpoints"], metavar="N",
                        help=f"checkpoints kept (default: {d['keep_checkpoints']})")
    parser.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint")
    parser.add_argument("--resume-if-interrupted", action="store_true",
                        help="continue an interrupted training of the same data and settings, else start over "
                        "(what `cadence retrain` uses)")
    parser.add_argument("--seed", type=int, default=d["seed"], help=f"random seed (default: {d['seed']})")
    parser.add_argument("--no-refit", action="store_true",
                        help="keep the model trained without the validation clips "
                        "(default: retrain on all clips for the best epoch count)")
    parser.add_argument("--chunk-size", type=int, default=d["chunk_size"], metavar="N",
                        help=f"windows per training chunk, what the network updates on at once (default: {d['chunk_size']})")
    parser.add_argument("--hidden-units", type=_hidden_units, default=None, metavar="N[,N]",
                        help=f"network hidden layer sizes (default: {','.join(map(str, d['hidden_unit_counts']))})")
    parser.add_argument("--learning-rate", type=float, default=None, help=f"network step size (default: {d['learning_rate']:g})")
    parser.add_argument("--batch-size", type=int, default=None, help=f"network mini-batch (default: {d['batch_size']})")
    parser.add_argument("--dropout", type=float, default=None, help=f"network dropout (default: {d['dropout']:g})")
    parser.add_argument("--l2-penalty", type=float, default=None,
                        help=f"logistic regression L2 penalty (default: {d['l2_penalty']:g})")
    parser.add_argument("--keep-versions", type=int, default=3, metavar="N", help="model versions kept for rollback (default: 3)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="processes extracting features, e.g. 3 on a Pi 4 (default: 1)")
    parser.add_argument("--allow-label-loss", action="store_true",
                        help="train even when every clip of a label is unusable (it is left out, with a warning); "
                        "default: that stops training")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_state_dir_option(parser)


def add_sound_training_options(parser: argparse.ArgumentParser) -> None:
    """What only sound training has: the volume gate's windows left out, and the reject option."""
    d = _DEFAULTS
    parser.add_argument("--min-volume-db", type=float, default=_sound_gate(), metavar="DB",
                        help="windows quieter than this (dBFS) are not trained on: the device does not classify them "
                        f"(default: the sound pipeline's gate, {_sound_gate():g})")
    parser.add_argument("--no-reject", action="store_true",
                        help="no reject option: every sound gets one of the taught labels (more false alarms)")
    parser.add_argument("--reject-quantile", type=float, default=None, metavar="Q",
                        help="share of a taught label's held-out windows the reject option keeps (lower: fewer false "
                        f"alarms, more missed sounds; default: {d['reject_quantile']:g})")
    parser.add_argument("--shipped-negatives", action=argparse.BooleanOptionalAction, default=None,
                        help="add the shipped floor noises the labels do not teach as silent examples "
                        "(models/sound-negatives.npz: fewer false alarms from untaught sounds, a little less recall; "
                        f"default: on; they join background when they are at most {d['merge_negatives_share']:g} of "
                        "your clips, else they are a gated class of their own; docs/audio.md)")
    parser.add_argument("--shipped-examples", action=argparse.BooleanOptionalAction, default=None,
                        help="with the shipped negatives: a label named like a shipped kind (ball_drop, chair_drag, "
                        "hammer_drop, hammering, vacuum_cleaner) also learns from that kind's shipped recordings "
                        "(default: on; docs/audio.md)")


def register(subparsers: Any, groups: dict[str, Any]) -> None:
    train_sub = command_group(subparsers, groups, "train", "train a classifier from labelled recordings", "KIND")
    sound = train_sub.add_parser(
        "sound",
        help=f"train a sound classifier from DATA_DIR/<label>/*{'|'.join(AUDIO_EXTENSIONS)} (or a path,label CSV)",
        description="Extract the feature-print windows of every clip once (cached), train with early stopping and "
        "checkpoints, write the model atomically (previous version kept for rollback), a JSON report and a PNG curve.",
    )
    add_training_options(sound)
    add_sound_training_options(sound)
    sound.set_defaults(handler=run_train)

    record_sub = command_group(subparsers, groups, "record",
                               "record labelled examples (sound: microphone; exercise: camera)", "KIND")
    clip = record_sub.add_parser("sound", help="record labelled clips from the microphone",
                                 description="Record COUNT clips of SECONDS each into DATA_DIR/LABEL/ (WAV, 16 kHz).")
    clip.add_argument("label", metavar="LABEL", help="the sound's name (a folder name)")
    clip.add_argument("--seconds", type=float, default=CLIP_SECONDS,
                      help=f"length of each clip, 0.5–600 (default: {CLIP_SECONDS:g})")
    clip.add_argument("--count", type=int, default=1, help="clips to record one after another (default: 1)")
    clip.add_argument("--data", metavar="DATA_DIR", help=f"data folder (default: <state dir>/{SOUND_DATA})")
    clip.add_argument("--device", default=None, help="input device index or name (default: system default)")
    clip.add_argument("--countdown", type=int, default=3, help=argparse.SUPPRESS)
    clip.add_argument(
        "--auto", action="store_true",
        help=f"'{BACKGROUND}' only: listen continuously and keep the clips where nothing louder than the room "
        "happens (the room's own noise keeps background silent), until --count are kept or --minutes pass",
    )
    clip.add_argument("--minutes", type=float, default=10.0, help="--auto: listen at most this long (default: 10)")
    add_state_dir_option(clip)
    clip.set_defaults(handler=run_record)
