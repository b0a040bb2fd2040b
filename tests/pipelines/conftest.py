"""Fixtures for the one-pipeline tests: shared clips, a small sound model trained by the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (DATA / "videos").is_dir() or not (DATA / "room-sounds-dev").is_dir():
        pytest.skip(f"shared test data not found at {DATA.resolve()} (clone with ../shared beside the repo)")
    return DATA


@pytest.fixture(scope="session")
def sound_model(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained with `cadence train sound` on 8 clips of three labels."""
    from device.cli import main

    work = tmp_path_factory.mktemp("sound-model")
    data = work / "data"
    for label in ("crying_baby", "vacuum_cleaner", "background"):
        (data / label).mkdir(parents=True)
        for clip in sorted((shared / "room-sounds-dev" / label).glob("*.flac"))[::4][:8]:  # several recordings
            (data / label / clip.name).symlink_to(clip)
    model = work / "sound.model"
    assert main(["train", "sound", str(data), "--out", str(model), "--state-dir", str(work / "state"), "--quiet"]) == 0
    return model
