from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (DATA / "videos").is_dir():
        pytest.skip(f"shared test data not found at {DATA.resolve()} (clone with ../shared beside the repo)")
    return DATA


@pytest.fixture(scope="session")
def video_dir(shared_data: Path) -> Path:
    return shared_data / "videos"


@pytest.fixture(scope="session")
def pose_models() -> None:
    from device import pretrained

    states = pretrained.status()
    missing = [n for n in ("pose_detection.tflite", "pose_landmark_full.tflite") if states.get(n) != "ok"]
    if missing:
        pytest.skip(f"pose models not fetched ({', '.join(missing)}); run `cadence models fetch`")

