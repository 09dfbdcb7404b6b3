"""Before ``record`` / ``scan --probe`` open a serial port: does it exist, and is a scale-bridge daemon
reading it? Two readers of one port split its byte stream between them (installer audit I2), so the
tools refuse a port that is held, saying who holds it.

A port is held when a process has an exclusive lock on it (pyserial's ``exclusive=True`` is an
``flock``) or when a ``scale-bridge run`` process has it open (found through ``/proc/*/fd``; a root
``record`` sees every process, a normal user only their own). URLs (``socket://``, ``rfc2217://``)
are not local devices and are not checked."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import EX_NOINPUT, EX_UNAVAILABLE, BridgeError


class PortMissing(BridgeError):
    exit_code = EX_NOINPUT


class PortBusy(BridgeError):
    exit_code = EX_UNAVAILABLE


def _is_daemon(cmdline: list[str]) -> bool:
    joined = " ".join(cmdline)
    return "run" in cmdline and ("scale-bridge" in joined or "-m bridge" in joined or "bridge.cli" in joined)


def daemons_holding(device: str, proc: Path = Path("/proc")) -> list[int]:
    """Pids of ``scale-bridge run`` processes that have ``device`` open (this process excluded)."""
    try:
        target = os.stat(device)
    except OSError:
        return []
    found: list[int] = []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")
            if not _is_daemon(cmdline):
                continue
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    st = os.stat(fd)
                    if (st.st_dev, st.st_ino, st.st_rdev) == (target.st_dev, target.st_ino, target.st_rdev):
                        found.append(int(entry.name))
                        break
        except OSError:
            continue  # gone, or not ours to look at
    return found


def check_port(url: str, *, what: str = "port") -> None:
    """Raise ``PortMissing`` (66) or ``PortBusy`` (69) for a local device path; URLs pass."""
    if "://" in url:
        return
    if not os.path.exists(url):
        raise PortMissing(f"{url}: no such device (plugged in? ls /dev/serial/by-id; dmesg | tail)")
    pids = daemons_holding(url)
    if pids:
        raise PortBusy(
            f"{url} is in use by scale-bridge (pid {', '.join(map(str, pids))}): two readers would split the "
            "scale's data between them; stop it first (systemctl stop scale-bridge)"
        )
    try:
        fd = os.open(url, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise PortBusy(f"{url}: cannot open {what}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise PortBusy(
            f"{url} is locked by another program (the scale-bridge daemon?); stop it first "
            "(systemctl stop scale-bridge)"
        ) from None
    finally:
        os.close(fd)  # closing drops our probe lock


def check_device(path: str, *, what: str) -> None:
    """A card reader device given as a path must exist (``scan --cards``)."""
    if path and "://" not in path and not os.path.exists(path):
        raise PortMissing(f"{path}: no such {what} (plugged in? ls /dev/input/by-id /dev/serial/by-id)")
