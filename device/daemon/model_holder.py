"""An active model, hot-swapped when its file changes (the sound model, the exercise model).

``cadence train``/``cadence retrain`` (or a copy) replaces the model file while
the daemon runs. The holder notices the new file, waits one check for a copy in
progress to settle, loads it in a worker thread and swaps it in — or, if loading
fails, keeps the model it had, so a bad file never silences a working device.
A model that ships with Cadence (the exercise model) is the *fallback*: active
while the owner's file does not exist, and again if it is removed.
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
    attribute or raises; a failed load keeps the previous model. ``kind`` names
    the model in messages ("sound model …"). ``fallback()`` (in a worker thread)
    gives the shipped model's file, checked, for when ``path`` does not exist;
    ``hint`` tells the owner how to make the file when there is no fallback
    (``{path}`` in it is the file).
    ``info`` describes the active model (published as retained state)."""

    def __init__(self, path: Path, loader: Callable[[Path], Any] | None, *, kind: str = "sound",
                 fallback: Callable[[], Path] | None = None, hint: str = "") -> None:
        self.path = path
        self.loader = loader
        self.kind = kind
        self.fallback = fallback
        self.hint = hint
        self.current: Any = None
        self.info: dict[str, Any] = {"name": "none", "path": str(path), "status": "no model"}
        self._seen: Signature | None = None  # signature of the owner's file last tried
        self._pending: Signature | None = None
        self._fallback_tried = False  # the shipped model was loaded (or failed) since the owner's file went
        self.generation = 0

    @property
    def labels(self) -> list[str]:
        current = self.current
        return list(getattr(current, "taught_labels", None) or getattr(current, "labels", []) or [])

    @property
    def name(self) -> str | None:
        return self.info.get("name")

    @property
    def shipped(self) -> bool:
        """True while the shipped fallback is the active model."""
        return bool(self.info.get("shipped"))

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
        """Load the file if it changed (and settled), or the fallback if the file is
        gone; returns "loaded", "failed" or None (nothing to do)."""
        sig = self.signature()
        if sig is None:
            self._seen = self._pending = None  # the same file put back is loaded again
            if self.fallback is not None and self.loader is not None:
                if self._fallback_tried and not force:
                    return None
                self._fallback_tried = True
                return await self._load(None)
            if self.current is None:
                if self.info.get("status") != "no model file":  # say it once, not every check
                    log.info("no %s model at %s yet%s; it is picked up without a restart", self.kind, self.path,
                             f": {self.hint.format(path=self.path)}" if self.hint else "")
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
        outcome = await self._load(self.path)
        if outcome == "loaded":
            self._fallback_tried = False  # should the owner's file go, the shipped model comes back
        elif self.current is None and self.fallback is not None:
            # a broken file at start: the shipped model stands in (no model at all would silence the device)
            error = self.info.get("last_error")
            if await self._load(None, reason=f"{self.path} cannot be loaded") == "loaded":
                self.info = {**self.info, "last_error": error}
        return outcome

    async def _load(self, path: Path | None, reason: str = "") -> str:
        """Load ``path`` (None: the shipped fallback) and swap it in, or keep the active model."""
        assert self.loader is not None
        loader = self.loader
        fallback = self.fallback

        def load() -> tuple[Path, Any, str]:
            file = path if path is not None else fallback()  # type: ignore[misc]
            return file, loader(file), sha256_file(file)

        try:
            file, model, digest = await in_daemon_thread(load)  # a stop never waits for a load
        except Exception as exc:  # keep the old model
            what = str(self.path) if path is not None else f"(shipped, as {self.path} does not exist)"
            message = f"{self.kind} model {what} not loaded, keeping {self.info.get('name', 'none')}: {one_line(exc)}"
            log.error("%s", message)
            self.info = {**self.info, "last_error": message, "status": "active" if self.current is not None else "failed"}
            return "failed"
        self.current = model
        self.generation += 1
        self.info = _describe(model, file, digest, self.labels, shipped=path is None)
        if path is None:
            log.info("%s model %s (shipped) is active: %s", self.kind, self.info["name"],
                     reason or f"{self.path} does not exist")
        else:
            log.info("%s model %s loaded (%d labels)", self.kind, self.info["name"], len(self.labels))
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
                log.error("%s model watcher: %s", self.kind, one_line(exc))


def _describe(model: Any, path: Path, digest: str, labels: list[str], *, shipped: bool) -> dict[str, Any]:
    """What the retained model state says of a freshly loaded model (name, checksum, labels, accuracy)."""
    info: dict[str, Any] = {
        "name": f"{path.name}@{digest[:12]}",
        "path": str(path),
        "sha256": digest,
        "labels": labels,
        "shipped": shipped,
        "loaded_at": round(time.time(), 3),
        "status": "active",
        "last_error": None,
    }
    meta = getattr(model, "metadata", None)
    if not isinstance(meta, dict):  # a classifier wrapping a device.learn model (the exercise classifier)
        meta = getattr(getattr(model, "model", None), "metadata", None)
    meta = meta if isinstance(meta, dict) else {}
    if meta.get("created"):
        info["created"] = meta["created"]
    metrics = meta.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    accuracy = {k: v.get("accuracy") for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v}
    if accuracy:
        info["accuracy"] = accuracy
    return info
