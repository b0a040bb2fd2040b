"""BlazePose, stage by stage, in numpy + OpenCV (no MediaPipe at run time).

This follows MediaPipe's pose graphs so that the shipped models see exactly
the inputs they were trained for:

- ``pose_detection_cpu``: the whole image letterboxed to 224×224 (zero
  border, values in [-1, 1]); SSD anchors (5 layers, strides 8/16/32/32/32,
  aspect ratio 1, fixed size: 2254 anchors); boxes and 4 keypoints decoded
  at scale 224; sigmoid scores clipped at ±100; weighted non-maximum
  suppression (IoU 0.3); letterbox removed.
- ``pose_detection_to_roi``: a rotated square ROI centred on keypoint 0 (hip
  centre) with half-size the distance to keypoint 1, turned so the body
  points up (target angle 90°), made square on its long side and scaled 1.25.
- ``pose_landmark_by_roi_cpu``: the ROI warped to 256×256 (values in [0, 1],
  edge pixels replicated); 39 landmarks × (x, y, z, visibility, presence)
  with sigmoid on the last two; positions refined on the 64×64 heatmaps
  (7×7 window); projected back through the ROI's rotation.
- ``pose_landmarks_to_roi``: the next frame's ROI from auxiliary landmarks
  33 (centre) and 34 (scale/rotation), same rules as from a detection.
- ``pose_landmark_filtering`` (as compiled into mediapipe 0.10.21): one-euro
  smoothing of landmarks (min cutoff 0.05, beta 80, derivative cutoff 1) and
  of the auxiliary landmarks (0.01, 10, 1), velocities scaled by the size of
  the auxiliary landmarks' box; low-pass visibility (alpha 0.1).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
NUM_ANCHORS = 2254
NUM_MODEL_LANDMARKS = 39  # 33 pose landmarks + 2 auxiliary + 4 unused
AUX_CENTER, AUX_SCALE = 33, 34
HEATMAP_KERNEL = 7
HEATMAP_MIN_CONFIDENCE = 0.5
ROI_SCALE = 1.25
TARGET_ANGLE = math.pi / 2


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


# ---------------------------------------------------------------------------
# SSD anchors (SsdAnchorsCalculator)
# ---------------------------------------------------------------------------
def _anchor_scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) / 2
    return min_scale + (max_scale - min_scale) * index / (count - 1)


def ssd_anchors(
    *,
    input_size: int = DETECTOR_SIZE,
    strides: tuple[int, ...] = (8, 16, 32, 32, 32),
    min_scale: float = 0.1484375,
    max_scale: float = 0.75,
    offset: float = 0.5,
    aspect_ratios: tuple[float, ...] = (1.0,),
    interpolated_scale_aspect_ratio: float = 1.0,
) -> np.ndarray:
    """Anchor centres ``(n, 2)`` in 0..1 (fixed anchor size, so w = h = 1).

    Layers sharing a stride are merged; each layer contributes one anchor per
    aspect ratio plus one interpolated-scale anchor per feature-map cell.
    """
    num_layers = len(strides)
    centres: list[np.ndarray] = []
    layer = 0
    while layer < num_layers:
        per_cell = 0
        last = layer
        while last < num_layers and strides[last] == strides[layer]:
            per_cell += len(aspect_ratios) + (1 if interpolated_scale_aspect_ratio > 0 else 0)
            last += 1
        stride = strides[layer]
        size = math.ceil(input_size / stride)
        ys, xs = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        cell = np.stack([(xs + offset) / size, (ys + offset) / size], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(cell, per_cell, axis=0))
        layer = last
    return np.concatenate(centres).astype(np.float32)


# ---------------------------------------------------------------------------
# Detections
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Detection:
    """A detected person: box and 4 keypoints, image-normalised; score 0..1."""

    box: np.ndarray  # (4,) x_min, y_min, x_max, y_max
    keypoints: np.ndarray  # (4, 2) hip centre, full-body scale point, shoulder centre, upper-body point
    score: float


@dataclasses.dataclass(frozen=True)
class Roi:
    """A rotated rectangle, image-normalised centre/size, rotation in radians."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float


