"""The ``cadence`` command's core: help, demo, models, clear usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

from device.cli import main


def test_help_lists_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "models" in out


def test_demo_json_windows(capsys):
    assert main(["demo", "--seconds", "4", "--window", "30", "--stride", "15", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    # 4 s at 30 fps, downsampled by 2 -> 60 items; windows of 30 every 15 -> 3 windows
    assert len(lines) == 3
    assert all(line["peak_to_peak"] > 0 for line in lines)
    assert lines[0]["timestamp"] < lines[-1]["timestamp"]


def test_models_status_ok(capsys):
    assert main(["models", "status"]) == 0
    assert "pose_detection.tflite" in capsys.readouterr().out


def test_bad_arguments_give_one_line_usage_error():
    done = subprocess.run([sys.executable, "-m", "device", "demo", "--seconds", "many"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "invalid int value: 'many'" in done.stderr
    done = subprocess.run([sys.executable, "-m", "device", "models", "fetch", "nope.tflite"],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "cadence: error: unknown model file(s): nope.tflite"


def test_pose_help_names_the_video_files_it_reads(capsys):
    # one list of video suffixes (device/video/file.py); a help that restates part of it sends an owner's .m4v away
    from device.video.file import VIDEO_SUFFIXES

    try:
        main(["pose", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = " ".join(capsys.readouterr().out.split())
    named = [s for s in VIDEO_SUFFIXES if f"{s[1:]}," in out or f"{s[1:]})" in out]
    assert not named or len(named) == len(VIDEO_SUFFIXES), f"pose --help names only {named} of {VIDEO_SUFFIXES}"
