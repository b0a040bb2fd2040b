"""The daemon's MQTT link (paho-mqtt 2.x, ``CallbackAPIVersion.VERSION2``).

Topics, all under ``<prefix>/<device_id>/`` (see docs/mqtt.md):

- ``availability`` retained ``online``/``offline``; ``offline`` is also the Last Will
- ``reps``, ``sound`` events (QoS from the config, default 1; never retained)
- ``state/<name>`` retained state (count, model, pipelines, …)
- ``stats`` periodic figures; ``error`` answers to bad commands and reload failures
- ``cmd/reset_count``, ``cmd/reload`` commands (payload validated)

Paho's network thread does the I/O and reconnects with exponential backoff
(``reconnect_delay_set``). On every (re)connect this link resubscribes,
republishes the retained state (and Home Assistant discovery), then
``online``, then the events that were queued while the broker was away.
That offline queue is bounded; what falls out of it is counted.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, ConfigDict, ValidationError

from .config import Config

log = logging.getLogger("cadence.mqtt")

COMMANDS = ("reset_count", "reload")


class ResetCountCommand(BaseModel):
    """``cmd/reset_count``: empty payload or ``{}``; an optional ``request_id`` appears in the log."""

    model_config = ConfigDict(extra="forbid")
    request_id: str | None = None


class ReloadCommand(BaseModel):
    """``cmd/reload``: ``{"what": "all"|"config"|"models"}`` (empty means all)."""

    model_config = ConfigDict(extra="forbid")
    what: Literal["all", "config", "models"] = "all"
    request_id: str | None = None


COMMAND_MODELS: dict[str, type[BaseModel]] = {"reset_count": ResetCountCommand, "reload": ReloadCommand}


class CommandError(ValueError):
    """A command payload that does not validate (message is one line)."""


def parse_command(name: str, payload: bytes) -> BaseModel:
    """Validate a command payload; raises :class:`CommandError` with one line."""
    model = COMMAND_MODELS.get(name)
    if model is None:
        raise CommandError(f"unknown command {name!r} (known: {', '.join(COMMANDS)})")
    if len(payload) > 4096:
        raise CommandError(f"cmd/{name}: payload too large ({len(payload)} bytes, at most 4096)")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError(f"cmd/{name}: payload is not UTF-8 text") from None
    if not text:
        data: Any = {}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"cmd/{name}: payload is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict):
        raise CommandError(f"cmd/{name}: payload must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"]) or "payload"
        key = key if key.isprintable() else repr(key)  # the message stays one line
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise CommandError(f"cmd/{name}: {key}: {msg}") from None


def dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)


class _ErrorLines:
    """A stand-in for paho's logger that only keeps its last error line (never
    logs: paho's debug lines are noise, and nothing of it reaches the log)."""

    def __init__(self, link: "MqttLink") -> None:
        self.link = link

    def log(self, level: int, fmt: str, *args: Any) -> None:
        if level >= logging.ERROR:
            try:
                text = fmt % args
            except (TypeError, ValueError):
                text = str(fmt)
            lines = text.strip().splitlines()
            self.link._socket_error = lines[0] if lines else None


