"""End to end: the real daemon process with a video file as its camera and an audio
file as its microphone, a real mosquitto broker, and a sound model trained on the
device while the daemon runs (`cadence retrain sound --foreground`), picked up
without a restart. Checks what arrives on MQTT (the exercise too, by the shipped
model) — and that a kill -9 (a power cut) loses none of the day's count."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import pytest

from daemon_helpers import REPO, SHARED
from test_daemon_process import start_daemon, stop

VIDEOS = SHARED / "videos"
CLIP = "jumping_jacks_12.mp4"
SOUNDS = SHARED / "room-sounds-dev"
LABELS = ("crying_baby", "vacuum_cleaner", "background")
PER_LABEL = 5


def expected_count(name: str) -> int:
    with open(VIDEOS / "annotations.csv") as f:
        return next(int(row["count"]) for row in csv.DictReader(f) if row["file"] == name)


@pytest.mark.skipif(not (VIDEOS / CLIP).exists() or not SOUNDS.exists(), reason=f"shared data not found under {SHARED}")
def test_video_and_audio_files_as_camera_and_microphone(mosquitto, recorder_factory, tmp_path):
    expected = expected_count(CLIP)
    clips = {label: sorted((SOUNDS / label).glob("*.flac")) for label in LABELS}
    microphone = clips["crying_baby"][0]  # never used for training
    data = tmp_path / "state" / "training-data"
    for label, files in clips.items():
        (data / label).mkdir(parents=True)
        for f in files[1 : PER_LABEL + 1]:
            (data / label / f.name).symlink_to(f)
    config = tmp_path / "cadence.toml"
    config.write_text(
        f'[device]\nid = "e2e"\n'
        f'[camera]\nsource = "{VIDEOS / CLIP}"\nrealtime = false\n'
        f'[microphone]\ndevice = "{microphone}"\nloop = true\n'
        f'[sound]\nreload_check_seconds = 0.5\n'
        f'[snapshot]\nenabled = true\ninterval = 2\n'
        f'[storage]\nstate_dir = "{tmp_path / "state"}"\nsave_interval = 1\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nstats_interval = 2\n'
    )
    rec = recorder_factory(mosquitto.port, ["cadence/e2e/#"])
    proc = start_daemon(config)
    try:
        rec.wait_for(lambda: rec.on("cadence/e2e/availability")[-1:] == [b"online"], timeout=30, what="online")
        assert rec.json("cadence/e2e/state/model")[-1]["status"] == "no model file"
        # the owner retrains over SSH while the daemon runs; it must switch without a restart
        retrain = subprocess.run(
            [sys.executable, "-m", "device", "retrain", "sound", "--foreground", "--config", str(config), "--timeout", "60"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=240,
        )
        assert retrain.returncode == 0, retrain.stdout + retrain.stderr
        assert "validation accuracy" in retrain.stdout and "the daemon switched to sound.model@" in retrain.stdout
        model = rec.json("cadence/e2e/state/model")[-1]
        assert model["status"] == "active" and sorted(model["labels"]) == sorted(LABELS)
        assert proc.poll() is None  # same process: hot reload, no restart
        # the microphone plays a crying baby: events carry that label
        events = rec.wait_for(lambda: rec.json("cadence/e2e/sound"), timeout=30, what="a sound event")
        assert events[0]["label"] == events[0]["event_type"] == "crying_baby"
        assert events[0]["model"] == model["name"] and 0.5 <= events[0]["confidence"] <= 1.0
        # the camera plays the jumping-jack clip: reps rise to its count
        rec.wait_for(lambda: any(s.get("vision", {}).get("status") == "finished"
                                 for s in rec.json("cadence/e2e/state/pipelines")), timeout=90, what="video processed")
        counts = [m["count"] for m in rec.json("cadence/e2e/reps")]
        assert counts == sorted(counts), "the published count must never decrease"
        # each update says how sure the counter is: counting happens only on a periodic motion
        counted = [m for m in rec.json("cadence/e2e/reps") if m["count"] > 0]
        assert counted and all(0 <= m["periodicity"] <= 1 and 0 <= m["ambiguity"] <= 1 for m in counted)
        assert max(m["periodicity"] for m in counted) >= 0.3  # the counter's min_periodicity
        assert expected <= counts[-1] < expected + 1, f"counted {counts[-1]}, the clip has {expected}"
        assert rec.json("cadence/e2e/state/count")[-1]["count"] == counts[-1]
        # the shipped exercise model recognises them: reps name the exercise, the day's totals count it
        assert rec.json("cadence/e2e/state/exercise_model")[-1]["shipped"] is True
        named = [m for m in rec.json("cadence/e2e/reps") if m["exercise"] == "jumping_jack"]
        assert named and all(0 < m["exercise_confidence"] <= 1 for m in named)
        totals = rec.json("cadence/e2e/state/count")[-1]["totals"]
        assert totals["all"] == counts[-1] and totals["jumping_jack"] >= expected - 1, totals
        stats = rec.wait_for(lambda: rec.json("cadence/e2e/stats"), what="stats")
        assert stats[-1]["frames"] > 0 and stats[-1]["frames_dropped"] == 0 and stats[-1]["audio_chunks"] > 0
        # snapshots are on: someone was in view, so a picture was published
        assert any(p[:2] == b"\xff\xd8" for p in rec.on("cadence/e2e/state/snapshot"))
        # a power cut: the day's count was saved while counting, and comes back at the next start
        saved = tmp_path / "state" / "daemon-state.json"
        rec.wait_for(lambda: json.loads(saved.read_text())["count"]["count"] == counts[-1], what="count saved")
        proc.send_signal(signal.SIGKILL)
        rec.wait_for(lambda: rec.on("cadence/e2e/availability")[-1:] == [b"offline"], what="Last Will")
        stop(proc)
        config.write_text(config.read_text().replace("[camera]\n", "[camera]\nenabled = false\n"))
        n = len(rec.json("cadence/e2e/state/count"))
        proc = start_daemon(config)
        restored = rec.wait_for(lambda: rec.json("cadence/e2e/state/count")[n:], timeout=30, what="restored count")
        assert restored[0]["count"] == counts[-1] and restored[0]["day"] == rec.json("cadence/e2e/reps")[-1]["day"]
        assert restored[0]["totals"] == totals  # per exercise too
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    except AssertionError as exc:
        states = rec.json("cadence/e2e/state/pipelines")[-3:]
        raise AssertionError(f"{exc}\npipelines: {states}\ndaemon output (tail):\n{stop(proc)[-3000:]}") from None
    finally:
        output = stop(proc)
    assert "Traceback" not in output, output
    assert rec.on("cadence/e2e/availability")[-1] == b"offline"
