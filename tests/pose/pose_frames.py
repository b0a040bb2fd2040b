"""Helpers shared by the pose tests (a uniquely named module, importable by path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def first_frames(path: Path, count: int, start: int = 0) -> list[np.ndarray]:
    from device.video import read_video

    return [item.value for item in read_video(path, start_frame=start, max_frames=count)]
