"""Serial link: pyserial with the port as a pyserial URL (device path, /dev/serial/by-id/...,
``socket://host:port``, ``rfc2217://host:port``). Reconnects with capped backoff when the device goes
away (unplug, pty closed, EOF, SerialException). pyserial is imported lazily.

Polling (command/response scales, e.g. MT-SICS): with ``poll_command`` the link writes it every
``poll_interval_s`` while connected, from a task that lives as long as one connection. It does not
pile commands up on a silent device: after a poll it waits for any received byte before the next one,
or ``poll_reply_timeout_s`` (then it polls again: the reply was lost or the device was power-cycled).

Everything written (polls, PC-mode commands via ``send``) is reported to ``on_tx`` as a ``tx``
``LinkEvent`` (``record`` writes them to the capture); replay and intake ignore ``tx`` events.

Opening a local device (a path, not a URL):

* **exclusively**: pyserial's ``exclusive=True`` (an ``flock`` on the port). A port another program
  holds is not shared (two readers would split the scale's bytes between them): the attempt fails
  with a ``LinkError`` naming the holder (from ``/proc/locks``), reported as the ``disconnected``
  state's detail, and is retried with the usual backoff until the holder lets go.
* **without discarding what the port holds**: pyserial's ``Serial.open()`` flushes the input buffer
  (``tcflush(TCIFLUSH)``) right after configuring the port, which would drop whatever the scale sent
  while the daemon was restarting and the kernel kept. ``_KeepInput`` skips that one flush; the port
  is opened in an executor and handed to ``serial_asyncio_fast.connection_for_serial``. RFC 2217 gets
  the same treatment (its open purges the server's receive buffer). ``socket://`` is opened by
  ``serial_asyncio_fast`` as a plain TCP connection, which never flushed.

Anything ``events()`` did not expect ends the stream as ``LinkError(transient=False)`` with the cause
(``base.says_why``), so a dead link always says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from ..errors import LinkError
from ..events import EventKind, LinkEvent
from ..registry import SerialSettings
from .base import StateCallback, StateReporter, says_why, unexpected_failure

TxCallback = Callable[[LinkEvent], None]
READ_CHUNK = 4096
#: how long a closing port may take to release its lock before the next open is attempted anyway
CLOSE_WAIT_S = 5.0
#: errno values meaning "another program has this port": our flock (EWOULDBLOCK) or its TIOCEXCL (EBUSY)
_BUSY_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY})

_classes: dict[str, Any] = {}


def _keep_input_class(kind: str) -> Any:
    """pyserial's Serial (``posix``) or RFC 2217 client (``rfc2217``) whose ``open()`` keeps the bytes
    the port already holds: pyserial flushes input at the end of ``open()`` (posix: ``tcflush``;
    RFC 2217: a PURGE_DATA request to the server). A flush asked for later still works."""
    if kind in _classes:
        return _classes[kind]
    import serial

    base: Any = serial.Serial
    if kind == "rfc2217":
        import serial.rfc2217

        base = serial.rfc2217.Serial

    class KeepInput(base):  # type: ignore[misc]
        _opening = False

        def open(self) -> None:
            self._opening = True
            try:
                super().open()
            finally:
                self._opening = False

        def _reset_input_buffer(self) -> None:  # posix: what open() and reset_input_buffer() call
            if not self._opening:
                super()._reset_input_buffer()

        def reset_input_buffer(self) -> None:  # RFC 2217: open() calls this one
            if not self._opening:
                super().reset_input_buffer()

    KeepInput.__name__ = KeepInput.__qualname__ = f"KeepInput{kind.capitalize()}Serial"
    _classes[kind] = KeepInput
    return KeepInput


def lock_holders(path: str, locks: str = "/proc/locks") -> list[int]:
    """Pids holding an ``flock``/``fcntl`` lock on the device ``path`` (best effort: [] if unknown)."""
    try:
        st = os.stat(path)
        with open(locks, encoding="ascii", errors="replace") as fh:
            table = fh.read(1 << 20)
    except OSError:
        return []
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids: list[int] = []
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        for i, f in enumerate(fields):
            if f == dev and i > 0 and fields[i - 1].isdigit():
                pid = int(fields[i - 1])
                if pid not in pids:
                    pids.append(pid)
    return pids


def _who(pid: int) -> str:
    if pid == os.getpid():
        return f"pid {pid} (this process)"
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            comm = fh.read(64).strip()
    except OSError:
        return f"pid {pid}"
    return f"pid {pid} ({''.join(c if c.isprintable() else '?' for c in comm)})"


def busy_message(url: str, exc: BaseException) -> str:
    pids = lock_holders(url)
    holder = ", ".join(_who(p) for p in pids) if pids else "another program"
    how = "has it open exclusively" if getattr(exc, "errno", None) == errno.EBUSY else "holds its lock"
    return (
        f"{url}: the port is in use: {holder} {how}; two readers would split the scale's data between "
        "them, so it is not shared (stop the other program, or check that no second scale-bridge names "
        "this port); retrying"
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _close_result(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        with contextlib.suppress(Exception):
            fut.result().close()


async def _closed(writer: asyncio.StreamWriter) -> None:
    """Close and wait until the port is really closed (its lock released), within ``CLOSE_WAIT_S``."""
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), CLOSE_WAIT_S)


class SerialLink(StateReporter):
    #: pyserial's and the OS's error texts name ports and errnos, never data: quoted in LinkErrors
    failure_text = True

    def __init__(
        self,
        url: str,
        settings: SerialSettings,
        *,
        scale: str = "",
        reconnect_min_s: float = 0.25,
        reconnect_max_s: float = 5.0,
        on_state: StateCallback | None = None,
        poll_command: bytes | None = None,
        poll_interval_s: float = 1.0,
        poll_reply_timeout_s: float | None = None,
        on_tx: TxCallback | None = None,
    ) -> None:
        self.name = f"serial:{url}"
        self.url = url
        self.settings = settings
        self.scale = scale
        self._min = reconnect_min_s
        self._max = reconnect_max_s
        self._on_state = on_state
        self._state = "connecting"
        self._closed = False
        self._writer: Any = None
        self._thread_serial: Any = None
        self.connects = 0
        self.last_rx_at: datetime | None = None
        self.poll_command = poll_command or None
        self.poll_interval_s = poll_interval_s
        self.poll_reply_timeout_s = (
            max(5.0, 3 * poll_interval_s) if poll_reply_timeout_s is None else poll_reply_timeout_s
        )
        self.on_tx = on_tx
        self.polls_sent = 0
        self._poll_pending_since: float | None = None
        self._poll_failure: LinkError | None = None

    def _kwargs(self) -> dict[str, Any]:
        s = self.settings
        return {
            "baudrate": s.baudrate,
            "bytesize": s.bytesize,
            "parity": s.parity,
            "stopbits": s.stopbits,
            "xonxoff": s.xonxoff,
            "rtscts": s.rtscts,
        }

    def _open_device(self) -> Any:
        """Blocking (run in an executor): the local device, exclusively, input kept."""
        import serial

        ser = _keep_input_class("posix")(None, exclusive=True, **self._kwargs())
        ser.port = self.url
        try:
            ser.open()
        except serial.SerialException as exc:
            if exc.errno in _BUSY_ERRNOS:
                raise LinkError(busy_message(self.url, exc)) from exc
            raise
        return ser

    async def _in_executor(self, opener: Callable[[], Any]) -> Any:
        """``opener()`` in the default executor. If we are cancelled while it runs, the port it opens
        is closed when it returns (a leaked descriptor would keep our own lock on the port)."""
        fut = asyncio.get_running_loop().run_in_executor(None, opener)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.add_done_callback(_close_result)
            raise

    async def _open_async(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        import serial_asyncio_fast

        if "://" in self.url:  # socket:// (a TCP connection: nothing to flush or lock) and other handlers
            return await serial_asyncio_fast.open_serial_connection(url=self.url, **self._kwargs())
        loop = asyncio.get_running_loop()
        ser = await self._in_executor(self._open_device)
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await serial_asyncio_fast.connection_for_serial(loop, lambda: protocol, ser)
        except BaseException:
            ser.close()
            raise
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    @says_why
    async def events(self) -> AsyncIterator[LinkEvent]:
        import serial

        delay = self._min
        while not self._closed:
            connects_before = self.connects
            try:
                if self.url.startswith("rfc2217://"):
                    async for ev in self._threaded():
                        yield ev
                    raise EOFError("connection closed")
                reader, writer = await self._open_async()
            except (serial.SerialException, OSError, EOFError, ValueError, LinkError) as exc:
                if self._closed:
                    break
                detail = self._failure_detail(exc)
                if self.connects > connects_before:  # an rfc2217 session that worked: start backoff afresh
                    delay = self._min
                self._set_state("disconnected", detail)
                await asyncio.sleep(delay)
                delay = min(self._max, delay * 2)
                continue
            self._writer = writer
            self.connects += 1
            delay = self._min
            poller = None
            try:  # from here on the port is ours: whatever happens, it is closed (its lock released)
                self._set_state("connected", self.url)
                poller = self._start_poller()
                while not self._closed:
                    data = await reader.read(READ_CHUNK)
                    if not data:
                        break
                    yield self._rx(data)
            except (serial.SerialException, OSError) as exc:
                self._set_state("disconnected", f"{type(exc).__name__}: {exc}")
            finally:
                await self._stop_poller(poller)
                self._writer = None
                await _closed(writer)
            if self._poll_failure is not None:
                raise self._poll_failure
            if not self._closed:
                self._set_state("disconnected", "device closed the line")
                await asyncio.sleep(self._min)
        self._set_state("closed")

    def _failure_detail(self, exc: BaseException) -> str:
        """Why the port could not be used, as the link's state says it; raises a permanent LinkError
        when retrying cannot help (a bad URL or setting, a non-transient link error)."""
        if isinstance(exc, ValueError):
            raise LinkError(f"{self.url}: {exc}", transient=False) from None
        if isinstance(exc, LinkError):
            if not exc.transient:
                raise exc
            return str(exc)
        return f"{type(exc).__name__}: {exc}"

    async def _threaded(self) -> AsyncIterator[LinkEvent]:
        """For URL handlers without a pollable file descriptor (rfc2217://): blocking reads with a
        short timeout in a worker thread."""
        loop = asyncio.get_running_loop()

        def open_rfc2217() -> Any:
            ser = _keep_input_class("rfc2217")(None, timeout=0.5, **self._kwargs())
            ser.port = self.url
            ser.open()
            return ser

        ser = await self._in_executor(open_rfc2217)
        self._thread_serial = ser
        self.connects += 1
        poller = None
        try:
            self._set_state("connected", self.url)
            poller = self._start_poller()
            while not self._closed:
                data = await loop.run_in_executor(None, lambda: ser.read(max(1, ser.in_waiting)))
                if data:
                    yield self._rx(data)
        finally:
            await self._stop_poller(poller)
            self._thread_serial = None
            with contextlib.suppress(Exception):
                ser.close()
        if self._poll_failure is not None:
            raise self._poll_failure

    def _rx(self, data: bytes) -> LinkEvent:
        self.last_rx_at = _now()
        self._poll_pending_since = None
        return LinkEvent(EventKind.RX, data, self.last_rx_at, scale=self.scale)

    def _start_poller(self) -> asyncio.Task[None] | None:
        if self.poll_command is None:
            return None
        self._poll_pending_since = None
        task = asyncio.create_task(self._poll_loop(self.poll_command), name=f"poll:{self.url}")
        task.add_done_callback(self._poller_done)
        return task

    def _poller_done(self, task: asyncio.Task[None]) -> None:
        """A poller that dies of an unexpected error ends the connection, and ``events()`` raises it:
        a command/response scale that is no longer polled sends nothing, and must not do so silently."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        self._poll_failure = unexpected_failure(self.name, exc, with_text=True)
        self._poll_failure.__cause__ = exc
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()  # the read loop sees the end of the stream
        if self._thread_serial is not None:
            with contextlib.suppress(Exception):
                self._thread_serial.close()

    @staticmethod
    async def _stop_poller(poller: asyncio.Task[None] | None) -> None:
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)

    async def _poll_loop(self, command: bytes) -> None:
        """Runs for one connection (cancelled when it ends)."""
        while not self._closed:
            pending = self._poll_pending_since
            if pending is None or time.monotonic() - pending >= self.poll_reply_timeout_s:
                try:
                    await self.send(command)
                except LinkError:
                    return
                self.polls_sent += 1
                self._poll_pending_since = time.monotonic()
            await asyncio.sleep(self.poll_interval_s)

    async def send(self, data: bytes) -> None:
        """Write ``data`` in one piece (PC-mode commands must not be split by pauses)."""
        if self._writer is not None:
            self._writer.write(data)
            with contextlib.suppress(Exception):
                await self._writer.drain()
        elif self._thread_serial is not None:
            ser = self._thread_serial
            try:
                await asyncio.get_running_loop().run_in_executor(None, ser.write, data)
            except (OSError, ValueError) as exc:  # SerialException is an OSError
                raise LinkError(f"{self.url}: write failed: {exc}") from None
        else:
            raise LinkError(f"{self.url}: not connected")
        if self.on_tx is not None:
            self.on_tx(LinkEvent(EventKind.TX, bytes(data), _now(), scale=self.scale))

    async def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
