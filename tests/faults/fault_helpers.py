"""Helpers for the fault-injection tests (a uniquely named module; see conftest.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
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
        "--classifier", "network", "--hidden-units", "16", "--max-epochs", "12", "--checkpoint-every", "1", "--patience", "100",
        "--chunk-size", "8", *extra,
    ]


REPORTS: list[str] = []


def report(line: str) -> None:
    """Print a test's fault counts, and keep them for the end-of-run summary (shown even with ``-q``)."""
    print("\n" + line)
    REPORTS.append(line)
