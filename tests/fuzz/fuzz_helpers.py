"""Shared parts of the fuzz tests: example counts, the per-target tally, and
what a "clear error" is.

``CADENCE_FUZZ_SCALE`` multiplies every target's example count (default 1:
the CI run, about a minute on 2 cores); e.g. ``CADENCE_FUZZ_SCALE=20`` for a
long run. The number of inputs each target tried is printed at the end of
the pytest run (and written as JSON to ``$CADENCE_FUZZ_REPORT`` if set).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable

from hypothesis import HealthCheck, settings

from device.components import CadenceError

SCALE = float(os.environ.get("CADENCE_FUZZ_SCALE", "1") or 1)

# target -> outcome -> count; outcome is "accepted" or the error class name
TALLY: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for one target: ``examples`` × CADENCE_FUZZ_SCALE inputs."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,  # nothing written into the checkout
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
    )


def record(target: str, outcome: str) -> None:
    TALLY[target][outcome] += 1


def assert_clear(exc: BaseException, mentions: Iterable[str], *, kinds: tuple[type, ...] = (CadenceError,)) -> str:
    """``exc`` is one of ``kinds`` and its message is one non-empty line naming one of ``mentions``."""
    assert isinstance(exc, kinds), f"unexpected {type(exc).__name__}: {exc!r}"
    text = str(exc)
    assert text.strip(), f"{type(exc).__name__} with an empty message"
    assert "\n" not in text and "\r" not in text, f"message is not one line: {text!r}"
    wanted = [m for m in mentions if m]
    assert any(m in text for m in wanted), f"message does not name any of {wanted}: {text!r}"
    return text


REJECTED = object()  # what expect_clear returns when the input was refused with a clear error


def expect_clear(target: str, call, mentions: Iterable[str], *, kinds: tuple[type, ...] = (CadenceError,),
                 outcome=lambda result: "accepted"):
    """Run ``call()``; a result is "accepted", an exception must be a clear error (tallied by class).

    Returns the result, or :data:`REJECTED`."""
    try:
        result = call()
    except BaseException as exc:  # noqa: BLE001 - anything else escaping is the bug we look for
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        assert_clear(exc, mentions, kinds=kinds)
        record(target, type(exc).__name__)
        return REJECTED
    record(target, outcome(result))
    return result
