"""Small data sets cut from the dev set for the learn tests (a module, so test
files import it by a unique name rather than from a `conftest`)."""

from __future__ import annotations

import shutil
from pathlib import Path


def make_subset(dev_data: Path, dest: Path, labels: dict[str, int]) -> Path:
    """Copy the first N clips of some labels into ``dest/<label>/`` (a small data set)."""
    for label, n in labels.items():
        (dest / label).mkdir(parents=True, exist_ok=True)
        for f in sorted((dev_data / label).glob("*.flac"))[:n]:
            shutil.copy2(f, dest / label / f.name)
    return dest
