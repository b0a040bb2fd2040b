"""Fixtures for the fault-injection tests.

They reuse the daemon tests' helpers (a real mosquitto, the MQTT recorder,
``start_daemon``/``stop``) and the video tests' MJPEG server, and add one real
sound model trained once per session with ``cadence train sound`` (the real
feature print, so the daemon accepts it).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for folder in ("daemon", "video"):
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

REPO = TESTS.parent
LABELS = ("crying_baby", "vacuum_cleaner", "background")


def cadence_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def link_subset(dev_data: Path, dest: Path, per_label: int, labels=LABELS, skip: int = 1) -> Path:
    """``dest/<label>/`` with symlinks to ``per_label`` dev clips per label (the first ``skip`` left out)."""
    for label in labels:
        (dest / label).mkdir(parents=True, exist_ok=True)
        for f in sorted((dev_data / label).glob("*.flac"))[skip : skip + per_label]:
            (dest / label / f.name).symlink_to(f)
    return dest


def train_cmd(data: Path, out: Path, state: Path, *extra: str) -> list[str]:
    """``cadence train sound`` with a small network (seconds, not minutes, on 2 cores)."""
    return [
        sys.executable, "-m", "device", "train", "sound", str(data), "--out", str(out), "--state-dir", str(state),
        "--hidden-units", "16", "--max-epochs", "12", "--checkpoint-every", "1", "--patience", "100",
        "--chunk-size", "8", *extra,
    ]


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
