"""Serial link: pyserial with the port as a pyserial URL (device path, /dev/serial/by-id/...,
``socket://host:port``, ``rfc2217://host:port``). Reconnects with capped backoff when the device goes
away (unplug, pty closed, EOF, SerialException). pyserial is imported lazily.

Polling (command/response scales, e.g. MT-SICS): with ``poll_command`` the link writes it every
``poll_interval_s`` while connected, from a task that lives as long as one connection. It does not
pile commands up on a silent device: after a poll it waits for any received byte before the next one,
or ``poll_reply_timeout_s`` (then it polls again: the reply was lost or the device was power-cycled).

Everything written (polls, PC-mode commands via ``send``) is reported to ``on_tx`` as a ``tx``
``LinkEvent`` (``record`` writes them to the capture); replay and intake ignore ``tx`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from ..errors import LinkError
from ..events import EventKind, LinkEvent
from ..registry import SerialSettings
from .base import StateCallback, StateReporter

TxCallback = Callable[[LinkEvent], None]
READ_CHUNK = 4096


def _now() -> datetime:
    return datetime.now(UTC)


class SerialLink(StateReporter):
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

    async def _open_async(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        import serial_asyncio_fast

        return await serial_asyncio_fast.open_serial_connection(url=self.url, **self._kwargs())

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
            except (serial.SerialException, OSError, EOFError, ValueError) as exc:
                if self._closed:
                    break
                if isinstance(exc, ValueError):
                    raise LinkError(f"{self.url}: {exc}", transient=False) from None
                if self.connects > connects_before:  # an rfc2217 session that worked: start backoff afresh
                    delay = self._min
                self._set_state("disconnected", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(self._max, delay * 2)
                continue
            self._writer = writer
            self.connects += 1
            self._set_state("connected", self.url)
            delay = self._min
            poller = self._start_poller()
            try:
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
                with contextlib.suppress(Exception):
                    writer.close()
            if not self._closed:
                self._set_state("disconnected", "device closed the line")
                await asyncio.sleep(self._min)
        self._set_state("closed")

    async def _threaded(self) -> AsyncIterator[LinkEvent]:
        """For URL handlers without a pollable file descriptor (rfc2217://): blocking reads with a
        short timeout in a worker thread."""
        import serial

        loop = asyncio.get_running_loop()
        ser = await loop.run_in_executor(None, lambda: serial.serial_for_url(self.url, timeout=0.5, **self._kwargs()))
        self._thread_serial = ser
        self.connects += 1
        self._set_state("connected", self.url)
        poller = self._start_poller()
        try:
            while not self._closed:
                data = await loop.run_in_executor(None, lambda: ser.read(max(1, ser.in_waiting)))
                if data:
                    yield self._rx(data)
        finally:
            await self._stop_poller(poller)
            self._thread_serial = None
            with contextlib.suppress(Exception):
                ser.close()

    def _rx(self, data: bytes) -> LinkEvent:
        self.last_rx_at = _now()
        self._poll_pending_since = None
        return LinkEvent(EventKind.RX, data, self.last_rx_at, scale=self.scale)

    def _start_poller(self) -> asyncio.Task[None] | None:
        if self.poll_command is None:
            return None
        self._poll_pending_since = None
        return asyncio.create_task(self._poll_loop(self.poll_command), name=f"poll:{self.url}")

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
