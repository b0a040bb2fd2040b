"""Fuzz tests: hypothesis drives the loaders and handlers with bad input."""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fuzz_helpers import SCALE, TALLY  # noqa: E402


HEADROOM = 4 << 30  # bytes of address space a fuzz test may add to what the process already has


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(autouse=True)
def bounded_address_space():
    """A reader that allocates what a forged header declares fails here with a MemoryError
    (an unclear error: the test fails and names the input) instead of growing until the
    kernel kills the whole run (a CI run once ended so, rc 137, 24 GB resident)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = _address_space()
    if not used:
        yield
        return
    limit = used + HEADROOM
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TALLY:
        return
    terminalreporter.section(f"fuzz inputs tried (CADENCE_FUZZ_SCALE={SCALE:g})")
    for target in sorted(TALLY):
        counts = TALLY[target]
        detail = ", ".join(f"{k} {v}" for k, v in counts.most_common())
        terminalreporter.write_line(f"{target}: {sum(counts.values())} inputs ({detail})")
    report = os.environ.get("CADENCE_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({t: dict(c) for t, c in TALLY.items()}, indent=2, sort_keys=True) + "\n")
