"""The commands the daemon accepts on ``cmd/<name>``, validated before anything acts,
and coalesced so a burst costs what one command costs.

A payload is at most 4096 bytes of UTF-8 JSON (an object); any problem is one
:class:`CommandError` line naming the key, which the publisher answers on the
``error`` topic (the command is not run). An empty payload runs nothing
(:class:`EmptyCommand`): it is how a retained command is cleared
(``mosquitto_pub -r -n``), and a broker passes that on to subscribers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..components.settings import problem
from .errors import one_line

log = logging.getLogger("cadence.daemon")

COMMANDS = ("reset_count", "reload", "snapshot")


class ResetCountCommand(BaseModel):
    """``cmd/reset_count``: ``{}``; an optional ``request_id`` comes back in the answer."""

    model_config = ConfigDict(extra="forbid")
    request_id: str | None = None


class ReloadCommand(BaseModel):
    """``cmd/reload``: ``{"what": "all"|"config"|"models"}`` (empty means all)."""

    model_config = ConfigDict(extra="forbid")
    what: Literal["all", "config", "models"] = "all"
    request_id: str | None = None


class SnapshotCommand(BaseModel):
    """``cmd/snapshot``: ``{}``: publish a picture now (when ``[snapshot] enabled``)."""

    model_config = ConfigDict(extra="forbid")
    request_id: str | None = None


COMMAND_MODELS: dict[str, type[BaseModel]] = {"reset_count": ResetCountCommand, "reload": ReloadCommand,
                                              "snapshot": SnapshotCommand}


class CommandError(ValueError):
    """A command payload that does not validate (message is one line)."""


class EmptyCommand(CommandError):
    """An empty payload: a retained command being cleared, never a command."""


class _RepeatedKey(ValueError):
    pass


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose key appears twice is refused (json would keep the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


def parse_command(name: str, payload: bytes) -> BaseModel:
    """Validate a command payload; raises :class:`CommandError` with one line."""
    model = COMMAND_MODELS.get(name)
    if model is None:
        raise CommandError(f"unknown command {name!r} (known: {', '.join(COMMANDS)})")
    if len(payload) > 4096:
        raise CommandError(f"cmd/{name}: payload too large ({len(payload)} bytes, at most 4096)")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError(f"cmd/{name}: payload is not UTF-8 text") from None
    if not text:
        raise EmptyCommand(f"cmd/{name}: empty message ignored (how a retained command is cleared); "
                           "send {} to run the command")
    try:
        data: Any = json.loads(text, object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as exc:
        raise CommandError(f"cmd/{name}: payload is not JSON ({exc.msg} at character {exc.pos})") from None
    except _RepeatedKey as exc:
        raise CommandError(f"cmd/{name}: key {str(exc)!r} is given twice (which one was meant?)") from None
    if not isinstance(data, dict):
        raise CommandError(f"cmd/{name}: payload must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"]) or "payload"
        key = key if key.isprintable() else repr(key)  # the message stays one line
        msg = "unknown key" if first["type"] == "extra_forbidden" else problem(first, model)
        raise CommandError(f"cmd/{name}: {key}: {msg}") from None


Handler = Callable[[list[BaseModel]], Awaitable[None]]


class Coalescer:
    """Runs each command's handler on a batch: what arrives while a handler runs,
    or within ``min_interval`` seconds of its start, waits and is then handled
    once, together. A burst of 1,000 ``reload`` commands is a reload now and one
    per ``min_interval`` while the burst lasts, never 1,000 model loads; every
    command is in exactly one batch (so each gets an answer)."""

    def __init__(self, handlers: dict[str, Handler], *, min_interval: float = 1.0) -> None:
        self.handlers = handlers
        self.min_interval = min_interval
        self._pending: dict[str, list[BaseModel]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started: dict[str, float] = {}  # loop time each command's last batch started
        self.batches = 0

    def submit(self, name: str, command: BaseModel) -> None:
        """Queue ``command`` (from the event loop); its batch runs soon."""
        self._pending.setdefault(name, []).append(command)
        if name not in self._tasks:
            self._tasks[name] = asyncio.ensure_future(self._drain(name))

    async def _drain(self, name: str) -> None:
        try:
            loop = asyncio.get_running_loop()
            while self._pending.get(name):
                # a burst already on its way, and what comes within the interval, join this batch
                await asyncio.sleep(max(0.0, self._started.get(name, float("-inf")) + self.min_interval - loop.time()))
                batch = self._pending.pop(name)
                self.batches += 1
                self._started[name] = loop.time()
                try:
                    await self.handlers[name](batch)
                except Exception as exc:  # a failing command must not stop later ones
                    log.error("command %s failed: %s", name, one_line(exc))
        finally:
            self._tasks.pop(name, None)

    def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
