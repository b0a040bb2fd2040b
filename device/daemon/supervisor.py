"""The daemon's composition root: builds the pieces, runs them until stopped.

:mod:`.runner` runs the pipelines (restarts, backoff), :mod:`.model_holder`
hot-swaps the sound and the exercise model, :mod:`.ledger` keeps the published count,
:mod:`.telemetry` computes stats and the watchdog's decision, :mod:`.publisher`
says it all on MQTT, :mod:`.broker` is the embedded broker. The supervisor
wires outputs to the ledger and the publisher and commands to actions, and
handles signals and reload. No piece holds the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..audio.events import SoundEvent  # the one event type, from detector to MQTT
from .broker import EmbeddedBroker, embedded_broker_for, watch_broker
from .commands import Coalescer, ReloadCommand
from .config import Config, ConfigError, parse_config, read_config_data, reload_refusal
from .errors import one_line
from .ledger import RepUpdate
from .memory import release_free_heap
from .model_holder import ModelHolder
from .mqtt import MqttLink
from .publisher import Publisher
from .runner import Backoff, PipelineFactory, PipelineSet
from .snapshot import Snapshot
from .state_file import Saver, count_state, load_saved, record, restore, save_state, seconds_to_midnight, today
from .systemd import Notifier
from .telemetry import Stats, Telemetry, flowing, status_line, watchdog

log = logging.getLogger("cadence.daemon")

# the config sections each pipeline reads: the first has its source and `enabled`; a change restarts it
READS = {"vision": ("camera",), "audio": ("microphone", "sound")}
SOURCE_KEY = {"camera": "source", "microphone": "device"}
HEALTH_INTERVAL = 5.0  # seconds between looks at whether each pipeline still delivers
SAVE_POLL = 1.0  # seconds between looks at whether the count should be saved


def _hint(name: str, config: Config) -> str:
    """How to live without the pipeline's device (said once, after its first failure)."""
    section = READS.get(name, ("microphone",))[0]
    key = SOURCE_KEY[section]
    source = getattr(config, section)
    switch_off = f"to switch it off, [{section}] enabled = false"
    if source.is_file:
        return f"({section} source is the file {getattr(source, key)}: check that it is complete and readable; {switch_off})"
    return f"(to use a file instead, set [{section}] {key} = \"FILE\"; {switch_off})"


def _read_data(path: Path | None) -> dict[str, Any]:
    """The running config file's keys (what a reload is compared with); {} without one."""
    if path is None:
        return {}
    try:
        return read_config_data(path)
    except ConfigError:
        return {}


