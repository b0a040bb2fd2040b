"""Shipped negatives: floor noises the owner did not teach, trained as silent examples (issue 18).

A few-shot owner model knows nothing of the sounds it should keep quiet
about. The product ships ``models/sound-negatives.npz`` (built by
``scripts/build_sound_negatives.py`` from the SNU-B36-50 floor noises of the
shared development data, MIT licence; pinned by SHA-256 in
``models/manifest.json``): every window of those clips and of their
augmented copies, int8, as the feature cache holds them. When a sound model
is trained (``TrainingConfig.shipped_negatives``: by default; ``cadence train
sound --no-shipped-negatives`` leaves them out), clips of the shipped kinds
join the owner's ``background`` examples when they are at most
``merge_negatives_share`` of the owner's clips, and are a class of their own
(``_negatives``, answered ``background`` above ``NEGATIVES_THRESHOLD``:
:class:`~device.learn.model.ClassifierModel`) when they are more — except:

* kinds **named** like an owner label (the owner teaches that sound): with
  ``TrainingConfig.shipped_examples`` (default) their recordings join that
  label's examples instead (the trainer's ``_with_negatives``);
* kinds **claimed** by the owner's data (:func:`claimed_kinds`): the owner
  calls the same sound something else (``thud`` for ``hammer_drop``), found
  from the windows: a shipped kind is left out when at least
  :data:`CLAIM_SHARE` of some owner label's windows lie nearer to that kind's
  windows than to the label's own other clips;
* clips whose file the owner's data itself holds.

Balanced as measured (``research/sound_negatives.py``): per kind as many
clips as the median label has, examples counted (more drown a few-shot
owner's labels; fewer, beside the examples, let untaught sounds fire).
The file is a Cadence container (``meta.json`` + ``arrays.npz``, no pickle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device.components import CadenceError
from device.components.persistence import decode_state, encode_state

KIND = "sound-negatives"
FORMAT_VERSION = 1
# share of an owner label's windows nearer a shipped kind than to the label's own other clips that claims the
# kind (research/sound_negatives.py: the same kind 0.39-0.75, median 0.59; other kinds 0.00-0.29, median 0.00)
CLAIM_SHARE = 0.35
LICENCE = "SNU-B36-50 (inter-floor noise in a building), MIT licence"
ARRAYS = ("values", "times", "scales", "entry_keys", "entry_rows", "clip_keys", "clip_kinds", "clip_recordings",
          "clip_names")


class NegativesError(CadenceError):
    """The shipped negatives file cannot be used."""


@dataclasses.dataclass
class ShippedNegatives:
    """The windows of the shipped clips (originals and augmented copies), by cache key."""

    meta: dict[str, Any]
    values: np.ndarray  # int8 (n, d)
    times: np.ndarray  # float32 (n, 3): start, end, level (dBFS)
    scales: np.ndarray  # float32 (d,)
    entries: dict[str, tuple[int, int]]  # cache key -> (first row, rows)
    clips: list[dict[str, str]]  # originals: key, kind, recording, name

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    @property
    def kinds(self) -> list[str]:
        return sorted({c["kind"] for c in self.clips})

    def rows(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        first, count = self.entries[key]
        return self.values[first:first + count], self.times[first:first + count]

    def windows(self, keys: Sequence[str], min_level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(float windows, position in ``keys``) of ``keys``; ``min_level``: only windows that loud."""
        xs, owner = [], []
        for i, key in enumerate(keys):
            values, times = self.rows(key)
            if min_level is not None:
                values = values[times[:, 2] >= min_level]
            xs.append(values.astype(np.float32) * self.scales)
            owner.append(np.full(len(values), i, dtype=np.int64))
        if not xs:
            return np.zeros((0, len(self.scales)), np.float32), np.zeros(0, np.int64)
        return np.concatenate(xs), np.concatenate(owner)

    def to_bytes(self) -> bytes:
        keys = list(self.entries)
        arrays = {
            "values": self.values.astype(np.int8), "times": self.times.astype(np.float32),
            "scales": self.scales.astype(np.float32),
            "entry_keys": np.array(keys, dtype=str),
            "entry_rows": np.array([self.entries[k] for k in keys], dtype=np.int64).reshape(-1, 2),
            "clip_keys": np.array([c["key"] for c in self.clips], dtype=str),
            "clip_kinds": np.array([c["kind"] for c in self.clips], dtype=str),
            "clip_recordings": np.array([c["recording"] for c in self.clips], dtype=str),
            "clip_names": np.array([c["name"] for c in self.clips], dtype=str),
        }
        return encode_state(KIND, {**self.meta, "format_version": FORMAT_VERSION}, arrays)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> "ShippedNegatives":
        meta, arrays = decode_state(data, kind=KIND, source=source, arrays=lambda n: n.removesuffix(".npy") in ARRAYS)
        if meta.get("format_version") != FORMAT_VERSION:
            raise NegativesError(f"{source}: shipped negatives format {meta.get('format_version')!r} is not "
                                 f"{FORMAT_VERSION}; rebuild it (make sound-negatives)")
        missing = [n for n in ARRAYS if n not in arrays]
        if missing or "fingerprint" not in meta:
            raise NegativesError(f"{source}: not a shipped negatives file (missing {', '.join(missing) or 'fingerprint'})")
        rows = arrays["entry_rows"]
        entries = {str(k): (int(a), int(b)) for k, (a, b) in zip(arrays["entry_keys"], rows)}
        if any(a < 0 or b < 0 or a + b > len(arrays["values"]) for a, b in entries.values()):
            raise NegativesError(f"{source}: shipped negatives rows out of range")
        clips = [dict(key=str(k), kind=str(kind), recording=str(r), name=str(n)) for k, kind, r, n in zip(
            arrays["clip_keys"], arrays["clip_kinds"], arrays["clip_recordings"], arrays["clip_names"])]
        if any(c["key"] not in entries for c in clips):
            raise NegativesError(f"{source}: a shipped clip has no windows")
        return cls(meta, arrays["values"], arrays["times"], arrays["scales"], entries, clips)


