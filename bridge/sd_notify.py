"""The systemd notification protocol (sd_notify(3)), written here: one datagram to ``$NOTIFY_SOCKET``.

The PyPI packages for this are unmaintained; the protocol is small. A message is newline-separated
``KEY=VALUE`` assignments sent as a single datagram on an ``AF_UNIX``/``SOCK_DGRAM`` socket whose address
is in ``$NOTIFY_SOCKET``: a filesystem path (``/run/systemd/notify``) or an abstract name written with a
leading ``@``. Outside systemd the variable is unset and every call is a no-op.

Nothing here raises into the caller and nothing logs (this module is called from the hot loop and from
signal paths): each call returns ``True`` if the datagram was handed to the kernel, ``False`` otherwise.

Watchdog: with ``WatchdogSec=`` systemd sets ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``); ping with
:func:`watchdog` at about half of :func:`watchdog_interval_s`, and only while the pipeline really makes
progress, so a wedged daemon is restarted.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

__all__ = [
    "Notifier",
    "extend_timeout",
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval_s",
]

#: Upper bound for one send; the manager's socket queue is practically never full, and a blocked event
#: loop would be worse than a lost watchdog ping.
SEND_TIMEOUT_S = 0.5


def _address(raw: str | None) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as a socket address: a path, or ``@name`` as an abstract (NUL-prefixed) name."""
    if not raw:
        return None
    if raw.startswith("@"):
        if len(raw) < 2:
            return None
        return b"\0" + raw[1:].encode("utf-8", "surrogateescape")
    if raw.startswith("/"):
        return raw
    return None  # vsock and relative paths are not used by systemd on these boxes


def _clean(value: str) -> str:
    """One line: a newline inside a value would start a new assignment."""
    return " ".join(str(value).splitlines()).strip()


class Notifier:
    """Sends notifications to the service manager named by ``env`` (default: ``os.environ`` at call time)."""

    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env

    @property
    def _environ(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens for notifications."""
        return _address(self._environ.get("NOTIFY_SOCKET")) is not None

    def notify(self, *assignments: str, wait: bool = True) -> bool:
        """Send ``KEY=VALUE`` assignments as one datagram. False if not under systemd or on any error.

        ``wait=False``: if the manager's queue is full, drop the message at once instead of waiting
        up to ``SEND_TIMEOUT_S`` (CPython spins in that wait: an unconnected datagram socket polls
        writable while the peer's queue is full). For messages that are sent again anyway (STATUS)."""
        addr = _address(self._environ.get("NOTIFY_SOCKET"))
        if addr is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(SEND_TIMEOUT_S if wait else 0.0)
                sent = sock.sendto(payload, addr)
        except (OSError, ValueError):
            return False
        return sent == len(payload)

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete (``Type=notify`` becomes ``active``), or a reload has finished."""
        extra = (f"STATUS={_clean(status)}",) if status is not None else ()
        return self.notify("READY=1", *extra)

    def status(self, line: str) -> bool:
        """A one-line, human-readable status shown by ``systemctl status`` (dropped, not waited for,
        when the manager lags: the next one follows in seconds)."""
        return self.notify(f"STATUS={_clean(line)}", wait=False)

    def watchdog(self) -> bool:
        """Keep-alive ping (``WATCHDOG=1``); send it only when the pipeline made progress."""
        if self.watchdog_interval_s() is None:
            return False
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun."""
        extra = (f"STATUS={_clean(status)}",) if status is not None else ()
        return self.notify("STOPPING=1", *extra)

    def reloading(self) -> bool:
        """A configuration reload has begun; send :meth:`ready` when it is done.

        ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, microseconds) is what ``Type=notify-reload`` (systemd 253+)
        requires; older managers ignore it.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more time for the current start-up/reload/stop phase (``EXTEND_TIMEOUT_USEC``)."""
        if seconds <= 0:
            return False
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog_interval_s(self) -> float | None:
        """The watchdog timeout in seconds when it applies to this process, else None.

        From ``$WATCHDOG_USEC``; ``$WATCHDOG_PID``, when set, must be this process (a child that inherited
        the environment is not the one being watched).
        """
        env = self._environ
        pid = env.get("WATCHDOG_PID")
        if pid:
            try:
                if int(pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 1_000_000


_default = Notifier()


def notify(*assignments: str) -> bool:
    return _default.notify(*assignments)


def ready(status: str | None = None) -> bool:
    return _default.ready(status)


def status(line: str) -> bool:
    return _default.status(line)


def watchdog() -> bool:
    return _default.watchdog()


def stopping(status: str | None = None) -> bool:
    return _default.stopping(status)


def reloading() -> bool:
    return _default.reloading()


def extend_timeout(seconds: float) -> bool:
    return _default.extend_timeout(seconds)


def watchdog_interval_s() -> float | None:
    return _default.watchdog_interval_s()
