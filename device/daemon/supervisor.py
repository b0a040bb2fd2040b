"""The daemon's composition root: builds the pieces, runs them until stopped.

- :mod:`.runner`       each pipeline, restarted with backoff (vision, audio)
- :mod:`.model_holder` the sound model, hot-swapped when its file changes
- :mod:`.ledger`       the published count, monotonic over counter restarts
- :mod:`.telemetry`    stats, the watchdog's decision, the status line
- :mod:`.publisher`    everything said on MQTT (over :mod:`.mqtt`)
- :mod:`.broker`       the embedded broker when no external one is set

The supervisor wires outputs to the ledger and the publisher, commands to
actions, and handles signals and reload. No piece holds the supervisor: each
gets the callables and objects it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..audio.events import SoundEvent  # the one event type, from detector to MQTT
from ..components import atomic_write_json
from . import runner
from .broker import EmbeddedBroker, watch_broker
from .config import Config, ConfigError, load_config
from .errors import one_line
from .ledger import CountLedger, RepUpdate
from .memory import release_free_heap
from .model_holder import ModelHolder
from .mqtt import MqttLink
from .publisher import Publisher, count_payload
from .runner import Backoff, PipelineFactory, PipelineRunner, PipelineStatus
from .systemd import Notifier
from .telemetry import Stats, Telemetry, flowing, status_line, watchdog

log = logging.getLogger("cadence.daemon")

# the config sections each pipeline reads (the first holds its source and `enabled`)
READS = {"vision": ("camera",), "audio": ("microphone", "sound")}
SOURCE_KEY = {"camera": "source", "microphone": "device"}


def _sections(name: str) -> tuple[str, ...]:
    return READS.get(name, ("microphone",))


def _hint(name: str) -> str:
    section = _sections(name)[0]
    return (f"(to use a file instead, set [{section}] {SOURCE_KEY[section]} = \"FILE\"; "
            f"to switch it off, [{section}] enabled = false)")


class Supervisor:
    """Runs the daemon until stopped; see the module docstring.

    ``factories`` maps pipeline names to factories (``cadence run`` passes the
    real vision and audio pipelines); those whose section is disabled do not
    run. ``model_loader`` loads the sound model (None: no model is loaded).
    """

    def __init__(
        self,
        config: Config,
        *,
        factories: Mapping[str, PipelineFactory],
        config_path: str | os.PathLike[str] | None = None,
        model_loader: Callable[[Path], Any] | None = None,
        notifier: Notifier | None = None,
        restart_min: float = 1.0,
        restart_max: float = 60.0,
        use_embedded_broker: bool = True,
    ) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self._factories = dict(factories)
        self.notifier = notifier or Notifier()
        self.restart_min = restart_min
        self.restart_max = restart_max
        self.use_embedded_broker = use_embedded_broker
        self.model = ModelHolder(config.sound_model_path, model_loader)
        self.ledger = CountLedger()
        self.publisher = Publisher(on_command=self._on_command, labels=lambda: self.model.labels)
        self.telemetry = Telemetry()
        self.broker: EmbeddedBroker | None = None
        self.contexts: dict[str, runner.PipelineContext] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._aux: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    # ----------------------------------------------------------------- views
    @property
    def link(self) -> MqttLink | None:
        return self.publisher.link

    @property
    def pipelines(self) -> dict[str, PipelineStatus]:
        return {name: ctx.status for name, ctx in self.contexts.items()}

    def running(self) -> set[str]:
        """The pipelines whose task is running (or waiting to restart)."""
        return set(self._tasks)

    def factories(self) -> dict[str, PipelineFactory]:
        """The factories of the enabled pipelines."""
        return {name: f for name, f in self._factories.items()
                if name not in READS or getattr(self.config, READS[name][0]).enabled}

    def stats(self) -> Stats:
        return self.telemetry.sample(self.pipelines, model=self.model.name, delivery=self.publisher.delivery())

    def flowing(self, within: float) -> bool:
        return flowing(self.pipelines, within)

    def status_line(self) -> str:
        return status_line(self.pipelines, model=self.model.name, connected=self.publisher.connected)

    # ------------------------------------------------------------------- run
    async def run(self) -> None:
        """Start everything, run until :meth:`request_stop`, shut down cleanly."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        try:
            await self._start_broker()
            await self.model.check(force=True)
            self.publisher.start(self.config, loop)
            self.publisher.model(self.model.info)
            if self.model.info.get("last_error"):
                self.publisher.error(self.model.info["last_error"])
            self.publisher.count(self.ledger.state)
            for name, factory in self.factories().items():
                self._start_pipeline(name, factory)
            self._announce_pipelines()
            self._aux = [
                asyncio.create_task(self._stats_loop(), name="stats"),
                asyncio.create_task(self.model.watch(lambda: self.config.sound.reload_check_seconds,
                                                     self._on_model_changed), name="model-watch"),
                asyncio.create_task(watchdog(self.notifier, self.flowing), name="watchdog"),
                asyncio.create_task(watch_broker(lambda: self.broker), name="broker-watch"),
            ]
            self.notifier.ready(self.status_line())
            log.info("cadence running as %s (topics under %s/)", self.config.device.id, self.config.base_topic)
            await self._stop.wait()
        finally:
            await self._shutdown()
            self._remove_signals(loop)

    def request_stop(self) -> None:
        self._stop.set()

    async def _start_broker(self) -> None:
        if self.config.mqtt.embedded and self.use_embedded_broker:
            self.broker = EmbeddedBroker(self.config.mqtt.port)
            await self.broker.start()

    def _start_pipeline(self, name: str, factory: PipelineFactory) -> None:
        ctx = self.contexts.get(name) or runner.PipelineContext(
            name, lambda: self.config, model=self.model, on_change=self._announce_pipelines)
        ctx.status.status = "starting"
        self.contexts[name] = ctx
        run = PipelineRunner(ctx, factory, on_output=functools.partial(self._on_output, name),
                             on_change=self._announce_pipelines, hint=_hint(name),
                             backoff=Backoff(self.restart_min, self.restart_max))
        self._tasks[name] = asyncio.create_task(run.run(), name=f"pipeline-{name}")

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
        for status in self.pipelines.values():
            status.status = "stopped"
        self._save_state()
        if self.publisher.link is not None:
            self._announce_pipelines()
            await asyncio.to_thread(self.publisher.stop)
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        self.notifier.close()
        log.info("cadence stopped")

    # ------------------------------------------------------- outputs, events
    def _on_output(self, name: str, output: Any) -> None:
        if isinstance(output, RepUpdate):
            state = self.ledger.update(output)
            if state is not None:
                self.publisher.reps(state, output.media_time)
        elif isinstance(output, SoundEvent):
            self.publisher.sound(output, self.model.name)
            log.info("sound %s (%.2f)", output.label, output.confidence)
        elif output is not None:
            log.debug("pipeline %s: ignoring output %r", name, output)

    def _announce_pipelines(self) -> None:
        self.publisher.pipelines(self.pipelines)

    def _on_model_changed(self) -> None:
        self.publisher.model(self.model.info)
        if self.model.failed:
            if self.model.info.get("last_error"):
                self.publisher.error(self.model.info["last_error"])
        else:
            self.publisher.refresh_discovery()

    def _on_command(self, name: str, command: Any) -> None:
        if name == "reset_count":
            self.reset_count()
        elif name == "reload":
            what = getattr(command, "what", "all")
            asyncio.ensure_future(self.reload(config=what in ("all", "config"), models=what in ("all", "models")))

    def reset_count(self) -> None:
        """Start counting from zero (the counter keeps running underneath)."""
        self.publisher.count(self.ledger.reset())
        self._save_state()
        log.info("count reset")

    def _save_state(self) -> None:
        """A small record of the last count and model (rare writes only)."""
        try:
            atomic_write_json(
                self.config.state_dir / "daemon-state.json",
                {"count": count_payload(self.ledger.state), "model": self.model.info, "saved_at": round(time.time(), 3)},
            )
        except Exception as exc:
            log.warning("could not write daemon state: %s", one_line(exc))

    # ---------------------------------------------------------------- reload
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
                    self.publisher.error(message)
                    return
                await self._apply_config(new)
            if models and await self.model.check(force=True) is not None:
                self._on_model_changed()
        finally:
            self.notifier.ready(self.status_line())

    async def _apply_config(self, new: Config) -> None:
        old = self.config
        if new == old:
            return
        self.config = new
        self.model.path = new.sound_model_path
        if new.mqtt != old.mqtt or new.device != old.device:
            log.info("reload: MQTT settings changed, reconnecting")
            await asyncio.to_thread(self.publisher.stop)
            if self.broker is not None and (new.mqtt.port != old.mqtt.port or not new.mqtt.embedded):
                await self.broker.stop()
                self.broker = None
            if self.broker is None:
                await self._start_broker()
            self.publisher.start(new, asyncio.get_running_loop())
            self.publisher.model(self.model.info)
            self.publisher.count(self.ledger.state)
        factories = self.factories()
        for name in list(self._tasks):
            changed = any(getattr(new, s, None) != getattr(old, s, None) for s in READS.get(name, ()))
            if name not in factories or changed:
                await self._stop_pipeline(name)
                if name not in factories:
                    self.contexts.pop(name, None)
        for name, factory in factories.items():
            if name not in self._tasks:
                self._start_pipeline(name, factory)
        self._announce_pipelines()
        log.info("reload: configuration applied")

    # --------------------------------------------------------------- signals
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    async def _stats_loop(self) -> None:
        self.stats()  # prime the CPU and fps baselines
        while True:
            await asyncio.sleep(self.config.mqtt.stats_interval)
            try:
                release_free_heap()
                self.publisher.stats(self.stats())
                self.notifier.status(self.status_line())
            except Exception as exc:
                log.error("stats: %s", one_line(exc))


class PipelineContext(runner.PipelineContext):
    """Transitional: the old ``PipelineContext(name, supervisor)`` spelling, kept
    until pipelines.py and its tests import :mod:`.runner`; it keeps no reference
    to the supervisor. Remove it (and these re-exports) then."""

    def __init__(self, name: str, supervisor: Supervisor) -> None:
        super().__init__(name, supervisor.config, model=supervisor.model)


__all__ = ["PipelineContext", "RepUpdate", "SoundEvent", "Supervisor"]
