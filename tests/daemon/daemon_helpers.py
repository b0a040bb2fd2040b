"""Helpers for the daemon tests: a real mosquitto broker on a free loopback port,
a small MQTT recorder client, and a non-blocking wait for asyncio tests.
(A uniquely named module: several test folders have a conftest.py.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared" / "data"
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 5.0, *, open_: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if open_:
                    return
        except OSError:
            if not open_:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not {'open' if open_ else 'closed'} after {timeout}s")


class Mosquitto:
    """A real mosquitto on 127.0.0.1:<free port>; restartable; with persistence
    so that a test subscriber's persistent session survives a restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 1\n"
            "log_dest stderr\nlog_type error\n"
            + ("user root\n" if os.geteuid() == 0 else "")  # else it drops to `mosquitto`, which cannot write here
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        self.process = None
        wait_port(self.port, open_=False)


class Recorder:
    """Subscribes to topics and records every message (thread-safe)."""

    def __init__(self, port: int, topics: list[str], client_id: str | None = None, clean: bool = True) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.topics = topics
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"rec-{os.getpid()}-{id(self)}",
            clean_session=clean,
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.connected.wait(5), "recorder could not connect"

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(self, client, userdata, mid, reason_codes, props) -> None:
        self.connected.set()  # only once the broker acknowledged the subscriptions

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def json(self, topic: str) -> list[dict]:
        return [json.loads(p) for p in self.on(topic) if p]

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        with self.lock:
            seen = [(t, p[:120]) for t, p, _ in self.messages[-15:]]
        raise AssertionError(f"timed out waiting for {what}; last messages: {seen}")

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()




async def until(predicate, timeout: float = 10.0, what: str = "condition", recorder: Recorder | None = None):
    """Poll ``predicate`` without blocking the event loop (the daemon runs on it)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    seen = []
    if recorder is not None:
        with recorder.lock:
            seen = [(t, p[:160]) for t, p, _ in recorder.messages[-15:]]
    raise AssertionError(f"timed out waiting for {what}; last messages: {seen}")
