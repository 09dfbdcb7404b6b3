"""Replay link: a capture file played through the same framer/parser/pipeline as a live link.

Clocks (one per event stream, see DESIGN.md section 5):

* ``ReplayClock.CAPTURE`` (``scale-bridge replay``, ``demo``): every event keeps the recording's time,
  ``started_at + t``. Whatever reasons about time between events (pairing windows, dedupe) then sees
  exactly the gaps the site saw, whatever the date of the host. The stream's "now" is the time of the
  latest event (``stream_now``); nothing else may tick the machines that read this stream.
* ``ReplayClock.HOST`` (a live daemon whose ``[scale] capture`` runs beside a live card reader): the
  capture is re-based to the host clock: each event is stamped with the host's time when it is played
  (and the recorded timing is honoured), so it compares with the live cards on one clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from ..capture import CaptureEvent, CaptureHeader, read_capture_bytes
from ..errors import CaptureError, LinkError
from ..events import LinkEvent
from .base import says_why


class ReplayClock(StrEnum):
    CAPTURE = "capture"
    HOST = "host"


def read_header(path: str | Path) -> CaptureHeader:
    """The header of a capture file (LinkError if it cannot be opened, CaptureError if it is bad)."""
    link = ReplayLink(path)
    with link.opened() as (header, _):
        return header


class _Opened:
    def __init__(self, link: ReplayLink) -> None:
        self._link = link
        self._fh: object = None

    def __enter__(self) -> tuple[CaptureHeader, Iterator[CaptureEvent]]:
        path = self._link.path
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise LinkError(f"{path}: no such file", transient=False) from None
        except IsADirectoryError:
            raise LinkError(f"{path}: is a directory", transient=False) from None
        except OSError as exc:
            raise LinkError(f"{path}: {exc.strerror}", transient=False) from None
        self._fh = fh
        try:
            header, events = read_capture_bytes(fh, start=self._link.start)
        except CaptureError as exc:
            fh.close()
            raise self._link._named(exc) from None
        self._link.header = header
        return header, self._link._checked(events)

    def __exit__(self, *exc: object) -> None:
        close = getattr(self._fh, "close", None)
        if callable(close):
            close()


class ReplayLink:
    def __init__(
        self,
        path: str | Path,
        *,
        scale: str = "",
        realtime: bool = False,
        start: datetime | None = None,
        clock: ReplayClock = ReplayClock.CAPTURE,
        host_now: Callable[[], datetime] = lambda: datetime.now(UTC),
        pause_gap_s: float | None = None,
        on_pause: Callable[[float], Awaitable[None]] | None = None,
    ):
        """``pause_gap_s``/``on_pause``: where the recording pauses for at least ``pause_gap_s``
        (someone steps off, the next member walks up), ``await on_pause(t_s)`` before the next event;
        the demo uses it to let each weighing finish its journey before the next one starts."""
        self.path = Path(path)
        self.name = f"replay:{self.path.name}"
        self.scale = scale
        self.clock = clock
        self.realtime = realtime or clock is ReplayClock.HOST
        self.start = start
        self._host_now = host_now
        self._pause_gap_s = pause_gap_s
        self._on_pause = on_pause
        self._state = "connecting"
        self._closed = False
        self.header: CaptureHeader | None = None
        self.replayed = 0
        self.total_events: int | None = None
        #: the time of the latest event played, on this stream's clock
        self.stream_now: datetime | None = None
        self.finished = asyncio.Event()

    @property
    def state(self) -> str:
        return self._state

    def opened(self) -> _Opened:
        """``with link.opened() as (header, events):`` - the file is closed on leaving the block."""
        return _Opened(self)

    def _named(self, exc: CaptureError) -> CaptureError:
        """The same error with the file's name in front (the line number is kept)."""
        text = str(exc).removeprefix(f"line {exc.line_no}: ") if exc.line_no else str(exc)
        named = CaptureError(f"{self.path}: line {exc.line_no}: {text}" if exc.line_no else f"{self.path}: {text}")
        named.line_no = exc.line_no
        return named

    def _checked(self, events: Iterator[CaptureEvent]) -> Iterator[CaptureEvent]:
        try:
            yield from events
        except CaptureError as exc:
            raise self._named(exc) from None
        except OSError as exc:  # the file went away or the disk failed mid-read: say so, with the cause
            raise LinkError(f"{self.path}: read failed: {exc}", transient=False) from exc

    @says_why
    async def events(self) -> AsyncIterator[LinkEvent]:
        self._state = "replaying"
        t0 = time.monotonic()
        previous_t: float | None = None
        try:
            with self.opened() as (_, events):
                for ce in events:
                    if self._closed:
                        break
                    if (
                        self._on_pause is not None
                        and self._pause_gap_s is not None
                        and previous_t is not None
                        and ce.t_s - previous_t >= self._pause_gap_s
                    ):
                        await self._on_pause(ce.t_s)
                    previous_t = ce.t_s
                    if self.realtime:
                        wait = ce.t_s - (time.monotonic() - t0)
                        if wait > 0:
                            await asyncio.sleep(wait)
                    elif self.replayed % 256 == 0:
                        await asyncio.sleep(0)
                    ev = ce.event
                    if self.clock is ReplayClock.HOST:
                        ev = dataclasses.replace(ev, received_at=self._host_now())
                    if self.scale and not ev.scale:
                        ev = dataclasses.replace(ev, scale=self.scale)
                    if self.stream_now is None or ev.received_at > self.stream_now:
                        self.stream_now = ev.received_at
                    self.replayed += 1
                    yield ev
        finally:
            self._state = "finished"
            self.finished.set()

    async def send(self, data: bytes) -> None:
        return None  # a recording cannot answer; PC-mode conversations are not replayed

    async def close(self) -> None:
        self._closed = True
