"""Fixtures for the audio tests: the dev data set, one feature print, a small trained model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

@pytest.fixture(scope="session")
def feature_print():
    from device.audio.featureprint import AudioFeaturePrint

    return AudioFeaturePrint()


@pytest.fixture(scope="session")
def dev_split(dev_data, feature_print):
    """A small split of the dev set by recording, with int8 features computed once."""
    from audio_helpers import small_split

    return small_split(dev_data, feature_print)


@pytest.fixture(scope="session")
def trained_model(dev_split, feature_print, tmp_path_factory):
    """A logistic regression trained on the training part; saved to disk too."""
    from audio_helpers import train_logistic

    model = train_logistic(dev_split["train"], feature_print)
    path = tmp_path_factory.mktemp("model") / "sound.cadence"
    model.save(path)
    return model, path
