"""The commands the daemon accepts on ``cmd/<name>``, validated before anything acts.

A payload is at most 4096 bytes of UTF-8 JSON (an object), or empty; any
problem is one :class:`CommandError` line naming the key, which the publisher
answers on the ``error`` topic (the command is not run).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

COMMANDS = ("reset_count", "reload")


class ResetCountCommand(BaseModel):
    """``cmd/reset_count``: empty payload or ``{}``; an optional ``request_id`` appears in the log."""

    model_config = ConfigDict(extra="forbid")
    request_id: str | None = None


class ReloadCommand(BaseModel):
    """``cmd/reload``: ``{"what": "all"|"config"|"models"}`` (empty means all)."""

    model_config = ConfigDict(extra="forbid")
    what: Literal["all", "config", "models"] = "all"
    request_id: str | None = None


COMMAND_MODELS: dict[str, type[BaseModel]] = {"reset_count": ResetCountCommand, "reload": ReloadCommand}


class CommandError(ValueError):
    """A command payload that does not validate (message is one line)."""


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
        data: Any = {}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"cmd/{name}: payload is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict):
        raise CommandError(f"cmd/{name}: payload must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"]) or "payload"
        key = key if key.isprintable() else repr(key)  # the message stays one line
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise CommandError(f"cmd/{name}: {key}: {msg}") from None
