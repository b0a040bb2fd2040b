"""What a label may be: one rule for folders, manifests, ``cadence record`` and model files.

A label becomes a folder name, an MQTT payload value, a Home Assistant event
type and part of an entity id and a value template, so it is kept to plain
names: letters and digits of any script, space, ``_ - . + ( )``; no leading
dot or underscore (``_`` labels are the model's own, such as ``_other``); at
most 64 characters. Two labels that differ only in the characters an entity id
cannot hold (``a b`` and ``a_b``) would be one sensor, so a label set refuses them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_LABEL = 64
_ALLOWED = re.compile(r"[\w .+()\-]+")
RULE = (f"a name of at most {MAX_LABEL} characters: letters, digits, space and _ - . + ( ), "
        "not starting with . or _")


def label_problem(label: str, *, saved: bool = False) -> str | None:
    """Why ``label`` is no valid label, or None. ``saved``: a label of a model already trained, judged by the
    rules it was trained under (a label with no letter or digit was accepted until 2026-12-08)."""
    if not label or label != label.strip():
        return f"label {label!r} is empty or has surrounding spaces"
    if len(label) > MAX_LABEL or label.startswith((".", "_")) or not _ALLOWED.fullmatch(label):
        return f"label {label!r} is not a valid name ({RULE})"
    if not saved and not label_key(label):
        return f"label {label!r} has no letter or digit (its sensor would have no name)"
    return None


def label_key(label: str) -> str:
    """The label as a Home Assistant key part: ASCII a-z, 0-9 and _ only, since HA reads discovery topics
    and entity ids of nothing else (``Push-up`` → ``push_up``; a letter's accent is dropped, ``ü`` → ``u``,
    and a letter with no ASCII form is its code point, ``俯`` → ``u4fef``). Runs of separators are one
    ``_`` and none ends it (``curl (left)`` → ``curl_left``): an entity id may not end with ``_``."""
    return re.sub("_+", "_", label_key_before(label)).strip("_")


def label_key_before(label: str) -> str:
    """:func:`label_key` as it was until 2026-12-08 (runs of ``_`` kept, ends not stripped): sensors
    announced under it are removed where it differs from today's."""
    return "".join(_key_char(c) for c in label.lower())


def _key_char(c: str) -> str:
    if c.isascii() or not c.isalnum():
        return c if c.isascii() and c.isalnum() else "_"
    base = "".join(b for b in unicodedata.normalize("NFKD", c) if b.isascii() and b.isalnum())
    return base.lower() or f"u{ord(c):04x}"


def labels_problem(labels: Iterable[str], *, saved: bool = False) -> str | None:
    """Why this set of labels cannot be one model's, or None. ``saved``: the labels of a model already
    trained, judged by the rules it was trained under (keys of before 2026-12-08, :func:`label_key_before`),
    so that a model that loaded before still loads; its sensors may then share a key (one wins)."""
    key = label_key_before if saved else label_key
    seen: dict[str, str] = {}
    for label in labels:
        problem = label_problem(label, saved=saved)
        if problem:
            return problem
        other = seen.setdefault(key(label), label)
        if other != label:
            return (f"labels {other!r} and {label!r} would have the same sensor id ({key(label)!r}: they differ "
                    "only in punctuation, case or accents); rename one and retrain")
    return None
