"""Exercise features: one small int8 vector per window of poses.

The exercise classifier sees the windows the repetition counter sees (90
frames every 15 at 30 fps). A window becomes statistics over time (mean,
standard deviation, 10th and 90th percentile) of a per-frame pose descriptor:

* the height of the nose and of the midpoints of the shoulders, elbows,
  wrists, hips, knees and ankles;
* their horizontal offset from the hips, signed so that the nose is on the
  positive side (a person facing left or right gives the same numbers);
* the horizontal and vertical spread of each left/right pair (frontal vs
  side view, arms or legs apart, one leg forward);
* four joint angles (elbow, shoulder, hip, knee) as the mean of both sides
  and their difference;
* the left/right length ratio of four bones (|log|): about 0 for any real
  body seen from any side, large for landmarks that are no body at all (the
  open set's "unknown" uses it). A frame whose bones differ far more than
  that (:data:`MAX_BONE_RATIO`, a broken skeleton) is left out of its window's
  statistics.

Why these: the per-frame descriptor depends only on the body's shape, so the
same statistics come from a single key pose, a synthetic window between two
key poses, a live window and the sequences of the public benchmark. Every
frame is min–max normalised per axis over its landmarks first, because the
benchmark's sequences are only available in that form; image-normalised or
pixel coordinates therefore give exactly the same features. Midpoints and
unsigned pair differences make the vector invariant to left/right mirroring
and immune to the left/right swaps pose estimators make in side views.

The vector is quantised with fixed centres and scales derived from the
value ranges (positions 0..1, offsets -1..1, angles 0..π), so it never needs
calibration data and a cached feature means the same thing on every device.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..components import CadenceError, QuantizedFeature, load_state, save_state
from ..video.file import VIDEO_SUFFIXES
from .exercise_openset import calibrate_open_set
from .posefile import SUFFIX, load_poses
from .settings import PoseSettings

FEATURE_VERSION = 4
# the counter's windows (90 frames every 15 at 30 fps): PoseSettings holds the defaults
WINDOW_FRAMES = int(PoseSettings.model_fields["window"].default)
STRIDE_FRAMES = int(PoseSettings.model_fields["stride"].default)
# a window with fewer frames in which a person was found carries no exercise
MIN_POSE_FRAMES = 8
# a frame whose left and right bones differ in length by more than e**1.25 = 3.5 times (the largest of
# the four |log| ratios of the descriptor) is a broken skeleton, not a body: 5 % of the real frames of
# repcount-dev and exercise-poses (39,938) lie above it (its 95th percentile, 1.247). Such frames are
# left out of a window's statistics when at least MIN_POSE_FRAMES plausible ones remain.
MAX_BONE_RATIO = 1.25
STATISTICS = ("mean", "std", "p10", "p90")
SUFFIXES = (SUFFIX, *VIDEO_SUFFIXES, ".cadence")  # pose arrays (`cadence pose --out`, `cadence record exercise`) and videos
_NOSE = 0
# left-side indices of shoulders, elbows, wrists, hips, knees, ankles; right = left + 1
_LEFT = np.array([11, 13, 15, 23, 25, 27])
_RIGHT = _LEFT + 1
_BODY = np.concatenate([[_NOSE], _LEFT, _RIGHT])
_PAIRS = np.stack([_LEFT, _RIGHT])
_HIP = 3  # position of the hips in _LEFT
_NOT_HIP = np.array([0, 1, 2, 4, 5])
# joint angles as (end, vertex, end) in _LEFT positions: elbow, shoulder, hip, knee
_ANGLES = ((0, 1, 2), (1, 0, 3), (0, 3, 4), (3, 4, 5))
_ANGLE_A, _ANGLE_V, _ANGLE_B = (np.stack([_LEFT[list(k)], _RIGHT[list(k)]]) for k in zip(*_ANGLES))
# bones as (from, to) in _LEFT positions: upper arm, forearm, thigh, shin
_BONES = ((0, 1), (1, 2), (3, 4), (4, 5))
_BONE_A, _BONE_B = (np.stack([_LEFT[list(k)], _RIGHT[list(k)]]) for k in zip(*_BONES))
_PARTS = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")

# per-frame descriptor: name and value range (lo, hi)
DESCRIPTOR: tuple[tuple[str, float, float], ...] = (
    *((f"y_{p}", 0.0, 1.0) for p in ("nose", *_PARTS)),
    *((f"x_{p}", -1.0, 1.0) for p in ("nose", "shoulder", "elbow", "wrist", "knee", "ankle")),
    *((f"spread_x_{p}", 0.0, 1.0) for p in _PARTS),
    *((f"spread_y_{p}", 0.0, 1.0) for p in _PARTS),
    *((f"angle_{a}", 0.0, 1.0) for a in ("elbow", "shoulder", "hip", "knee")),
    *((f"angle_diff_{a}", 0.0, 1.0) for a in ("elbow", "shoulder", "hip", "knee")),
    *((f"bone_ratio_{b}", 0.0, 2.0) for b in ("upper_arm", "forearm", "thigh", "shin")),
)
BONE_RATIOS = np.array([i for i, d in enumerate(DESCRIPTOR) if d[0].startswith("bone_ratio_")])
# descriptor columns that are body positions (7 heights, 6 horizontal offsets)
POSITIONS = np.array([i for i, d in enumerate(DESCRIPTOR) if d[0].startswith(("y_", "x_"))])
MOTION_SHAPE = len(POSITIONS) + 1  # first-principal-component loadings of the positions, and its share


class ExerciseFeatureError(CadenceError, ValueError):
    """Pose input the exercise features cannot use (one line for users)."""


def as_landmarks(landmarks: Any) -> np.ndarray:
    """``(frames, 33, 2|3|4)`` as float64; refuses anything else with one line."""
    arr = np.asarray(landmarks, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] != 33 or arr.shape[2] not in (2, 3, 4):
        raise ExerciseFeatureError(f"poses must have shape (frames, 33, 2|3|4), got {arr.shape}")
    return arr


def window_array(window: Sequence[Any] | np.ndarray) -> np.ndarray:
    """A window of poses (arrays, Pose objects or None) as (frames, 33, k) with NaN rows."""
    if isinstance(window, np.ndarray):
        return window
    rows = []
    for item in window:
        arr = None if item is None else np.asarray(getattr(item, "landmarks", item), dtype=np.float64)
        rows.append(arr)
    width = max((r.shape[1] for r in rows if r is not None), default=2)
    out = np.full((len(rows), 33, width), np.nan)
    for i, r in enumerate(rows):
        if r is not None:
            out[i, :, : r.shape[1]] = r[:, :width]
    return out


def frame_descriptors(landmarks: Any) -> np.ndarray:
    """Per-frame descriptor ``(frames, len(DESCRIPTOR))``; NaN rows where the
    body's 13 main joints were not all found."""
    arr = as_landmarks(landmarks)
    xy = arr[:, :, :2]
    finite = np.isfinite(xy).all(axis=2)
    if finite.all():  # the usual case: a person in every frame, every landmark found
        ok = np.ones(len(arr), dtype=bool)
        lo, hi = xy.min(axis=1, keepdims=True), xy.max(axis=1, keepdims=True)
    else:
        ok = finite[:, _BODY].all(axis=1)
        xy, good = xy[ok], finite[ok][:, :, None]
        lo = np.where(good, xy, np.inf).min(axis=1, keepdims=True)
        hi = np.where(good, xy, -np.inf).max(axis=1, keepdims=True)
    out = np.full((len(arr), len(DESCRIPTOR)), np.nan)
    if not ok.any():
        return out
    span = hi - lo
    span[~(span > 1e-9)] = 1.0
    norm = (xy - lo) / span
    pairs = norm[:, _PAIRS]  # (n, 2, 6, 2): left, right
    mid = 0.5 * (pairs[:, 0] + pairs[:, 1])
    nose = norm[:, _NOSE]
    hip_x = mid[:, _HIP, 0:1]
    side = np.where(nose[:, 0:1] >= hip_x, 1.0, -1.0)
    u = norm[:, _ANGLE_A] - norm[:, _ANGLE_V]  # (n, 2, 4, 2): both sides at once
    w = norm[:, _ANGLE_B] - norm[:, _ANGLE_V]
    cos = (u * w).sum(axis=3) / np.maximum(np.sqrt((u * u).sum(axis=3) * (w * w).sum(axis=3)), 1e-9)
    ang = np.arccos(np.clip(cos, -1.0, 1.0)) * (1.0 / np.pi)
    d = np.empty((len(norm), len(DESCRIPTOR)))
    d[:, 0] = nose[:, 1]
    d[:, 1:7] = mid[:, :, 1]
    d[:, 7] = nose[:, 0]
    d[:, 8:13] = mid[:, _NOT_HIP, 0]
    d[:, 7:13] = side * (d[:, 7:13] - hip_x)
    d[:, 13:25] = np.abs(pairs[:, 0] - pairs[:, 1]).transpose(0, 2, 1).reshape(-1, 12)
    d[:, 25:29] = 0.5 * (ang[:, 0] + ang[:, 1])
    d[:, 29:33] = np.abs(ang[:, 0] - ang[:, 1])
    bone = norm[:, _BONE_B] - norm[:, _BONE_A]  # (n, 2, 4, 2)
    length = np.sqrt((bone * bone).sum(axis=3)) + 0.02
    d[:, 33:37] = np.minimum(np.abs(np.log(length[:, 0] / length[:, 1])), 2.0)
    out[ok] = d
    return out


