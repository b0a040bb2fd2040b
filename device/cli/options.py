"""Command-line options derived from a settings model (never restated).

``add_settings_options(parser, PoseSettings)`` adds ``--window``,
``--rest-time``, … with the model's types, choices, descriptions and
defaults; ``settings_from_options(PoseSettings, args)`` builds the model
from what was given (unset options keep the model's defaults), turning a
validation problem into one line that names the option.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from ..components import CadenceError
from ..components.settings import Settings, describe

S = TypeVar("S", bound=Settings)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar(annotation: Any) -> tuple[Any, tuple[Any, ...] | None]:
    """(argparse type, choices) for a field's annotation; (None, None) if it has no single-value form."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar(args[0]) if len(args) == 1 else (None, None)
    if annotation in (int, float, str):
        return annotation, None
    return None, None


def add_settings_options(
    parser: argparse.ArgumentParser,
    model: type[Settings],
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> None:
    """Add one option per scalar field of ``model`` (booleans become on/off flags)."""
    names = list(only) if only is not None else list(model.model_fields)
    for name in names:
        if name in exclude:
            continue
        field = model.model_fields[name]
        default = field.get_default(call_default_factory=True)
        help_text = field.description or name.replace("_", " ")
        if field.annotation is bool:
            parser.add_argument(_flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{help_text} (default: {'on' if default else 'off'})")
            continue
        kind, choices = _scalar(field.annotation)
        if kind is None:
            continue
        shown = "none" if default is None else f"{default:g}" if isinstance(default, float) else default
        said = "(default:" in help_text  # a description that says what its default means
        parser.add_argument(_flag(name), dest=name, type=kind, choices=choices, default=None,
                            metavar=None if choices else name.split("_")[-1].upper(),
                            help=help_text if said else f"{help_text} (default: {shown})")


def settings_from_options(model: type[S], args: argparse.Namespace, **fixed: Any) -> S:
    """The settings the options give (unset ones keep their defaults); ``fixed`` overrides."""
    values = {name: getattr(args, name) for name in model.model_fields if getattr(args, name, None) is not None}
    values.update(fixed)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise CadenceError(describe(exc, model, key=lambda loc: _flag(str(loc[0])) if loc else "options")) from None


def add_state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", help="state directory (default: $STATE_DIRECTORY, /var/lib/cadence or ./state)")


def state_dir(args: argparse.Namespace) -> Path:
    """The state directory the command works in (the option, else the default)."""
    from ..storage import default_state_dir

    return Path(args.state_dir) if getattr(args, "state_dir", None) else default_state_dir()


def command_group(subparsers: Any, groups: dict[str, Any], name: str, help: str, metavar: str) -> Any:
    """The shared group ``cadence NAME KIND …`` (made once, whichever module registers first);
    NAME alone prints the group's help and exits 2."""
    if name in groups:
        return groups[name]
    parser = subparsers.add_parser(name, help=help)
    group = parser.add_subparsers(dest=f"{name}_command", metavar=metavar)
    parser.set_defaults(handler=lambda a: (parser.print_help(), 2)[1])
    groups[name] = group
    return group
