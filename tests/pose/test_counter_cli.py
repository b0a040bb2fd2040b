"""``cadence count``: pose arrays and a real video end to end, clear errors for bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from device.cli import main

REPCOUNT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "repcount-dev"


def _synthetic(reps: int = 6, period: float = 1.5, fps: float = 30.0) -> np.ndarray:
    from test_counter import cycles, poses_from  # same folder

    return poses_from(cycles(reps, period)).astype(np.float32)


def test_count_pose_array_prints_progress_and_final_count(tmp_path: Path, capsys) -> None:
    path = tmp_path / "poses.npy"
    np.save(path, _synthetic(6))
    assert main(["count", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) > 5
    assert out[0].startswith("[") and "%" in out[0] and "count" in out[0]
    assert "[########################] 100%" in out[-2]
    assert out[-1].startswith("poses.npy: 6 repetitions")  # then the exercise recognised, in brackets


def test_count_json_updates_and_fps_from_metadata(tmp_path: Path, capsys) -> None:
    # the same motion recorded at 15 fps: the .json beside the array says so
    poses = _synthetic(6, period=3.0)[::2]
    path = tmp_path / "slow.npy"
    np.save(path, poses)
    path.with_suffix(".json").write_text(json.dumps({"fps": 15.0}))
    assert main(["count", str(path), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    updates, final = lines[:-1], lines[-1]
    exercise = final.pop("exercise")
    assert final == {"final": True, "count": 6.0, "sets": [6.0], "set_exercises": [exercise], "source": str(path)}
    counts = [u["count"] for u in updates]
    assert counts == sorted(counts) and counts[-1] >= 6
    assert updates[-1]["progress"] == 1.0
    periods = [u["period"] for u in updates if u["period"]]
    assert periods and periods[-1] == pytest.approx(3.0, rel=0.1)  # seconds, so 15 fps was used


def test_count_real_sequence(tmp_path: Path, capsys) -> None:
    if not (REPCOUNT / "annotations.csv").exists():
        pytest.skip("repcount-dev not found beside the repository")
    with open(REPCOUNT / "annotations.csv", newline="") as fh:
        true = {r["name"]: int(r["count"]) for r in csv.DictReader(fh)}["stu7_30"]
    assert main(["count", str(REPCOUNT / "poses" / "stu7_30.npy"), "--json"]) == 0
    final = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert final["count"] == true


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("fifo", "is not a regular file"),  # was "does not exist"
        (b"not numpy", "not a readable .npy array"),
        (np.zeros((10, 17, 3)), r"must have shape \(frames, 33, 2\|3\|4\)"),
        (np.zeros((10, 33, 3), dtype=np.int64), "floating point"),
    ],
)
def test_bad_pose_files_give_one_line_errors(tmp_path: Path, capsys, content, message) -> None:
    path = tmp_path / "bad.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):  # "fifo"
        import os

        os.mkfifo(path)
    elif content is not None:
        np.save(path, content)
    assert main(["count", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error: ") and len(err.splitlines()) == 1
    import re

    assert re.search(message, err)


def test_bad_settings_are_rejected(tmp_path: Path, capsys) -> None:
    path = tmp_path / "p.npy"
    np.save(path, _synthetic(2))
    assert main(["count", str(path), "--stride", "0"]) == 1
    assert "--stride" in capsys.readouterr().err
    assert main(["count", str(path), "--rest-time", "-1"]) == 1
    assert "--rest-time" in capsys.readouterr().err


def test_count_video_end_to_end(video_dir: Path, pose_models: None, capsys) -> None:
    # the whole live pipeline: decode → BlazePose → one person → windows → counter
    assert main(["count", str(video_dir / "jumping_jacks_12.mp4"), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines[-1]["final"] is True
    assert lines[-1]["count"] == 12  # the clip's annotated count, exactly
    assert len(lines) > 10 and lines[-2]["progress"] == 1.0


def test_count_names_the_exercise(video_dir: Path, pose_models: None, capsys) -> None:
    """`cadence count` prints the recognised exercise beside the count (issue 15)."""
    assert main(["count", str(video_dir / "pushups.mp4")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "pushups.mp4: 3 repetitions (push_up)"
    assert main(["count", str(video_dir / "pushups.mp4"), "--json", "--no-recognize-exercise"]) == 0
    final = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert final["exercise"] is None and final["set_exercises"] == [] and final["count"] == 3


def test_a_truncated_video_is_reported_not_counted_silently(video_dir: Path, pose_models: None, tmp_path: Path,
                                                            capsys) -> None:
    """A file that ends before its header says (a cut download) gets a warning naming
    how much was analysed (issue 17 #5)."""
    data = (video_dir / "pushups.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    assert main(["count", str(cut)]) == 0
    captured = capsys.readouterr()
    assert "cut.mp4 ended early: analysed" in captured.err and "the file may be truncated" in captured.err
    assert main(["count", str(video_dir / "pushups.mp4")]) == 0
    assert "ended early" not in capsys.readouterr().err


def test_pose_refuses_a_nonsense_frame_limit(video_dir: Path, capsys) -> None:
    assert main(["pose", str(video_dir / "pushups.mp4"), "--max-frames", "-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "cadence: error: --max-frames must be ≥ 1, got -1"


def test_count_with_a_trained_exercise_model(tmp_path: Path, capsys) -> None:
    """`cadence count --exercise-model` names the exercise with the owner's model (here one
    that knows only squats and pommel horse, trained without the shipped exercises)."""
    data = tmp_path / "exercise-data"
    for label, names in {"squat": ["stu9_64", "stu4_64"], "pommel_horse": ["stu13_35", "stu13_37"]}.items():
        (data / label).mkdir(parents=True)
        for name in names:
            (data / label / f"{name}.npy").symlink_to(REPCOUNT / "poses" / f"{name}.npy")
    model = tmp_path / "exercise.model"
    assert main(["train", "exercise", str(data), "--out", str(model), "--state-dir", str(tmp_path / "state"),
                 "--quiet", "--without-shipped"]) == 0
    capsys.readouterr()
    assert main(["count", str(REPCOUNT / "poses" / "stu13_37.npy"), "--exercise-model", str(model), "--json"]) == 0
    final = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert final["final"] and final["exercise"] == "pommel_horse"
    assert main(["count", str(REPCOUNT / "poses" / "stu13_37.npy"), "--exercise-model", str(tmp_path / "none.model")]) == 1
    err = capsys.readouterr().err
    assert "none.model" in err and "Traceback" not in err
