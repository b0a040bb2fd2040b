"""Fixtures for the fault-injection tests.

They reuse the daemon tests' helpers (a real mosquitto, the MQTT recorder,
``start_daemon``/``stop``) and the video tests' MJPEG server, and add one real
sound model trained once per session with ``cadence train sound`` (the real
feature print, so the daemon accepts it).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
for folder in ("daemon", "video", "faults"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# the daemon tests' fixtures (a real mosquitto, MQTT recorders), not a copy of them
_daemon_fixtures = _load("faults_daemon_fixtures", TESTS / "daemon" / "conftest.py")
mosquitto = _daemon_fixtures.mosquitto
recorder_factory = _daemon_fixtures.recorder_factory

from fault_helpers import cadence_env, link_subset, train_cmd


@pytest.fixture(scope="session")
def trained_model(dev_data, tmp_path_factory) -> dict[str, Path]:
    """A real sound model (and its data set and feature cache), trained once."""
    root = tmp_path_factory.mktemp("sound-model")
    data = link_subset(dev_data, root / "data", 5)
    state = root / "state"
    out = state / "models" / "sound.model"
    done = subprocess.run(train_cmd(data, out, state, "--quiet"), cwd=REPO, env=cadence_env(),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"data": data, "state": state, "model": out}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from fault_helpers import REPORTS

    if REPORTS:
        terminalreporter.section("fault injection counts")
        for line in REPORTS:
            terminalreporter.write_line(line)