class Supervisor:
    """Runs the daemon until stopped. ``factories`` maps pipeline names to factories
    (``cadence run`` passes the real ones); a disabled section's pipeline does not
    run. ``model_loader`` loads the sound model (None: no model is loaded);
    ``exercise_loader`` the exercise model, with ``shipped_exercise_model()``
    giving the shipped one's file while the owner has none (None: the
    recogniser loads the shipped model itself, nothing is swapped).
    ``today`` names the local date (a day's count ends at midnight)."""

    def __init__(
        self,
        config: Config,
        *,
        factories: Mapping[str, PipelineFactory],
        config_path: str | os.PathLike[str] | None = None,
        model_loader: Callable[[Path], Any] | None = None,
        exercise_loader: Callable[[Path], Any] | None = None,
        shipped_exercise_model: Callable[[], Path] | None = None,
        notifier: Notifier | None = None,
        restart_min: float = Backoff.minimum,
        restart_max: float = Backoff.maximum,
        use_embedded_broker: bool = True,
        today: Callable[[], str] = today,
    ) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self._config_data = _read_data(self.config_path)
        self._factories = dict(factories)
        self.notifier = notifier or Notifier()
        self.use_embedded_broker = use_embedded_broker
        self.broker: EmbeddedBroker | None = None
        self.model = ModelHolder(config.sound_model_path, model_loader, kind="sound",
                                 hint="no sound events until one is trained (cadence retrain sound)")
        self.exercise_model = ModelHolder(config.exercise_model_path, exercise_loader, kind="exercise",
                                          fallback=shipped_exercise_model)
        self.models = {"sound": self.model, "exercise": self.exercise_model}
        self._today = today
        # the day's count survives restarts and power cuts
        self.ledger = restore(load_saved(config.state_dir), day=today(), now=time.time(),
                              rest_time=config.camera.rest_time)
        if self.ledger.state.count or self.ledger.state.set:
            log.info("counting on from %g repetitions today (set %d)", self.ledger.state.count, self.ledger.state.set)
        self.saver = Saver()
        self.commands = Coalescer({"reset_count": self._cmd_reset, "reload": self._cmd_reload,
                                   "snapshot": self._cmd_snapshot})
        self.publisher = Publisher(on_command=self.commands.submit, on_published_count=self._on_published_count,
                                   labels=lambda: self.model.labels,
                                   exercises=lambda: self.exercise_model.labels)
        self.telemetry = Telemetry()
        self.pipelines = PipelineSet(config=lambda: self.config, model=self.model,
                                     exercise_model=self.exercise_model if exercise_loader is not None else None,
                                     on_output=self._on_output,
                                     on_change=self._announce_pipelines, hint=lambda name: _hint(name, self.config),
                                     backoff=lambda: Backoff(restart_min, restart_max))
        self._errors_seen: dict[str, str | None] = {}
        self._aux: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    @property
    def link(self) -> MqttLink | None:
        return self.publisher.link

    def factories(self) -> dict[str, PipelineFactory]:
        """The factories of the enabled pipelines."""
        return {name: f for name, f in self._factories.items()
                if name not in READS or getattr(self.config, READS[name][0]).enabled}

    def stats(self) -> Stats:
        return self.telemetry.sample(self.pipelines.statuses, model=self.model.name, delivery=self.publisher.delivery())

    def flowing(self, within: float) -> bool:
        return flowing(self.pipelines.statuses, within)

    def status_line(self) -> str:
        return status_line(self.pipelines.statuses, model=self.model.name, connected=self.publisher.connected)

    # ------------------------------------------------------------------- run
    async def run(self) -> None:
        """Start everything, run until :meth:`request_stop`, shut down cleanly —
        promptly also when the stop comes while starting (e.g. during a model load)."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        try:
            if await self._start(loop):
                await self._stop.wait()
        finally:
            await self._shutdown()
            self._remove_signals(loop)

    async def _unless_stopped(self, step: Awaitable[Any]) -> bool:
        """Run ``step`` unless a stop comes first (then it is abandoned); True if it ran."""
        task, stop = asyncio.ensure_future(step), asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            task.result()
            return True
        log.info("stop requested while starting")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False

    async def _start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Start the pieces; False if a stop came first."""
        self.broker = await embedded_broker_for(self.config.mqtt, None, allowed=self.use_embedded_broker)
        for holder in self.models.values():
            if not await self._unless_stopped(holder.check(force=True)):  # a model may take long to load
                return False
        self._connect(loop)
        for holder in self.models.values():
            if holder.info.get("last_error"):
                self.publisher.error(holder.info["last_error"])
        await self.pipelines.apply(self.factories())
        self._announce_pipelines()
        self.stats()  # prime the CPU and fps baselines
        self._aux = [
            asyncio.create_task(self._stats_loop(), name="stats"),
            asyncio.create_task(self.model.watch(lambda: self.config.sound.reload_check_seconds,
                                                 lambda: self._on_model_changed(self.model)), name="model-watch"),
            asyncio.create_task(self.exercise_model.watch(lambda: self.config.exercise.reload_check_seconds,
                                                          lambda: self._on_model_changed(self.exercise_model)),
                                name="exercise-model-watch"),
            asyncio.create_task(watchdog(self.notifier, self.flowing), name="watchdog"),
            asyncio.create_task(watch_broker(lambda: self.broker), name="broker-watch"),
            asyncio.create_task(self._every(HEALTH_INTERVAL, self._announce_pipelines), name="health"),
            asyncio.create_task(self._every(SAVE_POLL, self._save_if_due), name="save"),
            asyncio.create_task(self._midnight_loop(), name="midnight"),
        ]
        self.notifier.ready(self.status_line())
        log.info("cadence running as %s (topics under %s/)", self.config.device.id, self.config.base_topic)
        return True

    def request_stop(self) -> None:
        self._stop.set()

    def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        """A new link, and the retained state it starts with."""
        self.publisher.start(self.config, loop)
        for kind, holder in self.models.items():
            self.publisher.model(holder.info, kind)
        self.publisher.count(self.ledger.state)
        if not self.config.snapshot.enabled:
            self.publisher.clear_snapshot()  # no picture stays on the broker once snapshots are off

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        self.commands.cancel()
        for task in self._aux:
            task.cancel()
        await self.pipelines.stop_all()
        for task in self._aux:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for status in self.pipelines.statuses.values():
            status.status = "stopped"
        self._save()
        if self.publisher.link is not None:
            self._announce_pipelines()
            await asyncio.to_thread(self.publisher.stop)
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        self.notifier.close()
        log.info("cadence stopped")

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.mqtt.stats_interval)
            try:
                release_free_heap()
                self.publisher.stats(self.stats())
                self.notifier.status(self.status_line())
            except Exception as exc:
                log.error("stats: %s", one_line(exc))

    @staticmethod
    async def _every(seconds: float, action: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = action()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:  # a periodic chore must never die
                log.error("%s: %s", getattr(action, "__name__", "periodic"), one_line(exc))

    # ------------------------------------------------------------ the count
    def _record(self) -> dict[str, Any]:
        """What is saved now: the day's count and the model."""
        return record(self.ledger.state, resting=self.ledger.resting, model=self.model.info, now=time.time())

    def _save(self) -> None:
        """Write the day's count now (atomic; a failure is logged)."""
        save_state(self.config.state_dir, self._record())
        self.saver.written()

    async def _save_if_due(self) -> None:
        if self.saver.due(self.config.storage.save_interval):
            saved = self._record()
            self.saver.written()
            await asyncio.to_thread(save_state, self.config.state_dir, saved)

    def _on_published_count(self, published: dict[str, Any]) -> None:
        """The retained ``state/count`` the broker holds: at the first connection, what was counted after the
        last save before a kill -9 or a power cut is in it and is added back (the count never steps back, which
        Home Assistant's daily statistics would read as a new meter; the ledger looks once)."""
        day = published.get("day")
        before = self.ledger.state.count
        adopted = self.ledger.adopt(count_state(published, day if isinstance(day, str) else None))
        if adopted is not None:
            log.info("counting on from %g repetitions today: %g more were published before the daemon stopped "
                     "than were saved", adopted.count, round(adopted.count - before, 3))
            self.publisher.count(adopted)
            self.saver.changed(urgent=True)

    def _check_day(self) -> None:
        """At local midnight the day's count starts again from zero."""
        day = self._today()
        if day != self.ledger.day:
            log.info("a new day (%s): the count starts from zero", day)
            self.publisher.count(self.ledger.new_day(day))
            self.saver.changed(urgent=True)

    async def _midnight_loop(self) -> None:
        while True:  # look at least every minute: the clock may jump (NTP on a Pi without a clock)
            await asyncio.sleep(min(60.0, seconds_to_midnight() + 0.5))
            self._check_day()

    def reset_count(self) -> None:
        """Start counting from zero (the counter keeps running underneath)."""
        self.publisher.count(self.ledger.reset())
        self.saver.changed(urgent=True)
        log.info("count reset")

    # ------------------------------------------------------- outputs, events
    def _on_output(self, name: str, output: Any) -> None:
        if isinstance(output, RepUpdate):
            self._check_day()
            was_resting, was_set = self.ledger.resting, self.ledger.state.set
            state = self.ledger.update(output)
            if state is not None:
                self.publisher.reps(state, output.media_time)
                # a set ended (a pause, or another exercise began without one): save it now
                ended = self.ledger.resting or 0 < was_set < state.set
                self.saver.changed(urgent=ended and not was_resting)
        elif isinstance(output, SoundEvent):
            self.publisher.sound(output, self.model.name)
            self.telemetry.sound_event(output.label)
            log.info("sound %s (%.2f)", output.label, output.confidence)
        elif isinstance(output, Snapshot):
            if self.config.snapshot.enabled:  # switched off meanwhile: the picture goes nowhere
                self.publisher.snapshot(output.jpeg)
                log.debug("snapshot: %d bytes%s", len(output.jpeg), " (requested)" if output.requested else "")
        elif output is not None:
            log.debug("pipeline %s: ignoring output %r", name, output)

    def _announce_pipelines(self) -> None:
        statuses = self.pipelines.statuses
        self.publisher.pipelines(statuses)
        for name, status in statuses.items():
            if status.last_error and status.last_error != self._errors_seen.get(name):
                self.publisher.remember_error(f"{name}: {status.last_error}")
            self._errors_seen[name] = status.last_error

    def _on_model_changed(self, holder: ModelHolder) -> None:
        self.publisher.model(holder.info, holder.kind)
        if not holder.failed:
            self.publisher.refresh_discovery()  # the labels may have changed: sound event types, exercise counts
        elif holder.info.get("last_error"):
            self.publisher.error(holder.info["last_error"])

    # -------------------------------------------------------------- commands
    async def _cmd_reset(self, batch: list[BaseModel]) -> None:
        self.reset_count()
        self.publisher.result("reset_count", True, "count reset", _ids(batch))

    async def _cmd_reload(self, batch: list[BaseModel]) -> None:
        whats = {getattr(command, "what", "all") for command in batch}
        ok, message, extra = await self.reload(config=bool(whats & {"all", "config"}),
                                               models=bool(whats & {"all", "models"}))
        self.publisher.result("reload", ok, message, _ids(batch), **extra)

    async def _cmd_snapshot(self, batch: list[BaseModel]) -> None:
        ctx = self.pipelines.contexts.get("vision")
        if not self.config.snapshot.enabled:
            ok, message = False, "snapshots are off ([snapshot] enabled = false in the configuration)"
        elif ctx is None or "vision" not in self.pipelines.running() or ctx.status.finished:
            ok, message = False, "the camera is not running"
        else:
            ctx.request("snapshot")
            ok, message = True, "a picture follows on state/snapshot"
        self.publisher.result("snapshot", ok, message, _ids(batch))

    # ---------------------------------------------------------------- reload
    async def reload(self, *, config: bool = True, models: bool = True) -> tuple[bool, str, dict[str, Any]]:
        """SIGHUP / cmd/reload: re-read the config, reload the models (sound, exercise).
        A config that is invalid, or looks half-saved, is reported on ``error`` and
        the running one kept. Returns (ok, what happened, details) for the answer."""
        self.notifier.reloading()
        ok, said, extra = True, [], {}
        try:
            if config:
                done, message = await self._reload_config()
                ok, extra["config"] = ok and done, message
                said.append(message)
            if models:
                for kind, holder in self.models.items():
                    outcome = await holder.check(force=True)
                    if outcome is not None:
                        self._on_model_changed(holder)
                    extra["model" if kind == "sound" else f"{kind}_model"] = holder.name
                    if outcome == "failed":
                        ok = False
                        said.append(str(holder.info.get("last_error")))
                    else:
                        said.append(f"{kind} model {holder.name}")
        finally:
            self.notifier.ready(self.status_line())
        return ok, "; ".join(said), extra

    async def _reload_config(self) -> tuple[bool, str]:
        if self.config_path is None:
            return True, "no configuration file: defaults kept"
        try:
            data = await asyncio.to_thread(read_config_data, self.config_path)
            new = parse_config(data, origin=str(self.config_path))
            refusal = reload_refusal(self._config_data, data, self.config, new)
            if refusal is not None:
                raise ConfigError(f"{self.config_path}: {refusal}")
        except ConfigError as exc:
            message = f"reload: {exc}; keeping the running configuration"
            log.error("%s", message)
            self.publisher.error(message)
            return False, message
        self._config_data = data
        return True, "configuration applied" if await self._apply_config(new) else "configuration unchanged"

    async def _apply_config(self, new: Config) -> bool:
        old = self.config
        if new == old:
            return False
        self.config = new
        self.model.path = new.sound_model_path
        self.exercise_model.path = new.exercise_model_path
        if new.mqtt != old.mqtt or new.device != old.device:
            log.info("reload: MQTT settings changed, reconnecting")
            await asyncio.to_thread(self.publisher.stop)
            self.broker = await embedded_broker_for(new.mqtt, self.broker, allowed=self.use_embedded_broker)
            self._connect(asyncio.get_running_loop())
        else:
            if old.snapshot.enabled and not new.snapshot.enabled:
                self.publisher.clear_snapshot()
            self.publisher.refresh_discovery()  # entities follow the config (pipelines, snapshots, allow-list)
        changed = {name for name, sections in READS.items() if any(getattr(new, s) != getattr(old, s) for s in sections)}
        await self.pipelines.apply(self.factories(), restart=changed)
        self._announce_pipelines()
        log.info("reload: configuration applied")
        return True

    # --------------------------------------------------------------- signals
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: self.commands.submit("reload", ReloadCommand()))

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def _ids(batch: list[BaseModel]) -> list[str | None]:
    return [getattr(command, "request_id", None) for command in batch]
