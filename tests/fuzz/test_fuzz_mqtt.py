"""Fuzz the MQTT command handlers the daemon subscribes to (``cmd/#``).

Random topics under ``cmd/``, random bytes and random JSON go through the
real handler (``MqttLink._on_message``, then the publisher's routing) of a
link opened by a real ``Supervisor``. A bad command must be refused with one
line on the ``error`` topic and leave the daemon's state as it was; a valid one acts."""

from __future__ import annotations

import asyncio
import copy
import json
import tempfile

import paho.mqtt.client as paho
from hypothesis import given
from hypothesis import strategies as st

from device.daemon.commands import COMMANDS, CommandError
from device.daemon.config import parse_config
from device.daemon.ledger import RepUpdate
from device.daemon.supervisor import Supervisor
from fuzz_helpers import assert_clear, fuzz_settings, record

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)
objects = st.dictionaries(st.sampled_from(["what", "request_id"]) | st.text(max_size=10),
                          st.sampled_from(["all", "config", "models"]) | json_values, max_size=3)
payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    objects.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"{}", b"  ", b'{"what": "models"}', b"\xff\xfe", b"{" * 2000, b"x" * 5000]),
)
names = st.sampled_from(list(COMMANDS)) | st.text(max_size=15)


async def _deliver(name: str, payload: bytes, retain: bool, state_dir: str) -> None:
    config = parse_config({"device": {"id": "fuzz"}, "camera": {"enabled": False}, "microphone": {"enabled": False},
                           "storage": {"state_dir": state_dir}, "mqtt": {"host": "127.0.0.1"}})
    sup = Supervisor(config, factories={}, model_loader=None)
    publisher = sup.publisher
    calls: list[str] = []
    act = publisher.on_command

    def on_command(cmd_name, command):
        calls.append(cmd_name)
        act(cmd_name, command)

    publisher.on_command = on_command
    link = publisher.open(config, asyncio.get_running_loop())  # never started: what it sends waits in its queue
    publisher.reps(sup.ledger.update(RepUpdate(count=7.0, set_number=2, set_count=3.0, rate=12.0)))
    kept = lambda: {t: p for t, p in link.retained.items() if not t.endswith("/state/error")}  # noqa: E731
    before = (sup.ledger.state, kept(), copy.deepcopy(sup.model.info))
    queued_before = len(link.pending)

    topic = f"{publisher.topics.command_prefix}{name}"
    message = paho.MQTTMessage(topic=topic.encode("utf-8"))
    message.payload = payload
    message.retain = retain
    link._on_message(link.client, None, message)
    for _ in range(5):  # let call_soon_threadsafe and a reload task run
        await asyncio.sleep(0)
    if publisher.bad_commands:
        errors = [json.loads(text) for t, text, _ in link.pending[queued_before:] if t == publisher.topics.error]
        assert len(errors) == 1, errors
        error = errors[0]["error"]
        assert_clear(CommandError(error), ["cmd/", repr(name), topic], kinds=(CommandError,))
        assert not calls, "a refused command must not reach the daemon"
        after = (sup.ledger.state, kept(), sup.model.info)
        assert after == before, "a refused command changed the daemon's state"
        assert json.loads(link.retained[f"{publisher.topics.base}/state/error"])["error"] == error  # the last error
        record("mqtt: cmd/#", "refused" + (" (retained)" if retain else ""))
    elif not calls:  # an empty message (how a retained command is cleared) runs nothing and is no error
        assert name in COMMANDS and not payload.decode("utf-8", "replace").strip()
        assert (sup.ledger.state, kept(), sup.model.info) == before
        record("mqtt: cmd/#", "ignored (empty)")
    else:
        assert calls == [name] and not retain
        if name == "reset_count":
            assert sup.ledger.state.count == 0.0 and sup.ledger.state.set == 0
        else:
            assert sup.ledger.state == before[0]
        record("mqtt: cmd/#", f"accepted {name}")


@fuzz_settings(800)
@given(names, payloads, st.booleans() | st.just(False))
def test_command_handlers(name, payload, retain):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_deliver(name, payload, retain, tmp))
