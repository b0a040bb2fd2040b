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
from collections.abc import Callable, Mapping
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
            raise SettingsError(f"{origin}: {describe(exc, cls)}") from None


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


def describe(
    exc: ValidationError, model: Any = None, key: Callable[[tuple[Any, ...]], str] | None = None
) -> str:
    """All of a validation error's problems on one line, each naming its key, in the
    project's words (:func:`problem`) with the value given (passwords are never echoed).

    ``model``: the settings model validated (its fields' ranges are named in full);
    ``key``: how a location is named (default ``section.key``; the command line names its flags)."""
    name = key or _key
    parts = []
    for error in exc.errors(include_url=False):
        where = name(error["loc"])
        msg = problem(error, model)
        field = _FIELD_FIRST.match(msg)
        # cross-field checks already name their keys, in full or within their model
        if where and msg.startswith(where + "."):
            parts.append(msg)
        elif field and error["type"] == "value_error":
            parts.append(f"{name((*error['loc'], field.group()[:-2]))}: {msg[field.end():]}")
        else:
            value = error.get("input")
            secret = any("password" in str(part) for part in error["loc"])
            shown = f" (got {_shown(value)})" if error["type"] != "extra_forbidden" and not isinstance(value, dict) and not secret else ""
            parts.append(f"{where or '(top level)'}: {msg}{shown}")
    return one_line("; ".join(dict.fromkeys(parts)))


def _shown(value: Any) -> str:
    """A value as the file would write it: true/false for switches, otherwise its repr."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


# pydantic's error types, in the project's words (the value given is added by describe)
_WORDS = {
    "missing": "required",
    "extra_forbidden": "unknown key (check its spelling and section)",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number (not nan or inf)",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text (in quotes)",
    "string_too_short": "must have at least {min_length} character(s)",
    "string_too_long": "must have at most {max_length} character(s)",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
}
_BOUNDS = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}


def problem(error: Mapping[str, Any], model: Any = None) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) in the project's words,
    without the key and the value: "must be at least 60", "must be from 16 to 4096",
    "must be one of 0, 1 or 2"; a message of our own validators as it is written."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _BOUNDS:
        bounds = _bounds_at(model, tuple(error["loc"])) or {_BOUNDS[kind]: ctx.get(_BOUNDS[kind])}
        return "must be " + _range(bounds)
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    words = _WORDS.get(kind)
    if words is not None:
        try:
            return words.format(**ctx)
        except (KeyError, IndexError):
            pass
    return str(error["msg"]).removeprefix("Value error, ")


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _range(bounds: Mapping[str, Any]) -> str:
    """{"ge": 60, "le": 86400} → "from 60 to 86400"; {"gt": 0} → "more than 0"."""
    low = ("ge", bounds["ge"]) if bounds.get("ge") is not None else ("gt", bounds["gt"]) if bounds.get("gt") is not None else None
    high = ("le", bounds["le"]) if bounds.get("le") is not None else ("lt", bounds["lt"]) if bounds.get("lt") is not None else None
    if low and high and low[0] == "ge" and high[0] == "le":
        return f"from {_number(low[1])} to {_number(high[1])}"
    said = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
    return " and ".join(f"{said[bound[0]]} {_number(bound[1])}" for bound in (low, high) if bound)


def _bounds_at(model: Any, loc: tuple[Any, ...]) -> dict[str, Any]:
    """The numeric bounds (ge/gt/le/lt) declared for the value at ``loc`` in ``model`` ({} if unknown)."""
    annotation, metadata = model, []
    for part in loc:
        annotation, more = _unwrap(annotation)
        metadata = more
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return {}
            annotation, metadata = field.annotation, list(field.metadata)
            continue
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is tuple and isinstance(part, int) and args:
            annotation = args[0] if args[-1] is Ellipsis else args[part] if part < len(args) else None
        elif origin in (list, set, frozenset) and args:
            annotation = args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return {}
        metadata = []
    annotation, more = _unwrap(annotation)
    bounds = {}
    for item in [*metadata, *more]:
        for op in ("ge", "gt", "le", "lt"):
            if getattr(item, op, None) is not None:
                bounds[op] = getattr(item, op)
    return bounds


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """``Annotated[X, ...] | None`` → (X, the constraints in the ``...``)."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            inner, *extra = typing.get_args(annotation)
            for item in extra:
                metadata.extend(getattr(item, "metadata", None) or [item])
            annotation = inner
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, metadata
            annotation = args[0]
        else:
            return annotation, metadata


def default_of(function: Any, name: str) -> Any:
    """The default of ``function``'s parameter ``name`` — so a settings model
    can take a stage's own default instead of restating it."""
    import inspect

    return inspect.signature(function).parameters[name].default
