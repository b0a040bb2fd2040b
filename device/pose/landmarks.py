"""The :class:`Pose` type and BlazePose's 33 landmark names and indices.

A pose is what every later stage (selection, counting, training) works on, so
it is kept deliberately plain: a ``(33, 4)`` float array of ``x, y, z,
visibility`` with ``x``/``y`` normalised to the image (0..1 from the left/top
edge), ``z`` on roughly the same scale as ``x`` (depth relative to the hips,
smaller is closer to the camera) and ``visibility`` in 0..1, plus a bounding
box and an overall score.
"""

from __future__ import annotations

import dataclasses

import numpy as np

LANDMARK_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
NUM_LANDMARKS = len(LANDMARK_NAMES)  # 33
LANDMARK_INDEX: dict[str, int] = {name: i for i, name in enumerate(LANDMARK_NAMES)}

# Index constants, e.g. ``landmarks[LEFT_WRIST]``.
NOSE = 0
LEFT_EYE_INNER, LEFT_EYE, LEFT_EYE_OUTER = 1, 2, 3
RIGHT_EYE_INNER, RIGHT_EYE, RIGHT_EYE_OUTER = 4, 5, 6
LEFT_EAR, RIGHT_EAR = 7, 8
MOUTH_LEFT, MOUTH_RIGHT = 9, 10
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_ELBOW, RIGHT_ELBOW = 13, 14
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_PINKY, RIGHT_PINKY = 17, 18
LEFT_INDEX, RIGHT_INDEX = 19, 20
LEFT_THUMB, RIGHT_THUMB = 21, 22
LEFT_HIP, RIGHT_HIP = 23, 24
LEFT_KNEE, RIGHT_KNEE = 25, 26
LEFT_ANKLE, RIGHT_ANKLE = 27, 28
LEFT_HEEL, RIGHT_HEEL = 29, 30
LEFT_FOOT_INDEX, RIGHT_FOOT_INDEX = 31, 32

# Columns of ``Pose.landmarks``.
X, Y, Z, VISIBILITY = 0, 1, 2, 3

# Skeleton edges (pairs of indices), for drawing and for limb-length checks.
POSE_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip


def torso_length(xy: np.ndarray) -> np.ndarray:
    """Shoulder-midpoint to hip-midpoint distance of ``(..., 33, 2)`` points (one per leading index)."""
    xy = np.asarray(xy, dtype=float)
    shoulders = (xy[..., LEFT_SHOULDER, :] + xy[..., RIGHT_SHOULDER, :]) / 2
    hips = (xy[..., LEFT_HIP, :] + xy[..., RIGHT_HIP, :]) / 2
    return np.linalg.norm(shoulders - hips, axis=-1)


