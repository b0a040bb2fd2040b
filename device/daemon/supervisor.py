"""The asyncio supervisor: pipelines, MQTT, hot reload, watchdog, signals.

Each pipeline (``vision``, ``audio``) is a *factory*: a function taking a
:class:`PipelineContext` and returning an async iterator of outputs
(:class:`RepUpdate`, :class:`SoundEvent`). The supervisor runs them
concurrently; when one fails (camera unplugged, microphone gone) it is
restarted with exponential backoff while the others keep running. A source
that simply ends (a video file without ``loop``) is reported ``finished``.

The sound model is held by a :class:`ModelHolder`; a watcher task notices a
new file (written by ``cadence train`` or copied in), loads it in a worker
thread and swaps it in atomically — or keeps the old one if loading fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..audio.events import SoundEvent  # the one event type, from detector to MQTT
from ..components import CadenceError, atomic_write_json, first_line
from .config import Config, ConfigError, load_config
from .discovery import discovery_messages
from .memory import release_free_heap
from .mqtt import MqttLink
from .systemd import Notifier

log = logging.getLogger("cadence.daemon")


@dataclasses.dataclass(frozen=True)
class RepUpdate:
    """The counter's cumulative state after a window (raw, before any reset)."""

    count: float
    set_number: int = 1
    set_count: float = 0.0
    rate: float | None = None  # repetitions per minute
    media_time: float | None = None  # stream timestamp, seconds
    segment: Any = None  # a new segment (camera reopened, file looped) starts a new counter
    resting: bool = False


PipelineFactory = Callable[["PipelineContext"], AsyncIterator[Any]]


class PipelineContext:
    """What a running pipeline sees of the supervisor: config, model, counters."""

    def __init__(self, name: str, supervisor: "Supervisor") -> None:
        self.name = name
        self.supervisor = supervisor
        self.status = "starting"
        self.restarts = 0
        self.last_error: str | None = None
        self.last_input: float | None = None  # monotonic time of the last frame/chunk
        self.counters: dict[str, float] = {}
        self.cache: dict[Any, Any] = {}  # expensive objects a pipeline keeps across its restarts
        self.detail: str | None = None  # e.g. "waiting for a sound model"

    @property
    def config(self) -> Config:
        return self.supervisor.config

    @property
    def model(self) -> "ModelHolder":
        return self.supervisor.model

    def heartbeat(self, n: int = 1, counter: str = "inputs") -> None:
        """Call for each frame / audio chunk: proves the source flows."""
        self.last_input = time.monotonic()
        self.counters[counter] = self.counters.get(counter, 0) + n
        if self.status != "running":
            self.status = "running"
            self.supervisor.publish_pipelines()

    def count(self, counter: str, n: float = 1) -> None:
        self.counters[counter] = self.counters.get(counter, 0) + n

    def set(self, counter: str, value: float) -> None:
        self.counters[counter] = value

    def set_detail(self, detail: str | None) -> None:
        if detail != self.detail:
            self.detail = detail
            self.supervisor.publish_pipelines()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "restarts": self.restarts, "last_error": self.last_error}
        if self.detail:
            out["detail"] = self.detail
        return out


def _one_line(exc: BaseException) -> str:
    """A Cadence error's own line; any other exception's first line with its type."""
    text = first_line(exc)
    return text if isinstance(exc, CadenceError) or text == type(exc).__name__ else f"{type(exc).__name__}: {text}"


