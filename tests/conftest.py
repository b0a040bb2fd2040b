"""Fixtures every test folder can use: the shared data folder and a private
PulseAudio server (a real sound server with a null sink as the microphone)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulse_server import wait_for_pulse

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository with a copy of shared/ beside it
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (expected shared/data beside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dev_data(shared_data: Path) -> Path:
    """The room-sounds dev set: ``<label>/*.flac`` as a device owner lays it out."""
    path = shared_data / "room-sounds-dev"
    if not path.is_dir():
        pytest.skip(f"dev data not found at {path}")
    return path


@pytest.fixture()
def pulse(tmp_path: Path) -> Iterator[tuple[dict[str, str], subprocess.Popen]]:
    """A private PulseAudio server whose default source is a null sink's monitor.

    Yields ``(env, server)``: ``env`` points clients (paplay, PortAudio's
    ``pulse`` device) at this server; play into sink ``cadence_null``.
    """
    if not shutil.which("pulseaudio") or not shutil.which("paplay") or not shutil.which("pactl"):
        pytest.skip("pulseaudio / pulseaudio-utils not installed (apt: pulseaudio pulseaudio-utils libasound2-plugins)")
    run_dir = tmp_path / "pulse"
    run_dir.mkdir()
    socket = run_dir / "native"
    env = dict(os.environ, PULSE_RUNTIME_PATH=str(run_dir), HOME=str(tmp_path))
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--log-target=stderr",
         "-L", f"module-native-protocol-unix socket={socket} auth-anonymous=1",
         "-L", "module-null-sink sink_name=cadence_null rate=48000"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    env["PULSE_SERVER"] = f"unix:{socket}"
    try:
        wait_for_pulse(env, server)
        yield env, server
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
