"""Where Cadence keeps its state (models, checkpoints, feature cache, data).

One rule for every command and the daemon, so a model trained over SSH lands
where the running daemon looks for it.
"""

from __future__ import annotations

import os
from pathlib import Path

# under the state directory: the labelled sound clips `cadence record` (and the daemon's kept
# background) write and `cadence retrain sound` trains on
SOUND_DATA = "training-data"


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=``), else
    ``/var/lib/cadence`` if it exists and is writable, else ``./state``."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    system = Path("/var/lib/cadence")
    if system.is_dir() and os.access(system, os.W_OK):
        return system
    return Path.cwd() / "state"
