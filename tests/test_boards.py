"""Board profiles (device/boards.py) and the landmark-model variants they pick."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device import boards, pretrained
from device.boards import BoardProfileError, detect_board, landmark_model, resolve_profile
from device.pose.landmarks import landmark_distance

REPO = Path(__file__).resolve().parents[1]
# the device-tree model strings of real boards (each file ends in a NUL byte)
MODELS = {
    "Raspberry Pi Zero 2 W Rev 1.0": "zero2w",
    "Raspberry Pi 3 Model B Plus Rev 1.3": "zero2w",
    "Raspberry Pi 4 Model B Rev 1.5": "pi4",
    "Raspberry Pi 400 Rev 1.0": "pi4",
    "Raspberry Pi Compute Module 4 Rev 1.0": "pi4",
    "Raspberry Pi 5 Model B Rev 1.0": "pi5",
    "Raspberry Pi 500 Rev 1.0": "pi5",
    "Raspberry Pi Compute Module 5 Rev 1.0": "pi5",
}


@pytest.mark.parametrize(("model", "expected"), sorted(MODELS.items()))
def test_auto_profile_from_device_tree(tmp_path: Path, model: str, expected: str) -> None:
    path = tmp_path / "model"
    path.write_bytes(model.encode() + b"\0")
    assert detect_board(path) == expected
    assert resolve_profile("auto", model_path=path).name == expected


@pytest.mark.parametrize("model", [b"Raspberry Pi Zero W Rev 1.1\0", b"Raspberry Pi 2 Model B Rev 1.1\0", b"Pine64\0", b""])
def test_unknown_board_gets_generic(tmp_path: Path, model: bytes) -> None:
    path = tmp_path / "model"
    path.write_bytes(model)
    assert detect_board(path) is None
    generic = resolve_profile("auto", model_path=path)
    assert generic.name == "generic" and generic.overrides() == {}


def test_no_device_tree_is_generic(tmp_path: Path) -> None:
    assert resolve_profile("auto", model_path=tmp_path / "absent").name == "generic"


def test_named_profile_and_unknown_name() -> None:
    assert resolve_profile("pi4").name == "pi4"
    with pytest.raises(BoardProfileError, match="unknown board profile 'pi3'; choose one of auto, zero2w"):
        resolve_profile("pi3")


def test_profiles_set_only_camera_fields_and_keep_up() -> None:
    from device.daemon.config import CameraConfig

    for profile in boards.PROFILES.values():
        overrides = profile.overrides()
        assert set(overrides) <= set(CameraConfig.model_fields), profile.name
        CameraConfig(**{k: v for k, v in overrides.items()})  # values the config accepts
        if profile.pose_rate is not None:  # asks no more than its (estimated) sustainable rate
            assert profile.expected_fps is not None and profile.pose_rate <= profile.expected_fps


def test_missing_variant_falls_back_to_float(tmp_path: Path) -> None:
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    name, note = landmark_model(boards.PROFILES["pi4"], directory=tmp_path)
    assert name is None  # the extractor's default: the float model
    assert note is not None and "pose_landmark_full_int8.tflite is missing" in note
    assert landmark_model(boards.PROFILES["generic"], directory=tmp_path) == (None, None)


# -- the variants themselves: real models, real frames ----------------------------------------
# the landmark-model variants: manifest files built (built_by) from another file (from)
BUILT = {name: entry for name, entry in json.loads((REPO / "models" / "manifest.json").read_text())["files"].items()
         if "built_by" in entry and "from" in entry}
VARIANTS = sorted(BUILT)
FIDELITY_VIDEOS = {"jumping_jacks_12.mp4": 0, "legs.mp4": 0, "haris.mp4": 90}
FIDELITY_FRAMES = 45


@pytest.fixture(scope="module")
def built_variants() -> None:
    """The float models are fetched; the variants are committed (built by ``make pose-variants``)."""
    states = pretrained.status()
    if any(states.get(n) != "ok" for n in ("pose_detection.tflite", *(e["from"] for e in BUILT.values()))):
        pytest.skip("pose models not fetched; run `cadence models fetch`")


@pytest.fixture(scope="module")
def float_poses(shared_data: Path, built_variants: None) -> dict[str, np.ndarray]:
    return {video: _poses(shared_data, video, None) for video in FIDELITY_VIDEOS}


def _poses(shared_data: Path, video: str, model: str | None) -> np.ndarray:
    """The landmarks of ``video``'s first frames with ``model`` (``None``: the float model)."""
    from device.pose.extractor import HumanBodyPoseExtractor
    from device.pose.landmarks import empty_landmarks
    from device.video.file import read_video

    extractor = HumanBodyPoseExtractor(**({"landmark_model": model} if model else {}))
    rows = []
    source = read_video(shared_data / "videos" / video, rotate=FIDELITY_VIDEOS[video], max_frames=FIDELITY_FRAMES,
                        in_thread=False)
    for item in source:
        found = extractor.process(item.value, item.timestamp)
        rows.append(found[0].landmarks if found else empty_landmarks())
    return np.array(rows)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_is_pinned_loads_and_is_faithful(shared_data: Path, float_poses: dict, variant: str) -> None:
    path = pretrained.model_path(variant)  # verifies the pinned SHA-256
    assert pretrained.sha256_file(path) == BUILT[variant]["sha256"]
    for video, reference in float_poses.items():
        poses = _poses(shared_data, video, variant)
        found = np.isfinite(poses[:, 0, 0])
        assert found.sum() >= np.isfinite(reference[:, 0, 0]).sum() - 2, video
        image = frame_size(shared_data / "videos" / video, FIDELITY_VIDEOS[video])
        distance = landmark_distance(reference, poses, image)
        assert distance.size > FIDELITY_FRAMES // 2, video
        assert distance.mean() <= boards.FIDELITY_LIMIT, (video, float(distance.mean()))


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_is_faithful_on_the_same_crop(shared_data: Path, built_variants: None, variant: str) -> None:
    """The model's own error, tracking left out: fed the float model's ROI crop on each frame
    (``build_pose_variants.same_crop_landmarks``, the second figure ``--measure`` prints)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_build_pose_variants", REPO / "scripts" / "build_pose_variants.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.VIDEOS = shared_data / "videos"
    for video, rotate in FIDELITY_VIDEOS.items():
        reference, others, size = script.same_crop_landmarks(video, rotate, [variant], 1, FIDELITY_FRAMES)
        distance = landmark_distance(reference, others[variant], size)
        assert distance.size >= FIDELITY_FRAMES - 2, video
        assert distance.mean() <= boards.FIDELITY_LIMIT, (video, float(distance.mean()))


def frame_size(path: Path, rotate: int) -> tuple[int, int]:
    """(width, height) of the frames as the pipeline sees them (after rotation)."""
    from device.video.file import read_video

    frame = next(iter(read_video(path, rotate=rotate, max_frames=1, in_thread=False))).value
    return frame.shape[1], frame.shape[0]


def test_float_model_is_its_own_reference(shared_data: Path, float_poses: dict) -> None:
    again = _poses(shared_data, "legs.mp4", None)
    distance = landmark_distance(float_poses["legs.mp4"], again, (1, 1))
    assert distance.size and float(distance.max()) == 0.0


def test_a_landmark_model_not_in_the_manifest_is_refused_by_the_settings() -> None:
    """A typo in `[camera] landmark_model` is said when the config is checked, not at the first frame."""
    from device.pose.settings import PoseSettings

    assert PoseSettings(landmark_model="pose_landmark_full_int8.tflite").landmark_model == "pose_landmark_full_int8.tflite"
    with pytest.raises(ValueError, match="must be one of pose_landmark_full.tflite"):
        PoseSettings(landmark_model="nope.tflite")


def test_landmark_indices_are_defined_in_one_place() -> None:
    # boards.py restated the shoulder and hip indices (for its landmark_distance, now beside them in
    # device/pose/landmarks.py); they are defined there alone
    import ast

    from device.pose import landmarks

    names = {name.upper() for name in landmarks.LANDMARK_NAMES}
    root = Path(boards.__file__).resolve().parents[1]
    restated = []
    for path in sorted((root / "device").rglob("*.py")) + sorted((root / "scripts").rglob("*.py")):
        if path == Path(landmarks.__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name) and leaf.id in names:
                        restated.append(f"{path.relative_to(root)}:{node.lineno} {leaf.id}")
    assert restated == []


def test_landmark_distance_is_in_torso_lengths() -> None:
    from device.pose.landmarks import LEFT_HIP, LEFT_SHOULDER, NUM_LANDMARKS, RIGHT_HIP, RIGHT_SHOULDER

    reference = np.zeros((1, NUM_LANDMARKS, 2))
    reference[0, [LEFT_SHOULDER, RIGHT_SHOULDER], 1] = 0.2
    reference[0, [LEFT_HIP, RIGHT_HIP], 1] = 0.6  # a torso of 0.4 image heights
    moved = reference + [0.0, 0.1]
    assert landmark_distance(reference, moved, (100, 100)) == pytest.approx([0.25])
