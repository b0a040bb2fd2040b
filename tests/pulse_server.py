"""Waiting for a private PulseAudio server (the `pulse` fixture and the fault tests restart one)."""

from __future__ import annotations

import subprocess
import time

import pytest


def wait_for_pulse(env: dict[str, str], server: subprocess.Popen | None = None, what: str = "pulseaudio") -> None:
    """Wait until ``pactl info`` answers (up to 10 s), then make the null sink's monitor the default source."""
    for _ in range(100):
        if server is not None and server.poll() is not None:
            err = server.stderr.read().decode(errors="replace").strip().splitlines()[-1:] if server.stderr else []
            pytest.fail(f"{what} exited at start: {err}")
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"{what} did not answer within 10 s")
    subprocess.run(["pactl", "set-default-source", "cadence_null.monitor"], env=env, check=True)
