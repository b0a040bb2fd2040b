"""Child processes that must not outlive the Cadence process that started them.

The embedded broker and a retrain's trainer run as children; when their parent is killed (kill -9, a power
supply hiccup that only restarts the service) a child left running holds a port or the feature cache, and the
next start fails on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets SIGTERM when this process dies (Linux
    PR_SET_PDEATHSIG; elsewhere nothing), also when it died before the child could ask for that."""
    parent = os.getpid()

    def arm() -> None:  # in the child, before exec
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent is already gone: nothing would signal the child
            os.kill(os.getpid(), signal.SIGTERM)

    return arm
