"""Exercise features: coordinate conventions, mirroring, windows, quantisation, files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from device.components import CadenceError, SlidingWindow, collect, from_iterable
from device.pose.exercise_features import (
    DESCRIPTOR,
    MOTION_SHAPE,
    ExerciseFeatureError,
    ExerciseFeatures,
    frame_descriptors,
    plausible,
    pool,
)

# left/right landmark pairs of BlazePose (face, arms, hands, legs, feet)
_SWAP = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10)] + [(i, i + 1) for i in range(11, 33, 2)]


def _mirror(poses: np.ndarray) -> np.ndarray:
    out = poses.copy()
    out[..., 0] = 1.0 - out[..., 0]
    perm = np.arange(33)
    for a, b in _SWAP:
        perm[a], perm[b] = b, a
    return out[:, perm]


@pytest.fixture(scope="module")
def sequence(shared_data: Path) -> np.ndarray:
    """A real jumping-jack sequence of repcount-dev (per-frame min-max normalised)."""
    return np.load(shared_data / "repcount-dev" / "poses" / "stu10_25.npy")[:200]


def test_image_normalised_pixels_and_min_max_give_the_same_features(sequence: np.ndarray) -> None:
    feats = ExerciseFeatures()
    rng = np.random.default_rng(0)
    # an image-normalised form: each frame placed and scaled in the picture, other aspect ratio
    scale = rng.uniform(0.2, 0.6, (len(sequence), 1, 2))
    shift = rng.uniform(0.0, 0.3, (len(sequence), 1, 2))
    image = sequence.copy()
    image[..., :2] = sequence[..., :2] * scale + shift
    pixels = image.copy()
    pixels[..., :2] *= np.array([1280.0, 720.0])
    a = [f.values for f in feats.windows(sequence)]
    b = [f.values for f in feats.windows(image)]
    c = [f.values for f in feats.windows(pixels[..., :2])]  # (frames, 33, 2) is accepted too
    assert len(a) == len(b) == len(c) > 0
    for x, y, z in zip(a, b, c):
        assert np.abs(x.astype(int) - y).max() <= 1  # equal up to rounding at a quantisation step
        assert np.abs(x.astype(int) - z).max() <= 1


def test_mirrored_person_gives_the_same_features(sequence: np.ndarray) -> None:
    feats = ExerciseFeatures()
    raw = feats.raw(sequence[:90])
    assert np.allclose(raw, feats.raw(_mirror(sequence[:90])), atol=1e-6)


def test_descriptor_has_one_column_per_name_and_nan_rows_without_a_person(sequence: np.ndarray) -> None:
    poses = sequence[:10].copy()
    poses[3] = np.nan
    poses[5, 15] = np.nan  # a wrist missing: the frame does not describe the body
    d = frame_descriptors(poses)
    assert d.shape == (10, len(DESCRIPTOR))
    assert np.isnan(d[3]).all() and np.isnan(d[5]).all()
    assert np.isfinite(np.delete(d, [3, 5], axis=0)).all()


def test_windows_with_too_few_poses_have_no_feature(sequence: np.ndarray) -> None:
    feats = ExerciseFeatures()
    window = sequence[:90].copy()
    window[5:] = np.nan
    assert feats.feature(window) is None
    assert feats.feature(np.full((90, 33, 3), np.nan)) is None
    one = feats.feature(sequence[:1])  # a single key pose is a (short) window
    assert one is not None and one.values.dtype == np.int8 and len(one) == feats.dimension


def _broken(poses: np.ndarray) -> np.ndarray:
    """The same frames with the left forearm flung far across the body (a broken skeleton)."""
    out = poses.copy()
    out[:, 15, :2] = out[:, 13, :2] + 8.0 * (out[:, 16, :2] - out[:, 14, :2])
    return out


def test_broken_skeleton_frames_are_left_out_of_the_window_statistics(sequence: np.ndarray) -> None:
    window = sequence[:90].copy()
    broken = np.arange(0, 90, 4)  # 23 frames
    window[broken] = _broken(window[broken])
    desc = frame_descriptors(window)
    body = plausible(desc)
    assert not body[broken].any() and body.sum() == 90 - len(broken)
    np.testing.assert_array_equal(pool(desc), pool(desc[body]))
    forearm = [i for i, d in enumerate(DESCRIPTOR) if d[0] == "bone_ratio_forearm"]
    assert pool(desc)[forearm] < 0.5 < desc[broken][:, forearm].min()  # the broken frames left no trace


def test_a_window_of_hardly_any_plausible_frame_keeps_all_its_frames(sequence: np.ndarray) -> None:
    """Landmarks that are no body stay what the open set and the background class see."""
    window = _broken(sequence[:90])
    window[:5] = sequence[:5]  # fewer plausible frames than MIN_POSE_FRAMES
    desc = frame_descriptors(window)
    assert plausible(desc).sum() == 5
    forearm = [i for i, d in enumerate(DESCRIPTOR) if d[0] == "bone_ratio_forearm"]
    assert pool(desc)[forearm] > 1.25  # the broken frames are in the statistics


def test_quantised_values_dequantise_to_the_centred_statistics(sequence: np.ndarray) -> None:
    feats = ExerciseFeatures()
    raw = feats.raw(sequence[:90])
    feat = feats.feature(sequence[:90])
    assert feat.scales is feats.scales and feat.scales.shape == (feats.dimension,)
    err = np.abs(feat.dequantize() - (raw - feats.centres))
    assert (err <= feats.scales * 0.5 + 1e-6).all()


def test_window_bounds_are_the_pipelines_sliding_windows() -> None:
    feats = ExerciseFeatures()
    for frames in (1, 60, 90, 91, 104, 105, 400):
        items = list(range(frames))

        async def go() -> list:
            return await collect(SlidingWindow(90, 15, emit_partial=True)(from_iterable(items, rate=30.0)))

        expected = [(w.value[0], w.value[-1] + 1) for w in asyncio.run(go())]
        assert list(feats.window_bounds(frames)) == expected, frames


def test_file_windows_read_a_pose_file_like_the_array(sequence: np.ndarray, tmp_path: Path) -> None:
    feats = ExerciseFeatures()
    poses = np.concatenate([sequence, np.full((30, 33, 3), np.nan)]).astype(np.float32)
    path = tmp_path / "poses.npy"
    np.save(path, poses)
    (tmp_path / "poses.json").write_text(json.dumps({"fps": 25.0}))
    from_file = list(feats.file_windows(path))
    from_array = list(feats.windows(poses, fps=25.0))
    assert len(from_file) == len(from_array) > 3
    for a, b in zip(from_file, from_array):
        assert np.array_equal(a.values, b.values)
        assert a.start == b.start and a.end == b.end
    assert from_file[0].end == pytest.approx(90 / 25.0)


def test_a_pose_file_of_a_few_frames_is_no_example(sequence: np.ndarray, tmp_path: Path) -> None:
    # one frame (or seven) is a still picture, not a movement to learn an exercise from:
    # no window, so training says the file is not used; eight frames make one
    from device.pose.exercise_features import MIN_POSE_FRAMES

    feats = ExerciseFeatures()
    for frames, windows in ((1, 0), (MIN_POSE_FRAMES - 1, 0), (MIN_POSE_FRAMES, 1)):
        path = tmp_path / f"take{frames}.npy"
        np.save(path, sequence[:frames].astype(np.float32))
        assert len(list(feats.file_windows(path))) == windows, frames
    assert f"fewer than {MIN_POSE_FRAMES} frames" in feats.no_window


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    feats = ExerciseFeatures()
    with pytest.raises(ExerciseFeatureError, match="shape"):
        feats.raw(np.zeros((10, 17, 2)))
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not numpy")
    with pytest.raises(CadenceError, match="not a readable .npy"):
        list(feats.file_windows(bad))


def test_fingerprint_is_stable_and_names_the_configuration() -> None:
    a, b = ExerciseFeatures(), ExerciseFeatures(window=60, stride=10)
    assert a.fingerprint() == b.fingerprint()  # windows move, their meaning does not
    assert len(a.fingerprint()) == 64
    assert a.dimension == len(DESCRIPTOR) * 4 + MOTION_SHAPE == len(a.scales)


def test_is_a_featurizer_for_the_learn_cache() -> None:
    features = pytest.importorskip("device.components.features")
    protocol = getattr(features, "Featurizer", None)
    if protocol is None:
        pytest.skip("no Featurizer protocol yet")
    assert isinstance(ExerciseFeatures(), protocol)


def test_a_video_of_a_few_frames_is_no_example(video_dir: Path, tmp_path: Path) -> None:
    # as for a pose file: a video of one frame (or seven) was taken as an example of its exercise
    import cv2

    from device.pose.exercise_features import MIN_POSE_FRAMES

    source = cv2.VideoCapture(str(video_dir / "pushups.mp4"))
    source.set(cv2.CAP_PROP_POS_FRAMES, 60)
    frames = [source.read()[1] for _ in range(MIN_POSE_FRAMES)]
    source.release()
    feats = ExerciseFeatures()
    for count, windows in ((1, 0), (MIN_POSE_FRAMES - 1, 0), (MIN_POSE_FRAMES, 1)):
        path = tmp_path / f"take{count}.mp4"
        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, frames[0].shape[1::-1])
        for frame in frames[:count]:
            out.write(frame)
        out.release()
        assert len(list(feats.file_windows(path))) == windows, count