class ModelHolder:
    """The active sound model, swapped atomically when the file changes.

    ``loader(path)`` (run in a worker thread) returns a model with a
    ``labels`` attribute or raises. A failed load keeps the previous model.
    """

    def __init__(self, path: Path, loader: Callable[[Path], Any] | None) -> None:
        self.path = path
        self.loader = loader
        self.current: Any = None
        self.info: dict[str, Any] = {"name": "none", "path": str(path), "status": "no model"}
        self._seen: tuple[int, int, int] | None = None  # signature of the file last tried
        self._pending: tuple[int, int, int] | None = None
        self.generation = 0

    @property
    def labels(self) -> list[str]:
        return list(getattr(self.current, "labels", []) or [])

    def signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def check(self, *, force: bool = False) -> str | None:
        """Load the file if it changed (and settled); returns "loaded", "failed" or None."""
        sig = self.signature()
        if sig is None:
            if self.current is None:
                if self.info.get("status") != "no model file":  # say it once, not every check
                    log.info("no sound model at %s yet: no sound events until one is trained "
                             "(cadence train sound DATA --out %s); it is picked up without a restart",
                             self.path, self.path)
                self.info = {"name": "none", "path": str(self.path), "status": "no model file"}
            return None
        if not force:
            if sig == self._seen:
                return None
            if sig != self._pending:  # wait one check for a copy in progress to settle
                self._pending = sig
                return None
        self._pending = None
        self._seen = sig
        if self.loader is None:
            return None
        try:
            model = await asyncio.to_thread(self.loader, self.path)
            digest = await asyncio.to_thread(_sha256, self.path)
        except Exception as exc:  # keep the old model
            message = f"sound model {self.path} not loaded, keeping {self.info.get('name', 'none')}: {_one_line(exc)}"
            log.error("%s", message)
            self.info = {**self.info, "last_error": message, "status": "active" if self.current is not None else "failed"}
            return "failed"
        self.current = model
        self.generation += 1
        labels = self.labels
        self.info = {
            "name": f"{self.path.name}@{digest[:12]}",
            "path": str(self.path),
            "sha256": digest,
            "labels": labels,
            "loaded_at": round(time.time(), 3),
            "status": "active",
            "last_error": None,
        }
        meta = getattr(model, "metadata", None)
        meta = meta if isinstance(meta, dict) else {}
        if meta.get("created"):
            self.info["created"] = meta["created"]
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        accuracy = {k: v.get("accuracy") for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v}
        if accuracy:
            self.info["accuracy"] = accuracy
        log.info("sound model %s loaded (%d labels)", self.info["name"], len(labels))
        return "loaded"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Supervisor:
    """Runs the daemon until stopped; see the module docstring.

    ``factories`` maps pipeline names to factories (default: the real vision
    and audio pipelines for the enabled sections). ``model_loader`` loads the
    sound model (default: :func:`device.daemon.pipelines.load_sound_model`).
    """

    def __init__(
        self,
        config: Config,
        *,
        config_path: str | os.PathLike[str] | None = None,
        factories: dict[str, PipelineFactory] | None = None,
        model_loader: Callable[[Path], Any] | None = None,
        notifier: Notifier | None = None,
        restart_min: float = 1.0,
        restart_max: float = 60.0,
        use_embedded_broker: bool = True,
    ) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self._custom_factories = factories
        self.notifier = notifier or Notifier()
        self.restart_min = restart_min
        self.restart_max = restart_max
        self.use_embedded_broker = use_embedded_broker
        if model_loader is None and factories is None:
            from .pipelines import load_sound_model

            model_loader = load_sound_model
        self.model = ModelHolder(config.sound_model_path, model_loader)
        self.link: MqttLink | None = None
        self.broker: Any = None
        self.contexts: dict[str, PipelineContext] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._aux: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._started = time.monotonic()
        self._last_raw: RepUpdate | None = None
        self._seg_base = RepUpdate(0.0, 0, 0.0)  # raw counter state at the last reset (this segment)
        self._carry = 0.0  # counted in earlier segments since the last reset
        self._carry_sets = 0
        self._reset_set: tuple[int, float] | None = None  # (raw set, its count) at a mid-set reset
        self.count_state: dict[str, Any] = {"count": 0.0, "set": 0, "set_count": 0.0, "rate": None}
        self.events_published = {"reps": 0, "sound": 0}
        self._stats_prev: tuple[float, float] | None = None
        self._proc: Any = None

    # ------------------------------------------------------------- factories
    def factories(self) -> dict[str, PipelineFactory]:
        if self._custom_factories is not None:
            candidates = dict(self._custom_factories)
        else:
            from .pipelines import audio_pipeline, vision_pipeline

            candidates = {"vision": vision_pipeline, "audio": audio_pipeline}
        enabled = {"vision": self.config.camera.enabled, "audio": self.config.microphone.enabled}
        return {name: f for name, f in candidates.items() if enabled.get(name, True)}

    # ------------------------------------------------------------------ run
    async def run(self) -> None:
        """Start everything, run until :meth:`request_stop`, shut down cleanly."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        try:
            await self._start_broker()
            await self.model.check(force=True)
            self._start_link(loop)
            self._publish_model()
            if self.model.info.get("last_error") and self.link is not None:
                self.link.publish_error(self.model.info["last_error"])
            self.link_state_count()
            for name, factory in self.factories().items():
                self._start_pipeline(name, factory)
            self.publish_pipelines()
            self._aux = [
                asyncio.create_task(self._stats_loop(), name="stats"),
                asyncio.create_task(self._model_watch_loop(), name="model-watch"),
                asyncio.create_task(self._watchdog_loop(), name="watchdog"),
                asyncio.create_task(self._broker_watch_loop(), name="broker-watch"),
            ]
            self.notifier.ready(self._status_line())
            log.info("cadence running as %s (topics under %s/)", self.config.device.id, self.config.base_topic)
            await self._stop.wait()
        finally:
            await self._shutdown()
            self._remove_signals(loop)

    def request_stop(self) -> None:
        self._stop.set()

    async def _start_broker(self) -> None:
        if self.config.mqtt.embedded and self.use_embedded_broker:
            from .broker import EmbeddedBroker

            self.broker = EmbeddedBroker(self.config.mqtt.port)
            await self.broker.start()

    def _start_link(self, loop: asyncio.AbstractEventLoop) -> None:
        self.link = MqttLink(
            self.config,
            on_command=self._on_command,
            discovery=lambda: discovery_messages(self.config, self.model.labels),
            loop=loop,
        )
        self.link.start()

    def _start_pipeline(self, name: str, factory: PipelineFactory) -> None:
        ctx = self.contexts.get(name) or PipelineContext(name, self)
        ctx.status = "starting"
        self.contexts[name] = ctx
        self._tasks[name] = asyncio.create_task(self._run_pipeline(ctx, factory), name=f"pipeline-{name}")

    async def _run_pipeline(self, ctx: PipelineContext, factory: PipelineFactory) -> None:
        delay = self.restart_min
        while not self._stop.is_set():
            started = time.monotonic()
            ctx.status = "starting"
            try:
                async for output in factory(ctx):
                    self.handle_output(ctx, output)
                ctx.status = "finished"
                log.info("pipeline %s: source ended", ctx.name)
                self.publish_pipelines()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ctx.restarts += 1
                ctx.last_error = _one_line(exc)
                if time.monotonic() - started > 60:
                    delay = self.restart_min  # it ran fine for a while: start the backoff over
                ctx.status = f"restarting in {delay:g}s"
                log.warning("pipeline %s failed (%s); restarting in %gs", ctx.name, ctx.last_error, delay)
                if ctx.restarts == 1:  # say once how to live without the device
                    section = "camera" if ctx.name == "vision" else "microphone"
                    key = "source" if section == "camera" else "device"
                    log.info("(to use a file instead, set [%s] %s = \"FILE\"; to switch it off, [%s] enabled = false)",
                             section, key, section)
                self.publish_pipelines()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.restart_max)

    async def _stop_pipeline(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        for task in self._aux:
            task.cancel()
        for name in list(self._tasks):
            await self._stop_pipeline(name)
        for task in self._aux:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for ctx in self.contexts.values():
            ctx.status = "stopped"
        self._flush_state_file()
        if self.link is not None:
            self.publish_pipelines()
            await asyncio.to_thread(self.link.stop)
            self.link = None
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        self.notifier.close()
        log.info("cadence stopped")

    # -------------------------------------------------------------- outputs
    def handle_output(self, ctx: PipelineContext, output: Any) -> None:
        if isinstance(output, RepUpdate):
            self._on_reps(output)
        elif isinstance(output, SoundEvent):
            self._on_sound(output)
        elif output is not None:
            log.debug("pipeline %s: ignoring output %r", ctx.name, output)

    def _on_reps(self, raw: RepUpdate) -> None:
        """Publish the count, kept monotonic across counter restarts and resets.

        A new segment (or a restarted pipeline) starts its counter at zero:
        what the previous one counted is carried over. After ``reset_count``
        the count is relative to the counter's state at that moment.
        """
        last = self._last_raw
        if last is not None and (raw.segment != last.segment or raw.count < last.count):
            self._carry += max(0.0, last.count - self._seg_base.count)
            self._carry_sets += max(0, last.set_number - self._seg_base.set_number)
            self._seg_base = RepUpdate(0.0, 0, 0.0)
            self._reset_set = None
        self._last_raw = raw
        base = self._seg_base
        count = self._carry + max(0.0, raw.count - base.count)
        set_number = self._carry_sets + max(0, raw.set_number - base.set_number)
        set_count = raw.set_count
        if self._reset_set is not None and raw.set_number == self._reset_set[0]:
            set_count = max(0.0, raw.set_count - self._reset_set[1])
        previous = self.count_state
        state = {
            "count": round(count, 3),
            "set": int(set_number),
            "set_count": round(set_count, 3),
            "rate": None if raw.rate is None else round(float(raw.rate), 2),
        }
        if all(state[k] == previous.get(k) for k in state):
            return
        self.count_state = state
        payload = {**state, "timestamp": round(time.time(), 3)}
        if raw.media_time is not None:
            payload["media_time"] = round(raw.media_time, 3)
        if self.link is not None:
            self.link.publish_event("reps", payload)
            self.link.set_state("count", payload)
        self.events_published["reps"] += 1

    def _on_sound(self, event: SoundEvent) -> None:
        payload = {
            "event_type": event.label,
            "label": event.label,
            "confidence": round(float(event.confidence), 4),
            "start": round(float(event.start), 3),
            "end": round(float(event.end), 3),
            "model": self.model.info.get("name"),
            "timestamp": round(time.time(), 3),
        }
        if self.link is not None:
            self.link.publish_event("sound", payload)
        self.events_published["sound"] += 1
        log.info("sound %s (%.2f)", event.label, event.confidence)

    def link_state_count(self) -> None:
        if self.link is not None:
            self.link.set_state("count", {**self.count_state, "timestamp": round(time.time(), 3)})

    def publish_pipelines(self) -> None:
        if self.link is not None:
            self.link.set_state("pipelines", {name: ctx.summary() for name, ctx in self.contexts.items()})

    def _publish_model(self) -> None:
        if self.link is not None:
            self.link.set_state("model", self.model.info)

    # ------------------------------------------------------------- commands
    def _on_command(self, name: str, command: Any) -> None:
        if name == "reset_count":
            self.reset_count()
        elif name == "reload":
            what = getattr(command, "what", "all")
            asyncio.ensure_future(self.reload(config=what in ("all", "config"), models=what in ("all", "models")))

    def reset_count(self) -> None:
        """Start counting from zero (the counter keeps running underneath)."""
        last = self._last_raw
        self._carry, self._carry_sets = 0.0, 0
        if last is None:
            self._seg_base = RepUpdate(0.0, 0, 0.0)
            self._reset_set = None
        else:
            # mid-set, the set goes on as set 1 of the new count
            in_set = not last.resting and last.set_number > 0
            self._seg_base = RepUpdate(last.count, last.set_number - (1 if in_set else 0), 0.0, segment=last.segment)
            self._reset_set = (last.set_number, last.set_count) if in_set else None
        self.count_state = {"count": 0.0, "set": 0, "set_count": 0.0, "rate": None}
        self.link_state_count()
        self._flush_state_file()
        log.info("count reset")

    async def reload(self, *, config: bool = True, models: bool = True) -> None:
        """SIGHUP / cmd/reload: re-read the config, reload the sound model.

        An invalid new config is reported on ``error`` and the running one kept.
        """
        self.notifier.reloading()
        try:
            if config and self.config_path is not None:
                try:
                    new = await asyncio.to_thread(load_config, self.config_path)
                except ConfigError as exc:
                    message = f"reload: {exc}; keeping the running configuration"
                    log.error("%s", message)
                    if self.link is not None:
                        self.link.publish_error(message)
                    return
                await self._apply_config(new)
            if models:
                if await self.model.check(force=True) is not None:
                    self._on_model_changed()
        finally:
            self.notifier.ready(self._status_line())

    async def _apply_config(self, new: Config) -> None:
        old = self.config
        if new == old:
            return
        self.config = new
        self.model.path = new.sound_model_path
        if new.mqtt != old.mqtt or new.device != old.device:
            log.info("reload: MQTT settings changed, reconnecting")
            if self.link is not None:
                await asyncio.to_thread(self.link.stop)
            if self.broker is not None and (new.mqtt.port != old.mqtt.port or not new.mqtt.embedded):
                await self.broker.stop()
                self.broker = None
            if self.broker is None:
                await self._start_broker()
            self._start_link(asyncio.get_running_loop())
            self._publish_model()
            self.link_state_count()
        changed = {
            "vision": new.camera != old.camera,
            "audio": new.microphone != old.microphone or new.sound != old.sound,
        }
        factories = self.factories()
        for name in list(self._tasks):
            if name not in factories or changed.get(name, False):
                await self._stop_pipeline(name)
                if name not in factories:
                    self.contexts.pop(name, None)
        for name, factory in factories.items():
            if name not in self._tasks:
                self._start_pipeline(name, factory)
        self.publish_pipelines()
        log.info("reload: configuration applied")

    def _on_model_changed(self) -> None:
        self._publish_model()
        if self.model.info.get("status") == "failed" or self.model.info.get("last_error"):
            if self.link is not None and self.model.info.get("last_error"):
                self.link.publish_error(self.model.info["last_error"])
        elif self.link is not None:
            self.link.refresh_discovery()

    # --------------------------------------------------------- background
    async def _model_watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sound.reload_check_seconds)
            try:
                if await self.model.check() is not None:
                    self._on_model_changed()
            except Exception as exc:  # the watcher must never die
                log.error("model watcher: %s", _one_line(exc))

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._proc is None:
            import psutil

            self._proc = psutil.Process()
            self._proc.cpu_percent(None)
        vision = self.contexts.get("vision")
        audio = self.contexts.get("audio")
        frames = vision.counters.get("frames_processed", 0) if vision else 0
        fps = None
        if vision is not None and self._stats_prev is not None and now > self._stats_prev[0]:
            fps = round((frames - self._stats_prev[1]) / (now - self._stats_prev[0]), 2)
        self._stats_prev = (now, frames)
        mem = self._proc.memory_info()
        link = self.link.counters if self.link is not None else {}
        return {
            "uptime": round(now - self._started, 1),
            "fps": fps,
            "frames": int(frames),
            "frames_dropped": int(vision.counters.get("frames_dropped", 0)) if vision else 0,
            "audio_chunks": int(audio.counters.get("inputs", 0)) if audio else 0,
            "audio_overflows": int(audio.counters.get("overflows", 0)) if audio else 0,
            "audio_windows_skipped_silent": int(audio.counters.get("silent", 0)) if audio else 0,
            "reps_messages": self.events_published["reps"],
            "sound_events": self.events_published["sound"],
            "mqtt_queued": self.link.queue_length if self.link is not None else 0,
            "mqtt_dropped": int(link.get("dropped", 0)),
            "mqtt_reconnects": max(0, int(link.get("connects", 0)) - 1),
            "cpu_percent": round(self._proc.cpu_percent(None), 1),
            "rss_mb": round(mem.rss / 2**20, 1),
            "model": self.model.info.get("name"),
            "pipelines": {name: ctx.status for name, ctx in self.contexts.items()},
            "timestamp": round(time.time(), 3),
        }

    async def _stats_loop(self) -> None:
        self.stats()  # prime the CPU and fps baselines
        while True:
            await asyncio.sleep(self.config.mqtt.stats_interval)
            try:
                release_free_heap()
                figures = self.stats()
                if self.link is not None:
                    self.link.publish_stats(figures)
                self.notifier.status(self._status_line())
            except Exception as exc:
                log.error("stats: %s", _one_line(exc))

    def flowing(self, within: float) -> bool:
        """True if some enabled pipeline received input in the last ``within`` seconds."""
        live = [ctx for ctx in self.contexts.values() if ctx.status != "finished"]  # a file that ended is not wedged
        if not live:
            return True
        now = time.monotonic()
        return any(ctx.last_input is not None and now - ctx.last_input <= within for ctx in live)

    async def _broker_watch_loop(self, interval: float = 2.0) -> None:
        """Keep the embedded broker alive: if it (or the local broker we reused) goes away, start ours again."""
        from .broker import LOOPBACK, port_open

        misses = 0
        while True:
            await asyncio.sleep(interval)
            if self.broker is None:
                continue
            up = await asyncio.to_thread(port_open, LOOPBACK, self.broker.port)
            misses = 0 if up else misses + 1
            if misses >= 2:
                log.warning("embedded broker on %s:%d is gone; starting it again", LOOPBACK, self.broker.port)
                try:
                    self.broker.stop_sync()
                    await self.broker.start()
                    misses = 0
                except Exception as exc:
                    log.error("embedded broker: %s", _one_line(exc))

    async def _watchdog_loop(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            if self.flowing(within=2 * interval):
                self.notifier.watchdog()
            else:
                log.warning("watchdog: no frames or audio for %.0fs; not pinging systemd", 2 * interval)

    def _status_line(self) -> str:
        parts = [f"{name} {ctx.status}" for name, ctx in self.contexts.items()]
        parts.append(f"model {self.model.info.get('name')}")
        parts.append("mqtt " + ("connected" if self.link is not None and self.link.connected else "offline"))
        return ", ".join(parts)

    def _flush_state_file(self) -> None:
        """A small record of the last count and model (rare writes only)."""
        try:
            atomic_write_json(
                self.config.state_dir / "daemon-state.json",
                {"count": self.count_state, "model": self.model.info, "saved_at": round(time.time(), 3)},
            )
        except Exception as exc:
            log.warning("could not write daemon state: %s", _one_line(exc))

    # -------------------------------------------------------------- signals
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
