"""PoseSelector and JointsSelector on hand-made poses (fast, no models)."""

from __future__ import annotations

import numpy as np
import pytest

from device.components import ChainedTransformer
from device.pose import JointsSelector, Pose, PoseSelector
from device.pose import landmarks as L


def _pose(x0: float, y0: float, x1: float, y1: float, visibility: float = 0.9, size=(640, 480)) -> Pose:
    """A pose whose landmarks spread over the box (x0, y0)–(x1, y1)."""
    rng = np.random.default_rng(int(1000 * (x0 + y0 + x1 + y1)))
    lm = np.zeros((33, 4), np.float32)
    lm[:, 0] = rng.uniform(x0, x1, 33)
    lm[:, 1] = rng.uniform(y0, y1, 33)
    lm[[0, 1], 0] = x0, x1  # make the extremes exact
    lm[[2, 3], 1] = y0, y1
    lm[:, 3] = visibility
    return Pose.from_landmarks(lm, 0.9, size)


def test_strategies_pick_by_their_rule() -> None:
    big = _pose(0.05, 0.30, 0.45, 0.95)  # large, left, reaches lowest
    small_high = _pose(0.60, 0.05, 0.70, 0.40)  # small, right-ish, highest joint
    right = _pose(0.75, 0.40, 0.98, 0.60)  # rightmost
    poses = [small_high, right, big]
    assert PoseSelector()(poses) is big
    assert PoseSelector("highest_joint_location")(poses) is small_high
    assert PoseSelector("lowest_joint_location")(poses) is big
    assert PoseSelector("leftmost_joint_location")(poses) is big
    assert PoseSelector("rightmost_joint_location")(poses) is right
    # order of the list does not matter
    assert PoseSelector("rightmost_joint_location")(poses[::-1]) is right


def test_area_is_judged_in_pixels_when_the_image_size_is_known() -> None:
    # On a wide image, a wide pose can beat a taller-but-narrower one in pixels.
    wide = _pose(0.0, 0.4, 0.8, 0.6, size=(1920, 480))  # 1536 x 96 px
    tall = _pose(0.0, 0.0, 0.1, 1.0, size=(1920, 480))  # 192 x 480 px
    assert PoseSelector()([tall, wide]) is wide


def test_confidence_threshold_ignores_unsure_joints() -> None:
    a = _pose(0.1, 0.1, 0.3, 0.5)
    lm = _pose(0.5, 0.5, 0.6, 0.6).landmarks.copy()
    lm[0] = [0.0, 0.0, 0.0, 0.1]  # an unsure joint far away would make this pose "biggest"
    b = Pose.from_landmarks(lm, 0.9, (640, 480))
    assert PoseSelector(confidence_threshold=0.0)([a, b]) is b
    assert PoseSelector(confidence_threshold=0.2)([a, b]) is a
    # a pose with no confident joint is never picked
    faint = _pose(0.0, 0.0, 1.0, 1.0, visibility=0.05)
    assert PoseSelector()([faint]) is None
    assert PoseSelector()([faint, a]) is a


def test_no_pose_is_none_not_an_error() -> None:
    selector = PoseSelector()
    assert selector([]) is None
    assert selector(None) is None
    single = _pose(0.1, 0.1, 0.2, 0.2)
    assert selector(single) is single


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="unknown pose selection strategy"):
        PoseSelector("biggest")
    with pytest.raises(ValueError):
        PoseSelector(confidence_threshold=1.5)


def test_joints_selector_keeps_or_blanks() -> None:
    pose = _pose(0.1, 0.1, 0.9, 0.9)
    arms = JointsSelector(["left_shoulder", "left_elbow", L.LEFT_WRIST])
    kept = arms(pose)
    assert np.allclose(kept.landmarks[L.LEFT_ELBOW], pose.landmarks[L.LEFT_ELBOW])
    others = np.ones(33, bool)
    others[[L.LEFT_SHOULDER, L.LEFT_ELBOW, L.LEFT_WRIST]] = False
    assert np.isnan(kept.landmarks[others, :3]).all() and (kept.landmarks[others, 3] == 0).all()
    xy = pose.landmarks[[L.LEFT_SHOULDER, L.LEFT_ELBOW, L.LEFT_WRIST], :2]
    assert kept.bbox == pytest.approx((*xy.min(axis=0), *xy.max(axis=0)))
    no_legs = JointsSelector(ignored=["left_knee", "right_knee"])(pose)
    assert np.isnan(no_legs.landmarks[[L.LEFT_KNEE, L.RIGHT_KNEE], 0]).all()
    assert np.isfinite(no_legs.landmarks[L.NOSE, :3]).all()
    assert pose.landmarks[L.LEFT_KNEE, 3] > 0  # the input is untouched
    assert JointsSelector(["nose"])(None) is None
    assert len(JointsSelector(["nose"])([pose, pose])) == 2
    with pytest.raises(ValueError, match="exactly one"):
        JointsSelector(["nose"], ignored=["nose"])
    with pytest.raises(ValueError, match="unknown landmark"):
        JointsSelector(["left_wing"])


def test_selectors_compose_as_transformers() -> None:
    chain = PoseSelector() | JointsSelector(["nose", "left_wrist"])
    assert isinstance(chain, ChainedTransformer)
    out = chain([_pose(0.1, 0.1, 0.2, 0.2), _pose(0.1, 0.1, 0.9, 0.9)])
    assert np.isfinite(out.landmarks[L.NOSE, 0]) and np.isnan(out.landmarks[L.RIGHT_HIP, 0])
    assert chain([]) is None


def test_pose_type_basics() -> None:
    pose = _pose(0.1, 0.2, 0.5, 0.9)
    assert pose["left_wrist"].shape == (4,)
    assert pose.pixels().max() <= 640
    assert pose.torso_size() > 0
    with pytest.raises(ValueError, match="33, 4"):
        Pose(np.zeros((17, 3)), (0, 0, 1, 1), 1.0)
    d = pose.to_dict()
    assert set(d["landmarks"]) == set(L.LANDMARK_NAMES) and d["image_size"] == [640, 480]
