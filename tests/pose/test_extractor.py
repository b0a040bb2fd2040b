"""HumanBodyPoseExtractor with the real BlazePose models on real video frames."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from device.components import CadenceError, collect
from device.inference import InferenceError
from device.pose import LANDMARK_NAMES, HumanBodyPoseExtractor, Pose, PoseSelector
from device.pose import landmarks as L
from device.pretrained import ModelFileError
from device.video import read_video

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pose_frames import first_frames  # noqa: E402

pytestmark = pytest.mark.usefixtures("pose_models")


@pytest.fixture(scope="module")
def jumping_jacks(video_dir: Path) -> list[np.ndarray]:
    # Frames 0–119: the whole body is in view (the clip zooms in later).
    return first_frames(video_dir / "jumping_jacks_11.mp4", 120)


def test_person_found_on_jumping_jacks_with_sane_landmarks(jumping_jacks: list[np.ndarray]) -> None:
    extractor = HumanBodyPoseExtractor()
    results = [extractor.process(frame, i / 23.976) for i, frame in enumerate(jumping_jacks)]
    found = [r for r in results if r]
    assert len(found) / len(results) >= 0.95
    assert all(len(r) == 1 for r in results)  # max_poses=1
    lm = np.stack([r[0].landmarks for r in found])  # (n, 33, 4)
    assert lm.shape[1:] == (33, 4) and lm.dtype == np.float32
    # landmarks stay within the frame (the whole body is visible here)
    xy = lm[:, :, :2]
    assert xy.min() >= -0.02 and xy.max() <= 1.02
    # visibility is a probability, and a person facing the camera is mostly visible
    assert 0.0 <= lm[:, :, 3].min() and lm[:, :, 3].max() <= 1.0
    assert np.median(lm[:, :, 3]) > 0.8
    # anatomy: nose above shoulders above hips above knees above ankles (image y grows downwards)
    mid = lambda a, b: (lm[:, a, 1] + lm[:, b, 1]) / 2  # noqa: E731
    assert np.all(lm[:, L.NOSE, 1] < mid(L.LEFT_SHOULDER, L.RIGHT_SHOULDER))
    assert np.all(mid(L.LEFT_SHOULDER, L.RIGHT_SHOULDER) < mid(L.LEFT_HIP, L.RIGHT_HIP))
    assert np.all(mid(L.LEFT_HIP, L.RIGHT_HIP) < mid(L.LEFT_KNEE, L.RIGHT_KNEE))
    assert np.all(mid(L.LEFT_KNEE, L.RIGHT_KNEE) < mid(L.LEFT_ANKLE, L.RIGHT_ANKLE))
    # the subject faces the camera: their left side is on the image's right
    assert np.median(lm[:, L.LEFT_SHOULDER, 0] - lm[:, L.RIGHT_SHOULDER, 0]) > 0
    # jumping jacks: the wrists go above the head and back down again, repeatedly
    above = lm[:, L.LEFT_WRIST, 1] < lm[:, L.NOSE, 1]
    assert 4 <= int(np.count_nonzero(np.diff(above.astype(int)) == 1)) <= 8
    pose = found[0][0]
    assert pose.image_size == (640, 360) and 0.5 <= pose.score <= 1.0
    x0, y0, x1, y1 = pose.bbox
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert (y1 - y0) > 0.5  # a standing adult fills most of the frame height here


def test_tracking_reduces_detector_calls(jumping_jacks: list[np.ndarray]) -> None:
    frames = jumping_jacks[:24]
    tracked = HumanBodyPoseExtractor(tracking=True)
    fresh = HumanBodyPoseExtractor(tracking=False)
    a = [tracked(f) for f in frames]
    b = [fresh(f) for f in frames]
    assert tracked.stats.detector_calls <= 3
    assert fresh.stats.detector_calls == len(frames)
    assert tracked.stats.landmark_calls == fresh.stats.landmark_calls == len(frames)
    # both ways find the same person at nearly the same place
    both = [(x[0], y[0]) for x, y in zip(a, b) if x and y]
    assert len(both) >= 23
    gap = np.mean([np.abs(p.xy - q.xy).mean() for p, q in both])
    assert gap < 0.02
    # a detection interval brings the detector back periodically
    periodic = HumanBodyPoseExtractor(detection_interval=6)
    for f in frames:
        periodic(f)
    assert 4 <= periodic.stats.detector_calls <= 5


def test_portrait_clip_and_reset(video_dir: Path) -> None:
    frames = first_frames(video_dir / "jumping_jacks_12.mp4", 30)
    extractor = HumanBodyPoseExtractor()
    assert sum(bool(extractor(f)) for f in frames) >= 29
    assert extractor.tracked == 1
    extractor.reset()
    assert extractor.tracked == 0
    calls = extractor.stats.detector_calls
    extractor(frames[0])
    assert extractor.stats.detector_calls == calls + 1


def _two_people(video_dir: Path, big_on_left: bool) -> np.ndarray:
    import cv2

    frame = first_frames(video_dir / "jumping_jacks_12.mp4", 1)[0]  # portrait 406x720
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (int(w * 0.7), int(h * 0.7)))
    canvas = np.full((h, 2 * w, 3), 200, np.uint8)
    big_x, small_x = (0, w + 20) if big_on_left else (w, 20)
    canvas[:, big_x : big_x + w] = frame
    canvas[h - small.shape[0] :, small_x : small_x + small.shape[1]] = small  # standing lower, smaller
    return canvas


@pytest.mark.parametrize("big_on_left", [True, False])
def test_selector_strategies_on_two_people(video_dir: Path, big_on_left: bool) -> None:
    canvas = _two_people(video_dir, big_on_left)
    poses = HumanBodyPoseExtractor(max_poses=2, tracking=False)(canvas)
    assert len(poses) == 2
    big = max(poses, key=lambda p: p.bbox_area)
    small = min(poses, key=lambda p: p.bbox_area)
    left, right = (big, small) if big_on_left else (small, big)
    assert PoseSelector()(poses) is big
    assert PoseSelector("maximum_bounding_box_area")(poses[::-1]) is big
    assert PoseSelector("highest_joint_location")(poses) is big
    assert PoseSelector("lowest_joint_location")(poses) is small
    assert PoseSelector("leftmost_joint_location")(poses) is left
    assert PoseSelector("rightmost_joint_location")(poses) is right
    assert PoseSelector()([]) is None
    # one pose only when asked for one
    assert len(HumanBodyPoseExtractor(max_poses=1, tracking=False)(canvas)) == 1


def test_tracks_two_people_over_frames(video_dir: Path) -> None:
    import cv2

    frames = first_frames(video_dir / "jumping_jacks_12.mp4", 12)
    extractor = HumanBodyPoseExtractor(max_poses=2, detection_interval=6)
    counts = []
    for frame in frames:
        h, w = frame.shape[:2]
        canvas = np.full((h, 2 * w, 3), 200, np.uint8)
        canvas[:, :w] = frame
        canvas[:, w:] = cv2.flip(frame, 1)  # a mirrored second person
        counts.append(len(extractor(canvas)))
    assert counts.count(2) >= 11
    assert extractor.stats.detector_calls <= 3


def test_stream_stage_and_selector_pipeline(video_dir: Path) -> None:
    extractor = HumanBodyPoseExtractor()
    pipeline = extractor.to_stream(in_thread=True) | PoseSelector()

    async def go() -> list:
        return await collect(pipeline(read_video(video_dir / "pushups.mp4", max_frames=15)))

    items = asyncio.run(go())
    assert len(items) == 15
    assert all(isinstance(it.value, Pose) for it in items)
    assert items[-1].timestamp == pytest.approx(14 / 25.0)
    assert extractor.stats.detector_calls == 1
    # a new segment starts afresh (the detector runs again)
    asyncio.run(collect(pipeline(read_video(video_dir / "pushups.mp4", max_frames=2, segment="again"))))
    assert extractor.stats.detector_calls == 2


def test_bad_inputs_give_clear_errors() -> None:
    extractor = HumanBodyPoseExtractor()
    with pytest.raises(CadenceError, match="numpy array"):
        extractor("frame.jpg")
    with pytest.raises(CadenceError, match="shape"):
        extractor(np.zeros((10, 10, 5), np.uint8))
    assert extractor(np.zeros((240, 320, 3), np.uint8)) == []  # nobody in a black frame
    with pytest.raises(ValueError):
        HumanBodyPoseExtractor(max_poses=0)


def _model_copy(tmp_path: Path) -> Path:
    from device.pretrained import models_dir

    source = models_dir()
    for name in ("manifest.json", "pose_detection.tflite", "pose_landmark_full.tflite"):
        shutil.copy(source / name, tmp_path / name)
    return tmp_path


def _flip(path: Path, start: int, length: int) -> None:
    data = bytearray(path.read_bytes())
    data[start : start + length] = bytes(b ^ 0xFF for b in data[start : start + length])
    path.write_bytes(bytes(data))


def test_tampered_model_is_refused_with_fetch_hint(tmp_path: Path) -> None:
    models = _model_copy(tmp_path)
    landmark = models / "pose_landmark_full.tflite"
    _flip(landmark, landmark.stat().st_size // 2, 4096)
    with pytest.raises(ModelFileError, match="SHA-256") as info:
        HumanBodyPoseExtractor(model_dir=models)
    assert "cadence models fetch" in str(info.value)
    landmark.unlink()
    with pytest.raises(ModelFileError, match="missing.*cadence models fetch"):
        HumanBodyPoseExtractor(model_dir=models)


def test_corrupt_model_files_fail_clearly_even_unverified(tmp_path: Path, video_dir: Path) -> None:
    models = _model_copy(tmp_path)
    header = models / "pose_landmark_full.tflite"
    _flip(header, 0, 64)
    with pytest.raises(InferenceError, match="not a loadable TFLite model"):
        HumanBodyPoseExtractor(landmark_path=header)
    weights = tmp_path / "weights.tflite"
    shutil.copy(models / "pose_detection.tflite", weights)
    size = weights.stat().st_size
    _flip(weights, size // 2, 8192)  # structure intact, weights garbage
    extractor = HumanBodyPoseExtractor(detector_path=weights)
    frame = first_frames(video_dir / "pushups.mp4", 1)[0]
    with pytest.raises(InferenceError, match="non-finite|corrupt"):
        extractor(frame)
    with pytest.raises(InferenceError, match="not the BlazePose"):
        HumanBodyPoseExtractor(landmark_path=models / "pose_detection.tflite")


def test_landmark_names() -> None:
    assert len(LANDMARK_NAMES) == 33 and LANDMARK_NAMES[L.LEFT_WRIST] == "left_wrist"


def test_pruned_landmark_model_gives_identical_outputs() -> None:
    from device.inference import TFLiteModel
    from device.pose import blazepose as bp
    from device.pretrained import model_path

    path = model_path("pose_landmark_full.tflite")
    full = TFLiteModel(path)
    pruned_bytes = bp.prune_tflite_outputs(path.read_bytes(), bp.LANDMARK_OUTPUTS_USED)
    extractor = HumanBodyPoseExtractor()
    assert extractor.landmarker.output_shapes == [(1, 195), (1, 1), (1, 64, 64, 39)]
    assert len(pruned_bytes) < path.stat().st_size
    x = np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32)
    a = full.run(x)
    b = extractor.landmarker.run(x)
    names = [d["name"] for d in full.outputs]
    for out, name in zip(b, bp.LANDMARK_OUTPUTS_USED):
        assert np.array_equal(out, a[names.index(name)])
    with pytest.raises(ValueError, match="no output"):
        bp.prune_tflite_outputs(path.read_bytes(), ("segmentation",))


def test_live_stream_to_poses(video_dir: Path) -> None:
    """A network camera (MJPEG over HTTP on 127.0.0.1, real frames) through read_camera,
    the extractor in a worker thread and the selector."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "video"))
    from mjpeg_server import MjpegServer, jpeg_frames

    from device.video import CameraLost, read_camera

    jpegs = jpeg_frames(str(video_dir / "jumping_jacks_11.mp4"), 12, size=(640, 360))
    extractor = HumanBodyPoseExtractor()
    pipeline = extractor.to_stream(in_thread=True) | PoseSelector()
    with MjpegServer(jpegs, frames=12, fps=25) as server:
        source = read_camera({"source": server.url, "timeout": 3.0})

        async def go() -> tuple[list, BaseException | None]:
            out: list = []
            try:
                async for item in pipeline(source):
                    out.append(item)
            except CameraLost as exc:
                return out, exc
            return out, None

        items, error = asyncio.run(go())
    assert isinstance(error, CameraLost)  # the camera went away after 12 frames
    assert len(items) >= 6
    found = [it.value for it in items if it.value is not None]
    assert len(found) >= len(items) - 1
    assert all(p.image_size == (640, 360) for p in found)
