"""One scale-bridge per state dir: an ``flock`` on ``<state dir>/lock`` with the holder's pid inside.

``acquire(dir)`` takes it (non-blocking) or raises ``StateDirInUse`` (exit 75, EX_TEMPFAIL: try again
once the other one stopped) with a line naming the holder's pid and how to stop it. The kernel drops
the lock when the holder exits, however it exits (SIGKILL included), so a stale lock file is harmless.
Within one process the lock is re-entrant (a ``run`` that took it may start a ``Daemon`` that takes it
again): each ``acquire`` is matched by one ``release``; the last release unlocks.

``holder(dir)`` is the pid of the process holding it, or ``None`` (for ``queue`` writers, which work
beside a running daemon and only say whether one will act on their change).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType

from .errors import EX_TEMPFAIL, BridgeError

LOCK_NAME = "lock"


class StateDirInUse(BridgeError):
    exit_code = EX_TEMPFAIL

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.state_dir = state_dir
        self.pid = pid
        who = f"another scale-bridge (pid {pid})" if pid else "another scale-bridge"
        super().__init__(f"{who} is using {state_dir}; stop it first (systemctl stop scale-bridge)")


_held: dict[Path, tuple[int, int]] = {}  # resolved lock path -> (fd, count)
_guard = threading.Lock()


def lock_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / LOCK_NAME


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class StateLock:
    """A held lock; ``release()`` (or leaving the ``with`` block) gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        with _guard:
            fd, count = _held[self.path]
            if count > 1:
                _held[self.path] = (fd, count - 1)
                return
            del _held[self.path]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def acquire(state_dir: str | Path) -> StateLock:
    """Lock ``state_dir`` (which must exist) for this process, or raise ``StateDirInUse``."""
    path = lock_path(state_dir).resolve()
    with _guard:
        if path in _held:
            fd, count = _held[path]
            _held[path] = (fd, count + 1)
            return StateLock(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StateDirInUse(Path(state_dir), pid) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        _held[path] = (fd, 1)
        return StateLock(path)


def holder(state_dir: str | Path) -> int | None:
    """The pid holding ``state_dir``'s lock (this process included), or ``None`` if nobody holds it."""
    path = lock_path(state_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        with _guard:
            if path.resolve() in _held:
                return os.getpid()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
