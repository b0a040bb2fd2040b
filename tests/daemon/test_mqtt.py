"""The MQTT transport and the publisher against a real mosquitto: availability,
commands, retained state, discovery, offline queue."""

from __future__ import annotations

import json
import time

import pytest

from device.daemon.commands import (
    CommandError,
    EmptyCommand,
    ReloadCommand,
    ResetCountCommand,
    SnapshotCommand,
    parse_command,
)
from device.daemon.config import parse_config
from device.daemon.mqtt import MqttLink
from device.daemon.publisher import Publisher
from device.daemon.topics import Topics

AVAILABILITY = "cadence/testpi/availability"


def make_config(port: int, tmp_path, **mqtt):
    return parse_config(
        {
            "device": {"id": "testpi", "name": "Test Pi"},
            "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min": 1, "reconnect_max": 1, "keepalive": 5, **mqtt},
            "storage": {"state_dir": str(tmp_path)},
            "camera": {"enabled": False},
            "microphone": {"enabled": False},
        }
    )


def transport(cfg, **kw) -> MqttLink:
    """The bare transport, told its availability messages as the publisher tells it."""
    return MqttLink(cfg, will=(AVAILABILITY, "offline"), birth=(AVAILABILITY, "online"), **kw)


@pytest.mark.parametrize(
    ("name", "payload", "fragment"),
    [
        ("reset_count", b"{not json", "not JSON"),
        ("reset_count", b"[1, 2]", "must be a JSON object"),
        ("reset_count", b'{"count": 3}', "count: unknown key"),
        ("reload", b'{"what": "everything"}', "what:"),
        ("reload", b"\xff\xfe", "not UTF-8"),
        ("reboot", b"", "unknown command 'reboot'"),
        ("reload", b"{" + b" " * 5000 + b"}", "too large"),
        ("reload", b'{"what": "config", "what": "models"}', "'what' is given twice"),
    ],
)
def test_bad_command_payloads(name, payload, fragment):
    with pytest.raises(CommandError) as info:
        parse_command(name, payload)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_good_command_payloads():
    assert isinstance(parse_command("reset_count", b"{}"), ResetCountCommand)
    assert parse_command("reset_count", b'{"request_id": "a1"}').request_id == "a1"
    assert parse_command("reload", b"{}").what == "all"
    assert isinstance(parse_command("snapshot", b"{}"), SnapshotCommand)
    assert parse_command("reload", b' {"what": "models"} ').what == "models"
    assert isinstance(parse_command("reload", b"{}"), ReloadCommand)


@pytest.mark.parametrize("payload", [b"", b"  ", b"\n"])
def test_an_empty_message_never_runs_a_command(payload):
    """`mosquitto_pub -r -n` clears a retained command: subscribers get an empty message."""
    for name in ("reset_count", "reload", "snapshot"):
        with pytest.raises(EmptyCommand):
            parse_command(name, payload)


def test_link_availability_commands_and_discovery(mosquitto, recorder_factory, tmp_path):
    cfg = make_config(mosquitto.port, tmp_path)
    commands = []
    publisher = Publisher(on_command=lambda n, c: commands.append((n, c)), labels=lambda: ["knock"])
    publisher.start(cfg)  # no event loop: commands are handled on paho's thread
    link = publisher.link
    try:
        assert link.wait_connected(5)
        publisher.model({"name": "m1"})
        rec = recorder_factory(mosquitto.port, ["cadence/testpi/#", "homeassistant/#"])
        # retained: a late subscriber still sees availability, state and discovery
        rec.wait_for(lambda: rec.on("cadence/testpi/availability") == [b"online"], what="online")
        rec.wait_for(lambda: rec.json("cadence/testpi/state/model") == [{"name": "m1"}], what="state")
        rec.wait_for(lambda: rec.on("homeassistant/event/cadence_testpi/sound/config"), what="discovery")
        # bad commands are answered on error, the link keeps working
        rec.publish("cadence/testpi/cmd/reset_count", "{oops")
        rec.publish("cadence/testpi/cmd/reload", '{"what": 3}')
        rec.publish("cadence/testpi/cmd/selfdestruct", "")
        errors = rec.wait_for(lambda: len(rec.json("cadence/testpi/error")) >= 3 and rec.json("cadence/testpi/error"), what="errors")
        assert "cmd/reset_count: payload is not JSON" in errors[0]["error"]
        assert errors[0]["topic"] == "cadence/testpi/cmd/reset_count" and errors[0]["payload"] == "{oops"
        assert errors[1]["error"].startswith("cmd/reload: what:")
        assert "unknown command 'selfdestruct'" in errors[2]["error"]
        assert publisher.bad_commands == 3 and commands == []
        rec.publish("cadence/testpi/cmd/reload", '{"what": "models"}')
        rec.wait_for(lambda: commands, what="valid command")
        assert commands[0][0] == "reload" and commands[0][1].what == "models"
        # Home Assistant restarting: discovery is sent again
        before = len(rec.on("homeassistant/sensor/cadence_testpi/reps/config"))
        rec.publish("homeassistant/status", "online")
        rec.wait_for(lambda: len(rec.on("homeassistant/sensor/cadence_testpi/reps/config")) > before, what="rediscovery")
    finally:
        publisher.stop()
    rec.wait_for(lambda: rec.on("cadence/testpi/availability")[-1:] == [b"offline"], what="offline on stop")


