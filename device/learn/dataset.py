"""Labelled training clips: a ``DATA/<label>/<files>`` folder or a CSV manifest.

A data set is only a list of :class:`Clip` (path, label, recording). Nothing is
decoded here: unreadable files are found (and reported, then skipped) when the
feature cache extracts them. Which files count is the featurizer's
``suffixes`` (for sound, ``device.audio.sources.AUDIO_EXTENSIONS``: the files
``cadence classify`` reads, MP3 included). The *recording* of a clip groups takes of the same
source, so that a validation split never holds a take of a recording that is
also in training (see :func:`recording_id` and :func:`split_by_recording`).
"""

from __future__ import annotations

import csv
import io
import dataclasses
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from device.audio.sources import AUDIO_EXTENSIONS
from device.components import CadenceError

from .labels import label_problem


class DatasetError(CadenceError):
    """The training data cannot be used (missing folder, bad manifest, too few labels)."""


@dataclasses.dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    recording: str

    @property
    def group(self) -> str:
        """Recording key unique across labels."""
        return f"{self.label}/{self.recording}"


@dataclasses.dataclass
class Dataset:
    clips: list[Clip]
    source: Path
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return sorted({c.label for c in self.clips})

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for c in self.clips:
            out[c.label] += 1
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        return len(self.clips)


_TAKE_LETTER = re.compile(r"^(.+)-[A-Za-z]$")  # ESC-50: 1-211527-A
_SHORT_COUNTER = re.compile(r"^(.+?)[_\-.](\d{1,3})$")  # margot.m4a_12, kitchen_20261129-130501_3
_LONG_COUNTER = re.compile(r"^(.*?)(\d{4,})$")  # snu_027004: recording 027, take 004


def recording_id(path: str | os.PathLike[str]) -> str:
    """The recording a clip was cut from, guessed from its file name.

    The take suffix is removed: a trailing ``-A``/``-B`` letter, a short
    counter ``_12``, or the last three digits of a long counter
    (``snu_027004`` -> ``snu_027``). Files named by ``cadence record``
    (``<label>_<session time>_<n>``) group by session.
    """
    stem = Path(path).stem
    for suffix in AUDIO_EXTENSIONS:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    m = _TAKE_LETTER.match(stem)
    if m:
        return m.group(1)
    m = _SHORT_COUNTER.match(stem)
    if m:
        return m.group(1)
    m = _LONG_COUNTER.match(stem)
    if m:
        return m.group(1) + m.group(2)[:-3]
    return stem


def _kinds(suffixes: Sequence[str]) -> str:
    return "/".join(suffixes)


def scan_folder(root: str | os.PathLike[str], suffixes: Sequence[str] = AUDIO_EXTENSIONS) -> Dataset:
    """``root/<label>/*<suffix>``; other files are listed as problems."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such data folder")
    if not root.is_dir():
        raise DatasetError(f"{root}: is not a folder (give DATA/<label>/ with {_kinds(suffixes)} files, "
                           "or a .csv manifest)")
    clips: list[Clip] = []
    problems: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = folder.name
        if not label.startswith("_"):  # '_' labels: the trainer says they are the model's own
            try:
                label = check_label(label)
            except DatasetError as exc:
                raise DatasetError(f"{root}: folder {exc}") from None
        for f in sorted(folder.iterdir()):
            if f.name.startswith("."):
                continue
            if f.is_file() and f.suffix.lower() in suffixes:
                clips.append(Clip(f.resolve(), label, recording_id(f)))
            elif f.is_file() and f.suffix.lower() == ".json" and any(f.with_suffix(x).is_file() for x in suffixes):
                continue  # the description `cadence pose --out` / `record exercise` writes beside a pose array
            elif f.is_file():
                problems.append(f"{f}: skipped, not a {_kinds(suffixes)} file")
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    if loose:
        problems.append(f"{root}: {len(loose)} files outside a label folder were skipped")
    return Dataset(clips, root.resolve(), problems)


def check_label(text: str) -> str:
    """A label is a plain name (:mod:`device.learn.labels`); surrounding spaces
    are dropped. The one rule for folders, manifests and ``cadence record``."""
    label = str(text).strip()
    problem = label_problem(label)
    if problem:
        raise DatasetError(problem)
    return label


def read_manifest(path: str | os.PathLike[str], suffixes: Sequence[str] = AUDIO_EXTENSIONS) -> Dataset:
    """A CSV with columns ``path,label`` (optional ``recording``); relative paths
    are relative to the manifest."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: no such manifest") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read manifest ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))  # quoted fields may hold line breaks
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "path" not in fields or "label" not in fields:
        raise DatasetError(f"{path}: manifest needs a header with columns 'path,label' (found {fields or 'none'})")
    clips: list[Clip] = []
    problems: list[str] = []
    for line_no, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        clip_path, label = row.get("path", ""), row.get("label", "")
        if not clip_path or not label:
            problems.append(f"{path}:{line_no}: skipped, empty path or label")
            continue
        try:
            label = check_label(label)
        except DatasetError as exc:
            raise DatasetError(f"{path}:{line_no}: {exc}") from None
        p = Path(clip_path)
        p = p if p.is_absolute() else (path.parent / p)
        if p.suffix.lower() not in suffixes:
            problems.append(f"{path}:{line_no}: skipped {clip_path}, not a {_kinds(suffixes)} file")
            continue
        clips.append(Clip(p.resolve(), label, row.get("recording") or recording_id(p)))
    return Dataset(clips, path.resolve(), problems)


