"""Running the pipelines: the context each sees, and restarts with backoff.

A pipeline is a *factory*: a function taking a :class:`PipelineContext` and
returning an async iterator of outputs (``RepUpdate``, ``SoundEvent``). The
:class:`PipelineRunner` runs it until cancelled; when it fails (camera
unplugged, microphone gone) it is started again after an exponential backoff
while the other pipelines keep running. A source that simply ends (a video
file without ``loop``) is ``finished``, not restarted.

The context is deliberately narrow — the current config, the model holders
(sound, exercise), the pipeline's own status and counters, a cache kept across restarts — so a
pipeline can run anywhere (tests, CLIs) with ``PipelineContext(name, config)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import Any

from .config import Config
from .errors import one_line
from .model_holder import ModelHolder

log = logging.getLogger("cadence.daemon")

PipelineFactory = Callable[["PipelineContext"], AsyncIterator[Any]]


def _nothing() -> None:
    return None


@dataclasses.dataclass
class PipelineStatus:
    """What the daemon knows of one pipeline (for ``state/pipelines``, stats, the watchdog)."""

    status: str = "starting"  # starting, running, restarting in Ns, finished, stopped
    restarts: int = 0
    last_error: str | None = None
    last_input: float | None = None  # monotonic time of the last frame/chunk
    started: float | None = None  # monotonic time of the last (re)start
    detail: str | None = None  # e.g. "waiting for a sound model"
    counters: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """A source that ended on its own (a file): not wedged, just done."""
        return self.status == "finished"

    def flowing(self, now: float, within: float) -> bool:
        """True if input arrived in the last ``within`` seconds (per-pipeline health)."""
        return self.last_input is not None and now - self.last_input <= within


class PipelineContext:
    """What a running pipeline sees: ``name``, ``config``, ``model`` (the sound
    model's holder), ``exercise_model`` (the exercise model's holder; None: the
    shipped model, loaded by the recogniser), ``cache``, and the calls that report
    progress (``heartbeat``, ``count``, ``set``, ``set_detail``).

    ``config`` is a :class:`Config` or a callable returning the current one
    (the daemon's changes on reload). ``on_change`` is called when the status
    or detail changes, so the daemon can announce it.
    """

    def __init__(
        self,
        name: str,
        config: Config | Callable[[], Config],
        *,
        model: ModelHolder | None = None,
        exercise_model: ModelHolder | None = None,
        status: PipelineStatus | None = None,
        on_change: Callable[[], None] = _nothing,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._config = config if callable(config) else (lambda: config)
        self.model = model if model is not None else ModelHolder(self.config.sound_model_path, None)
        self.exercise_model = exercise_model
        self.status = status if status is not None else PipelineStatus()
        self.cache: dict[Any, Any] = {}  # expensive objects a pipeline keeps across its restarts
        self._requests: set[str] = set()  # asked of the pipeline from outside (e.g. "snapshot")
        self._on_change = on_change
        self._clock = clock

    @property
    def config(self) -> Config:
        return self._config()

    @property
    def counters(self) -> dict[str, float]:
        return self.status.counters

    def heartbeat(self, n: int = 1, counter: str = "inputs") -> None:
        """Call for each frame / audio chunk: proves the source flows."""
        self.status.last_input = self._clock()
        self.count(counter, n)
        if self.status.status != "running":
            self.status.status = "running"
            self._on_change()

    def count(self, counter: str, n: float = 1) -> None:
        self.status.counters[counter] = self.status.counters.get(counter, 0) + n

    def set(self, counter: str, value: float) -> None:
        self.status.counters[counter] = value

    def request(self, what: str) -> None:
        """Ask the running pipeline for something (it takes it when it can; repeats coalesce)."""
        self._requests.add(what)

    def take_request(self, what: str) -> bool:
        """True once per :meth:`request` (the pipeline's side)."""
        if what in self._requests:
            self._requests.discard(what)
            return True
        return False

    def set_detail(self, detail: str | None) -> None:
        if detail != self.status.detail:
            self.status.detail = detail
            self._on_change()


@dataclasses.dataclass
class Backoff:
    """Restart delays: ``minimum``, doubling up to ``maximum``; a run that lasted
    longer than ``healthy_after`` seconds was fine, so the next delay starts over."""

    minimum: float = 1.0
    maximum: float = 60.0
    healthy_after: float = 60.0

    def __post_init__(self) -> None:
        self._next = self.minimum

    def delay(self, ran_for: float) -> float:
        """The wait before the next start, after a run that failed after ``ran_for`` seconds."""
        if ran_for > self.healthy_after:
            self._next = self.minimum
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay


class PipelineRunner:
    """Runs ``factory(ctx)`` until cancelled, passing each output to ``on_output``.

    ``on_change`` is called when the status changes (restarting, finished);
    ``hint`` is logged once, after the first failure (how to live without the
    device). ``sleep`` and ``clock`` are injectable so backoff is tested without waiting.
    """

    def __init__(
        self,
        ctx: PipelineContext,
        factory: PipelineFactory,
        *,
        on_output: Callable[[Any], None],
        on_change: Callable[[], None] = _nothing,
        backoff: Backoff | None = None,
        hint: str | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.factory = factory
        self.on_output = on_output
        self.on_change = on_change
        self.backoff = backoff or Backoff()
        self.hint = hint
        self._sleep = sleep
        self._clock = clock

    async def run(self) -> None:
        status = self.ctx.status
        while True:
            started = status.started = self._clock()
            status.status = "starting"
            try:
                async for output in self.factory(self.ctx):
                    self.on_output(output)
                status.status = "finished"
                log.info("pipeline %s: source ended", self.ctx.name)
                self.on_change()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                status.restarts += 1
                status.last_error = one_line(exc)
                delay = self.backoff.delay(self._clock() - started)
                status.status = f"restarting in {delay:g}s"
                log.warning("pipeline %s failed (%s); restarting in %gs", self.ctx.name, status.last_error, delay)
                if status.restarts == 1 and self.hint:  # say once how to live without the device
                    log.info("%s", self.hint)
                self.on_change()
                await self._sleep(delay)


class PipelineSet:
    """The daemon's pipelines by name, each run by a :class:`PipelineRunner` in its
    own task. A pipeline keeps its context (status, counters, cache) across its
    restarts, and across being stopped and started again on a reload."""

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        model: ModelHolder,
        exercise_model: ModelHolder | None = None,
        on_output: Callable[[str, Any], None],
        on_change: Callable[[], None] = _nothing,
        backoff: Callable[[], Backoff] = Backoff,
        hint: Callable[[str], str | None] = lambda name: None,
    ) -> None:
        self._config = config
        self._model = model
        self._exercise_model = exercise_model
        self._on_output = on_output
        self._on_change = on_change
        self._backoff = backoff
        self._hint = hint
        self.contexts: dict[str, PipelineContext] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def statuses(self) -> dict[str, PipelineStatus]:
        return {name: ctx.status for name, ctx in self.contexts.items()}

    def running(self) -> set[str]:
        """The pipelines whose task runs (or waits to restart)."""
        return set(self._tasks)

    def start(self, name: str, factory: PipelineFactory) -> None:
        ctx = self.contexts.get(name) or PipelineContext(name, self._config, model=self._model,
                                                         exercise_model=self._exercise_model, on_change=self._on_change)
        ctx.status.status = "starting"
        self.contexts[name] = ctx
        runner = PipelineRunner(ctx, factory, on_output=lambda output: self._on_output(name, output),
                                on_change=self._on_change, backoff=self._backoff(), hint=self._hint(name))
        self._tasks[name] = asyncio.create_task(runner.run(), name=f"pipeline-{name}")

    async def stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def stop_all(self) -> None:
        for name in list(self._tasks):
            await self.stop(name)

    async def apply(self, factories: Mapping[str, PipelineFactory], restart: Collection[str] = ()) -> None:
        """Run exactly ``factories``: stop the others (forgetting them), restart those
        named in ``restart`` (their settings changed), start the missing ones."""
        for name in list(self._tasks):
            if name not in factories or name in restart:
                await self.stop(name)
                if name not in factories:
                    self.contexts.pop(name, None)
        for name, factory in factories.items():
            if name not in self._tasks:
                self.start(name, factory)