def landmark_distance(reference: np.ndarray, other: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Per frame: mean pixel distance of the 33 landmarks divided by the reference's torso length.

    ``reference`` and ``other`` are ``(frames, 33, >=2)`` image-normalised
    landmarks (NaN rows: no person); only frames where both found someone count.
    The measure ``scripts/compare_mediapipe.py`` reports against MediaPipe, and a landmark-model
    variant is held to (``device.boards.FIDELITY_LIMIT``).
    """
    n = min(len(reference), len(other))
    ref, oth = np.asarray(reference[:n, :, :2], float), np.asarray(other[:n, :, :2], float)
    both = np.isfinite(ref).all(axis=(1, 2)) & np.isfinite(oth).all(axis=(1, 2))
    scale = np.asarray(image_size, dtype=float)
    r, o = ref[both] * scale, oth[both] * scale
    return np.linalg.norm(r - o, axis=2).mean(axis=1) / np.maximum(torso_length(r), 1e-6)


def landmark_index(name_or_index: str | int) -> int:
    """Index of a landmark given its name (``"left_wrist"``) or index."""
    if isinstance(name_or_index, (int, np.integer)):
        index = int(name_or_index)
        if not 0 <= index < NUM_LANDMARKS:
            raise ValueError(f"landmark index must be 0..{NUM_LANDMARKS - 1}, got {index}")
        return index
    try:
        return LANDMARK_INDEX[str(name_or_index)]
    except KeyError:
        raise ValueError(
            f"unknown landmark {name_or_index!r}; names are: {', '.join(LANDMARK_NAMES)}"
        ) from None


@dataclasses.dataclass(frozen=True, eq=False)
class Pose:
    """One person's 33 landmarks in one image.

    ``landmarks``: float32 ``(33, 4)``: x, y (image-normalised), z, visibility.
    ``bbox``: ``(x_min, y_min, x_max, y_max)``, image-normalised, around the
    landmarks. ``score``: the landmark model's pose-presence score (0..1).
    ``image_size``: ``(width, height)`` in pixels of the image the pose was found in
    (``(0, 0)`` when unknown), so pixel positions and aspect-correct distances can
    be derived.
    """

    landmarks: np.ndarray
    bbox: tuple[float, float, float, float]
    score: float
    image_size: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        landmarks = np.asarray(self.landmarks, dtype=np.float32)
        if landmarks.shape != (NUM_LANDMARKS, 4):
            raise ValueError(f"Pose.landmarks must have shape (33, 4), got {landmarks.shape}")
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "bbox", tuple(float(v) for v in self.bbox))
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

    @classmethod
    def from_landmarks(
        cls, landmarks: np.ndarray, score: float = 1.0, image_size: tuple[int, int] = (0, 0)
    ) -> "Pose":
        """A pose whose bounding box is the extent of its landmarks."""
        landmarks = np.asarray(landmarks, dtype=np.float32)
        xy = landmarks[:, :2]
        finite = np.isfinite(xy).all(axis=1)
        if finite.any():
            lo, hi = xy[finite].min(axis=0), xy[finite].max(axis=0)
            bbox = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        else:
            bbox = (float("nan"),) * 4
        return cls(landmarks, bbox, score, image_size)

    # -- views --------------------------------------------------------------
    @property
    def xy(self) -> np.ndarray:
        """``(33, 2)`` image-normalised x, y."""
        return self.landmarks[:, :2]

    @property
    def visibility(self) -> np.ndarray:
        return self.landmarks[:, VISIBILITY]

    def pixels(self, image_size: tuple[int, int] | None = None) -> np.ndarray:
        """``(33, 2)`` pixel coordinates (needs ``image_size`` here or on the pose)."""
        width, height = image_size or self.image_size
        if width <= 0 or height <= 0:
            raise ValueError("Pose.pixels needs the image size (width, height)")
        return self.xy * np.array([width, height], dtype=np.float32)

    def __getitem__(self, name_or_index: str | int) -> np.ndarray:
        """One landmark's ``(x, y, z, visibility)`` by name or index."""
        return self.landmarks[landmark_index(name_or_index)]

    @property
    def bbox_area(self) -> float:
        """Bounding-box area in image-normalised units (pixels² if the size is known)."""
        x0, y0, x1, y1 = self.bbox
        area = max(0.0, x1 - x0) * max(0.0, y1 - y0)
        width, height = self.image_size
        return area * width * height if width > 0 and height > 0 else area

    def torso_size(self) -> float:
        """Shoulder-midpoint to hip-midpoint distance (in pixels when the image size is known).

        The usual scale for comparing poses of people at different distances.
        """
        return float(torso_length(self.pixels() if self.image_size[0] > 0 else self.xy))

    def to_dict(self, decimals: int = 5) -> dict:
        """A JSON-friendly form (names → [x, y, z, visibility])."""
        return {
            "score": round(self.score, 4),
            "bbox": [round(v, decimals) for v in self.bbox],
            "image_size": list(self.image_size),
            "landmarks": {
                name: [round(float(v), decimals) for v in self.landmarks[i]] for i, name in enumerate(LANDMARK_NAMES)
            },
        }

    def __repr__(self) -> str:
        x0, y0, x1, y1 = self.bbox
        return f"Pose(score={self.score:.2f}, bbox=({x0:.3f}, {y0:.3f}, {x1:.3f}, {y1:.3f}))"


def empty_landmarks() -> np.ndarray:
    """A ``(33, 4)`` array of NaN: the row written for a frame with no person."""
    return np.full((NUM_LANDMARKS, 4), np.nan, dtype=np.float32)