def plausible(descriptors: np.ndarray) -> np.ndarray:
    """Which frames hold a body-like skeleton: no left/right bone pair differs in
    length beyond :data:`MAX_BONE_RATIO` (False for frames without a pose)."""
    with np.errstate(invalid="ignore"):
        return descriptors[:, BONE_RATIOS].max(axis=1) <= MAX_BONE_RATIO


def pool(descriptors: np.ndarray) -> np.ndarray | None:
    """Window statistics of per-frame descriptors (valid rows only); None when
    fewer than :data:`MIN_POSE_FRAMES` frames (or, for a window shorter than
    that, not every frame) hold a pose. Implausible frames (broken skeletons,
    :func:`plausible`) are left out while at least :data:`MIN_POSE_FRAMES`
    plausible ones remain; a window of hardly any body-like frame keeps them all
    (landmarks that are no body stay what the open set recognises)."""
    valid = descriptors[np.isfinite(descriptors[:, 0])]
    if len(valid) < min(MIN_POSE_FRAMES, len(descriptors)) or not len(valid):
        return None
    body = plausible(valid)
    if body.sum() >= MIN_POSE_FRAMES and not body.all():
        valid = valid[body]
    ordered = np.sort(valid, axis=0)
    last = len(valid) - 1
    p10 = ordered[int(round(0.1 * last))]
    p90 = ordered[int(round(0.9 * last))]
    return np.concatenate([valid.mean(axis=0), valid.std(axis=0), p10, p90, _motion_shape(valid)])


