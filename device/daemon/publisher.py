"""What the daemon says on MQTT: the only module that knows topics and payloads.

Topics, all under ``<prefix>/<device_id>/`` (see docs/mqtt.md):

- ``availability`` retained ``online``/``offline``; ``offline`` is also the Last Will
- ``reps``, ``sound`` events (QoS from the config, default 1; never retained)
- ``state/count``, ``state/model`` (sound), ``state/exercise_model``,
  ``state/pipelines``, ``state/error`` retained state; ``state/snapshot`` a retained JPEG (when snapshots are on)
- ``stats`` periodic figures (QoS 0, not queued); ``error`` answers to bad
  commands and failed reloads; ``result`` every command's answer
- ``cmd/reset_count``, ``cmd/reload``, ``cmd/snapshot`` commands in (validated by :mod:`.commands`)

Home Assistant discovery (:mod:`.discovery`) is announced on every connect,
when HA says ``<discovery_prefix>/status`` = ``online``, and when a model's
labels change (per-exercise sensors of exercises no longer known are removed). The payload functions
are pure (tested without a broker); :class:`Publisher` sends them over an
:class:`~.mqtt.MqttLink`, which knows no topic names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..audio.events import SoundEvent
from .commands import CommandError, EmptyCommand, parse_command
from .config import Config
from .discovery import discovery_messages, exercise_names
from .ledger import CountState
from .mqtt import Message, MqttLink
from .runner import PipelineStatus
from .telemetry import Delivery, Stats, pipeline_problem
from .topics import Topics

log = logging.getLogger("cadence.mqtt")

# ---------------------------------------------------------------- payloads


def dumps(payload: Any) -> str:
    """Compact JSON; NaN is refused (not JSON), anything else odd becomes its str."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)


def count_payload(state: CountState) -> dict[str, Any]:
    """``state/count`` without its timestamp: the day's count, its open set, the day's
    totals per exercise (``all`` always; an exercise once one is recognised), the
    exercise being done (None until a recogniser names one) and the counter's confidence
    (``periodicity``, ``ambiguity``: None until the counter has spoken)."""
    return {"count": state.count, "set": state.set, "set_count": state.set_count, "rate": state.rate,
            "day": state.day, "totals": {"all": state.count, **state.totals},
            "exercise": state.exercise, "exercise_confidence": state.exercise_confidence,
            "periodicity": state.periodicity, "ambiguity": state.ambiguity}


def reps_payload(state: CountState, now: float, media_time: float | None = None) -> dict[str, Any]:
    """A ``reps`` event (and the ``state/count`` it leaves)."""
    payload = {**count_payload(state), "timestamp": round(now, 3)}
    if media_time is not None:
        payload["media_time"] = round(media_time, 3)
    return payload


def sound_payload(event: SoundEvent, model: str | None, now: float) -> dict[str, Any]:
    """A ``sound`` event; ``event_type`` is what a Home Assistant event entity reads."""
    return {
        "event_type": event.label,
        "label": event.label,
        "confidence": round(float(event.confidence), 4),
        "start": round(float(event.start), 3),
        "end": round(float(event.end), 3),
        "model": model,
        "timestamp": round(now, 3),
    }


def pipelines_payload(pipelines: Mapping[str, PipelineStatus], now: float | None = None) -> dict[str, Any]:
    """``state/pipelines``: each pipeline's status, restarts, last error, problem (None
    while it delivers; read by Home Assistant's problem sensors) and detail, if any.
    ``now``: the monotonic time the problems are judged at."""
    out: dict[str, Any] = {}
    for name, status in pipelines.items():
        entry: dict[str, Any] = {"status": status.status, "restarts": status.restarts, "last_error": status.last_error,
                                 "problem": pipeline_problem(status, now)}
        if status.detail:
            entry["detail"] = status.detail
        out[name] = entry
    return out


def stats_payload(stats: Stats, now: float) -> dict[str, Any]:
    return {**dataclasses.asdict(stats), "timestamp": round(now, 3)}


def error_payload(message: str, now: float, **extra: Any) -> dict[str, Any]:
    return {"error": message, "timestamp": round(now, 3), **extra}


