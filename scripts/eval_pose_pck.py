#!/usr/bin/env python3
"""PCK@0.2 of Cadence's BlazePose against human labels (COCO and MPII images).

For every annotated person in ``../shared/data/pose-images/`` the extractor
runs (still-image mode: no tracking, no smoothing) and each labelled joint
BlazePose shares with the dataset counts as correct when it lies within
0.2 × the person's torso diameter (the larger of the left-shoulder/right-hip
and right-shoulder/left-hip distances, from the labels) of the label.

Two ways to find the person:

- ``crop`` (default, top-down like the usual single-person protocol): a square
  crop around the labelled box (COCO ``bbox``; MPII ``center``/``scale``),
  1.25× larger, is given to the extractor;
- ``full``: the whole image with up to N people; each labelled person is
  matched to the predicted pose closest to its labels (unmatched: all misses).

    .venv/bin/python scripts/eval_pose_pck.py [--mode crop|full|both] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "pose-images"
sys.path.insert(0, str(ROOT))

# dataset joint index -> BlazePose landmark index (joints both define)
COCO_TO_BLAZE = {0: 0, 1: 2, 2: 5, 3: 7, 4: 8, 5: 11, 6: 12, 7: 13, 8: 14, 9: 15, 10: 16,
                 11: 23, 12: 24, 13: 25, 14: 26, 15: 27, 16: 28}
COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
              "left_knee", "right_knee", "left_ankle", "right_ankle"]
COCO_TORSO = ((5, 12), (6, 11))  # (left shoulder, right hip), (right shoulder, left hip)
MPII_TO_BLAZE = {0: 28, 1: 26, 2: 24, 3: 23, 4: 25, 5: 27, 10: 16, 11: 14, 12: 12, 13: 11, 14: 13, 15: 15}
MPII_NAMES = ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
              "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
              "left_elbow", "left_wrist"]
MPII_TORSO = ((13, 2), (12, 3))


def load_people(data: Path) -> list[dict]:
    """Every labelled person: image path, joints (k, 2), labelled mask, box, mapping."""
    people = []
    coco = json.loads((data / "coco" / "test_coco.json").read_text())
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    for ann in coco["annotations"]:
        if ann.get("iscrowd") or ann.get("num_keypoints", 0) == 0:
            continue
        kp = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        x, y, w, h = ann["bbox"]
        people.append({"dataset": "coco", "image": data / "coco" / files[ann["image_id"]], "joints": kp[:, :2],
                       "labelled": kp[:, 2] > 0, "box": (x + w / 2, y + h / 2, max(w, h)),
                       "mapping": COCO_TO_BLAZE, "torso": COCO_TORSO, "names": COCO_NAMES})
    for ann in json.loads((data / "mpii" / "test_mpii.json").read_text()):
        joints = np.array(ann["joints"], dtype=np.float64)
        labelled = np.array(ann["joints_vis"], dtype=bool) & (joints[:, 0] > 0)
        cx, cy = ann["center"]
        people.append({"dataset": "mpii", "image": data / "mpii" / ann["image"], "joints": joints,
                       "labelled": labelled, "box": (cx, cy, ann["scale"] * 200.0),
                       "mapping": MPII_TO_BLAZE, "torso": MPII_TORSO, "names": MPII_NAMES})
    return people


def torso_diameter(person: dict) -> float | None:
    sizes = [np.linalg.norm(person["joints"][a] - person["joints"][b])
             for a, b in person["torso"] if person["labelled"][a] and person["labelled"][b]]
    return max(sizes) if sizes else None


def crop_square(image: np.ndarray, cx: float, cy: float, side: float) -> tuple[np.ndarray, np.ndarray]:
    """A square crop (edge pixels replicated outside the image) and its affine to image pixels."""
    import cv2

    side = max(side, 16.0)
    size = int(round(min(max(side, 64.0), 1024.0)))
    scale = side / size
    to_image = np.array([[scale, 0, cx - side / 2], [0, scale, cy - side / 2]], dtype=np.float64)
    patch = cv2.warpAffine(image, to_image, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    return patch, to_image


def predict_crop(extractor, image: np.ndarray, person: dict) -> np.ndarray | None:
    cx, cy, side = person["box"]
    patch, to_image = crop_square(image, cx, cy, side * 1.25)
    poses = extractor(patch)
    if not poses:
        return None
    px = poses[0].xy.astype(np.float64) * patch.shape[1]
    return px @ to_image[:, :2].T + to_image[:, 2]


def correct_joints(person: dict, blaze_px: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per shared joint: evaluated (labelled) mask and correct mask."""
    idx = sorted(person["mapping"])
    evaluated = person["labelled"][idx]
    if blaze_px is None:
        return evaluated, np.zeros(len(idx), dtype=bool)
    threshold = 0.2 * person["torso_size"]
    pred = blaze_px[[person["mapping"][i] for i in idx]]
    dist = np.linalg.norm(pred - person["joints"][idx], axis=1)
    return evaluated, evaluated & (dist <= threshold)