class MqttLink:
    """One MQTT connection for one device, safe to use from the asyncio loop.

    ``on_command(name, command)`` is called on ``loop`` for valid commands.
    ``discovery()`` returns ``[(topic, payload)]`` to publish retained on each
    connect and when Home Assistant announces itself (None: no discovery).
    """

    def __init__(
        self,
        config: Config,
        *,
        on_command: Callable[[str, BaseModel], Any] | None = None,
        discovery: Callable[[], Iterable[tuple[str, dict[str, Any]]]] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.config = config
        mc = config.mqtt
        self.base = config.base_topic
        self.host = host or mc.host or "127.0.0.1"
        self.port = port or mc.port
        self.qos = mc.qos
        self.on_command = on_command
        self.discovery = discovery if mc.discovery else None
        self.loop = loop
        self._lock = threading.RLock()
        self._queue: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=max(mc.queue_size, 1))
        self._queue_size = mc.queue_size
        self._state: dict[str, str] = {}
        self._connected = False
        self._stopping = False
        self.connected_event = threading.Event()
        self.counters = {"connects": 0, "disconnects": 0, "published": 0, "queued": 0, "dropped": 0, "bad_commands": 0}
        self.last_error: str | None = None
        self._socket_error: str | None = None  # paho's last error line (e.g. the TLS alert)
        self._refused = False  # the broker answered CONNACK with a failure

        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=max(1, int(round(mc.reconnect_min))), max_delay=max(1, int(round(mc.reconnect_max))))
        client.max_inflight_messages_set(100)
        if mc.username is not None:
            client.username_pw_set(mc.username, mc.resolved_password())
        if mc.tls is not None:
            client.tls_set(
                ca_certs=mc.tls.ca_file,
                certfile=mc.tls.cert_file,
                keyfile=mc.tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            client.tls_insecure_set(mc.tls.insecure)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        # paho's error lines (e.g. the TLS alert when the broker refuses our client
        # certificate) are kept to explain a connection closed before CONNACK
        client.enable_logger(_ErrorLines(self))  # type: ignore[arg-type]
        self.client = client

    # ---------------------------------------------------------------- topics
    def topic(self, sub: str) -> str:
        return f"{self.base}/{sub}"

    @property
    def connected(self) -> bool:
        return self._connected

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Connect in the background; reconnects forever with backoff."""
        if self.loop is None:
            try:
                self.loop = asyncio.get_running_loop()
            except RuntimeError:
                self.loop = None
        self.client.connect_async(self.host, self.port, keepalive=self.config.mqtt.keepalive)
        self.client.loop_start()

    def stop(self, timeout: float = 3.0) -> None:
        """Publish ``offline`` (retained), wait for it briefly, disconnect."""
        self._stopping = True
        with self._lock:
            connected = self._connected
        if connected:
            info = self.client.publish(self.topic("availability"), "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        self._connected = False

    def wait_connected(self, timeout: float) -> bool:
        return self.connected_event.wait(timeout)

    # ------------------------------------------------------------ publishing
    def publish_event(self, sub: str, payload: dict[str, Any]) -> None:
        """An event (``reps``, ``sound``): sent now, or queued while offline."""
        self._send(self.topic(sub), dumps(payload), self.qos, queue=True)

    def set_state(self, name: str, payload: dict[str, Any] | str) -> None:
        """Retained ``state/<name>``; remembered and republished on reconnect."""
        topic = self.topic(f"state/{name}")
        text = payload if isinstance(payload, str) else dumps(payload)
        with self._lock:
            if self._state.get(topic) == text:
                return
            self._state[topic] = text
            connected = self._connected
        if connected:
            self._raw_publish(topic, text, 1, retain=True)

    def publish_stats(self, payload: dict[str, Any]) -> None:
        """Periodic figures: only worth sending now (QoS 0, not queued)."""
        self._send(self.topic("stats"), dumps(payload), 0, queue=False)

    def publish_error(self, message: str, **extra: Any) -> None:
        """A one-line error for the owner (bad command, failed reload)."""
        self.last_error = message
        payload = {"error": message, "timestamp": round(time.time(), 3), **extra}
        self._send(self.topic("error"), dumps(payload), 1, queue=True)

    def refresh_discovery(self) -> None:
        """Re-send discovery (e.g. after the sound model's labels changed)."""
        if self._connected:
            self._publish_discovery()

    def _send(self, topic: str, text: str, qos: int, *, queue: bool) -> None:
        with self._lock:
            if not self._connected:
                if queue:
                    if self._queue_size == 0:
                        self.counters["dropped"] += 1
                    else:
                        if len(self._queue) == self._queue.maxlen:
                            self.counters["dropped"] += 1
                        self._queue.append((topic, text, qos))
                        self.counters["queued"] += 1
                return
        self._raw_publish(topic, text, qos)

    def _raw_publish(self, topic: str, text: str, qos: int, retain: bool = False) -> None:
        info = self.client.publish(topic, text, qos=qos, retain=retain)
        if info.rc == paho.MQTT_ERR_SUCCESS or (info.rc == paho.MQTT_ERR_NO_CONN and qos > 0):
            # QoS>0 messages paho could not send yet stay in its session and
            # are re-sent after the reconnect
            self.counters["published"] += 1
        else:
            self.counters["dropped"] += 1

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------- callbacks
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._refused = True
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning("MQTT: %s", self.last_error)
            return
        log.info("MQTT: connected to %s:%s", self.host, self.port)
        client.subscribe(self.topic("cmd/#"), qos=1)
        if self.discovery is not None:
            client.subscribe(f"{self.config.mqtt.discovery_prefix}/status", qos=1)
        # under the lock, so events raised meanwhile wait and keep their order
        with self._lock:
            self.counters["connects"] += 1
            # messages the old connection never got acknowledged: paho would re-send them
            # only after this callback, i.e. after the newer ones below (events out of
            # order, and an old retained state overwriting the current one). Re-send them first.
            drop = getattr(client, "drop_out_messages", None)
            for old in drop() if drop is not None else []:
                client.publish(old.topic, old.payload, qos=old.qos, retain=old.retain)
            for topic, text in self._state.items():
                client.publish(topic, text, qos=1, retain=True)
            if self.discovery is not None:
                self._publish_discovery()
            client.publish(self.topic("availability"), "online", qos=1, retain=True)
            pending = list(self._queue)
            self._queue.clear()
            for topic, text, qos in pending:
                self._raw_publish(topic, text, qos)
            self._connected = True
        if pending:
            log.info("MQTT: delivered %d events queued while offline", len(pending))
        self.connected_event.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this from inside its `except OSError`: the exception says why
        # (connection refused, TLS certificate verify failed, …)
        exc = sys.exc_info()[1]
        why = (str(exc).strip().splitlines() or [""])[0] if exc is not None else ""
        message = f"cannot connect to the broker at {self.host}:{self.port}{f' ({why})' if why else ''} (retrying with backoff)"
        if message != self.last_error:
            log.warning("MQTT: %s", message)
        self.last_error = message

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
            if was:
                self.counters["disconnects"] += 1
        self.connected_event.clear()
        if was and not self._stopping:
            log.warning("MQTT: disconnected (%s); reconnecting with backoff", reason_code)
        elif not was and not self._stopping and not self._refused:
            # closed before CONNACK: typically TLS refusing our client certificate
            reason = self._socket_error or str(reason_code)
            message = (f"the broker at {self.host}:{self.port} closed the connection before accepting it "
                       f"({reason}); retrying with backoff")
            if message != self.last_error:
                log.warning("MQTT: %s", message)
            self.last_error = message
        self._refused = False
        self._socket_error = None

    def _publish_discovery(self) -> None:
        assert self.discovery is not None
        try:
            messages = list(self.discovery())
        except Exception as exc:  # never let discovery break the link
            log.error("MQTT: discovery payloads failed: %s", exc)
            return
        for topic, payload in messages:
            self.client.publish(topic, dumps(payload) if payload else "", qos=1, retain=True)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        topic = message.topic
        if self.discovery is not None and topic == f"{self.config.mqtt.discovery_prefix}/status":
            if message.payload.strip() == b"online":
                log.info("MQTT: Home Assistant is online; re-sending discovery")
                self._publish_discovery()
            return
        prefix = self.topic("cmd/")
        if not topic.startswith(prefix):
            return
        if message.retain:
            # a retained command would fire again on every reconnect: refuse it
            shown = topic if topic.isprintable() else repr(topic)  # one line, whatever the topic holds
            self._bad_command(topic, message.payload, f"{shown}: retained commands are ignored (publish without retain)")
            return
        name = topic[len(prefix):]
        try:
            command = parse_command(name, message.payload)
        except CommandError as exc:
            self._bad_command(topic, message.payload, str(exc))
            return
        log.info("MQTT: command %s %s", name, command.model_dump(exclude_none=True))
        if self.on_command is not None:
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self.on_command, name, command)
            else:
                self.on_command(name, command)

    def _bad_command(self, topic: str, payload: bytes, message: str) -> None:
        self.counters["bad_commands"] += 1
        log.warning("MQTT: %s", message)
        self.publish_error(message, topic=topic, payload=payload[:200].decode("utf-8", "replace"))