def letterbox_matrix(width: int, height: int, size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Affine matrix fitting the image into a ``size`` square, and (pad_x, pad_y) as fractions."""
    side = max(width, height)
    scale = size / side
    pad_x = (side - width) / 2
    pad_y = (side - height) / 2
    matrix = np.array([[scale, 0.0, pad_x * scale], [0.0, scale, pad_y * scale]], dtype=np.float64)
    return matrix, (pad_x / side, pad_y / side)


def detector_input(image_bgr: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The detector's ``(1, 224, 224, 3)`` RGB tensor in [-1, 1] and the letterbox padding."""
    height, width = image_bgr.shape[:2]
    matrix, padding = letterbox_matrix(width, height, DETECTOR_SIZE)
    patch = cv2.warpAffine(
        image_bgr,
        matrix,
        (DETECTOR_SIZE, DETECTOR_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    tensor = patch[None, :, :, ::-1].astype(np.float32)
    tensor *= 1.0 / 127.5
    tensor -= 1.0
    return tensor, padding


def decode_detections(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    *,
    min_score: float = 0.5,
    padding: tuple[float, float] = (0.0, 0.0),
    nms_threshold: float = 0.3,
    max_detections: int | None = None,
) -> list[Detection]:
    """Decode the detector's raw outputs into detections on the original image."""
    scores = sigmoid(np.clip(raw_scores.reshape(-1), -100.0, 100.0))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return []
    raw = raw_boxes.reshape(-1, 12)[keep].astype(np.float64) / DETECTOR_SIZE
    centres = anchors[keep].astype(np.float64)
    cx = raw[:, 0] + centres[:, 0]
    cy = raw[:, 1] + centres[:, 1]
    w, h = raw[:, 2], raw[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    keypoints = raw[:, 4:12].reshape(-1, 4, 2) + centres[:, None, :]
    valid = (w >= 0) & (h >= 0)  # the model can predict inverted boxes: drop them
    if not valid.all():
        boxes, keypoints, keep = boxes[valid], keypoints[valid], keep[valid]
        if keep.size == 0:
            return []
    detections = weighted_nms(boxes, keypoints, scores[keep], nms_threshold)
    if max_detections is not None:
        detections = detections[:max_detections]
    pad_x, pad_y = padding
    sx, sy = 1.0 / (1.0 - 2 * pad_x), 1.0 / (1.0 - 2 * pad_y)
    for det in detections:
        det.box = np.array(
            [(det.box[0] - pad_x) * sx, (det.box[1] - pad_y) * sy, (det.box[2] - pad_x) * sx, (det.box[3] - pad_y) * sy]
        )
        det.keypoints = np.stack([(det.keypoints[:, 0] - pad_x) * sx, (det.keypoints[:, 1] - pad_y) * sy], axis=1)
    return detections


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with many (x_min, y_min, x_max, y_max)."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, threshold: float
) -> list[Detection]:
    """MediaPipe's weighted NMS: each cluster's box and keypoints are the
    score-weighted mean of its members; its score is the best member's."""
    order = np.argsort(-scores, kind="stable")
    remaining = order
    out: list[Detection] = []
    while remaining.size:
        top = remaining[0]
        overlap = iou(boxes[top], boxes[remaining])
        members = remaining[overlap > threshold]
        if members.size == 0:  # degenerate box: keep it alone
            members = remaining[:1]
        weights = scores[members][:, None]
        total = weights.sum()
        box = (boxes[members] * weights).sum(axis=0) / total
        kps = (keypoints[members] * weights[:, :, None]).sum(axis=0) / total
        out.append(Detection(box, kps, float(scores[top])))
        remaining = remaining[~np.isin(remaining, members)]
    return out


# ---------------------------------------------------------------------------
# Regions of interest
# ---------------------------------------------------------------------------
def normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def roi_from_points(
    center: np.ndarray, scale_point: np.ndarray, width: int, height: int, scale: float = ROI_SCALE
) -> Roi:
    """AlignmentPointsRects + RectTransformation(scale 1.25, square_long).

    ``center`` and ``scale_point`` are image-normalised (x, y).
    """
    x0, y0 = float(center[0]) * width, float(center[1]) * height
    x1, y1 = float(scale_point[0]) * width, float(scale_point[1]) * height
    box_size = math.hypot(x1 - x0, y1 - y0) * 2.0
    rotation = normalize_radians(TARGET_ANGLE - math.atan2(-(y1 - y0), x1 - x0))
    side = box_size * scale  # already square: long side == both sides
    return Roi(x0 / width, y0 / height, side / width, side / height, rotation)


def object_scale(center: np.ndarray, scale_point: np.ndarray, width: int, height: int) -> float:
    """The filters' object size in pixels: the side of the unscaled alignment box."""
    dx = (float(scale_point[0]) - float(center[0])) * width
    dy = (float(scale_point[1]) - float(center[1])) * height
    return math.hypot(dx, dy) * 2.0


def roi_from_detection(detection: Detection, width: int, height: int) -> Roi:
    return roi_from_points(detection.keypoints[0], detection.keypoints[1], width, height)


def roi_crop_matrix(roi: Roi, width: int, height: int, size: int = LANDMARK_SIZE) -> np.ndarray:
    """Affine matrix mapping output-patch pixels to image pixels (for WARP_INVERSE_MAP)."""
    cx, cy = roi.x_center * width, roi.y_center * height
    w, h = roi.width * width, roi.height * height
    cos, sin = math.cos(roi.rotation), math.sin(roi.rotation)
    sx, sy = w / size, h / size
    # image = c + R · (patch · s − size·s/2)
    a = np.array([[cos * sx, -sin * sy], [sin * sx, cos * sy]])
    t = np.array([cx, cy]) - a @ np.array([size / 2, size / 2])
    return np.hstack([a, t[:, None]])


def landmark_input(image_bgr: np.ndarray, roi: Roi) -> np.ndarray:
    """The landmark model's ``(1, 256, 256, 3)`` RGB tensor in [0, 1] for a ROI."""
    height, width = image_bgr.shape[:2]
    matrix = roi_crop_matrix(roi, width, height)
    patch = cv2.warpAffine(
        image_bgr,
        matrix,
        (LANDMARK_SIZE, LANDMARK_SIZE),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    tensor = patch[None, :, :, ::-1].astype(np.float32)
    tensor *= 1.0 / 255.0
    return tensor


# ---------------------------------------------------------------------------
# Landmarks
# ---------------------------------------------------------------------------
_KERNEL_OFFSETS = np.arange(HEATMAP_KERNEL) - (HEATMAP_KERNEL - 1) // 2


def decode_landmarks(raw: np.ndarray) -> np.ndarray:
    """``(39, 5)``: x, y (0..1 of the ROI patch), z (patch widths), visibility, presence."""
    values = raw.reshape(NUM_MODEL_LANDMARKS, 5).astype(np.float64)
    out = np.empty_like(values)
    out[:, :3] = values[:, :3] / LANDMARK_SIZE
    out[:, 3:5] = sigmoid(values[:, 3:5])
    return out


def refine_with_heatmap(landmarks: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """RefineLandmarksFromHeatmap: replace x, y by the sigmoid-weighted mean
    position in a 7×7 heatmap window when the window's peak is ≥ 0.5."""
    hm = heatmap.reshape(heatmap.shape[-3:])  # (64, 64, 39)
    hm_h, hm_w, channels = hm.shape
    n = landmarks.shape[0]
    cols = np.trunc(landmarks[:, 0] * hm_w).astype(np.int64)
    rows = np.trunc(landmarks[:, 1] * hm_h).astype(np.int64)
    cand_cols = cols[:, None] + _KERNEL_OFFSETS[None, :]  # (n, k)
    cand_rows = rows[:, None] + _KERNEL_OFFSETS[None, :]
    col_ok = (cand_cols >= 0) & (cand_cols < hm_w)
    row_ok = (cand_rows >= 0) & (cand_rows < hm_h)
    valid = row_ok[:, :, None] & col_ok[:, None, :]  # (n, k, k)
    rr = np.clip(cand_rows, 0, hm_h - 1)[:, :, None]
    cc = np.clip(cand_cols, 0, hm_w - 1)[:, None, :]
    channel = np.arange(n)[:, None, None]
    conf = sigmoid(hm[rr, cc, channel].astype(np.float64)) * valid
    total = conf.sum(axis=(1, 2))
    peak = conf.max(axis=(1, 2))
    weighted_col = (conf * cand_cols[:, None, :]).sum(axis=(1, 2))
    weighted_row = (conf * cand_rows[:, :, None]).sum(axis=(1, 2))
    inside = (cols >= 0) & (cols < hm_w)
    refine = inside & (peak >= HEATMAP_MIN_CONFIDENCE) & (total > 0)
    out = landmarks.copy()
    safe = np.where(total > 0, total, 1.0)
    out[:, 0] = np.where(refine, weighted_col / hm_w / safe, landmarks[:, 0])
    out[:, 1] = np.where(refine, weighted_row / hm_h / safe, landmarks[:, 1])
    return out


def project_landmarks(landmarks: np.ndarray, roi: Roi) -> np.ndarray:
    """Map ROI-relative landmarks to image-normalised coordinates (z scaled by ROI width)."""
    cos, sin = math.cos(roi.rotation), math.sin(roi.rotation)
    x = landmarks[:, 0] - 0.5
    y = landmarks[:, 1] - 0.5
    out = landmarks.copy()
    out[:, 0] = (cos * x - sin * y) * roi.width + roi.x_center
    out[:, 1] = (sin * x + cos * y) * roi.height + roi.y_center
    out[:, 2] = landmarks[:, 2] * roi.width
    return out


# ---------------------------------------------------------------------------
# Temporal filtering (LandmarksSmoothingCalculator / VisibilitySmoothingCalculator)
# ---------------------------------------------------------------------------
class OneEuroLandmarkFilter:
    """One-euro filter on every coordinate of a set of landmarks, in pixels,
    with the velocity scaled by the inverse of the object's size."""

    def __init__(self, min_cutoff: float, beta: float, derivate_cutoff: float, frequency: float = 30.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.derivate_cutoff = derivate_cutoff
        self.default_frequency = frequency
        self.reset()

    def reset(self) -> None:
        self.frequency = self.default_frequency
        self.last_time: float | None = None
        self.raw: np.ndarray | None = None
        self.value: np.ndarray | None = None
        self.dvalue: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        te = 1.0 / self.frequency
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def apply(
        self, points: np.ndarray, timestamp: float, width: int, height: int, object_scale: float | None = None
    ) -> np.ndarray:
        """``points``: ``(n, 3+)`` image-normalised x, y, z; returns the filtered copy.

        ``object_scale`` (pixels) scales the velocity; default: the mean of the
        points' bounding-box width and height.
        """
        scale = np.array([width, height, width], dtype=np.float64)
        pixels = points[:, :3].astype(np.float64) * scale
        if object_scale is None:
            object_scale = (np.ptp(pixels[:, 0]) + np.ptp(pixels[:, 1])) / 2.0
        if object_scale < 1e-6:
            return points.copy()
        value_scale = 1.0 / object_scale
        if self.last_time is not None:
            if timestamp <= self.last_time:
                return points.copy()
            self.frequency = 1.0 / (timestamp - self.last_time)
        self.last_time = timestamp
        if self.raw is None:
            dvalue = np.zeros_like(pixels)
        else:
            dvalue = (pixels - self.raw) * value_scale * self.frequency
        alpha_d = self._alpha(self.derivate_cutoff)
        self.dvalue = dvalue if self.dvalue is None else alpha_d * dvalue + (1 - alpha_d) * self.dvalue
        cutoff = self.min_cutoff + self.beta * np.abs(self.dvalue)
        alpha = self._alpha(cutoff)
        self.value = pixels if self.value is None else alpha * pixels + (1 - alpha) * self.value
        self.raw = pixels
        out = points.copy()
        out[:, :3] = self.value / scale
        return out


class LowPassFilter:
    """Exponential smoothing of a vector (visibility), alpha on the new value."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.value: np.ndarray | None = None

    def reset(self) -> None:
        self.value = None

    def apply(self, values: np.ndarray) -> np.ndarray:
        self.value = values.copy() if self.value is None else self.alpha * values + (1 - self.alpha) * self.value
        return self.value.copy()


# ---------------------------------------------------------------------------
# Model loading: drop outputs nobody reads
# ---------------------------------------------------------------------------
LANDMARK_OUTPUTS_USED = ("Identity", "Identity_1", "Identity_3")  # landmarks, pose flag, heatmap


def prune_tflite_outputs(content: bytes, keep: tuple[str, ...]) -> bytes:
    """The same model with only the ``keep`` outputs and the operators they need.

    The full landmark model also computes a 256×256 segmentation mask and
    world landmarks, which Cadence does not use; removing those operators
    (dead-code elimination: the kept outputs are bit-identical) makes each
    landmark inference much cheaper. Raises ``ValueError`` if the model
    cannot be parsed or lacks one of the outputs.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema  # type: ignore[import-not-found]

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise ValueError("expected a model with one subgraph")
    graph = model.subgraphs[0]
    names = {
        (graph.tensors[i].name.decode() if isinstance(graph.tensors[i].name, bytes) else graph.tensors[i].name): int(i)
        for i in graph.outputs
    }
    missing = [n for n in keep if n not in names]
    if missing:
        raise ValueError(f"model has no output(s) {', '.join(missing)}")
    wanted = [names[n] for n in keep]
    producer = {int(t): k for k, op in enumerate(graph.operators) for t in (op.outputs if op.outputs is not None else [])}
    needed: set[int] = set()
    stack = list(wanted)
    while stack:
        k = producer.get(stack.pop())
        if k is None or k in needed:
            continue
        needed.add(k)
        stack.extend(int(t) for t in graph.operators[k].inputs if t >= 0)
    graph.operators = [op for k, op in enumerate(graph.operators) if k in needed]
    graph.outputs = np.array(wanted, dtype=np.int32)
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