def evaluate(mode: str, people: list[dict], threads: int) -> dict:
    import cv2

    from device.pose.extractor import HumanBodyPoseExtractor

    single = HumanBodyPoseExtractor(tracking=False, num_threads=threads)
    multi = HumanBodyPoseExtractor(tracking=False, max_poses=8, num_threads=threads, min_detection_confidence=0.3)
    images: dict[Path, np.ndarray] = {}
    full_cache: dict[Path, list[np.ndarray]] = {}
    totals: dict[str, list[int]] = {}
    per_joint: dict[str, dict[str, list[int]]] = {}
    found = {"coco": [0, 0], "mpii": [0, 0]}
    for person in people:
        image = images.setdefault(person["image"], cv2.imread(str(person["image"]), cv2.IMREAD_COLOR))
        if mode == "crop":
            pred = predict_crop(single, image, person)
        else:
            if person["image"] not in full_cache:
                h, w = image.shape[:2]
                full_cache[person["image"]] = [p.xy.astype(np.float64) * [w, h] for p in multi(image)]
            candidates = full_cache[person["image"]]
            best, best_hits = None, -1
            for cand in candidates:
                hits = int(correct_joints(person, cand)[1].sum())
                if hits > best_hits:
                    best, best_hits = cand, hits
            pred = best if best_hits > 0 else None
        evaluated, correct = correct_joints(person, pred)
        ds = person["dataset"]
        found[ds][0] += pred is not None
        found[ds][1] += 1
        t = totals.setdefault(ds, [0, 0])
        t[0] += int(correct.sum())
        t[1] += int(evaluated.sum())
        joints = per_joint.setdefault(ds, {})
        for i, ev, ok in zip(sorted(person["mapping"]), evaluated, correct):
            if ev:
                row = joints.setdefault(person["names"][i], [0, 0])
                row[0] += int(ok)
                row[1] += 1
    result = {"mode": mode}
    for ds, (ok, n) in totals.items():
        result[ds] = {"pck@0.2": ok / n if n else None, "joints": n, "people": found[ds][1],
                      "people_found": found[ds][0],
                      "per_joint": {k: round(v[0] / v[1], 3) for k, v in sorted(joints_of(per_joint, ds).items())}}
    ok_all = sum(t[0] for t in totals.values())
    n_all = sum(t[1] for t in totals.values())
    result["all"] = {"pck@0.2": ok_all / n_all if n_all else None, "joints": n_all}
    return result


def joints_of(per_joint: dict, ds: str) -> dict:
    return per_joint.get(ds, {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder with coco/ and mpii/ (default ../shared/data/pose-images)")
    parser.add_argument("--mode", choices=("crop", "full", "both"), default="both")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data = args.data.resolve()
    if not (data / "coco" / "test_coco.json").is_file():
        print(f"no pose-images data at {data}", file=sys.stderr)
        return 1
    people = load_people(data)
    kept = []
    for person in people:
        size = torso_diameter(person)
        if size is not None and size > 0:
            person["torso_size"] = size
            kept.append(person)
    modes = ["crop", "full"] if args.mode == "both" else [args.mode]
    results = [evaluate(mode, kept, args.threads) for mode in modes]
    if args.json:
        print(json.dumps({"people": len(kept), "skipped_without_torso": len(people) - len(kept), "results": results},
                         indent=2))
        return 0
    print(f"{len(kept)} labelled people ({len(people) - len(kept)} skipped: torso not labelled)")
    for res in results:
        for ds in ("coco", "mpii"):
            if ds in res:
                r = res[ds]
                print(f"[{res['mode']:4s}] {ds:4s} PCK@0.2 {r['pck@0.2']:.3f} over {r['joints']} joints, "
                      f"person found {r['people_found']}/{r['people']}")
        print(f"[{res['mode']:4s}] all  PCK@0.2 {res['all']['pck@0.2']:.3f} over {res['all']['joints']} joints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