def result_payload(command: str, ok: bool, message: str, request_ids: Sequence[str | None], now: float,
                   **extra: Any) -> dict[str, Any]:
    """A command's answer on ``result``; ``requests`` counts the commands a coalesced
    batch answers, ``request_ids`` the ids those carried."""
    return {"command": command, "ok": ok, "message": message, "requests": len(request_ids),
            "request_ids": [r for r in request_ids if r is not None], **extra, "timestamp": round(now, 3)}


# --------------------------------------------------------------- publisher


class Publisher:
    """Sends the daemon's facts as MQTT messages and routes what comes in.

    Long-lived: the link underneath is replaced when the MQTT settings change
    (:meth:`start` again after :meth:`stop`); what was sent is counted across.
    Valid commands go to ``on_command(name, command)``; ``labels()`` gives the
    sound labels and ``exercises()`` the exercise model's labels for discovery.
    """

    def __init__(
        self,
        *,
        on_command: Callable[[str, BaseModel], Any] | None = None,
        on_published_count: Callable[[dict[str, Any]], Any] | None = None,
        labels: Callable[[], Sequence[str]] = list,
        exercises: Callable[[], Sequence[str]] = list,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.on_command = on_command
        self.on_published_count = on_published_count  # the retained state/count the broker holds
        self.labels = labels
        self.exercises = exercises
        self.clock = clock
        self._announced_exercises: set[str] = set()  # whose count sensors discovery last announced
        self._discovery_lock = threading.Lock()  # announced from the loop and from the link's thread
        self.config: Config | None = None
        self.topics: Topics | None = None
        self.link: MqttLink | None = None
        self.sent = {"reps": 0, "sound": 0}
        self.bad_commands = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------- the link
    def open(self, config: Config, loop: asyncio.AbstractEventLoop | None = None) -> MqttLink:
        """Make the link for ``config`` (not connected yet: :meth:`start` connects)."""
        topics = Topics.for_config(config)
        subscriptions = [topics.commands] + ([topics.ha_status] if config.mqtt.discovery else [])
        if self.on_published_count is not None:  # the count this device last published (retained)
            subscriptions.append(topics.state("count"))
        self.config, self.topics = config, topics
        self.link = MqttLink(
            config,
            will=(topics.availability, topics.offline),
            birth=(topics.availability, topics.online),
            subscriptions=subscriptions,
            on_message=self.on_message,
            announcements=self._discovery if config.mqtt.discovery else None,
            loop=loop,
        )
        return self.link

    def start(self, config: Config, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Connect in the background (reconnecting forever with backoff)."""
        self.open(config, loop).start()

    def stop(self) -> None:
        """Say ``offline`` and disconnect (blocks briefly: call it in a thread from the loop)."""
        if self.link is not None:
            self.link.stop()
            self.link = None

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    def delivery(self) -> Delivery:
        counters = self.link.counters if self.link is not None else {}
        return Delivery(
            reps=self.sent["reps"],
            sound=self.sent["sound"],
            queued=self.link.queue_length if self.link is not None else 0,
            dropped=int(counters.get("dropped", 0)),
            reconnects=max(0, int(counters.get("connects", 0)) - 1),
        )

    def _send(self, topic: Callable[[Topics], str], payload: Any, *, qos: int | None = None,
              retain: bool = False, queue: bool = True) -> None:
        if self.link is None or self.topics is None or self.config is None:
            return
        text = payload if isinstance(payload, (str, bytes)) else dumps(payload)
        self.link.publish(topic(self.topics), text, qos=self.config.mqtt.qos if qos is None else qos,
                          retain=retain, queue=queue)

    # ------------------------------------------------------------- outbound
    def reps(self, state: CountState, media_time: float | None = None) -> None:
        """A changed count: the ``reps`` event and the retained ``state/count``."""
        payload = reps_payload(state, self.clock(), media_time)
        self._send(lambda t: t.reps, payload)
        self._send(lambda t: t.state("count"), payload, retain=True)
        self.sent["reps"] += 1

    def count(self, state: CountState) -> None:
        """The retained ``state/count`` alone (at start, after a reset or a reconnect)."""
        self._send(lambda t: t.state("count"), reps_payload(state, self.clock()), retain=True)

    def sound(self, event: SoundEvent, model: str | None) -> None:
        self._send(lambda t: t.sound, sound_payload(event, model, self.clock()))
        self.sent["sound"] += 1

    def pipelines(self, pipelines: Mapping[str, PipelineStatus]) -> None:
        """Retained ``state/pipelines`` (the link sends it only when it changed)."""
        self._send(lambda t: t.state("pipelines"), pipelines_payload(pipelines), retain=True)

    def model(self, info: Mapping[str, Any], kind: str = "sound") -> None:
        """The retained state of the active model of ``kind`` (``sound``, ``exercise``)."""
        self._send(lambda t: t.model(kind), dict(info), retain=True)

    def stats(self, stats: Stats) -> None:
        """Figures only worth sending now: QoS 0, not queued while offline."""
        self._send(lambda t: t.stats, stats_payload(stats, self.clock()), qos=0, queue=False)

    def error(self, message: str, **extra: Any) -> None:
        """A one-line error for the owner (bad command, failed reload or model load),
        also kept as the retained last error."""
        self._send(lambda t: t.error, error_payload(message, self.clock(), **extra), qos=1)
        self.remember_error(message)

    def remember_error(self, message: str) -> None:
        """The retained ``state/error`` alone (e.g. a pipeline that failed: its restarts say the rest)."""
        self.last_error = message
        self._send(lambda t: t.state("error"), error_payload(message, self.clock()), retain=True)

    def result(self, command: str, ok: bool, message: str, request_ids: Sequence[str | None], **extra: Any) -> None:
        """The answer to a (batch of) command(s) on ``result``."""
        self._send(lambda t: t.result, result_payload(command, ok, message, request_ids, self.clock(), **extra), qos=1)

    def snapshot(self, jpeg: bytes) -> None:
        """The retained picture (Home Assistant's image entity reads it)."""
        self._send(lambda t: t.state("snapshot"), jpeg, retain=True)

    def clear_snapshot(self) -> None:
        """Delete the retained picture (snapshots were switched off: none stays on the broker)."""
        self._send(lambda t: t.state("snapshot"), b"", retain=True)

    def refresh_discovery(self) -> None:
        """Announce discovery again (e.g. after a model's labels changed)."""
        if self.link is not None:
            self.link.announce()

    def _discovery(self) -> list[Message]:
        if self.config is None or self.topics is None:
            return []
        try:
            with self._discovery_lock:
                exercises = set(exercise_names(self.config, self.exercises()))
                retired = self._announced_exercises - exercises
                messages = discovery_messages(self.config, self.labels(), self.topics, exercises=sorted(exercises),
                                              retired=sorted(retired))
                self._announced_exercises = exercises
        except Exception as exc:  # never let discovery break the link
            log.error("MQTT: discovery payloads failed: %s", exc)
            return []
        return [(topic, dumps(payload) if payload else "") for topic, payload in messages]

    # -------------------------------------------------------------- inbound
    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """A message on a subscribed topic: Home Assistant's status, or a command."""
        topics = self.topics
        if topics is None:
            return
        if self.config is not None and self.config.mqtt.discovery and topic == topics.ha_status:
            if payload.strip() == topics.online.encode():
                log.info("MQTT: Home Assistant is online; re-sending discovery")
                self.refresh_discovery()
            return
        if topic == topics.state("count"):
            if retained and self.on_published_count is not None:
                try:
                    published = json.loads(payload)
                except ValueError:
                    return  # not ours to judge: it is only read back
                if isinstance(published, dict):
                    self.on_published_count(published)
            return
        if not topic.startswith(topics.command_prefix):
            return
        if retained and payload.strip():
            # a retained command would fire again on every reconnect: refuse it
            shown = topic if topic.isprintable() else repr(topic)  # one line, whatever the topic holds
            self._bad_command(topic, payload, f"{shown}: retained commands are ignored (publish without retain)")
            return
        name = topic[len(topics.command_prefix):]
        try:
            command = parse_command(name, payload)
        except EmptyCommand as exc:  # a retained command being cleared: nothing to run, nothing wrong
            log.info("MQTT: %s", exc)
            return
        except CommandError as exc:
            self._bad_command(topic, payload, str(exc))
            return
        log.info("MQTT: command %s %s", name, command.model_dump(exclude_none=True))
        if self.on_command is not None:
            self.on_command(name, command)

    def _bad_command(self, topic: str, payload: bytes, message: str) -> None:
        self.bad_commands += 1
        log.warning("MQTT: %s", message)
        self.error(message, topic=topic, payload=payload[:200].decode("utf-8", "replace"))
