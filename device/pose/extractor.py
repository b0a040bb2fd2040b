"""HumanBodyPoseExtractor: image in, one :class:`Pose` per person out.

The BlazePose pipeline (see :mod:`device.pose.blazepose`) with tracking: once
a person is found, the next frame's region of interest comes from the
landmarks just predicted, so the (costlier, less precise) detector runs only
when tracking is lost — or every ``detection_interval`` frames if asked. Used
on a stream (``extractor.to_stream(in_thread=True)``) it takes each frame's
timestamp for smoothing and starts afresh on a new segment.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from ..components.core import TemporalTransformer, Transformer
from ..components.errors import CadenceError
from ..components.stream import TemporalFeature
from ..inference import InferenceError, TFLiteModel
from . import blazepose as bp
from .landmarks import NUM_LANDMARKS, Pose

DETECTOR_MODEL = "pose_detection.tflite"
LANDMARK_MODEL = "pose_landmark_full.tflite"


class PoseInputError(CadenceError, ValueError):
    """The extractor was given something that is not an image."""


@dataclasses.dataclass
class _Track:
    """One tracked person: the ROI for the next frame and its filters."""

    roi: bp.Roi
    landmark_filter: bp.OneEuroLandmarkFilter
    aux_filter: bp.OneEuroLandmarkFilter
    visibility_filter: bp.LowPassFilter
    bbox: tuple[float, float, float, float] | None = None
    age: int = 0

    @classmethod
    def start(cls, roi: bp.Roi) -> "_Track":
        return cls(
            roi=roi,
            landmark_filter=bp.OneEuroLandmarkFilter(min_cutoff=0.05, beta=80.0, derivate_cutoff=1.0),
            aux_filter=bp.OneEuroLandmarkFilter(min_cutoff=0.01, beta=10.0, derivate_cutoff=1.0),
            visibility_filter=bp.LowPassFilter(alpha=0.1),
        )


@dataclasses.dataclass
class ExtractorStats:
    """Counts and per-stage time (seconds) since the last :meth:`reset`."""

    frames: int = 0
    frames_with_pose: int = 0
    detector_calls: int = 0
    landmark_calls: int = 0
    preprocess: float = 0.0
    detector: float = 0.0
    landmark: float = 0.0
    postprocess: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dataclasses.asdict(self)
        n = max(self.frames, 1)
        for stage in ("preprocess", "detector", "landmark", "postprocess"):
            out[f"{stage}_ms_per_frame"] = 1000 * getattr(self, stage) / n
        out["detector_rate"] = self.detector_calls / n
        return out


def _load_model(
    name: str,
    model_dir: str | Path | None,
    path: str | Path | None,
    num_threads: int,
    keep_outputs: tuple[str, ...] | None = None,
) -> Any:
    """A verified model file, loaded (with unused outputs pruned if asked)."""
    from .. import pretrained

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise pretrained.ModelFileError(f"model file {path} is missing; {pretrained.FETCH_HINT}")
    else:
        directory = Path(model_dir) if model_dir is not None else None
        path = pretrained.model_path(name, directory=directory)
    if keep_outputs:
        try:
            content = bp.prune_tflite_outputs(path.read_bytes(), keep_outputs)
            return TFLiteModel(path, num_threads=num_threads, content=content)
        except Exception:  # not prunable (unexpected or corrupt file): load as is, for its own error
            pass
    return TFLiteModel(path, num_threads=num_threads)


class HumanBodyPoseExtractor(Transformer[np.ndarray, list]):
    """Find people in an image and return their BlazePose landmarks.

    Parameters
    ----------
    max_poses: at most this many people (one landmark-model run each per frame).
    min_detection_confidence: detector score needed to start tracking someone.
    min_tracking_confidence: landmark model's pose-presence score needed to
        keep a person (below it, the person is dropped and the detector runs).
    tracking: reuse the previous frame's landmarks for the next ROI. Turn off
        for unrelated still images.
    detection_interval: also run the detector every this many frames while
        tracking (``None``: only when someone is lost; with ``max_poses > 1``
        every 15 frames while fewer than ``max_poses`` people are tracked).
    smooth: one-euro smoothing of landmarks across frames (as MediaPipe does).
    num_threads: TFLite interpreter threads.
    model_dir / detector_path / landmark_path: where the models come from
        (default: the verified files from ``cadence models fetch``).
    landmark_model: which pinned landmark model file to load (a name in
        ``models/manifest.json``, e.g. a cheaper variant a board profile picks:
        see :mod:`device.boards`); ``landmark_path`` overrides it.
    rgb: input images are RGB instead of OpenCV's BGR.
    fps: frame rate assumed by the smoothing filters when :meth:`process`
        gets no timestamp (plain ``extractor(image)`` calls).
    """

    input_type = np.ndarray
    output_type = list

    def __init__(
        self,
        *,
        max_poses: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        tracking: bool = True,
        detection_interval: int | None = None,
        smooth: bool = True,
        num_threads: int = 1,
        model_dir: str | Path | None = None,
        detector_path: str | Path | None = None,
        landmark_path: str | Path | None = None,
        landmark_model: str = LANDMARK_MODEL,
        rgb: bool = False,
        fps: float = 30.0,
    ) -> None:
        if max_poses < 1:
            raise ValueError(f"max_poses must be ≥ 1, got {max_poses}")
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if detection_interval is not None and detection_interval < 1:
            raise ValueError(f"detection_interval must be ≥ 1 (or None), got {detection_interval}")
        self.max_poses = max_poses
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self.tracking = tracking
        self.detection_interval = detection_interval
        self.smooth = smooth
        self.num_threads = num_threads
        self.rgb = rgb
        self.fps = fps
        self.detector = _load_model(DETECTOR_MODEL, model_dir, detector_path, num_threads)
        # the segmentation and world-landmark heads are never read: prune them
        self.landmarker = _load_model(
            landmark_model, model_dir, landmark_path, num_threads, keep_outputs=bp.LANDMARK_OUTPUTS_USED
        )
        self._check_models()
        self.anchors = bp.ssd_anchors()
        self.stats = ExtractorStats()
        self._tracks: list[_Track] = []
        self._since_detection = 0
        self._frame_index = 0

    def _check_models(self) -> None:
        det_in, lm_in = self.detector.input_shapes, self.landmarker.input_shapes
        if det_in != [(1, bp.DETECTOR_SIZE, bp.DETECTOR_SIZE, 3)] or sorted(
            s[-1] for s in self.detector.output_shapes
        ) != [1, 12]:
            raise InferenceError(f"{self.detector.path.name}: not the BlazePose detector (inputs {det_in})")
        if lm_in != [(1, bp.LANDMARK_SIZE, bp.LANDMARK_SIZE, 3)] or len(self.landmarker.output_shapes) < 3:
            raise InferenceError(f"{self.landmarker.path.name}: not the BlazePose full landmark model (inputs {lm_in})")
        outputs = {shape: i for i, shape in enumerate(self.landmarker.output_shapes)}
        try:
            self._lm_index = outputs[(1, 195)]
            self._flag_index = outputs[(1, 1)]
            self._heatmap_index = outputs[(1, 64, 64, 39)]
        except KeyError:
            raise InferenceError(
                f"{self.landmarker.path.name}: unexpected outputs {self.landmarker.output_shapes}"
            ) from None
        shapes = self.detector.output_shapes
        self._box_index = next(i for i, s in enumerate(shapes) if s[-1] == 12)
        self._score_index = next(i for i, s in enumerate(shapes) if s[-1] == 1)

    # -- state --------------------------------------------------------------
    def reset(self) -> None:
        """Forget tracked people (next frame runs the detector)."""
        self._tracks = []
        self._since_detection = 0
        self._frame_index = 0

    @property
    def tracked(self) -> int:
        return len(self._tracks)

    # -- stages -------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[bp.Detection]:
        """Run the detector alone (image BGR unless ``rgb``)."""
        image = self._check_image(image)
        return self._detect(image)

    def _detect(self, image: np.ndarray) -> list[bp.Detection]:
        t0 = time.perf_counter()
        tensor, padding = bp.detector_input(image)
        t1 = time.perf_counter()
        outputs = self.detector.run(tensor)
        t2 = time.perf_counter()
        if not np.isfinite(outputs[self._score_index]).all():
            raise self._broken(self.detector)
        detections = bp.decode_detections(
            outputs[self._box_index],
            outputs[self._score_index],
            self.anchors,
            min_score=self.min_detection_confidence,
            padding=padding,
        )
        t3 = time.perf_counter()
        self.stats.detector_calls += 1
        self.stats.preprocess += t1 - t0
        self.stats.detector += t2 - t1
        self.stats.postprocess += t3 - t2
        return detections

    def _landmarks(self, image: np.ndarray, roi: bp.Roi) -> tuple[np.ndarray, float]:
        """``(39, 5)`` image-normalised landmarks in ``roi`` and the pose-presence score."""
        t0 = time.perf_counter()
        tensor = bp.landmark_input(image, roi)
        t1 = time.perf_counter()
        interp = self.landmarker.interpreter
        interp.set_tensor(self.landmarker.inputs[0]["index"], tensor)
        interp.invoke()
        outs = self.landmarker.outputs
        raw = interp.get_tensor(outs[self._lm_index]["index"])
        flag = float(interp.get_tensor(outs[self._flag_index]["index"]).reshape(-1)[0])
        t2 = time.perf_counter()
        if not np.isfinite(flag):
            raise self._broken(self.landmarker)
        landmarks = np.empty((0, 5))
        if flag >= self.min_tracking_confidence:
            heatmap = interp.get_tensor(outs[self._heatmap_index]["index"])
            landmarks = bp.refine_with_heatmap(bp.decode_landmarks(raw), heatmap)
            landmarks = bp.project_landmarks(landmarks, roi)
        t3 = time.perf_counter()
        self.stats.landmark_calls += 1
        self.stats.preprocess += t1 - t0
        self.stats.landmark += t2 - t1
        self.stats.postprocess += t3 - t2
        return landmarks, flag

    @staticmethod
    def _broken(model: Any) -> Exception:
        from ..pretrained import FETCH_HINT

        return InferenceError(
            f"{model.path}: the model produced non-finite output (corrupt weights?); "
            f"delete it and {FETCH_HINT}"
        )

    # -- main entry points --------------------------------------------------
    def _check_image(self, image: Any) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise PoseInputError(f"expected an image as a numpy array, got {type(image).__name__}")
        if image.ndim == 2:
            import cv2

            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.ndim != 3 or image.shape[2] not in (3, 4):
            raise PoseInputError(f"expected an image of shape (height, width, 3), got {image.shape}")
        if image.shape[2] == 4:
            image = image[:, :, :3]
        if image.shape[0] < 8 or image.shape[1] < 8:
            raise PoseInputError(f"image too small for pose extraction: {image.shape[1]}x{image.shape[0]}")
        if image.dtype != np.uint8:
            if np.issubdtype(image.dtype, np.floating) and image.size and float(np.nanmax(image)) <= 1.0:
                image = image * 255.0
            image = np.clip(image, 0, 255).astype(np.uint8)
        if self.rgb:
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image)

    def apply(self, image: np.ndarray) -> list[Pose]:
        """Poses in ``image`` (a frame of a sequence when ``tracking`` is on)."""
        return self.process(image)

    def process(self, image: np.ndarray, timestamp: float | None = None) -> list[Pose]:
        """Poses in one frame; ``timestamp`` (seconds) drives the smoothing filters."""
        image = self._check_image(image)
        height, width = image.shape[:2]
        if timestamp is None:
            timestamp = self._frame_index / self.fps
        self._frame_index += 1
        self.stats.frames += 1
        if not self.tracking:
            self._tracks = []
        if self._should_detect():
            self._since_detection = 0
            self._add_detections(self._detect(image), width, height)
        else:
            self._since_detection += 1
        poses: list[tuple[Pose, _Track]] = []
        kept: list[_Track] = []
        for track in self._tracks:
            landmarks, flag = self._landmarks(image, track.roi)
            if landmarks.shape[0] == 0:
                continue  # lost: the detector looks again on the next frame
            t0 = time.perf_counter()
            pose = self._finish(track, landmarks, flag, timestamp, width, height)
            self.stats.postprocess += time.perf_counter() - t0
            track.age += 1
            kept.append(track)
            poses.append((pose, track))
        self._tracks = self._dedupe(kept, poses)
        result = [pose for pose, track in poses if track in self._tracks]
        if result:
            self.stats.frames_with_pose += 1
        return result

    def _should_detect(self) -> bool:
        if not self._tracks:
            return True
        interval = self.detection_interval
        if interval is None:
            if self.max_poses == 1 or len(self._tracks) >= self.max_poses:
                return False
            interval = 15
        return self._since_detection + 1 >= interval

    def _add_detections(self, detections: list[bp.Detection], width: int, height: int) -> None:
        """Start tracks for detections that are not already someone tracked."""
        for det in detections:
            if len(self._tracks) >= self.max_poses:
                break
            hip = det.keypoints[0]
            if any(_inside(hip, t.bbox) for t in self._tracks if t.bbox is not None):
                continue
            self._tracks.append(_Track.start(bp.roi_from_detection(det, width, height)))

    def _finish(
        self, track: _Track, landmarks: np.ndarray, flag: float, timestamp: float, width: int, height: int
    ) -> Pose:
        """Smooth, set the next ROI from the auxiliary landmarks, build the Pose."""
        body = landmarks[:NUM_LANDMARKS]
        aux = landmarks[bp.AUX_CENTER : bp.AUX_SCALE + 1]
        if self.tracking:
            size = bp.object_scale(aux[0], aux[1], width, height)
            aux = track.aux_filter.apply(aux, timestamp, width, height, size)
            if self.smooth:
                body = track.landmark_filter.apply(body, timestamp, width, height, size)
                body[:, 3] = track.visibility_filter.apply(body[:, 3])
        track.roi = bp.roi_from_points(aux[0, :2], aux[1, :2], width, height)
        values = body[:, :4].astype(np.float32)
        xy = values[:, :2]
        bbox = (float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max()))
        track.bbox = bbox
        return Pose(values, bbox, flag, (width, height))

    def _dedupe(self, tracks: list[_Track], poses: list[tuple[Pose, _Track]]) -> list[_Track]:
        """Two tracks that converged on one person: keep the more confident."""
        if len(tracks) < 2:
            return tracks
        order = sorted(poses, key=lambda pt: -pt[0].score)
        kept: list[tuple[Pose, _Track]] = []
        for pose, track in order:
            box = np.array(pose.bbox)
            if any(bp.iou(box, np.array([other.bbox]))[0] > 0.5 for other, _ in kept):
                continue
            kept.append((pose, track))
        keep_ids = {id(t) for _, t in kept}
        return [t for t in tracks if id(t) in keep_ids]

    # -- streams ------------------------------------------------------------
    def to_stream(self, *, in_thread: bool = False) -> "PoseStream":
        """A stream stage: frames in, ``list[Pose]`` out, smoothing on the
        items' timestamps, tracking reset on a new segment."""
        return PoseStream(self, in_thread=in_thread)

    def __repr__(self) -> str:
        return (
            f"HumanBodyPoseExtractor(max_poses={self.max_poses}, tracking={self.tracking}, "
            f"num_threads={self.num_threads})"
        )


def _inside(point: np.ndarray, bbox: tuple[float, float, float, float]) -> bool:
    x0, y0, x1, y1 = bbox
    return bool(x0 <= point[0] <= x1 and y0 <= point[1] <= y1)


class PoseStream(TemporalTransformer[np.ndarray, list]):
    """:class:`HumanBodyPoseExtractor` over a stream of frames."""

    input_type = np.ndarray
    output_type = list

    def __init__(self, extractor: HumanBodyPoseExtractor, *, in_thread: bool = False) -> None:
        self.extractor = extractor
        self.in_thread = in_thread

    def reset(self) -> None:
        self.extractor.reset()

    async def process(self, stream: AsyncIterable[TemporalFeature[np.ndarray]]) -> AsyncIterator[TemporalFeature[list]]:
        import asyncio

        segment: object = object()
        async for item in stream:
            if item.segment != segment:
                self.extractor.reset()
                segment = item.segment
            if self.in_thread:
                poses = await asyncio.to_thread(self.extractor.process, item.value, item.timestamp)
            else:
                poses = self.extractor.process(item.value, item.timestamp)
            yield item.replace(poses)

    def __repr__(self) -> str:
        return f"PoseStream({self.extractor!r})"
