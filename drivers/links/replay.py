"""Replay link: a capture file played through the same framer/parser/pipeline as a live link."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

from ..capture import CaptureEvent, CaptureHeader, read_capture_bytes
from ..errors import CaptureError, LinkError
from ..events import LinkEvent


class ReplayLink:
    def __init__(self, path: str | Path, *, scale: str = "", realtime: bool = False, start: datetime | None = None):
        self.path = Path(path)
        self.name = f"replay:{self.path.name}"
        self.scale = scale
        self.realtime = realtime
        self._start = start
        self._state = "connecting"
        self._closed = False
        self.header: CaptureHeader | None = None
        self.replayed = 0
        self.total_events: int | None = None
        self.finished = asyncio.Event()

    @property
    def state(self) -> str:
        return self._state

    def open(self) -> tuple[CaptureHeader, Iterator[CaptureEvent]]:
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise LinkError(f"{self.path}: {exc.strerror}", transient=False) from None
        try:
            header, events = read_capture_bytes(fh, start=self._start)
        except CaptureError as exc:
            fh.close()
            raise self._named(exc) from None
        self.header = header
        return header, self._closing(fh, events)

    def _named(self, exc: CaptureError) -> CaptureError:
        """The same error with the file's name in front (the line number is kept)."""
        text = str(exc).removeprefix(f"line {exc.line_no}: ") if exc.line_no else str(exc)
        named = CaptureError(f"{self.path}: line {exc.line_no}: {text}" if exc.line_no else f"{self.path}: {text}")
        named.line_no = exc.line_no
        return named

    def _closing(self, fh: object, events: Iterator[CaptureEvent]) -> Iterator[CaptureEvent]:
        try:
            yield from events
        except CaptureError as exc:
            raise self._named(exc) from None
        except OSError as exc:  # the file went away or the disk failed mid-read: say so, with the cause
            raise LinkError(f"{self.path}: read failed: {exc}", transient=False) from exc
        finally:
            close = getattr(fh, "close", None)
            if close is not None:
                close()

    async def events(self) -> AsyncIterator[LinkEvent]:
        _, events = self.open()
        self._state = "replaying"
        t0 = time.monotonic()
        try:
            for ce in events:
                if self._closed:
                    break
                if self.realtime:
                    wait = ce.t_s - (time.monotonic() - t0)
                    if wait > 0:
                        await asyncio.sleep(wait)
                elif self.replayed % 256 == 0:
                    await asyncio.sleep(0)
                ev = ce.event
                if self.scale and not ev.scale:
                    ev = dataclasses.replace(ev, scale=self.scale)
                self.replayed += 1
                yield ev
        finally:
            self._state = "finished"
            self.finished.set()

    async def send(self, data: bytes) -> None:
        return None  # a recording cannot answer; PC-mode conversations are not replayed

    async def close(self) -> None:
        self._closed = True
