"""What the soak found about memory: scipy.signal (which imports scipy.stats and
more, ~50 MB of RSS) stays out of the daemon; the numpy resampler that replaces
its resample_poly gives the same samples; `cadence run` caps glibc's malloc
arenas (RSS crept each time the worker pool grew a thread)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly as scipy_resample_poly

from device.audio.resampling import resample_poly

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("up,down", [(160, 441), (1, 3), (2, 3), (1, 2), (3, 1), (441, 160), (147, 160), (4, 4)])
@pytest.mark.parametrize("n", [0, 1, 7, 1000, 4801])
def test_resample_poly_equals_scipy(up, down, n):
    x = np.random.default_rng(n + up).normal(size=n)
    ours, theirs = resample_poly(x, up, down), scipy_resample_poly(x, up, down)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_the_daemon_does_not_import_scipy_signal():
    code = (
        "import sys\n"
        "import device.daemon.supervisor, device.daemon.pipelines, device.audio.sources, device.audio.featureprint\n"
        "from device.daemon.pipelines import load_sound_model\n"
        "heavy = sorted(m for m in ('scipy.signal', 'scipy.stats', 'scipy.optimize') if m in sys.modules)\n"
        "print(' '.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported by the daemon: {result.stdout.strip()}"


def test_cadence_run_caps_malloc_arenas_unless_told_otherwise():
    code = "from device.daemon.memory import limit_malloc_arenas; print(limit_malloc_arenas())"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    capped = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    kept = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, "MALLOC_ARENA_MAX": "4"},
                          capture_output=True, text=True, timeout=60)
    assert capped.stdout.strip() == ("True" if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc" else "False")
    assert kept.stdout.strip() == "False"  # the operator's own setting wins