def _motion_shape(valid: np.ndarray) -> np.ndarray:
    """Which body positions take part in the window's main motion: the absolute
    loadings of the first principal component of the 13 positions, and the
    share of the motion it explains (1 for a single back-and-forth movement)."""
    pos = valid[:, POSITIONS]
    centred = pos - pos.mean(axis=0)
    cov = centred.T @ centred
    total = float(np.trace(cov))
    if len(valid) < 3 or total < 1e-10:
        return np.zeros(MOTION_SHAPE)
    values, vectors = np.linalg.eigh(cov)
    return np.concatenate([np.abs(vectors[:, -1]), [values[-1] / total]])


def _quantisation() -> tuple[np.ndarray, np.ndarray]:
    """Fixed (centres, scales): each statistic's range maps onto -127..127
    (motion-shape loadings and share: 0..1)."""
    lo = np.array([d[1] for d in DESCRIPTOR])
    hi = np.array([d[2] for d in DESCRIPTOR])
    centres, scales = [], []
    for stat in STATISTICS:
        a, b = (np.zeros_like(lo), (hi - lo) / 2) if stat == "std" else (lo, hi)
        centres.append((a + b) / 2)
        scales.append((b - a) / 254.0)
    unit = np.ones(MOTION_SHAPE)
    centres.append(0.5 * unit)
    scales.append(unit / 254.0)
    return np.concatenate(centres).astype(np.float32), np.concatenate(scales).astype(np.float32)


