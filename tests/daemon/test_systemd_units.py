"""The systemd units verify, and the daemon's unit stays within the hardening target."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "systemd").glob("*.service"))
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not available (no systemd here)")


def staged(unit: Path, tmp_path: Path) -> Path:
    """The unit with the venv's `cadence` (absent on a build machine) replaced by /bin/true."""
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/cadence/venv/bin/cadence", "/bin/true"))
    return copy


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_verifies(unit, tmp_path):
    result = subprocess.run([ANALYZE, "verify", str(staged(unit, tmp_path))], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_exposure_at_most_3(unit, tmp_path):
    result = subprocess.run([ANALYZE, "security", "--offline=yes", str(staged(unit, tmp_path))],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    if match is None:
        pytest.skip(f"this systemd-analyze cannot rate unit files offline: {result.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 3.0


def test_daemon_unit_keeps_devices_and_watchdog():
    text = (REPO / "systemd" / "cadence.service").read_text()
    for line in ("Type=notify", "Restart=on-failure", "User=cadence", "SupplementaryGroups=video audio",
                 "StateDirectory=cadence", "ConfigurationDirectory=cadence", "ProtectSystem=strict"):
        assert line in text
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
    assert "PrivateDevices=yes" not in text  # would hide /dev/video*, /dev/snd
    # a damaged model file must not stop the start (the daemon falls back to the shipped model)
    assert re.search(r"^ExecStartPre=\S+ config check --no-models ", text, re.M)
    for device in ("char-video4linux", "char-alsa", "char-dma_heap", "char-media"):
        assert f"DeviceAllow={device} rw" in text


@pytest.mark.parametrize("script", ["install.sh", "uninstall.sh"])
def test_install_scripts_parse(script):
    # they change the system (user, /opt, units), so here only their syntax is checked
    path = REPO / "scripts" / script
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert path.stat().st_mode & 0o111
