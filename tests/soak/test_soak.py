"""The soak (scripts/soak.py): its checks catch leaks and stalls, and a 3-minute
run of the real daemon (looping video + audio files, real mosquitto) passes them."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "soak.py"
SHARED = REPO / ".." / "shared" / "data"


def load_script():
    spec = importlib.util.spec_from_file_location("cadence_soak_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


soak = load_script()
LIMITS = {key: getattr(soak.parser().parse_args([]), key) for key in (
    "warmup_fraction", "max_rss_mb", "max_rss_slope", "rss_noise_mb", "max_fd_growth", "max_thread_growth",
    "start_grace", "max_reps_gap", "max_sound_gap", "max_input_gap", "max_mqtt_queue")} | {"max_stats_gap": 20.0}


def series(minutes: float = 20, interval: float = 5, rss=lambda t: 180.0, fds=lambda t: 14, threads=lambda t: 12):
    rows = []
    for i in range(1, int(minutes * 60 / interval) + 1):
        t = i * interval
        rows.append({"t": t, "rss_mb": rss(t), "fds": fds(t), "threads": threads(t), "cpu_percent": 50.0,
                     "frames": 25 * t, "fps": 25.0, "frames_dropped": 0, "audio_chunks": 10 * t,
                     "audio_overflows": 0, "mqtt_queued": 0, "mqtt_dropped": 0, "load1": 1.0})
    duration = minutes * 60
    times = {"reps": [2.0 + 0.5 * i for i in range(int(duration / 0.5) - 4)],
             "sound": [10.0 + 30 * i for i in range(int(duration / 30))],
             "stats": [5.0 * i for i in range(1, int(duration / 5) + 1)]}
    return rows, times, duration


def test_a_steady_daemon_passes():
    rows, times, duration = series(rss=lambda t: 150 + 30 * min(t, 120) / 120 + (t % 7) * 0.3)
    result = soak.analyse(rows, times, duration, LIMITS)
    assert result["passed"], result["failures"]
    assert result["rss_start_mb"] < 160 and abs(result["rss_slope_mb_per_hour"]) < 5


def test_a_slow_leak_after_warm_up_fails():
    # 30 MB/hour: 5 MB over the last 10 minutes
    rows, times, duration = series(rss=lambda t: 170 + 30 * t / 3600)
    result = soak.analyse(rows, times, duration, LIMITS)
    assert any("RSS grows" in f for f in result["failures"]), result
    assert 25 < result["rss_slope_mb_per_hour"] < 35


def test_one_step_of_allocator_noise_is_not_a_leak():
    rows, times, duration = series(rss=lambda t: 180 + (2.5 if t > 900 else 0))
    assert soak.analyse(rows, times, duration, LIMITS)["passed"]


def test_rss_limit_fd_and_thread_growth_fail():
    rows, times, duration = series(rss=lambda t: 230.0, fds=lambda t: 14 + int(t // 120), threads=lambda t: 12 + (5 if t > 900 else 0))
    failures = " | ".join(soak.analyse(rows, times, duration, LIMITS)["failures"])
    assert "RSS reached 230.0 MB" in failures and "fds grew" in failures and "threads grew" in failures


def test_stalls_fail():
    rows, times, duration = series()
    times["sound"] = [t for t in times["sound"] if not 300 < t < 500]  # 280 s -> 520 s without a sound event
    times["stats"] = []
    for row in rows:
        if row["t"] > 600:
            row["frames"] = 15000  # pose inference wedged
    failures = " | ".join(soak.analyse(rows, times, duration, LIMITS)["failures"])
    assert "sound stalled: no message for 240 s" in failures
    assert "no stats message" in failures and "frames analysed stalled" in failures
    assert "reps" not in failures and "audio" not in failures


@pytest.mark.timeout(420)
@pytest.mark.skipif(not (SHARED / "videos").is_dir() or not (SHARED / "room-sounds-dev").is_dir(),
                    reason=f"shared data not found under {SHARED}")
@pytest.mark.skipif(shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
                    reason="mosquitto is not installed (apt install mosquitto)")
def test_three_minute_soak_of_the_real_daemon(tmp_path):
    # memory targets are measured by the full soak (docs/benchmarks.md), not asserted here:
    # the RSS limit is only a guard against gross regressions on a shared CI machine
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--minutes", "3", "--interval", "2", "--out", str(tmp_path),
         "--max-rss-mb", "400"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the soak stops its daemon and broker (SIGKILL would orphan them)
        stdout, stderr = proc.communicate(timeout=60)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["passed"] and not summary["failures"]
    assert summary["samples"] >= 80  # one every 2 s for 3 minutes
    assert summary["reps_messages"] > 50 and summary["sound_messages"] >= 3 and summary["stats_messages"] >= 25
    assert summary["frames"] > 1000 and summary["audio_chunks"] > 1000
    rows = (tmp_path / "samples.csv").read_text().splitlines()
    assert rows[0].startswith("t,rss_mb,fds,threads,cpu_percent") and len(rows) == summary["samples"] + 1
    assert (tmp_path / "soak.png").stat().st_size > 1000
    assert "soak: PASSED" in result.stdout
