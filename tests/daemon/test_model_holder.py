"""The model holder's rules, with a stand-in loader (no broker, no model files of Cadence's):
a shipped fallback while the owner's file is missing, a bad file never replacing a working
model, a swap only once a copy has settled."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from device.daemon.model_holder import ModelHolder


class Model:
    def __init__(self, labels: list[str]) -> None:
        self.labels = labels


def load(path: Path) -> Model:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not data.get("labels"):
        raise ValueError(f"{path.name}: not a model")
    return Model(list(data["labels"]))


def write(path: Path, labels: list[str] | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(labels if isinstance(labels, str) else json.dumps({"labels": labels}))
    os.replace(tmp, path)


@pytest.fixture
def shipped(tmp_path) -> Path:
    path = tmp_path / "shipped" / "exercise.model"
    write(path, ["squat", "push_up", "unknown"])
    return path


async def test_the_shipped_model_stands_in_for_the_owners(tmp_path, shipped):
    owner = tmp_path / "state" / "models" / "exercise.model"
    holder = ModelHolder(owner, load, kind="exercise", fallback=lambda: shipped)
    assert await holder.check(force=True) == "loaded"
    assert holder.shipped and holder.labels == ["squat", "push_up", "unknown"] and holder.info["path"] == str(shipped)
    shipped_model = holder.current
    assert await holder.check() is None  # still no owner's file: nothing to do (not loaded again)
    # a broken file of the owner's: the shipped model stays, the failure is said in one line
    write(owner, "{ truncated")
    assert await holder.check() is None  # a copy in progress is left to settle for one check
    assert await holder.check() == "failed"
    assert holder.current is shipped_model and holder.shipped and holder.failed
    assert holder.info["last_error"].startswith(f"exercise model {owner} not loaded, keeping exercise.model@")
    assert "\n" not in holder.info["last_error"]
    # a good one: swapped in
    write(owner, ["squat", "star_jump", "unknown"])
    assert await holder.check() is None and await holder.check() == "loaded"
    assert not holder.shipped and holder.labels == ["squat", "star_jump", "unknown"] and not holder.failed
    # removed: the shipped model is back
    owner.unlink()
    assert await holder.check() == "loaded" and holder.shipped and holder.labels == ["squat", "push_up", "unknown"]


async def test_a_missing_shipped_model_fails_once_and_is_tried_again_on_reload(tmp_path):
    def gone() -> Path:
        raise FileNotFoundError("models/exercise.model is missing; run `cadence models fetch`")

    holder = ModelHolder(tmp_path / "exercise.model", load, kind="exercise", fallback=gone)
    assert await holder.check(force=True) == "failed"
    assert holder.current is None and holder.info["status"] == "failed"
    assert "(shipped, as" in holder.info["last_error"] and "cadence models fetch" in holder.info["last_error"]
    assert await holder.check() is None  # not every few seconds
    assert await holder.check(force=True) == "failed"  # a reload tries again


async def test_without_a_fallback_a_missing_file_means_no_model(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cadence.daemon")
    holder = ModelHolder(tmp_path / "sound.model", load, kind="sound", hint="train one: cadence retrain sound")
    assert await holder.check(force=True) is None
    assert holder.current is None and holder.info["status"] == "no model file" and not holder.shipped
    assert f"no sound model at {tmp_path / 'sound.model'} yet: train one: cadence retrain sound" in caplog.text