def load_dataset(source: str | os.PathLike[str], suffixes: Sequence[str] = AUDIO_EXTENSIONS) -> Dataset:
    """A data folder or a ``.csv`` manifest of files with ``suffixes``; at least two labels are needed."""
    source = Path(source)
    data = read_manifest(source, suffixes) if source.suffix.lower() == ".csv" else scan_folder(source, suffixes)
    if not data.clips:
        raise DatasetError(f"{source}: no clips found (expected <label>/*{'|'.join(suffixes)})")
    if len(data.labels) < 2:
        raise DatasetError(f"{source}: found only the label {data.labels}; at least two labels are needed")
    return data


SHIPPED_RECORDING = "shipped:"  # a clip's recording name prefix: shipped with the device, not the owner's


def split_by_recording(
    clips: Sequence[Clip], validation_fraction: float, seed: int = 0
) -> tuple[list[Clip], list[Clip]]:
    """Stratified split by recording: per label, whole recordings go to validation
    until about ``validation_fraction`` of that label's clips are there.

    A label with a single recording stays entirely in training.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise DatasetError(f"validation split must be in [0, 1), got {validation_fraction}")
    if validation_fraction == 0:
        return list(clips), []
    rng = np.random.default_rng(seed)
    by_label: dict[str, dict[str, list[Clip]]] = defaultdict(lambda: defaultdict(list))
    for c in clips:
        by_label[c.label][c.recording].append(c)
    val_groups: set[str] = set()
    for label in sorted(by_label):
        groups = by_label[label]
        names = sorted(groups)
        if len(names) < 2:
            continue
        order = [names[i] for i in rng.permutation(len(names))]
        total = sum(len(groups[n]) for n in names)
        want = validation_fraction * total
        taken = 0
        for name in order[:-1]:  # always leave one recording for training
            size = len(groups[name])
            # take it if that brings us closer to the wanted count
            if abs(taken + size - want) < abs(taken - want) or taken == 0:
                val_groups.add(f"{label}/{name}")
                taken += size
            if taken >= want:
                break
    train = [c for c in clips if c.group not in val_groups]
    val = [c for c in clips if c.group in val_groups]
    return train, val


def validation_coverage(clips: Sequence[Clip], val: Sequence[Clip]) -> tuple[str | None, str | None]:
    """(a warning, a note) on the labels of ``clips`` the validation clips ``val`` leave out: a
    label with one recording stays in training, so its validation row is "n/a" — the note says
    which and why; when most labels are left out, the warning says the validation figures say
    little. Labels only shipped with the device (recordings named ``shipped:…``) are not the
    owner's to validate and are left out of both."""
    validated = {c.label for c in val}
    owners = {c.label for c in clips if not c.recording.startswith(SHIPPED_RECORDING)}
    labels = sorted(owners | validated)
    unvalidated = [label for label in labels if label not in validated]
    if not val or not unvalidated:
        return None, None
    if len(validated) < len(labels) / 2:
        return (f"the validation clips cover only {len(validated)} of {len(labels)} labels (a label with one "
                "recording stays in training), so the validation figures say little; more recordings per label help"), None
    # clips named like snu_036001..snu_036010 are one recording (recording_id)
    return None, (f"not validated: {', '.join(unvalidated)} (each has all its clips in one recording, by their file "
                  "names, which stays in training; clips of another session, named apart, would be held out)")


def describe_split(train: Iterable[Clip], val: Iterable[Clip]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"train": 0, "validation": 0})
    for c in train:
        out[c.label]["train"] += 1
    for c in val:
        out[c.label]["validation"] += 1
    return dict(sorted(out.items()))
