"""A pose drawn on its picture, as a small JPEG: what the owner looks at to aim the camera.

Only landmarks the model sees (visibility ≥ :data:`MIN_VISIBILITY`) and the
bones between two of them are drawn, so a half-hidden person does not get
invented limbs. OpenCV does the drawing and the encoding (it is already
what reads the camera).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .landmarks import POSE_CONNECTIONS, VISIBILITY, X, Y

MIN_VISIBILITY = 0.5
BONE = (80, 220, 80)  # BGR green
JOINT = (40, 160, 255)  # BGR orange
BOX = (255, 200, 0)  # BGR light blue


def draw_pose(image: np.ndarray, pose: Any | None) -> np.ndarray:
    """A copy of the BGR ``image`` with ``pose``'s skeleton and box drawn (None: unchanged copy)."""
    import cv2

    out = np.ascontiguousarray(image).copy()
    if pose is None:
        return out
    height, width = out.shape[:2]
    scale = max(1, round(max(width, height) / 320))
    points = np.asarray(pose.landmarks, dtype=np.float32)
    seen = points[:, VISIBILITY] >= MIN_VISIBILITY
    xy = np.stack([points[:, X] * width, points[:, Y] * height], axis=1)
    xy = np.nan_to_num(xy, nan=-1.0).round().astype(np.int32)
    for a, b in POSE_CONNECTIONS:
        if seen[a] and seen[b]:
            cv2.line(out, tuple(map(int, xy[a])), tuple(map(int, xy[b])), BONE, 2 * scale, cv2.LINE_AA)
    for i in np.flatnonzero(seen):
        cv2.circle(out, tuple(map(int, xy[i])), 2 * scale, JOINT, -1, cv2.LINE_AA)
    bbox = getattr(pose, "bbox", None)
    if bbox is not None and np.all(np.isfinite(bbox)):
        x0, y0, x1, y1 = (float(v) for v in bbox)
        cv2.rectangle(out, (int(x0 * width), int(y0 * height)), (int(x1 * width), int(y1 * height)), BOX, scale)
    return out


def pose_snapshot(image: np.ndarray, pose: Any | None, *, width: int = 320, quality: int = 70) -> bytes:
    """``image`` (BGR) scaled to ``width`` pixels (never up) with ``pose`` drawn, as JPEG bytes
    (scaled first: the lines stay crisp and the drawing costs less)."""
    import cv2

    height, current = image.shape[:2]
    if current > width:
        image = cv2.resize(image, (width, max(1, round(height * width / current))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", draw_pose(image, pose), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("the picture could not be encoded as JPEG")
    return data.tobytes()
