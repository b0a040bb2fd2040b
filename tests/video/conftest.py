from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
VIDEOS = DATA / "videos"


@pytest.fixture(scope="session")
def videos() -> Path:
    if not (VIDEOS / "jumping_jacks_11.mp4").is_file():
        pytest.skip(f"shared test data not found at {VIDEOS.resolve()} (clone with ../shared beside the repo)")
    return VIDEOS


@pytest.fixture(scope="session")
def short_clip(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 12 frames of a real clip, re-encoded small (fast to decode)."""
    import cv2

    out = tmp_path_factory.mktemp("clip") / "short.avi"
    capture = cv2.VideoCapture(str(videos / "jumping_jacks_11.mp4"))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 180))
    for _ in range(12):
        ok, frame = capture.read()
        assert ok
        writer.write(cv2.resize(frame, (320, 180)))
    writer.release()
    capture.release()
    return out
