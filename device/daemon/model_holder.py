"""The active sound model, hot-swapped when its file changes.

``cadence train`` (or a copy) replaces the model file while the daemon runs.
The holder notices the new file, waits one check for a copy in progress to
settle, loads it in a worker thread and swaps it in — or, if loading fails,
keeps the model it had, so a bad file never silences a working device.
Pipelines read ``holder.current`` per window: a swap takes effect at the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..components import sha256_file
from .errors import one_line
from .threads import in_daemon_thread

log = logging.getLogger("cadence.daemon")

Signature = tuple[int, int, int]  # (mtime_ns, size, inode) of the file last seen


class ModelHolder:
    """``loader(path)`` (run in a worker thread) returns a model with a ``labels``
    attribute or raises; a failed load keeps the previous model. ``info``
    describes the active model (published as ``state/model``)."""

    def __init__(self, path: Path, loader: Callable[[Path], Any] | None) -> None:
        self.path = path
        self.loader = loader
        self.current: Any = None
        self.info: dict[str, Any] = {"name": "none", "path": str(path), "status": "no model"}
        self._seen: Signature | None = None  # signature of the file last tried
        self._pending: Signature | None = None
        self.generation = 0

    @property
    def labels(self) -> list[str]:
        return list(getattr(self.current, "labels", []) or [])

    @property
    def name(self) -> str | None:
        return self.info.get("name")

    @property
    def failed(self) -> bool:
        """True when the last load failed (``info["last_error"]`` says why)."""
        return self.info.get("status") == "failed" or bool(self.info.get("last_error"))

    def signature(self) -> Signature | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def check(self, *, force: bool = False) -> str | None:
        """Load the file if it changed (and settled); returns "loaded", "failed" or None."""
        sig = self.signature()
        if sig is None:
            if self.current is None:
                if self.info.get("status") != "no model file":  # say it once, not every check
                    log.info("no sound model at %s yet: no sound events until one is trained "
                             "(cadence train sound DATA --out %s); it is picked up without a restart",
                             self.path, self.path)
                self.info = {"name": "none", "path": str(self.path), "status": "no model file"}
            return None
        if not force:
            if sig == self._seen:
                return None
            if sig != self._pending:  # wait one check for a copy in progress to settle
                self._pending = sig
                return None
        self._pending = None
        self._seen = sig
        if self.loader is None:
            return None
        try:
            model = await in_daemon_thread(self.loader, self.path)  # a stop never waits for a load
            digest = await in_daemon_thread(sha256_file, self.path)
        except Exception as exc:  # keep the old model
            message = f"sound model {self.path} not loaded, keeping {self.info.get('name', 'none')}: {one_line(exc)}"
            log.error("%s", message)
            self.info = {**self.info, "last_error": message, "status": "active" if self.current is not None else "failed"}
            return "failed"
        self.current = model
        self.generation += 1
        self.info = _describe(model, self.path, digest, self.labels)
        log.info("sound model %s loaded (%d labels)", self.info["name"], len(self.labels))
        return "loaded"

    async def watch(self, interval: Callable[[], float], on_change: Callable[[], None]) -> None:
        """Check every ``interval()`` seconds (read each time: a reload may change it);
        call ``on_change`` after a load or a failed one. Never ends on an error."""
        while True:
            await asyncio.sleep(interval())
            try:
                if await self.check() is not None:
                    on_change()
            except Exception as exc:  # the watcher must never die
                log.error("model watcher: %s", one_line(exc))


def _describe(model: Any, path: Path, digest: str, labels: list[str]) -> dict[str, Any]:
    """What ``state/model`` says of a freshly loaded model (name, checksum, labels, accuracy)."""
    info: dict[str, Any] = {
        "name": f"{path.name}@{digest[:12]}",
        "path": str(path),
        "sha256": digest,
        "labels": labels,
        "loaded_at": round(time.time(), 3),
        "status": "active",
        "last_error": None,
    }
    meta = getattr(model, "metadata", None)
    meta = meta if isinstance(meta, dict) else {}
    if meta.get("created"):
        info["created"] = meta["created"]
    metrics = meta.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    accuracy = {k: v.get("accuracy") for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v}
    if accuracy:
        info["accuracy"] = accuracy
    return info
