"""`cadence run` as a real process: availability, Last Will on kill -9, clean SIGTERM,
the embedded broker, sd_notify READY."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon_helpers import MOSQUITTO, REPO, free_port, wait_port


def start_daemon(config: Path, **env) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "device", "run", "--config", str(config)],
        cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def write_config(tmp_path: Path, mqtt: str) -> Path:
    path = tmp_path / "cadence.toml"
    path.write_text(
        f'[device]\nid = "proc"\n[camera]\nenabled = false\n[microphone]\nenabled = false\n'
        f'[storage]\nstate_dir = "{tmp_path}"\n[mqtt]\nkeepalive = 5\nreconnect_max = 2\n{mqtt}'
    )
    return path


def stop(proc: subprocess.Popen[bytes]) -> str:
    """Kill if still running; the process's whole output (also when called again)."""
    if proc.poll() is None:
        proc.kill()
    if not hasattr(proc, "cadence_output"):
        out, _ = proc.communicate(timeout=10)
        proc.cadence_output = out.decode(errors="replace")  # type: ignore[attr-defined]
    return proc.cadence_output  # type: ignore[attr-defined]


def test_last_will_on_kill_and_offline_on_sigterm(mosquitto, recorder_factory, tmp_path):
    config = write_config(tmp_path, f'host = "127.0.0.1"\nport = {mosquitto.port}\n')
    rec = recorder_factory(mosquitto.port, ["cadence/proc/#"])
    proc = start_daemon(config)
    try:
        rec.wait_for(lambda: rec.on("cadence/proc/availability")[-1:] == [b"online"], timeout=20, what="online")
        proc.send_signal(signal.SIGKILL)  # no chance to say goodbye: the broker sends the Last Will
        rec.wait_for(lambda: rec.on("cadence/proc/availability")[-1:] == [b"offline"], timeout=10, what="LWT")
    finally:
        stop(proc)
    # the Last Will is retained: a newcomer sees the device as offline
    late = recorder_factory(mosquitto.port, ["cadence/proc/availability"])
    late.wait_for(lambda: late.on("cadence/proc/availability") == [b"offline"], what="retained offline")

    proc = start_daemon(config)
    try:
        rec.wait_for(lambda: rec.on("cadence/proc/availability")[-1:] == [b"online"], timeout=20, what="online again")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        rec.wait_for(lambda: rec.on("cadence/proc/availability")[-1:] == [b"offline"], what="clean offline")
    finally:
        output = stop(proc)
    assert "cadence stopped" in output


def test_bad_config_exits_with_one_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[mqtt]\nqos = 3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "device", "run", "--config", str(config)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "mqtt.qos" in proc.stderr


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")
def test_embedded_broker_and_sd_notify(recorder_factory, tmp_path):
    port = free_port()
    config = write_config(tmp_path, f"port = {port}\n")
    sock_path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(sock_path)
    server.settimeout(20)
    proc = start_daemon(config, NOTIFY_SOCKET=sock_path)
    try:
        message = server.recv(4096).decode()
        assert message.startswith("READY=1")
        wait_port(port)
        rec = recorder_factory(port, ["cadence/proc/#"])
        rec.wait_for(lambda: rec.on("cadence/proc/availability") == [b"online"], what="online via embedded broker")
        assert rec.json("cadence/proc/state/model")[-1]["status"] in ("no model", "no model file")
        # the embedded broker dies: the daemon starts it again and reconnects
        import psutil

        children = [c for c in psutil.Process(proc.pid).children() if "mosquitto" in c.name()]
        assert len(children) == 1
        n_before = len(rec.on("cadence/proc/availability"))
        children[0].kill()
        rec.wait_for(lambda: not rec.connected.is_set(), what="broker gone")
        rec.wait_for(lambda: rec.connected.is_set(), timeout=20, what="broker back")
        # the new broker starts empty: a fresh retained "online" can only come from the daemon reconnecting
        rec.wait_for(lambda: len(rec.on("cadence/proc/availability")) > n_before and
                     rec.on("cadence/proc/availability")[-1] == b"online", timeout=20, what="daemon online again")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        output = stop(proc)
        server.close()
    # the embedded broker went away with the daemon
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"embedded broker still listening after the daemon stopped:\n{output}")


def test_sighup_reload_and_a_missing_microphone(mosquitto, recorder_factory, tmp_path):
    """A microphone that is not there: the audio pipeline retries with backoff, the
    daemon stays up; SIGHUP with a broken config keeps the running one."""
    config = tmp_path / "cadence.toml"
    good = (f'[device]\nid = "hup"\n[camera]\nenabled = false\n[microphone]\ndevice = "NoSuchMicrophone"\n'
            f'[storage]\nstate_dir = "{tmp_path}"\n[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n')
    config.write_text(good)
    rec = recorder_factory(mosquitto.port, ["cadence/hup/#"])
    proc = start_daemon(config)
    try:
        states = rec.wait_for(lambda: [s for s in rec.json("cadence/hup/state/pipelines")
                                       if s.get("audio", {}).get("restarts", 0) >= 2], timeout=30, what="audio retries")
        error = states[-1]["audio"]["last_error"]
        assert ("NoSuchMicrophone" in error or "audio input" in error) and "\n" not in error
        config.write_text(good + "[camera]\nwindow = 3\n")  # duplicate table: invalid TOML
        proc.send_signal(signal.SIGHUP)
        err = rec.wait_for(lambda: rec.json("cadence/hup/error"), what="reload error")
        assert "keeping the running configuration" in err[-1]["error"]
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        stop(proc)


def test_retrain_without_data_is_one_line(tmp_path):
    config = write_config(tmp_path, "")
    result = subprocess.run(
        [sys.executable, "-m", "device", "retrain", "sound", "--foreground", "--config", str(config)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no training data" in result.stderr


def test_run_says_what_it_does():
    result = subprocess.run([sys.executable, "-m", "device", "run", "--help"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert result.returncode == 0
    description = result.stdout.split("\n\n")[1]  # between the usage line and the options
    assert "counts repetitions" in description and "MQTT" in description
