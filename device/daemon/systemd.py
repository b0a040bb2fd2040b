"""sd_notify over ``$NOTIFY_SOCKET`` with a plain datagram socket (no libsystemd).

``Type=notify`` units wait for ``READY=1``; with ``WatchdogSec=`` systemd
restarts the service unless ``WATCHDOG=1`` arrives in time. The daemon pings
only while frames or audio actually flow, so a wedged pipeline is restarted.
Outside systemd (no ``$NOTIFY_SOCKET``) every call is a cheap no-op.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Send sd_notify messages; ``enabled`` is False outside systemd."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.enabled = bool(self.address)
        self.sent: list[str] = []
        self._sock: socket.socket | None = None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of ``WatchdogSec``), or None without a watchdog."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
            return None
        try:
            return max(0.1, int(usec) / 1e6 / 2)
        except ValueError:
            return None

    def notify(self, message: str) -> bool:
        if not self.enabled or not self.address:
            return False
        address = self.address
        if address.startswith("@"):  # abstract namespace socket
            address = "\0" + address[1:]
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode("utf-8"), address)
        except OSError:
            return False
        self.sent.append(message)
        return True

    def ready(self, status: str = "running") -> bool:
        return self.notify(f"READY=1\nSTATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
