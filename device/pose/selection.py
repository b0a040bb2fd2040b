"""Choose one person's pose per frame, and keep only the joints that matter.

- :class:`PoseSelector` picks one pose from a frame's list (the exerciser in
  a room with others) by a simple, predictable rule. An empty list gives
  ``None`` ("no pose"), never an exception; later stages treat it as a gap.
- :class:`JointsSelector` keeps some joints and blanks the rest (x, y, z set to
  NaN, visibility to 0), e.g. to make a counter ignore the legs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

from ..components.core import Transformer
from .landmarks import LANDMARK_NAMES, VISIBILITY, Pose, landmark_index

Strategy = Literal[
    "maximum_bounding_box_area",
    "highest_joint_location",
    "lowest_joint_location",
    "leftmost_joint_location",
    "rightmost_joint_location",
]
STRATEGIES: tuple[str, ...] = (
    "maximum_bounding_box_area",
    "highest_joint_location",
    "lowest_joint_location",
    "leftmost_joint_location",
    "rightmost_joint_location",
)


class PoseSelector(Transformer[list, Any]):
    """Pick one :class:`Pose` from a list by ``strategy``.

    Strategies (judged only on joints whose visibility is at least
    ``confidence_threshold``; poses with no such joint are never picked):

    - ``maximum_bounding_box_area`` (default): the largest box around those
      joints (in pixels when the image size is known), i.e. usually the nearest person;
    - ``highest_joint_location`` / ``lowest_joint_location``: the pose with the
      joint nearest the top / bottom of the image;
    - ``leftmost_joint_location`` / ``rightmost_joint_location``: the pose with
      the joint nearest the left / right edge (as the image is seen).
    """

    input_type = list
    output_type = None

    def __init__(self, strategy: Strategy | str = "maximum_bounding_box_area", confidence_threshold: float = 0.2) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown pose selection strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1], got {confidence_threshold}")
        self.strategy = strategy
        self.confidence_threshold = confidence_threshold

    def _confident_xy(self, pose: Pose) -> np.ndarray:
        lm = pose.landmarks
        ok = (lm[:, VISIBILITY] >= self.confidence_threshold) & np.isfinite(lm[:, :2]).all(axis=1)
        xy = lm[ok, :2].astype(np.float64)
        width, height = pose.image_size
        if width > 0 and height > 0:
            xy = xy * np.array([width, height])
        return xy

    def score(self, pose: Pose) -> float | None:
        """The value the strategy maximises for ``pose`` (``None``: not eligible)."""
        xy = self._confident_xy(pose)
        if xy.shape[0] == 0:
            return None
        if self.strategy == "maximum_bounding_box_area":
            span = xy.max(axis=0) - xy.min(axis=0)
            return float(span[0] * span[1])
        if self.strategy == "highest_joint_location":
            return float(-xy[:, 1].min())
        if self.strategy == "lowest_joint_location":
            return float(xy[:, 1].max())
        if self.strategy == "leftmost_joint_location":
            return float(-xy[:, 0].min())
        return float(xy[:, 0].max())  # rightmost

    def apply(self, poses: Sequence[Pose] | Pose | None) -> Pose | None:
        if poses is None:
            return None
        if isinstance(poses, Pose):
            poses = [poses]
        best: Pose | None = None
        best_score = -np.inf
        for pose in poses:
            value = self.score(pose)
            if value is not None and value > best_score:
                best, best_score = pose, value
        return best

    def __repr__(self) -> str:
        return f"PoseSelector({self.strategy!r}, confidence_threshold={self.confidence_threshold})"


class JointsSelector(Transformer[Any, Any]):
    """Keep ``selected`` joints (or drop ``ignored`` ones); the others are blanked.

    Joints are given by name (``"left_wrist"``) or index. Works on a
    :class:`Pose`, a list of poses, or ``None`` (passed through).
    """

    def __init__(
        self,
        selected: Iterable[str | int] | None = None,
        *,
        ignored: Iterable[str | int] | None = None,
    ) -> None:
        if (selected is None) == (ignored is None):
            raise ValueError("JointsSelector needs exactly one of selected=… or ignored=…")
        names = list(selected if selected is not None else ignored)  # type: ignore[arg-type]
        indices = sorted({landmark_index(n) for n in names})
        if selected is not None and not indices:
            raise ValueError("JointsSelector: selected must name at least one joint")
        keep = np.zeros(len(LANDMARK_NAMES), dtype=bool)
        keep[indices] = True
        self.keep = keep if selected is not None else ~keep
        self.selected = [LANDMARK_NAMES[i] for i in np.flatnonzero(self.keep)]

    def _one(self, pose: Pose) -> Pose:
        landmarks = pose.landmarks.copy()
        landmarks[~self.keep, :3] = np.nan
        landmarks[~self.keep, VISIBILITY] = 0.0
        kept = landmarks[self.keep, :2]
        finite = np.isfinite(kept).all(axis=1)
        if finite.any():
            lo, hi = kept[finite].min(axis=0), kept[finite].max(axis=0)
            bbox = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        else:
            bbox = pose.bbox
        return Pose(landmarks, bbox, pose.score, pose.image_size)

    def apply(self, x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, Pose):
            return self._one(x)
        return [self._one(p) for p in x]

    def __repr__(self) -> str:
        return f"JointsSelector(selected={self.selected})"
