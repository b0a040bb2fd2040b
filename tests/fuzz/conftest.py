"""Fuzz tests: hypothesis drives the loaders and handlers with bad input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fuzz_helpers import SCALE, TALLY  # noqa: E402


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
