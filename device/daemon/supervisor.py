"""The daemon's composition root: builds the pieces, runs them until stopped.

:mod:`.runner` runs the pipelines (restarts, backoff), :mod:`.model_holder`
hot-swaps the sound model, :mod:`.ledger` keeps the published count,
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..audio.events import SoundEvent  # the one event type, from detector to MQTT
from .broker import EmbeddedBroker, embedded_broker_for, watch_broker
from .config import Config, ConfigError, load_config
from .errors import one_line
from .ledger import CountLedger, RepUpdate
from .memory import release_free_heap
from .model_holder import ModelHolder
from .mqtt import MqttLink
from .publisher import Publisher
from .runner import Backoff, PipelineFactory, PipelineSet
from .state_file import save_state
from .systemd import Notifier
from .telemetry import Stats, Telemetry, flowing, status_line, watchdog

log = logging.getLogger("cadence.daemon")

# the config sections each pipeline reads: the first has its source and `enabled`; a change restarts it
READS = {"vision": ("camera",), "audio": ("microphone", "sound")}
SOURCE_KEY = {"camera": "source", "microphone": "device"}


def _hint(name: str) -> str:
    section = READS.get(name, ("microphone",))[0]
    return (f"(to use a file instead, set [{section}] {SOURCE_KEY[section]} = \"FILE\"; "
            f"to switch it off, [{section}] enabled = false)")


class Supervisor:
    """Runs the daemon until stopped. ``factories`` maps pipeline names to factories
    (``cadence run`` passes the real ones); a disabled section's pipeline does not
    run. ``model_loader`` loads the sound model (None: no model is loaded)."""

    def __init__(
        self,
        config: Config,
        *,
        factories: Mapping[str, PipelineFactory],
        config_path: str | os.PathLike[str] | None = None,
        model_loader: Callable[[Path], Any] | None = None,
        notifier: Notifier | None = None,
        restart_min: float = Backoff.minimum,
        restart_max: float = Backoff.maximum,
        use_embedded_broker: bool = True,
    ) -> None:
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self._factories = dict(factories)
        self.notifier = notifier or Notifier()
        self.use_embedded_broker = use_embedded_broker
        self.broker: EmbeddedBroker | None = None
        self.model = ModelHolder(config.sound_model_path, model_loader)
        self.ledger = CountLedger()
        self.publisher = Publisher(on_command=self._on_command, labels=lambda: self.model.labels)
        self.telemetry = Telemetry()
        self.pipelines = PipelineSet(config=lambda: self.config, model=self.model, on_output=self._on_output,
                                     on_change=self._announce_pipelines, hint=_hint,
                                     backoff=lambda: Backoff(restart_min, restart_max))
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
        """Start everything, run until :meth:`request_stop`, shut down cleanly."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        try:
            self.broker = await embedded_broker_for(self.config.mqtt, None, allowed=self.use_embedded_broker)
            await self.model.check(force=True)
            self._connect(loop)
            if self.model.info.get("last_error"):
                self.publisher.error(self.model.info["last_error"])
            await self.pipelines.apply(self.factories())
            self._announce_pipelines()
            self.stats()  # prime the CPU and fps baselines
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

    def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        """A new link, and the retained state it starts with."""
        self.publisher.start(self.config, loop)
        self.publisher.model(self.model.info)
        self.publisher.count(self.ledger.state)

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        for task in self._aux:
            task.cancel()
        await self.pipelines.stop_all()
        for task in self._aux:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for status in self.pipelines.statuses.values():
            status.status = "stopped"
        save_state(self.config.state_dir, self.ledger.state, self.model.info)
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
        self.publisher.pipelines(self.pipelines.statuses)

    def _on_model_changed(self) -> None:
        self.publisher.model(self.model.info)
        if not self.model.failed:
            self.publisher.refresh_discovery()
        elif self.model.info.get("last_error"):
            self.publisher.error(self.model.info["last_error"])

    def _on_command(self, name: str, command: Any) -> None:
        if name == "reset_count":
            self.reset_count()
        elif name == "reload":
            what = getattr(command, "what", "all")
            asyncio.ensure_future(self.reload(config=what in ("all", "config"), models=what in ("all", "models")))

    def reset_count(self) -> None:
        """Start counting from zero (the counter keeps running underneath)."""
        self.publisher.count(self.ledger.reset())
        save_state(self.config.state_dir, self.ledger.state, self.model.info)
        log.info("count reset")

    # ---------------------------------------------------------------- reload
    async def reload(self, *, config: bool = True, models: bool = True) -> None:
        """SIGHUP / cmd/reload: re-read the config, reload the sound model.
        An invalid new config is reported on ``error`` and the running one kept."""
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
            self.broker = await embedded_broker_for(new.mqtt, self.broker, allowed=self.use_embedded_broker)
            self._connect(asyncio.get_running_loop())
        changed = {name for name, sections in READS.items() if any(getattr(new, s) != getattr(old, s) for s in sections)}
        await self.pipelines.apply(self.factories(), restart=changed)
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
