"""Fuzz the daemon's config loader: random text, mutated examples, and
well-formed TOML whose keys are real but whose values are wrong.

Every input must give a valid ``Config`` or one ``ConfigError`` line that
names the file and the offending key; nothing else may escape."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from device.daemon.config import EXAMPLE, Config, ConfigError, load_config, parse_config
from fuzz_helpers import REJECTED, expect_clear, fuzz_settings

SECTIONS = {name: field.annotation for name, field in Config.model_fields.items()}
KEYS = {name: sorted(model.model_fields) for name, model in SECTIONS.items()}
KEYS["mqtt"] = KEYS["mqtt"] + ["tls"]

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", " ", "0", "-1", "rtsp://x", "clip.mp4", "a.wav", "/dev/null", "debug", "json",
                     "maximum_bounding_box_area", "#", "a/b/", "../../etc/passwd", "x" * 300]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=6)
section_key = st.sampled_from(sorted(SECTIONS)).flatmap(
    lambda s: st.tuples(st.just(s), st.sampled_from(KEYS[s]) | st.text(min_size=1, max_size=12))
)
configs = st.dictionaries(section_key, values, max_size=6).map(
    lambda flat: _nest(flat)
) | st.dictionaries(st.text(max_size=10), values, max_size=3)


def _nest(flat: dict[tuple[str, str], object]) -> dict[str, object]:
    out: dict[str, dict[str, object]] = {}
    for (section, key), value in flat.items():
        out.setdefault(section, {})[key] = value
    return out


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(data: dict[str, object]) -> str:
    lines = []
    for section, body in data.items():
        if isinstance(body, dict):
            lines.append(f"[{json.dumps(section, ensure_ascii=False)}]")
            lines += [f"{json.dumps(k, ensure_ascii=False)} = {_toml_value(v)}" for k, v in body.items()]
        else:
            lines.insert(0, f"{json.dumps(section, ensure_ascii=False)} = {_toml_value(body)}")
    return "\n".join(lines) + "\n"


def _mentions(data: dict[str, object]) -> list[str]:
    """How the message may name an offending key: ``section.key``; odd names quoted."""
    names = ["(top level)"]
    for section, body in data.items():
        for s in {section, repr(section)}:
            names.append(s)
            if isinstance(body, dict):
                names += [f"{s}.{k}" for key in body for k in {key, repr(key)}]
    return names


def _load(target: str, content: bytes, mentions: list[str]) -> Config | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cadence.toml"
        path.write_bytes(content)
        config = expect_clear(target, lambda: load_config(path), [str(path)], kinds=(ConfigError,))
        if config is REJECTED:
            # the file is named first, then the problem
            try:
                load_config(path)
            except ConfigError as exc:
                assert str(exc).startswith(f"{path}: ")
                assert any(m in str(exc) for m in mentions), str(exc)
        else:
            _use(config)
        return config


def _use(config: Config) -> None:
    """An accepted config must be usable: the derived values the daemon reads."""
    assert config.base_topic and config.client_id
    assert isinstance(config.sound_model_path, Path)
    config.model_dump_json()


@fuzz_settings(200)
@given(st.binary(max_size=400))
def test_random_bytes(data):
    _load("config: random bytes", data, ["UTF-8", "TOML", ":"])


@fuzz_settings(200)
@given(st.text(max_size=400))
def test_random_text(text):
    _load("config: random text", text.encode("utf-8"), ["TOML", ":"])


@fuzz_settings(200)
@given(st.data())
def test_mutated_example(data):
    """The commented example with characters deleted, duplicated or replaced."""
    text = EXAMPLE
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(text) - 1))
        op = data.draw(st.sampled_from(["delete", "insert", "replace", "uncomment"]))
        if op == "delete":
            text = text[:i] + text[i + data.draw(st.integers(1, 20)):]
        elif op == "insert":
            text = text[:i] + data.draw(st.text(min_size=1, max_size=10)) + text[i:]
        elif op == "replace":
            text = text[:i] + data.draw(st.sampled_from(list("=[]\"'#.,{}0123456789-\n x"))) + text[i + 1:]
        else:
            j = text.find("# ", i)
            text = text if j < 0 else text[:j] + text[j + 2:]
    _load("config: mutated example", text.encode("utf-8"), ["TOML", ":"])


@fuzz_settings(400)
@given(configs)
def test_wrong_values_as_toml_file(data):
    """Real section and key names (and some unknown ones) with values of any type, through a file."""
    _load("config: wrong values (TOML file)", to_toml(data).encode("utf-8"), _mentions(data) + ["TOML"])


@fuzz_settings(400)
@given(configs)
def test_wrong_values_as_mapping(data):
    """The same through ``parse_config`` (as ``cmd/reload`` re-reads it): the key is named."""
    config = expect_clear("config: wrong values (mapping)", lambda: parse_config(data, origin="fuzz.toml"),
                          _mentions(data), kinds=(ConfigError,))
    if config is not REJECTED:
        _use(config)
