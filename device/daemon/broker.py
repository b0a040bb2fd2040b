"""The embedded default broker, so ``cadence run`` works with nothing else set up.

Used only when the config names no broker (``[mqtt] host`` unset). It binds
to 127.0.0.1 only. Preference order:

1. something already answering on 127.0.0.1:<port> (a system mosquitto, a
   second daemon's broker): use it, start nothing;
2. a local ``mosquitto`` executable: run it as a child process with a
   generated config (no persistence, anonymous, loopback only);
3. ``amqtt`` (the ``broker`` extra) in-process on the daemon's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..components import CadenceError
from .children import die_with_parent
from .config import MqttConfig
from .errors import one_line

log = logging.getLogger("cadence.broker")
LOOPBACK = "127.0.0.1"
AMQTT_SHUTDOWN_TIMEOUT = 5.0  # seconds


class BrokerError(CadenceError):
    """The embedded broker could not be started."""


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


class EmbeddedBroker:
    """Start/stop the local broker (``async with EmbeddedBroker(port):``)."""

    def __init__(self, port: int = 1883, *, prefer: str = "mosquitto") -> None:
        self.port = port
        self.prefer = prefer
        self.kind: str = "none"
        self._process: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._amqtt: Any = None

    async def start(self) -> str:
        """Make sure a broker answers on 127.0.0.1:port; returns what it is."""
        if port_open(LOOPBACK, self.port):
            log.info("broker: one already answers on %s:%d, using it", LOOPBACK, self.port)
            self.kind = "existing"
            return self.kind
        exe = find_mosquitto() if self.prefer == "mosquitto" else None
        if exe is not None:
            await self._start_mosquitto(exe)
        else:
            await self._start_amqtt()
        log.info("broker: embedded %s listening on %s:%d", self.kind, LOOPBACK, self.port)
        return self.kind

    async def _start_mosquitto(self, exe: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="cadence-broker-")
        conf = Path(self._tmp.name) / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {LOOPBACK}\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        self._process = subprocess.Popen(
            [exe, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=die_with_parent() if os.name == "posix" else None,
            start_new_session=True,  # Ctrl-C in a terminal must not kill it before we said "offline"
        )
        for _ in range(100):
            if port_open(LOOPBACK, self.port, 0.1):
                self.kind = "mosquitto"
                return
            if self._process.poll() is not None:
                err = (self._process.stderr.read() if self._process.stderr else b"").decode(errors="replace").strip()
                last = err.splitlines()[-1] if err else f"exit status {self._process.returncode}"
                self._cleanup()
                raise BrokerError(f"embedded mosquitto on {LOOPBACK}:{self.port} did not start: {last}")
            await asyncio.sleep(0.05)
        self.stop_sync()
        raise BrokerError(f"embedded mosquitto on {LOOPBACK}:{self.port} did not start within 5 s")

    async def _start_amqtt(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise BrokerError(
                "no MQTT broker: set [mqtt] host, install mosquitto (apt install mosquitto), "
                "or install the broker extra (pip install 'cadence[broker]')"
            ) from None
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        try:
            self._amqtt = Broker(config)
            await self._amqtt.start()
        except Exception as exc:
            raise BrokerError(f"embedded amqtt broker on {LOOPBACK}:{self.port} did not start: {exc}") from None
        self.kind = "amqtt"

    async def stop(self) -> None:
        if self._amqtt is not None:
            # amqtt's shutdown can wait forever on a client session that is still
            # connected (seen under load); the daemon must stop regardless.
            try:
                await asyncio.wait_for(self._amqtt.shutdown(), timeout=AMQTT_SHUTDOWN_TIMEOUT)
            except asyncio.TimeoutError:
                log.warning("embedded amqtt broker did not shut down within %.0f s; left behind", AMQTT_SHUTDOWN_TIMEOUT)
            except Exception:  # noqa: BLE001 - stopping must not fail the daemon's exit
                log.debug("embedded amqtt broker shutdown failed", exc_info=True)
            self._amqtt = None
        self.stop_sync()

    def stop_sync(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> "EmbeddedBroker":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def watch_broker(current: Callable[[], EmbeddedBroker | None], interval: float = 2.0) -> None:
    """Keep the embedded broker alive: if it (or the local broker we reused) goes
    away for two checks in a row, start ours again. ``current()`` is the broker
    of the moment (a reload may replace it, or drop it for an external one)."""
    misses = 0
    while True:
        await asyncio.sleep(interval)
        broker = current()
        if broker is None:
            continue
        up = await asyncio.to_thread(port_open, LOOPBACK, broker.port)
        misses = 0 if up else misses + 1
        if misses >= 2:
            log.warning("embedded broker on %s:%d is gone; starting it again", LOOPBACK, broker.port)
            try:
                broker.stop_sync()
                await broker.start()
                misses = 0
            except Exception as exc:
                log.error("embedded broker: %s", one_line(exc))


async def embedded_broker_for(mqtt: MqttConfig, current: EmbeddedBroker | None, *, allowed: bool = True) -> EmbeddedBroker | None:
    """The embedded broker ``mqtt`` asks for: ``current`` if it still fits, else it is
    stopped and (when an embedded one is wanted, and ``allowed``) a new one started."""
    if current is not None and (current.port != mqtt.port or not mqtt.embedded):
        await current.stop()
        current = None
    if current is None and mqtt.embedded and allowed:
        current = EmbeddedBroker(mqtt.port)
        await current.start()
    return current
