"""The supervisor with stand-in pipelines (real MQTT broker, real asyncio):
restart with backoff, reset, hot model reload, broker outage, watchdog.
(The pieces alone: test_ledger.py, test_runner.py, test_publisher.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from pathlib import Path


from daemon_helpers import until
from device.daemon.config import parse_config
from device.audio.events import SoundEvent
from device.daemon.ledger import RepUpdate
from device.daemon.supervisor import Supervisor
from device.daemon.systemd import Notifier


class Controlled:
    """A stand-in pipeline fed by the test: values are yielded, exceptions raised, None ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.starts = 0

    async def __call__(self, ctx):
        self.starts += 1
        while True:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                return
            ctx.heartbeat()
            if item != "tick":
                yield item


def json_model_loader(path: Path):
    """A stand-in sound model: a JSON file with labels (refuses anything else)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not data.get("labels"):
        raise ValueError("not a sound model")

    class Model:
        labels = list(data["labels"])

    return Model()


def write_model(path: Path, labels: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"labels": labels}))
    os.replace(tmp, path)


def config_for(port: int, tmp_path: Path, **sections):
    data = {
        "device": {"id": "sup"},
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min": 1, "reconnect_max": 1,
                 "keepalive": 5, "stats_interval": 1},
        "storage": {"state_dir": str(tmp_path)},
        "sound": {"model": "models/sound.json", "reload_check_seconds": 0.2},
    }
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return parse_config(data)


def from_file(tmp_path: Path, port: int, sections: str = "") -> tuple[Supervisor, Controlled, Controlled]:
    """A supervisor started from ``tmp_path/cadence.toml`` (device ``sup`` on the broker at
    ``port``, plus ``sections``; a reload re-reads it), with stand-in vision and audio pipelines."""
    from device.daemon.config import load_config

    path = tmp_path / "cadence.toml"
    path.write_text(f'[device]\nid = "sup"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
                    f'[storage]\nstate_dir = "{tmp_path}"\n{sections}')
    vision, audio = Controlled(), Controlled()
    sup = Supervisor(load_config(path), config_path=path, factories={"vision": vision, "audio": audio},
                     model_loader=json_model_loader)
    return sup, vision, audio


@contextlib.asynccontextmanager
async def running(supervisor: Supervisor):
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: supervisor.link is not None and supervisor.link.connected or task.done(), what="link up")
        if task.done():
            task.result()
        yield task
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(task, 10)


async def test_outputs_restart_reset_and_stats(mosquitto, recorder_factory, tmp_path):
    vision, audio = Controlled(), Controlled()
    sup = Supervisor(config_for(mosquitto.port, tmp_path), factories={"vision": vision, "audio": audio},
                     model_loader=json_model_loader, restart_min=0.2, restart_max=0.4)
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#"])
    async with running(sup):
        await vision.queue.put(RepUpdate(1.0, 1, 1.0, 30.0, media_time=2.0))
        await audio.queue.put(SoundEvent("knock", 0.91, 1.0, 1.5))
        reps = await until(lambda: rec.json("cadence/sup/reps"), what="reps", recorder=rec)
        assert reps[0]["count"] == 1.0 and reps[0]["set"] == 1 and reps[0]["rate"] == 30.0
        sound = await until(lambda: rec.json("cadence/sup/sound"), what="sound", recorder=rec)
        assert sound[0]["label"] == sound[0]["event_type"] == "knock" and sound[0]["confidence"] == 0.91
        # the camera fails: the vision pipeline restarts with backoff, audio keeps running
        await vision.queue.put(RuntimeError("camera unplugged"))
        state = await until(lambda: [s for s in rec.json("cadence/sup/state/pipelines")
                                     if s["vision"]["restarts"] == 1], what="restart state", recorder=rec)
        assert "camera unplugged" in state[0]["vision"]["last_error"]
        await audio.queue.put(SoundEvent("knock", 0.8, 2.0, 2.5))
        await until(lambda: len(rec.json("cadence/sup/sound")) == 2, what="audio unaffected", recorder=rec)
        await until(lambda: vision.starts == 2, what="vision restarted")
        await vision.queue.put(RepUpdate(2.0, 1, 2.0, 30.0))
        await until(lambda: rec.json("cadence/sup/reps")[-1]["count"] == 2.0, what="counting again", recorder=rec)
        # reset over MQTT: counting continues from zero
        rec.publish("cadence/sup/cmd/reset_count", "{}")
        await until(lambda: rec.json("cadence/sup/state/count")[-1]["count"] == 0.0, what="reset", recorder=rec)
        await vision.queue.put(RepUpdate(3.5, 1, 3.5, 28.0))
        await until(lambda: rec.json("cadence/sup/reps")[-1]["count"] == 1.5, what="count after reset", recorder=rec)
        await vision.queue.put(RepUpdate(5.0, 2, 1.5, 28.0))
        await until(lambda: rec.json("cadence/sup/reps")[-1]["set"] == 2, what="new set", recorder=rec)
        assert rec.json("cadence/sup/reps")[-1]["count"] == 3.0
        stats = await until(lambda: [s for s in rec.json("cadence/sup/stats") if s["sound_events"] >= 2],
                            what="stats", recorder=rec)
        for key in ("uptime", "fps", "frames_dropped", "audio_overflows", "cpu_percent", "rss_mb", "mqtt_dropped"):
            assert key in stats[-1]
        assert stats[-1]["rss_mb"] > 10 and stats[-1]["pipelines"]["audio"] == "running"
        # a source that ends (a file without loop) is "finished", not restarted
        await audio.queue.put(None)
        await until(lambda: rec.json("cadence/sup/state/pipelines")[-1]["audio"]["status"] == "finished",
                    what="finished", recorder=rec)
        assert audio.starts == 1
    await asyncio.to_thread(rec.wait_for, lambda: rec.on("cadence/sup/availability")[-1:] == [b"offline"])
    saved = json.loads((tmp_path / "daemon-state.json").read_text())
    assert saved["count"]["count"] == 3.0


async def test_hot_reload_of_the_sound_model(mosquitto, recorder_factory, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    model = models / "sound.json"
    write_model(model, ["knock", "bell"])
    sup = Supervisor(config_for(mosquitto.port, tmp_path), factories={}, model_loader=json_model_loader)
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#", "homeassistant/event/#"])
    event_topic = "homeassistant/event/cadence_sup/sound/config"
    async with running(sup):
        first = await until(lambda: rec.json("cadence/sup/state/model"), what="model state", recorder=rec)
        assert first[-1]["labels"] == ["knock", "bell"] and first[-1]["status"] == "active"
        await until(lambda: rec.json(event_topic), what="discovery")
        assert sorted(rec.json(event_topic)[-1]["event_types"]) == ["bell", "knock"]
        # a new model is written while running: picked up without restart
        write_model(model, ["knock", "bell", "alarm"])
        await until(lambda: rec.json("cadence/sup/state/model")[-1]["labels"] == ["knock", "bell", "alarm"],
                    what="new model", recorder=rec)
        new_name = rec.json("cadence/sup/state/model")[-1]["name"]
        assert new_name != first[-1]["name"]
        await until(lambda: "alarm" in rec.json(event_topic)[-1]["event_types"], what="discovery updated")
        # a broken model file: the old one stays active, the failure is reported
        model.write_text("{ truncated")
        err = await until(lambda: rec.json("cadence/sup/error"), what="error", recorder=rec)
        assert "not loaded, keeping" in err[-1]["error"] and "\n" not in err[-1]["error"]
        state = rec.json("cadence/sup/state/model")[-1]
        assert state["name"] == new_name and state["labels"] == ["knock", "bell", "alarm"] and state["last_error"]
        assert sup.model.labels == ["knock", "bell", "alarm"]
        # fixed again, and reloaded on command
        write_model(model, ["bell"])
        rec.publish("cadence/sup/cmd/reload", '{"what": "models"}')
        await until(lambda: rec.json("cadence/sup/state/model")[-1]["labels"] == ["bell"], what="fixed", recorder=rec)


async def test_broker_restart_mid_run(mosquitto, recorder_factory, tmp_path):
    audio, vision = Controlled(), Controlled()
    sup = Supervisor(config_for(mosquitto.port, tmp_path), factories={"audio": audio, "vision": vision},
                     model_loader=json_model_loader)
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#"], client_id="rec-outage", clean=False)
    async with running(sup):
        await audio.queue.put(SoundEvent("knock", 0.9, 0.0, 0.5))
        await until(lambda: rec.json("cadence/sup/sound"), what="before outage", recorder=rec)
        await asyncio.to_thread(mosquitto.stop)
        await until(lambda: not sup.link.connected, what="outage noticed")
        for i in range(3):  # raised while the broker is down
            await audio.queue.put(SoundEvent("bell", 0.7, 10.0 + i, 10.5 + i))
        await vision.queue.put(RepUpdate(4.0, 1, 4.0, 20.0))
        await until(lambda: sup.link.queue_length == 4, what="queued")  # 3 sounds + 1 reps
        await asyncio.to_thread(mosquitto.start)
        await until(lambda: len([s for s in rec.json("cadence/sup/sound") if s["label"] == "bell"]) >= 3,
                    timeout=15, what="outage events delivered", recorder=rec)
        starts = [s["start"] for s in rec.json("cadence/sup/sound") if s["label"] == "bell"]
        assert list(dict.fromkeys(starts)) == [10.0, 11.0, 12.0]
        await until(lambda: rec.json("cadence/sup/reps") and rec.json("cadence/sup/reps")[-1]["count"] == 4.0,
                    what="reps delivered", recorder=rec)
        # retained state resynced after the reconnect; then online
        await until(lambda: rec.on("cadence/sup/availability")[-1:] == [b"online"], what="online", recorder=rec)
        assert rec.json("cadence/sup/state/count")[-1]["count"] == 4.0
        # and it keeps publishing
        await audio.queue.put(SoundEvent("knock", 0.95, 20.0, 20.5))
        await until(lambda: rec.json("cadence/sup/sound")[-1]["start"] == 20.0, what="after outage", recorder=rec)


async def test_config_reload_keeps_running_config_on_error(mosquitto, recorder_factory, tmp_path):
    sup, vision, audio = from_file(tmp_path, mosquitto.port)
    path = tmp_path / "cadence.toml"
    base = path.read_text()
    rec = recorder_factory(mosquitto.port, ["cadence/sup/#"])
    async with running(sup):
        path.write_text(base + "[camera]\nwindow = 4\n")
        await sup.reload()
        err = await until(lambda: rec.json("cadence/sup/error"), what="error", recorder=rec)
        assert "camera.window" in err[-1]["error"] and "keeping the running configuration" in err[-1]["error"]
        assert sup.pipelines.running() == {"vision", "audio"}
        path.write_text(base + "[camera]\nenabled = false\n")
        await sup.reload()
        assert sup.pipelines.running() == {"audio"} and sup.config.camera.enabled is False
        await until(lambda: "vision" not in rec.json("cadence/sup/state/pipelines")[-1], what="vision gone", recorder=rec)


async def test_watchdog_pings_only_while_input_flows(mosquitto, tmp_path, monkeypatch):
    sock_path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(sock_path)
    server.setblocking(False)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # ping every 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    vision = Controlled()
    sup = Supervisor(config_for(mosquitto.port, tmp_path), factories={"vision": vision},
                     model_loader=json_model_loader, notifier=Notifier(sock_path))

    def received() -> list[str]:
        out = []
        with contextlib.suppress(BlockingIOError):
            while True:
                out.append(server.recv(4096).decode())
        return out

    try:
        async with running(sup):
            msgs = await until(lambda: received() or None, what="READY")
            assert msgs[0].startswith("READY=1")
            for _ in range(10):  # frames flow for a second: pings
                await vision.queue.put("tick")
                await asyncio.sleep(0.1)
            pings = [m for m in received() if m == "WATCHDOG=1"]
            assert len(pings) >= 3
            await asyncio.sleep(1.2)  # nothing flows: no pings once the grace (2 intervals) is over
            received()
            await asyncio.sleep(0.8)
            assert "WATCHDOG=1" not in received()
        assert "STOPPING=1" in received()
    finally:
        server.close()
