"""The daemon's MQTT transport (paho-mqtt 2.x, ``CallbackAPIVersion.VERSION2``).

It knows how to talk to a broker, not what to say: topics and payloads come
from :mod:`.publisher`. Paho's network thread does the I/O and reconnects
with exponential backoff (``reconnect_delay_set``). On every (re)connect the
link resubscribes, re-sends the retained messages it remembers, then the
announcements (e.g. Home Assistant discovery, computed afresh), then the
birth message (``online``), then what was queued while the broker was away.
That offline queue is bounded; what falls out of it is counted. The will
(``offline``) is left with the broker for a death, and sent by a clean stop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from .config import Config

log = logging.getLogger("cadence.mqtt")

Payload = str | bytes  # text (JSON, availability) or bytes (a JPEG)
Message = tuple[str, Payload]  # (topic, payload)


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
    """One MQTT connection, safe to use from the asyncio loop and any thread.

    ``will`` and ``birth`` are ``(topic, payload)`` pairs, both retained (the
    availability of the device). ``subscriptions`` are topic filters; each
    message on them goes to ``on_message(topic, payload, retained)``, on
    ``loop`` when there is one. ``announcements()`` returns retained messages
    to send on every connect (and on :meth:`announce`).
    """

    def __init__(
        self,
        config: Config,
        *,
        will: Message | None = None,
        birth: Message | None = None,
        subscriptions: Sequence[str] = (),
        on_message: Callable[[str, bytes, bool], Any] | None = None,
        announcements: Callable[[], Iterable[Message]] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        self.config = config
        mc = config.mqtt
        self.host = host or mc.host or "127.0.0.1"
        self.port = port or mc.port
        self.will = will
        self.birth = birth
        self.subscriptions = tuple(subscriptions)
        self.on_message = on_message
        self.announcements = announcements
        self.loop = loop
        self._lock = threading.RLock()
        self._queue: collections.deque[tuple[str, Payload, int]] = collections.deque(maxlen=max(mc.queue_size, 1))
        self._queue_size = mc.queue_size
        self._retained: dict[str, Payload] = {}
        self._connected = False
        self._stopping = False
        self.connected_event = threading.Event()
        self.counters = {"connects": 0, "disconnects": 0, "published": 0, "queued": 0, "dropped": 0}
        self.last_error: str | None = None  # why the link is not connected (one line)
        self._socket_error: str | None = None  # paho's last error line (e.g. the TLS alert)
        self._refused = False  # the broker answered CONNACK with a failure

        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
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

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    @property
    def retained(self) -> dict[str, Payload]:
        """The retained messages re-sent on every connect (a copy)."""
        with self._lock:
            return dict(self._retained)

    @property
    def pending(self) -> list[tuple[str, Payload, int]]:
        """What waits for the broker: ``(topic, payload, qos)``, oldest first (a copy)."""
        with self._lock:
            return list(self._queue)

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
        """Send the will ourselves (a clean disconnect does not), wait for it briefly, disconnect."""
        self._stopping = True
        with self._lock:
            connected = self._connected
        if connected and self.will is not None:
            info = self.client.publish(self.will[0], self.will[1], qos=1, retain=True)
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
    def publish(self, topic: str, payload: Payload, *, qos: int = 1, retain: bool = False, queue: bool = True) -> None:
        """Send ``payload`` on ``topic``.

        Retained: remembered (the latest per topic; an identical one is not
        sent again) and re-sent on every connect. Otherwise: sent now, or while
        offline queued (``queue``) or let go (figures only worth sending now).
        """
        if retain:
            with self._lock:
                if self._retained.get(topic) == payload:
                    return
                self._retained[topic] = payload
                connected = self._connected
            if connected:
                self._raw_publish(topic, payload, 1, retain=True)
            return
        with self._lock:
            if not self._connected:
                if queue:
                    if self._queue_size == 0:
                        self.counters["dropped"] += 1
                    else:
                        if len(self._queue) == self._queue.maxlen:
                            self.counters["dropped"] += 1
                        self._queue.append((topic, payload, qos))
                        self.counters["queued"] += 1
                return
        self._raw_publish(topic, payload, qos)

    def announce(self) -> None:
        """Send the announcements again now (e.g. the model's labels changed)."""
        if self._connected:
            self._announce()

    def _announce(self) -> None:
        if self.announcements is not None:
            for topic, payload in self.announcements():
                self.client.publish(topic, payload, qos=1, retain=True)

    def _raw_publish(self, topic: str, text: Payload, qos: int, retain: bool = False) -> None:
        info = self.client.publish(topic, text, qos=qos, retain=retain)
        if info.rc == paho.MQTT_ERR_SUCCESS or (info.rc == paho.MQTT_ERR_NO_CONN and qos > 0):
            # QoS>0 messages paho could not send yet stay in its session and
            # are re-sent after the reconnect
            self.counters["published"] += 1
        else:
            self.counters["dropped"] += 1

    # ------------------------------------------------------------- callbacks
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._refused = True
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning("MQTT: %s", self.last_error)
            return
        log.info("MQTT: connected to %s:%s", self.host, self.port)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        # under the lock, so events raised meanwhile wait and keep their order
        with self._lock:
            self.counters["connects"] += 1
            # messages the old connection never got acknowledged: paho would re-send them
            # only after this callback, i.e. after the newer ones below (events out of
            # order, and an old retained state overwriting the current one). Re-send them first.
            drop = getattr(client, "drop_out_messages", None)
            for old in drop() if drop is not None else []:
                client.publish(old.topic, old.payload, qos=old.qos, retain=old.retain)
            for topic, text in self._retained.items():
                client.publish(topic, text, qos=1, retain=True)
            self._announce()
            if self.birth is not None:
                client.publish(self.birth[0], self.birth[1], qos=1, retain=True)
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
            # paho names a dropped connection (broker stopped, network gone) "Unspecified error"
            why = str(reason_code)
            why = "the connection was closed" if why in ("Unspecified error", "") else why
            log.warning("MQTT: lost the broker at %s:%s (%s); reconnecting with backoff", self.host, self.port, why)
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

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self.on_message is None:
            return
        args = (message.topic, bytes(message.payload), bool(message.retain))
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.on_message, *args)
        else:
            self.on_message(*args)
