"""Settings models: one pydantic model per pipeline, the one place for its defaults.

A pipeline factory takes its settings model; the daemon's configuration
sections extend the same models (adding where the input comes from), and the
command line derives its options from them (``device.cli.options``), so a
default, a range or a description is written once. Every validation problem
becomes one line that names the key.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .errors import CadenceError


# a model-level check's message that starts with the field it is about: "stride: must not exceed window"
_FIELD_FIRST = re.compile(r"^[a-z_][a-z0-9_]*: ")


class SettingsError(CadenceError, ValueError):
    """Settings that fail validation (one line naming the key)."""


class Settings(BaseModel):
    """Base of every settings model: unknown keys are errors, assignments are checked."""

    # NaN and infinity are never a setting (and NaN would slip past every range check)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _switches_are_true_or_false(cls, data: Any) -> Any:
        """A switch is ``true`` or ``false``: "yes", "off" or 1 would be taken by pydantic's lax
        parsing (``enabled = "no"`` a surprise either way), so they are refused, naming the key."""
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if field.annotation is bool and value is not None and not isinstance(value, bool):
                    raise ValueError(f"{name}: must be true or false (got {value!r})")
                if isinstance(value, bool) and _is_number(field.annotation):
                    # pydantic takes true as 1: `keep_background_max = true` would keep one clip
                    raise ValueError(f"{name}: must be a number (got {str(value).lower()})")
        return data

    @classmethod
    def parse(cls, values: dict[str, Any], *, origin: str = "settings") -> Any:
        """Validate ``values``; raises :class:`SettingsError` (one line)."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(f"{origin}: {describe(exc)}") from None


def _is_number(annotation: Any) -> bool:
    """``int``/``float``, or either of them or ``None`` (an optional number)."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return False
    args = set(typing.get_args(annotation)) - {type(None)}
    return bool(args) and args <= {int, float}


def _key(loc: tuple[Any, ...]) -> str:
    # a key that is empty or holds a line break or control character is shown quoted
    return ".".join(
        part if isinstance(part, str) and part.strip() and part.isprintable() else str(part) if isinstance(part, int) else repr(part)
        for part in loc
        if part not in ("function-after", "function-before")
    )


def one_line(text: str) -> str:
    """Line breaks in user-supplied values (a key, a file name) are shown escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def describe(exc: ValidationError) -> str:
    """All of a validation error's problems on one line, each naming its key
    (passwords are never echoed)."""
    parts = []
    for error in exc.errors(include_url=False):
        key = _key(error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        elif error["type"] == "missing":
            msg = "required"
        field = _FIELD_FIRST.match(msg)
        # cross-field checks already name their keys, in full or within their model
        if key and msg.startswith(key + "."):
            parts.append(msg)
        elif field and error["type"] == "value_error":
            parts.append(f"{key}.{msg}" if key else msg)
        else:
            value = error.get("input")
            secret = any("password" in str(part) for part in error["loc"])
            shown = f" (got {value!r})" if error["type"] != "extra_forbidden" and not isinstance(value, dict) and not secret else ""
            parts.append(f"{key or '(top level)'}: {msg}{shown}")
    return one_line("; ".join(dict.fromkeys(parts)))


def default_of(function: Any, name: str) -> Any:
    """The default of ``function``'s parameter ``name`` — so a settings model
    can take a stage's own default instead of restating it."""
    import inspect

    return inspect.signature(function).parameters[name].default
