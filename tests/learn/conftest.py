"""Shared fixtures for the learn tests: the dev data set and a small real feature print."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from learn_data import make_subset  # noqa: E402 - after the path insert

@pytest.fixture(scope="session")
def simple_print():
    from simple_print import SimpleFeaturePrint

    return SimpleFeaturePrint()


@pytest.fixture(scope="session")
def dev_features(dev_data, simple_print):
    """(names, labels, int8 features of whole clips) for up to 40 clips per dev label, computed once."""
    import numpy as np

    from device.audio.sources import load_audio

    names, labels, feats = [], [], []
    for folder in sorted(p for p in dev_data.iterdir() if p.is_dir()):
        for f in sorted(folder.glob("*.flac"))[:40]:
            names.append(f.name)
            labels.append(folder.name)
            feats.append(simple_print.transform(load_audio(f)))
    return names, labels, np.stack(feats)


@pytest.fixture()
def small_data(dev_data, tmp_path) -> Path:
    """4 labels, 60 clips, several recordings per label."""
    return make_subset(
        dev_data, tmp_path / "data", {"ball_drop": 20, "chair_drag": 20, "crying_baby": 10, "vacuum_cleaner": 10}
    )
