"""Slow loads (models, extractors) off the event loop, without holding up a stop.

``asyncio.to_thread`` runs in the loop's default executor, which
``asyncio.run`` joins on the way out (and Python joins its threads at exit):
a SIGTERM during a ten-second model load logged "stopped" and then waited ten
seconds. A daemon thread is abandoned instead — the process stops at once and
the half-loaded model goes with it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``await fn(*args)`` run in a new daemon thread; cancelling the await abandons it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task, whatever it is
            error = exc
            _call_soon(loop, lambda: settle(lambda: future.set_exception(error)))
        else:
            _call_soon(loop, lambda: settle(lambda: future.set_result(result)))

    threading.Thread(target=work, name=f"load-{getattr(fn, '__name__', 'fn')}", daemon=True).start()
    return await future


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass
