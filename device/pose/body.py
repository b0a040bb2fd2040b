"""The body shape the repetition counter follows: 7 points per frame, position and scale removed.

Per frame: the nose and the midpoints of the six left/right joint pairs
(shoulders, elbows, wrists, hips, knees, ankles) after per-frame, per-axis
min–max normalisation — the same normalisation as the RepCount pose data, so
the counter sees camera poses and those sequences alike. Midpoints are immune
to the left/right swaps pose estimators make in side views; a pair with one
side hidden uses the other side. The rest-side model (``device/pose/rest.py``)
is learned in these same coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# BlazePose left-side indices of shoulders, elbows, wrists, hips, knees, ankles;
# the right side is the next index.
_LEFT = np.array([11, 13, 15, 23, 25, 27])
_RIGHT = _LEFT + 1
FEATURE_POINTS = 1 + len(_LEFT)  # nose + six midpoints


def pose_array(value: Any) -> np.ndarray | None:
    """One frame's landmarks as a float array (33, k), or None if no person."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 2 and value.shape[0] == 33 and value.shape[1] >= 2:
        return value
    for attr in ("landmarks", "array", "values"):
        inner = getattr(value, attr, None)
        if inner is not None and not callable(inner):
            value = inner
            break
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != 33 or arr.shape[1] < 2:
        raise ValueError(f"HumanBodyActionCounter: a pose must have shape (33, 2|3|4), got {arr.shape}")
    return arr


def body_features(poses: Sequence[Any], dims: int = 2, min_visibility: float = 0.3,
                  last: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(frames, 7·dims) features, whether each frame shows a person, and the last
    frame's points (pass it back in with the next frames: hidden joints hold
    their last seen position). A frame without a person is a NaN row;
    landmarks below ``min_visibility`` (4th column) are left out."""
    n = len(poses)
    arrays = [pose_array(p) for p in poses]
    shapes = {a.shape for a in arrays if a is not None}
    if len(shapes) == 1 and all(a is not None for a in arrays) and next(iter(shapes))[1] >= dims:
        raw = np.stack(arrays)  # the usual case: one person in every frame
        vis = raw[:, :, 3] if raw.shape[2] >= 4 else None
    else:
        raw = np.full((n, 33, 4), np.nan)
        raw[:, :, 2] = 0.0
        raw[:, :, 3] = 1.0
        for i, arr in enumerate(arrays):
            if arr is not None:
                k = min(arr.shape[1], 4)
                raw[i, :, :k] = arr[:, :k]
        vis = raw[:, :, 3]
    xyz = raw[:, :, :dims]
    good = np.isfinite(xyz).all(axis=2)
    if vis is not None:
        good &= ~(vis < min_visibility)
    ok = good.sum(axis=1) >= 8
    everywhere = bool(good.all())
    if everywhere:
        big = xyz.min(axis=1, keepdims=True)
        top = xyz.max(axis=1, keepdims=True)
    else:
        big = np.where(good[:, :, None], xyz, np.inf).min(axis=1, keepdims=True)
        top = np.where(good[:, :, None], xyz, -np.inf).max(axis=1, keepdims=True)
        big[~np.isfinite(big)] = 0.0
    span = top - big
    span[~(span > 1e-9)] = 1.0
    norm = (xyz - big) / span  # position and scale removed, per frame and axis
    nl, nr = norm[:, _LEFT], norm[:, _RIGHT]
    if everywhere:
        mid = 0.5 * (nl + nr)
        sel = np.concatenate([norm[:, :1], mid], axis=1)
        return sel.reshape(n, -1), ok, (sel[-1].copy() if n else last)
    gl, gr = good[:, _LEFT], good[:, _RIGHT]
    mid = np.where((gl & gr)[:, :, None], 0.5 * (nl + nr), np.where(gl[:, :, None], nl, nr))
    sel = np.concatenate([norm[:, :1], mid], axis=1)
    gsel = np.concatenate([good[:, :1], gl | gr], axis=1)
    rows = np.flatnonzero(ok)
    for i in rows[~gsel[rows].all(axis=1)]:  # hidden joints hold their last position
        prev = rows[rows < i]
        fill = sel[prev[-1]] if prev.size else last
        if fill is None:
            fill = np.full(sel[i].shape, 0.5)
        sel[i][~gsel[i]] = fill[~gsel[i]]
    if rows.size:
        last = sel[rows[-1]].copy()
    out = sel.reshape(n, -1)
    out[~ok] = np.nan
    return out, ok, last