# windows files: int8 windows kept without their recordings (the shipped exercises' training windows)
WINDOWS_KIND = "cadence.exercise_windows"
WINDOWS_SUFFIX = ".cadence"
MAX_WINDOWS = 200_000  # the shipped set is ~10,000; anything far beyond it is not one of ours


class ExerciseWindowsError(CadenceError, ValueError):
    """A windows file that is not one, or was made by other exercise features."""


def save_windows(path: Path, values: np.ndarray, labels: list[str], features: ExerciseFeatures) -> Path:
    """Write int8 windows with their labels (one label per row)."""
    names = sorted(set(labels))
    index = np.array([names.index(label) for label in labels], dtype=np.int16)
    meta = {"labels": names, "fingerprint": features.fingerprint(), "dimension": features.dimension}
    return save_state(path, WINDOWS_KIND, meta, {"values": np.asarray(values, dtype=np.int8), "label_index": index})


def read_windows(path: str | Path, features: ExerciseFeatures) -> tuple[np.ndarray, list[str]]:
    """(int8 windows, their labels) of a windows file, checked against ``features``."""
    meta, arrays = load_state(path, kind=WINDOWS_KIND, arrays={"values", "label_index"})
    values, index = arrays["values"], arrays["label_index"]
    names = meta.get("labels")
    if meta.get("fingerprint") != features.fingerprint():
        raise ExerciseWindowsError(f"{path}: windows of other exercise features (fingerprint "
                                   f"{str(meta.get('fingerprint'))[:12]}); rebuild them with `make exercise-model`")
    if (values.dtype != np.int8 or values.ndim != 2 or values.shape[1] != features.dimension
            or len(values) > MAX_WINDOWS or index.shape != (len(values),) or not isinstance(names, list)
            or (len(index) and not 0 <= int(index.min()) <= int(index.max()) < len(names))):
        raise ExerciseWindowsError(f"{path}: not a valid exercise windows file")
    return values, [str(names[i]) for i in index]


