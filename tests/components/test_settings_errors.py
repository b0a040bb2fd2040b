"""Settings errors read in the project's words: one line naming the key, the allowed range
(or kind of value) and the value given — never pydantic's "Input should be …"."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import Field

from device.components.settings import Settings, SettingsError


class Example(Settings):
    every: Annotated[float, Field(ge=60, le=86_400)] = 600.0
    least: Annotated[int, Field(ge=1)] = 1
    rate: Annotated[float, Field(gt=0, le=120)] = 30.0
    overlap: Annotated[float, Field(ge=0, lt=1)] = 0.5
    size: tuple[Annotated[int, Field(ge=16, le=4096)], Annotated[int, Field(ge=16, le=4096)]] = (640, 480)
    limits: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}
    name: Annotated[str, Field(min_length=1)] | None = None
    mode: Literal["a", "b"] = "a"
    on: bool = False


@pytest.mark.parametrize(("values", "said"), [
    ({"every": 30}, "example: every: must be from 60 to 86400 (got 30)"),
    ({"least": 0}, "example: least: must be at least 1 (got 0)"),
    ({"rate": 0}, "example: rate: must be more than 0 and at most 120 (got 0)"),
    ({"overlap": 1.0}, "example: overlap: must be at least 0 and less than 1 (got 1.0)"),
    ({"size": [8, 480]}, "example: size.0: must be from 16 to 4096 (got 8)"),
    ({"limits": {"door": 1.5}}, "example: limits.door: must be from 0 to 1 (got 1.5)"),
    ({"least": "many"}, "example: least: must be a whole number (got 'many')"),
    ({"least": 1.5}, "example: least: must be a whole number (got 1.5)"),
    ({"rate": "fast"}, "example: rate: must be a number (got 'fast')"),
    ({"mode": "c"}, "example: mode: must be one of 'a' or 'b' (got 'c')"),
    ({"name": ""}, "example: name: must not be empty (got '')"),
    ({"on": "yes"}, "example: on: must be true or false (got 'yes')"),
])
def test_errors_name_the_key_the_range_and_the_value(values, said):
    with pytest.raises(SettingsError) as info:
        Example.parse(values, origin="example")
    assert str(info.value) == said


def test_command_line_flags_and_mqtt_commands_use_the_same_words():
    import argparse

    from device.cli.options import settings_from_options
    from device.daemon.commands import CommandError, parse_command
    from device.pose.settings import PoseSettings

    with pytest.raises(Exception) as info:
        settings_from_options(PoseSettings, argparse.Namespace(stride=0))
    assert str(info.value) == "--stride: must be from 1 to 1000 (got 0)"
    with pytest.raises(Exception) as info:
        settings_from_options(PoseSettings, argparse.Namespace(window=20, stride=30))
    assert str(info.value).startswith("--stride: must not exceed window")
    with pytest.raises(CommandError, match=r"^cmd/reload: what: must be one of 'all', 'config' or 'models'$"):
        parse_command("reload", b'{"what": "everything"}')