def make_negatives(featurizer: Any, clips: Sequence[Any], cache_dir: Path, copies: int,
                   meta: Mapping[str, Any]) -> ShippedNegatives:
    """The shipped negatives of ``clips`` (``path``, ``label`` = kind, ``recording``): their windows and
    ``copies`` augmented copies each (the featurizer's augmenter), extracted through a feature cache in
    ``cache_dir`` exactly as training extracts them, keyed as the training cache keys them."""
    from .cache import FeatureCache

    clips = sorted(clips, key=lambda c: (c.label, c.path.name))
    with FeatureCache(cache_dir, featurizer) as cache:
        report, hashes = cache.update(clips, prune=False)
        if report.skipped:
            raise NegativesError(f"unreadable clips: {'; '.join(report.skipped[:3])}")
        augmenter = featurizer.augmenter() if copies else None
        made = {}
        if augmenter is not None:
            _, made = cache.augment([(c, hashes[c.path]) for c in clips], augmenter, copies)
        values, times, entries, kept = [], [], {}, []
        row = 0
        for clip in clips:
            key = hashes[clip.path]
            if key in entries:
                continue  # the same file twice: once
            for k in [key, *made.get(key, [])]:
                x, _ = cache.read([k])
                t, _ = cache.window_info([k])
                values.append(np.rint(x / cache.scales).astype(np.int8))
                times.append(t.astype(np.float32))
                entries[k] = (row, len(x))
                row += len(x)
            kept.append(dict(key=key, kind=clip.label, recording=clip.recording, name=clip.path.name))
        meta = {
            **meta, "fingerprint": cache.fingerprint, "augmenter": augmenter.key if augmenter is not None else None,
            "copies": copies if augmenter is not None else 0,
            "kinds": {kind: sum(c["kind"] == kind for c in kept) for kind in sorted({c["kind"] for c in kept})},
        }
        return ShippedNegatives(meta, np.concatenate(values), np.concatenate(times), cache.scales, entries, kept)