class ExerciseFeatures:
    """Pose window → :class:`QuantizedFeature` (the featurizer the learn cache
    and the exercise classifier share)."""

    suffixes = SUFFIXES
    #: why a file gave no window, as training says it
    no_window = (f"no window with a body in it (fewer than {MIN_POSE_FRAMES} frames, "
                 "or none where the main joints were found)")
    #: what makes a model for these features (said when a model of another kind is loaded)
    train_command = "cadence train exercise"

    def __init__(self, window: int = WINDOW_FRAMES, stride: int = STRIDE_FRAMES) -> None:
        if window < 1 or stride < 1:
            raise ExerciseFeatureError(f"window and stride must be ≥ 1 frame, got {window} and {stride}")
        self.window = int(window)
        self.stride = int(stride)
        self.centres, self.scales = _quantisation()
        self.dimension = int(self.scales.shape[0])

    def config(self) -> dict[str, Any]:
        """What changes a vector's meaning (window and stride only move the windows)."""
        return {
            "version": FEATURE_VERSION,
            "descriptor": [d[0] for d in DESCRIPTOR],
            "statistics": list(STATISTICS),
            "motion_shape": MOTION_SHAPE,
            "min_pose_frames": MIN_POSE_FRAMES,
            "max_bone_ratio": MAX_BONE_RATIO,
        }

    def fingerprint(self) -> str:
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode())
        digest.update(self.centres.tobytes())
        digest.update(self.scales.tobytes())
        return digest.hexdigest()

    def raw(self, landmarks: Any) -> np.ndarray | None:
        """Float statistics of one window (``None`` when it holds too few poses)."""
        return pool(frame_descriptors(landmarks))

    def quantize(self, raw: np.ndarray) -> np.ndarray:
        q = np.round((np.asarray(raw, dtype=np.float64) - self.centres) / self.scales)
        return np.clip(q, -127, 127).astype(np.int8)

    def feature(self, landmarks: Any, start: float = 0.0, end: float = 0.0) -> QuantizedFeature | None:
        """The quantised vector of one window, or ``None`` (too few poses)."""
        raw = self.raw(landmarks)
        if raw is None:
            return None
        return QuantizedFeature(self.quantize(raw), self.scales, start=start, end=end)

    def window_bounds(self, frames: int) -> Iterator[tuple[int, int]]:
        """``(start, end)`` frame ranges of the windows over ``frames`` frames,
        as the pipeline's SlidingWindow(window, stride, emit_partial=True) makes them."""
        end = self.window
        last = 0
        while end <= frames:
            yield end - self.window, end
            last = end
            end += self.stride
        if frames > last:
            yield max(0, frames - self.window), frames

    def raw_windows(self, poses: Any) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, end, raw statistics)`` of the windows over a pose array (windows with
        too few poses skipped). Each frame is described once: consecutive windows share
        most of their frames, and only the descriptors of the current window are held
        (``poses`` may be memory-mapped: a long recording is read one stride at a time)."""
        held, since = frame_descriptors(np.asarray(poses[:0])), 0  # descriptors of frames since..since+len(held)
        for a, b in self.window_bounds(len(poses)):
            end = since + len(held)
            if a >= end:
                held = frame_descriptors(np.asarray(poses[a:b]))
            else:
                held = np.concatenate([held[a - since :], frame_descriptors(np.asarray(poses[end:b]))])
            since = a
            raw = pool(held)
            if raw is not None:
                yield a, b, raw

    def windows(self, landmarks: Any, fps: float = 30.0) -> Iterator[QuantizedFeature]:
        """Features of the windows of a whole sequence (windows with too few poses skipped)."""
        for a, b, raw in self.raw_windows(as_landmarks(landmarks)):
            yield QuantizedFeature(self.quantize(raw), self.scales, start=a / fps, end=b / fps)

    def file_windows(self, path: str | Path) -> Iterator[QuantizedFeature]:
        """The windows of a ``.npy`` pose array written by ``cadence pose --out``
        (memory-mapped: a long recording is read one window at a time), or of a
        video: the repetition pipeline's own pose stage and windows over it."""
        if Path(path).suffix.lower() in VIDEO_SUFFIXES:
            yield from self._video_windows(Path(path))
            return
        if Path(path).suffix.lower() == WINDOWS_SUFFIX:
            values, _ = read_windows(path, self)
            for row in values:
                yield QuantizedFeature(row, self.scales)
            return
        poses, fps = load_poses(path, mmap=True)
        if len(poses) < MIN_POSE_FRAMES:  # a still picture, not an example of a movement
            return
        for a, b, raw in self.raw_windows(poses):
            yield QuantizedFeature(self.quantize(raw), self.scales, start=a / fps, end=b / fps)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """Raw window statistics (float64) of int8 windows: ``values * scales + centres``."""
        return np.asarray(values, dtype=np.float64) * self.scales + self.centres

    def model_metadata(self, chunks: Iterable[tuple[np.ndarray, Sequence[str]]]) -> dict[str, Any]:
        """The trainer's hook: what a model trained on these features carries beside its
        weights — the open set (``metadata["open_set"]``,
        :func:`~device.pose.exercise_openset.calibrate_open_set`) of the windows it trained on.

        ``chunks``: the final training windows as the feature cache gives them
        (int8 values × scales, float) with their labels; they are kept as int8
        (one byte a value) until the calibration de-quantises them."""
        values: list[np.ndarray] = []
        labels: list[str] = []
        for x, names in chunks:
            values.append(np.clip(np.rint(np.asarray(x, dtype=np.float64) / self.scales), -127, 127).astype(np.int8))
            labels.extend(str(name) for name in names)
        if not labels:
            return {}
        return {"open_set": calibrate_open_set(self.dequantize(np.concatenate(values)), labels)}

    def _video_windows(self, path: Path) -> Iterator[QuantizedFeature]:
        from .posestage import video_pose_windows

        settings = PoseSettings(window=self.window, stride=self.stride)
        for item in video_pose_windows(path, settings):
            poses = item.value
            if len(poses) < MIN_POSE_FRAMES:  # the whole video (only its one window can be this short):
                continue  # a still picture, not a movement, as for a pose file
            start = item.timestamp - (len(poses) - 1) / 30.0
            feat = self.feature(window_array(poses), max(0.0, start), item.timestamp)
            if feat is not None:
                yield feat

    def __repr__(self) -> str:
        return f"ExerciseFeatures(window={self.window}, stride={self.stride}, dimension={self.dimension})"

