"""``cadence pose`` end to end on a real clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device.cli import main

pytestmark = pytest.mark.usefixtures("pose_models")


def test_pose_command_writes_landmarks_with_nan_gaps(video_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "poses.npy"
    code = main(["pose", str(video_dir / "jumping_jacks_11.mp4"), "--out", str(out), "--max-frames", "20"])
    assert code == 0
    landmarks = np.load(out, allow_pickle=False)
    assert landmarks.shape == (20, 33, 4) and landmarks.dtype == np.float32
    assert (~np.isnan(landmarks[:, 0, 0])).sum() >= 19
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["frames"] == 20 and meta["fps"] == pytest.approx(23.976, abs=0.01)
    assert len(meta["timestamps"]) == 20 and meta["size"] == [640, 360]
    assert meta["columns"] == ["x", "y", "z", "visibility"] and meta["format"] == "cadence-poses"
    assert "person found on" in capsys.readouterr().out


def test_pose_command_json_lines(video_dir: Path, capsys) -> None:
    assert main(["pose", str(video_dir / "pushups.mp4"), "--json", "--max-frames", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2]
    assert lines[0]["pose"] is not None and "left_wrist" in lines[0]["pose"]["landmarks"]


def test_pose_command_bad_paths(tmp_path: Path, capsys) -> None:
    assert main(["pose", str(tmp_path / "missing.mp4")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "does not exist" in err and "\n" not in err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    assert main(["pose", str(junk)]) == 1
    assert "junk.mp4" in capsys.readouterr().err


def test_pose_command_runs_the_chosen_landmark_model(video_dir: Path, tmp_path: Path) -> None:
    # `cadence pose --landmark-model` extracts with the model a board profile makes the daemon
    # run (one place builds extractors): same people, slightly other landmarks
    clip = str(video_dir / "pushups.mp4")
    float_out, int8_out = tmp_path / "float.npy", tmp_path / "int8.npy"
    assert main(["pose", clip, "--out", str(float_out), "--max-frames", "5"]) == 0
    assert main(["pose", clip, "--out", str(int8_out), "--max-frames", "5",
                 "--landmark-model", "pose_landmark_full_int8.tflite"]) == 0
    a, b = np.load(float_out), np.load(int8_out)
    assert np.isfinite(a[:, :, :2]).all() and np.isfinite(b[:, :, :2]).all()
    distance = np.abs(a[:, :, :2] - b[:, :, :2]).max()
    assert 0 < distance < 0.1, distance


def test_pose_command_refuses_an_unknown_landmark_model(video_dir: Path, capsys) -> None:
    assert main(["pose", str(video_dir / "pushups.mp4"), "--landmark-model", "nope.tflite"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error: --landmark-model") and "pose_landmark_full.tflite" in err and "\n" not in err


def test_a_saved_pose_array_says_what_its_columns_are(tmp_path: Path) -> None:
    from device.pose.posefile import PoseWriter, load_poses, save_poses

    xy = save_poses(tmp_path / "xy", np.zeros((3, 33, 2)), {"fps": 25.0})
    assert json.loads(xy.with_suffix(".json").read_text())["columns"] == ["x", "y"]
    assert load_poses(xy)[1] == 25.0
    writer = PoseWriter(tmp_path / "full.npy")
    writer.append(np.zeros((33, 4)))
    full = writer.close({"fps": 30.0})
    assert json.loads(full.with_suffix(".json").read_text())["columns"] == ["x", "y", "z", "visibility"]
    assert np.load(full).shape == (1, 33, 4)


@pytest.mark.parametrize(("fps", "said"), [
    *[(v, "fps must be between 0 and 1000") for v in ("Infinity", "NaN", "-5", "1e300")],
    # {"fps": true} was taken as 1 fps (a bool is an int to float()), counting at the wrong rate
    *[(v, "not a valid pose metadata file") for v in ("true", "false", '"30"x')],
])
def test_a_pose_files_impossible_frame_rate_is_one_line(tmp_path: Path, capsys, fps: str, said: str) -> None:
    # the JSON beside a pose array is hand-editable: Infinity was a traceback, the others silently taken
    path = tmp_path / "p.npy"
    np.save(path, np.zeros((3, 33, 4), np.float32))
    path.with_suffix(".json").write_text('{"fps": %s}' % fps)
    assert main(["count", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "\n" not in err
    assert str(path.with_suffix(".json")) in err and said in err


def test_pose_out_that_cannot_be_written_is_one_line(video_dir: Path, tmp_path: Path, capsys) -> None:
    # a folder as --out was written beside it as <folder>.npy; an unwritable one was a traceback
    from device.pose.posefile import PoseFileError, PoseWriter

    assert main(["pose", str(video_dir / "pushups.mp4"), "--out", f"{tmp_path}/", "--max-frames", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadence: error:") and "is a folder" in err and "\n" not in err
    assert not tmp_path.with_suffix(".npy").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(PoseFileError, match="could not write"):
        PoseWriter(tmp_path / "file" / "p.npy")
    writer = PoseWriter(tmp_path / "p.npy")
    writer.append(np.zeros((33, 4)))
    (tmp_path / "p.npy").mkdir()  # the target became a folder meanwhile
    with pytest.raises(PoseFileError, match="could not write"):
        writer.close({"fps": 30.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "p.npy"]  # no leftovers


@pytest.mark.parametrize("frames", [2, 40])
def test_pose_out_on_a_full_disk_is_one_line_and_leaves_nothing(video_dir: Path, tmp_path: Path, capsys,
                                                                frames: int) -> None:
    # a full disk (`cadence pose --out`, `cadence record exercise`): the rows' write (40 frames) or their
    # flush at the end (2 frames) raised OSError, a traceback, and the partial rows file stayed behind
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    (tmp_path / ".p.npy.rows").symlink_to("/dev/full")  # where the writer puts the rows: every write is ENOSPC
    argv = ["pose", str(video_dir / "pushups.mp4"), "--out", str(tmp_path / "p.npy"), "--max-frames", str(frames)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cadence: error:") and "could not write" in err and "No space left" in err, err
    assert list(tmp_path.iterdir()) == []


def test_with_stderr_closed_the_command_still_reports(video_dir: Path, tmp_path: Path) -> None:
    # `cadence … 2>&-`: Python starts without sys.stderr; the progress line then raised and the
    # traceback went nowhere — exit 1 and not a word. Messages now go to stdout.
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]

    def cadence(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "device", *args], cwd=repo, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(repo)}, timeout=300, preexec_fn=lambda: os.close(2))

    done = cadence("pose", str(video_dir / "jumping_jacks_11.mp4"), "--max-frames", "3", "--out", str(tmp_path / "p.npy"))
    assert done.returncode == 0, done.stdout
    assert "frame 3/3" in done.stdout and "person found on" in done.stdout
    failed = cadence("pose", str(tmp_path / "missing.mp4"))
    assert failed.returncode == 1 and failed.stdout.startswith("cadence: error: ") and "missing.mp4" in failed.stdout
    # fd 2 stays taken: a file opened afterwards never gets it (C libraries write "stderr" there)
    code = ("import os, sys; from device.cli import keep_stderr_open; keep_stderr_open(); "
            f"f = open({str(tmp_path / 'f.txt')!r}, 'w'); print(f.fileno(), os.path.realpath(f'/proc/self/fd/2'))")
    held = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(repo)}, preexec_fn=lambda: os.close(2))
    fileno, target = held.stdout.split()
    assert int(fileno) != 2 and target == os.devnull
