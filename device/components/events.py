"""One progress/metrics event type that every long operation reports.

Long operations (feature extraction, training epochs, evaluation) accept an
``on_event`` callback and call it with :class:`Event` objects, so a CLI can draw
a progress bar, a daemon can log, and a test can record — all from one shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Event:
    """Progress of one operation.

    ``origin`` names the operation (``"preprocess"``, ``"train"``, ...),
    ``item_count`` how many items are done, ``total`` how many there are (None
    when unknown), ``metrics`` any figures so far (loss, accuracy, ...).
    """

    origin: str
    item_count: int
    total: int | None = None
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """Share done in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.item_count / self.total)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


EventHandler = Callable[[Event], None]


def emit(
    on_event: EventHandler | None,
    origin: str,
    item_count: int,
    total: int | None = None,
    **metrics: Any,
) -> None:
    """Report an event if someone listens; a no-op otherwise."""
    if on_event is not None:
        on_event(Event(origin, item_count, total, dict(metrics)))


class EventRecorder:
    """An ``on_event`` callback that keeps every event (for tests and reports)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, origin: str) -> list[Event]:
        return [e for e in self.events if e.origin == origin]
