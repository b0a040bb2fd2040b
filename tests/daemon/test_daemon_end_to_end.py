"""End to end: the real daemon process, a video file as its camera and an audio file
as its microphone, a real mosquitto broker; check what arrives on MQTT."""

from __future__ import annotations

import csv
import signal

import pytest

from daemon_helpers import SHARED
from test_daemon_process import start_daemon, stop

VIDEOS = SHARED / "videos"
CLIP = "jumping_jacks_12.mp4"


def expected_count(name: str) -> int:
    with open(VIDEOS / "annotations.csv") as f:
        return next(int(row["count"]) for row in csv.DictReader(f) if row["file"] == name)


@pytest.mark.skipif(not (VIDEOS / CLIP).exists(), reason=f"shared data not found: {VIDEOS / CLIP}")
def test_video_as_camera_counts_the_repetitions(mosquitto, recorder_factory, tmp_path):
    expected = expected_count(CLIP)
    config = tmp_path / "cadence.toml"
    config.write_text(
        f'[device]\nid = "e2e"\n'
        f'[camera]\nsource = "{VIDEOS / CLIP}"\nrealtime = false\n'
        f'[microphone]\nenabled = false\n'
        f'[storage]\nstate_dir = "{tmp_path}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nstats_interval = 2\n'
    )
    rec = recorder_factory(mosquitto.port, ["cadence/e2e/#"])
    proc = start_daemon(config)
    try:
        rec.wait_for(lambda: any(s["vision"]["status"] == "finished" for s in rec.json("cadence/e2e/state/pipelines")
                                 if "vision" in s), timeout=90, what="the video to be processed")
        counts = [m["count"] for m in rec.json("cadence/e2e/reps")]
        assert counts == sorted(counts), "the published count must never decrease"
        assert expected <= counts[-1] < expected + 1, f"counted {counts[-1]}, the clip has {expected}"
        assert rec.json("cadence/e2e/state/count")[-1]["count"] == counts[-1]
        assert all(m["set"] >= 1 and m["rate"] is None or m["rate"] > 0 for m in rec.json("cadence/e2e/reps"))
        stats = rec.wait_for(lambda: rec.json("cadence/e2e/stats"), what="stats")
        assert stats[-1]["frames"] > 0 and stats[-1]["frames_dropped"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        output = stop(proc)
    assert "Traceback" not in output, output
