"""``<state_dir>/daemon-state.json``: the last count and model, for the owner and
for a later start (rare writes only: on reset and at shutdown; atomic)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..components import atomic_write_json
from .errors import one_line
from .ledger import CountState
from .publisher import count_payload

log = logging.getLogger("cadence.daemon")

NAME = "daemon-state.json"


def save_state(state_dir: Path, count: CountState, model: Mapping[str, Any]) -> None:
    """Write the record; a failure (full or read-only storage) is logged, never raised."""
    try:
        atomic_write_json(state_dir / NAME, {"count": count_payload(count), "model": dict(model),
                                             "saved_at": round(time.time(), 3)})
    except Exception as exc:
        log.warning("could not write daemon state: %s", one_line(exc))