def test_offline_queue_is_bounded_and_delivered_after_reconnect(mosquitto, recorder_factory, tmp_path):
    cfg = make_config(mosquitto.port, tmp_path, queue_size=5)
    link = transport(cfg)
    link.start()
    # a persistent session, so messages published while we are disconnected reach us later
    rec = recorder_factory(mosquitto.port, ["cadence/testpi/#"], client_id="rec-queue", clean=False)
    try:
        assert link.wait_connected(5)
        link.publish("cadence/testpi/state/pipelines", json.dumps({"vision": "running"}), retain=True)
        link.publish("cadence/testpi/sound", json.dumps({"n": 0}))
        rec.wait_for(lambda: rec.json("cadence/testpi/sound") == [{"n": 0}], what="first event")
        mosquitto.stop()
        rec.wait_for(lambda: not link.connected, what="link notices the outage")
        for n in range(1, 9):  # 8 events into a queue of 5: the 3 oldest are dropped
            link.publish("cadence/testpi/sound", json.dumps({"n": n}))
        assert link.queue_length == 5 and link.counters["dropped"] == 3
        link.publish("cadence/testpi/state/pipelines", json.dumps({"vision": "restarting"}), retain=True)  # changed meanwhile
        mosquitto.start()
        rec.wait_for(lambda: len(rec.json("cadence/testpi/sound")) >= 6, timeout=15, what="queued events")
        # QoS 1 is at-least-once: a redelivered duplicate is allowed, a gap or reordering is not
        assert list(dict.fromkeys(m["n"] for m in rec.json("cadence/testpi/sound"))) == [0, 4, 5, 6, 7, 8]
        rec.wait_for(lambda: rec.json("cadence/testpi/state/pipelines")[-1:] == [{"vision": "restarting"}], what="resync")
        rec.wait_for(lambda: rec.on("cadence/testpi/availability")[-1:] == [b"online"], what="online again")
        assert link.counters["connects"] == 2 and link.queue_length == 0
    finally:
        link.stop()


async def test_amqtt_fallback_broker_serves_the_link(recorder_factory, tmp_path):
    """Without mosquitto the embedded broker is amqtt, in-process on the daemon's loop."""
    import asyncio

    from daemon_helpers import free_port, until
    from device.daemon.broker import EmbeddedBroker

    port = free_port()
    async with EmbeddedBroker(port, prefer="amqtt") as broker:
        assert broker.kind == "amqtt"
        cfg = make_config(port, tmp_path)
        link = transport(cfg, loop=asyncio.get_running_loop())
        link.start()
        try:
            await until(lambda: link.connected, what="link connected to amqtt")
            link.publish("cadence/testpi/state/model", json.dumps({"name": "m"}), retain=True)
            rec = await asyncio.to_thread(recorder_factory, port, ["cadence/testpi/#"])
            await until(lambda: rec.on("cadence/testpi/availability") == [b"online"], what="retained online", recorder=rec)
            link.publish("cadence/testpi/sound", json.dumps({"label": "knock"}))
            await until(lambda: rec.json("cadence/testpi/sound") == [{"label": "knock"}], what="event", recorder=rec)
        finally:
            await asyncio.to_thread(link.stop)


async def test_a_burst_of_commands_is_coalesced_and_each_is_in_one_batch():
    import asyncio

    from daemon_helpers import until
    from device.daemon.commands import Coalescer

    batches: list[list[str]] = []

    async def handle(batch):
        batches.append([c.request_id for c in batch])
        await asyncio.sleep(0.05)  # a model load takes a while

    coalescer = Coalescer({"reload": handle}, min_interval=0.2)
    for i in range(200):
        coalescer.submit("reload", ReloadCommand(request_id=str(i)))
        if i % 20 == 0:
            await asyncio.sleep(0.01)  # the burst arrives over a while, not all at once
    await until(lambda: sum(map(len, batches)) == 200, what="all handled")
    assert sorted(int(r) for batch in batches for r in batch) == list(range(200))  # each exactly once
    assert batches[0] == ["0"] and len(batches) < 20  # the first at once, the rest together


def test_a_lost_broker_is_said_in_words_an_owner_reads(mosquitto, tmp_path, caplog):
    # paho calls a dropped connection "Unspecified error": the log says which broker was lost instead
    link = transport(make_config(mosquitto.port, tmp_path))
    link.start()
    try:
        assert link.wait_connected(5)
        with caplog.at_level("WARNING", logger="cadence.mqtt"):
            mosquitto.stop()
            deadline = time.monotonic() + 10
            while link.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not link.connected
        lost = [r.getMessage() for r in caplog.records if "connection" in r.getMessage() or "disconnect" in r.getMessage()]
        assert lost and all("Unspecified error" not in m for m in lost), lost
        assert any(f"127.0.0.1:{mosquitto.port}" in m and "reconnecting" in m for m in lost), lost
    finally:
        link.stop()

