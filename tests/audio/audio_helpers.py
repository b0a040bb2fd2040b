"""Helpers shared by the audio tests (own module name: no clash with other folders)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

TRAIN_PER_LABEL = 8
TEST_PER_LABEL = 5


def recording(path: Path) -> str:
    """The recording a dev clip comes from. SNU clips (snu_PPPNNN) are separate
    recordings of one position; ESC-50 takes (…-<id>-A/B) share their <id>; the
    crying-baby cuts (<source>_<n>) share their source file."""
    stem = path.stem
    if re.fullmatch(r"snu_\d{6}", stem):
        return stem
    m = re.fullmatch(r".*_\d+-(\d+)-[A-Z]", stem)
    if m:
        return "esc" + m.group(1)
    m = re.fullmatch(r"(.*)_\d+", stem)
    return m.group(1) if m else stem


def small_split(root: Path, feature_print) -> dict:
    """Per label: up to TRAIN_PER_LABEL training and TEST_PER_LABEL test clips,
    never two clips of one recording on both sides."""
    from device.audio.sources import load_audio

    rng = np.random.default_rng(7)
    split: dict[str, list] = {"train": [], "test": []}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        groups: dict[str, list[Path]] = defaultdict(list)
        for f in sorted(folder.glob("*.flac")):
            groups[recording(f)].append(f)
        names = sorted(groups)
        rng.shuffle(names)
        test, train = [], []
        for name in names:  # fill the test side first, whole recordings at a time
            (test if len(test) < TEST_PER_LABEL else train).extend(groups[name])
        for side, files, n in (("test", test, TEST_PER_LABEL), ("train", train, TRAIN_PER_LABEL)):
            for f in files[:n]:
                split[side].append((f, folder.name, feature_print.transform_clip(load_audio(f))))
    return split


def train_logistic(items, feature_print):
    from device.components import Examples
    from device.learn import LogisticRegressionClassifier

    data = Examples.of(np.stack([feature_print.dequantize(q) for _, _, q in items]), [label for _, label, _ in items])
    model = LogisticRegressionClassifier(l2_penalty=1e-2, max_iterations=300).fit(data)
    model.metadata["feature_print_fingerprint"] = feature_print.fingerprint()
    model.feature_scales = feature_print.scales  # as the trainer stores them: int8 windows are dequantised
    return model