def read_negatives(name_or_path: str | Path) -> ShippedNegatives:
    """A file name from ``models/manifest.json`` (verified against its SHA-256) or a path (tests)."""
    from device.pretrained import model_bytes

    path = Path(name_or_path)
    if not path.is_absolute() and len(path.parts) == 1:
        path, data = model_bytes(str(path))  # read once; ModelFileError (a CadenceError) when missing or altered
        return ShippedNegatives.from_bytes(data, str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NegativesError(f"{path}: cannot read the shipped negatives ({exc.strerror or exc})") from exc
    return ShippedNegatives.from_bytes(data, str(path))


def _nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distance of each row of ``a`` to its nearest row of ``b`` (inf when ``b`` is empty)."""
    if not len(b):
        return np.full(len(a), np.inf)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d.min(1)


def claimed_kinds(
    owner: Mapping[str, tuple[np.ndarray, np.ndarray]], shipped: Mapping[str, np.ndarray],
    rng: np.random.Generator, share: float = CLAIM_SHARE, most: int = 1500,
) -> dict[str, dict[str, Any]]:
    """Shipped kinds that some owner label claims: ``{kind: {"label", "share"}}``.

    ``owner``: per owner sound label, its windows (float) and each window's clip;
    ``shipped``: per kind, its windows. Windows are standardised over the owner's
    windows; for each label and kind, as many of the kind's windows as the
    label has are drawn, and the kind is claimed when at least ``share`` of the
    label's windows have their nearest neighbour among them rather than among
    the label's other clips (the same sound lands as near as the label's own
    clips; a neighbouring kind, such as hammering for ``hammer_drop``, does not).
    """
    if not owner:
        return {}
    everything = np.concatenate([x for x, _ in owner.values()])
    mu, sd = everything.mean(0), everything.std(0) + 1e-6
    out: dict[str, dict[str, Any]] = {}
    for label in sorted(owner):
        x, clip = owner[label]
        if len(x) > most:
            keep = np.sort(rng.choice(len(x), size=most, replace=False))
            x, clip = x[keep], clip[keep]
        if len(np.unique(clip)) < 2:
            continue  # no other clip of its own to compare with
        x = (x - mu) / sd
        own = np.full(len(x), np.inf)
        for c in np.unique(clip):
            at = clip == c
            own[at] = _nearest(x[at], x[~at])
        for kind in sorted(shipped):
            k = shipped[kind]
            if len(k) > len(x):
                k = k[np.sort(rng.choice(len(k), size=len(x), replace=False))]
            fraction = float(np.mean(_nearest(x, (k - mu) / sd) < own))
            if fraction >= share and fraction > out.get(kind, {}).get("share", -1.0):
                out[kind] = {"label": label, "share": round(fraction, 3)}
    return out


def choose_negatives(
    negatives: "ShippedNegatives",
    owner: Mapping[str, tuple[np.ndarray, np.ndarray]],
    labels: Sequence[str],
    names: np.ndarray,
    unusable: set[str],
    min_level_db: float | None,
    seed: int,
) -> tuple[list[dict[str, str]], dict[str, int], list[str], dict[str, Any]]:
    """The shipped clips to add as background for an owner teaching ``labels`` (all clips: ``names``)
    whose sound labels hold the windows ``owner`` (label → (windows, their clip), background left out): of every
    kind neither named like a label nor claimed by the owner's windows, as many clips as the
    median label has (drawn with ``seed``), never a key in ``unusable``. Returns the chosen
    clips, the count per kind used, the kinds named like a label, and the claimed kinds."""
    named = [k for k in negatives.kinds if k in labels]
    candidates = [c for c in negatives.clips if c["kind"] not in labels and c["key"] not in unusable]
    kinds = sorted({c["kind"] for c in candidates})
    shipped = {kind: negatives.windows([c["key"] for c in candidates if c["kind"] == kind], min_level_db)[0]
               for kind in kinds}
    rng = np.random.default_rng(seed)
    claimed = claimed_kinds(dict(owner), shipped, rng)
    per_kind = int(np.median([int(np.sum(names == label)) for label in labels]))
    chosen: list[dict[str, str]] = []
    for kind in kinds:
        if kind in claimed:
            continue
        own = [c for c in candidates if c["kind"] == kind]
        chosen += [own[i] for i in sorted(rng.choice(len(own), size=min(per_kind, len(own)), replace=False))]
    used = {kind: sum(c["kind"] == kind for c in chosen) for kind in kinds if kind not in claimed}
    return chosen, used, named, claimed


def negatives_note(used: Mapping[str, int], named: Sequence[str], claimed: Mapping[str, Any], share: float,
                   merge_share: float, examples: Mapping[str, int] | None = None) -> str:
    """The training note saying which shipped kinds were added (and how: ``share`` of the owner's clips,
    joined to background up to ``merge_share``) and which were left out."""
    said = ", ".join(f"{k} ({n})" for k, n in used.items()) or "none"
    how = "as background" if share <= merge_share else "as a gated class of their own"
    whose = "your clips with the shipped examples" if examples else "your clips"
    note = f"shipped negatives {how} ({share:.2f} of {whose}; up to {merge_share:g} they join background): {said}"
    if examples:
        note += "; named like your labels, their recordings joined your examples: " + \
            ", ".join(f"{k} ({n})" for k, n in examples.items())
    left = [k for k in named if k not in (examples or {})]
    if left:
        note += f"; left out, named like your labels: {', '.join(left)}"
    if claimed:
        note += "; left out, your labels' sound: " + ", ".join(f"{k} (like {v['label']})" for k, v in claimed.items())
    return note
