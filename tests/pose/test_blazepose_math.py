"""BlazePose's geometry and decoding, checked against hand-worked cases."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from device.pose import blazepose as bp


def test_ssd_anchors_match_the_detector_layout() -> None:
    anchors = bp.ssd_anchors()
    assert anchors.shape == (bp.NUM_ANCHORS, 2) == (2254, 2)
    # stride 8: a 28x28 grid, 2 anchors per cell, first centre half a cell in
    assert anchors[0] == pytest.approx([0.5 / 28, 0.5 / 28])
    assert anchors[1] == pytest.approx(anchors[0])
    assert anchors[2] == pytest.approx([1.5 / 28, 0.5 / 28])
    # the last layers (stride 32 x3) share a 7x7 grid with 6 anchors per cell
    assert anchors[-1] == pytest.approx([6.5 / 7, 6.5 / 7])
    assert np.all((anchors > 0) & (anchors < 1))


def test_weighted_nms_averages_overlapping_boxes() -> None:
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]])
    keypoints = np.zeros((3, 4, 2))
    keypoints[:, 0, 0] = [0.2, 0.22, 0.7]
    scores = np.array([0.9, 0.6, 0.8])
    out = bp.weighted_nms(boxes, keypoints, scores, 0.3)
    assert [round(d.score, 2) for d in out] == [0.9, 0.8]
    assert out[0].box[0] == pytest.approx((0.1 * 0.9 + 0.12 * 0.6) / 1.5)
    assert out[0].keypoints[0, 0] == pytest.approx((0.2 * 0.9 + 0.22 * 0.6) / 1.5)
    assert out[1].box == pytest.approx(boxes[2])


def test_decoding_removes_the_letterbox() -> None:
    anchors = bp.ssd_anchors()
    raw_boxes = np.zeros((1, bp.NUM_ANCHORS, 12), np.float32)
    raw_scores = np.full((1, bp.NUM_ANCHORS, 1), -10.0, np.float32)
    k = 500
    raw_boxes[0, k, 2:4] = 224 * 0.1  # a 0.1 x 0.1 box centred on anchor k
    raw_scores[0, k, 0] = 5.0
    # a 640x360 frame letterboxed into a square: 0.21875 of padding top and bottom
    dets = bp.decode_detections(raw_boxes, raw_scores, anchors, padding=(0.0, 0.21875))
    assert len(dets) == 1 and dets[0].score == pytest.approx(1 / (1 + math.exp(-5)))
    cx, cy = anchors[k]
    assert dets[0].keypoints[0] == pytest.approx([cx, (cy - 0.21875) / 0.5625])
    assert dets[0].box[3] - dets[0].box[1] == pytest.approx(0.1 / 0.5625)


def test_roi_of_an_upright_person_and_its_crop() -> None:
    # hip centre at (320, 240), scale point straight above it at (320, 140) on a 640x480 image
    roi = bp.roi_from_points(np.array([0.5, 0.5]), np.array([0.5, 140 / 480]), 640, 480)
    assert roi.rotation == pytest.approx(0.0)
    assert roi.width * 640 == pytest.approx(roi.height * 480) == pytest.approx(2 * 100 * 1.25)
    # a person lying with the head to the right: turned a quarter turn, head up in the crop
    lying = bp.roi_from_points(np.array([0.5, 0.5]), np.array([0.6, 0.5]), 640, 480)
    assert lying.rotation == pytest.approx(math.pi / 2)
    head = np.zeros((480, 640, 3), np.uint8)
    cv2.circle(head, (384, 240), 6, (255, 255, 255), -1)  # at the scale point
    ys, xs = np.nonzero(bp.landmark_input(head, lying)[0][:, :, 0] > 0.5)
    assert ys.mean() < 80 and abs(xs.mean() - 128) < 2
    # the crop maps the ROI centre to the patch centre
    image = np.zeros((480, 640, 3), np.uint8)
    cv2.circle(image, (320, 240), 6, (255, 255, 255), -1)
    patch = bp.landmark_input(image, roi)[0]
    ys, xs = np.nonzero(patch[:, :, 0] > 0.5)
    assert xs.mean() == pytest.approx(128, abs=1.5) and ys.mean() == pytest.approx(128, abs=1.5)


def test_projection_inverts_the_crop() -> None:
    roi = bp.Roi(0.4, 0.6, 0.5, 0.5 * 640 / 480, 0.7)
    points = np.array([[0.25, 0.75, 0.1, 1, 1], [0.9, 0.2, 0.0, 1, 1]], dtype=np.float64)
    projected = bp.project_landmarks(points, roi)
    matrix = bp.roi_crop_matrix(roi, 640, 480)  # patch pixels -> image pixels
    for p, q in zip(points, projected):
        image_xy = matrix @ np.array([p[0] * 256, p[1] * 256, 1.0])
        assert q[:2] == pytest.approx(image_xy / [640, 480])
    assert projected[0, 2] == pytest.approx(0.1 * 0.5)


def test_heatmap_refinement_moves_towards_the_peak() -> None:
    landmarks = np.zeros((39, 5))
    landmarks[:, :2] = 0.5
    heatmap = np.full((1, 64, 64, 39), -10.0, np.float32)
    heatmap[0, 34, 33, 0] = 10.0  # landmark 0's peak one cell right and two down of (32, 32)
    refined = bp.refine_with_heatmap(landmarks, heatmap)
    assert refined[0, 0] == pytest.approx(33 / 64, abs=0.002) and refined[0, 1] == pytest.approx(34 / 64, abs=0.002)
    assert np.allclose(refined[1:, :2], 0.5)  # no confident peak: unchanged


def test_one_euro_filter_smooths_noise_but_follows_motion() -> None:
    rng = np.random.default_rng(1)
    f = bp.OneEuroLandmarkFilter(min_cutoff=0.05, beta=80.0, derivate_cutoff=1.0)
    still = np.array([[0.5, 0.5, 0.0]])
    outs = [f.apply(still + rng.normal(0, 0.002, (1, 3)), i / 30, 640, 480, 200.0) for i in range(60)]
    assert np.std([o[0, 0] for o in outs[10:]]) < 0.002 * 0.6
    f.reset()
    moving = [f.apply(np.array([[0.1 + 0.01 * i, 0.5, 0.0]]), i / 30, 640, 480, 200.0) for i in range(60)]
    assert moving[-1][0, 0] == pytest.approx(0.1 + 0.59, abs=0.02)
