"""What every link offers to the daemon."""

from __future__ import annotations

import asyncio
import functools
import traceback
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from ..errors import DriverError, LinkError
from ..events import LinkEvent


class LinkState(StrEnum):
    """The one word a link reports for its state: what STATUS=, `check` and the metrics show."""

    CONNECTING = "connecting"
    CONNECTED = "connected"  # a BLE link that scans is connected (to its adapter)
    DISCONNECTED = "disconnected"  # transient: the link retries by itself
    UNAUTHORIZED = "unauthorized"  # a cloud source whose credentials are refused
    REPLAYING = "replaying"
    FINISHED = "finished"  # a replay reached the end of its capture
    CLOSED = "closed"

    @property
    def healthy(self) -> bool:
        return self in _HEALTHY

    @classmethod
    def of(cls, word: str) -> LinkState:
        """A state word from a link or a status file; an unknown word counts as disconnected."""
        try:
            return cls(word)
        except ValueError:
            return cls.DISCONNECTED


_HEALTHY = frozenset({LinkState.CONNECTED, LinkState.REPLAYING, LinkState.FINISHED})


class Link(Protocol):
    """A source of ``LinkEvent``s. ``events()`` runs until ``close()``; it reconnects by itself on
    transient failures and raises ``LinkError(transient=False)`` only when giving up is right."""

    name: str

    def events(self) -> AsyncIterator[LinkEvent]: ...

    async def send(self, data: bytes) -> None:
        """Write to the device (serial PC mode, polls). Links that cannot write raise LinkError."""
        ...

    async def close(self) -> None: ...

    @property
    def state(self) -> str:
        """One ``LinkState`` word for STATUS= and health."""
        ...


@runtime_checkable
class FiniteLink(Protocol):
    """A link whose events end by themselves (a replayed capture, a benchmark's synthetic scale):
    ``finished`` is set when the last event has been read."""

    name: str
    finished: asyncio.Event


StateCallback = Callable[[str, str], None]


class StateReporter:
    """The ``state`` word of a link, reported to an optional callback (the daemon logs and shows it).
    Links set ``_state`` and ``_on_state`` in their constructor."""

    _state: str = "connecting"
    _on_state: StateCallback | None = None

    @property
    def state(self) -> str:
        return self._state

    def _set_state(self, state: str, detail: str = "") -> None:
        if state != self._state or detail:
            self._state = state
            if self._on_state is not None:
                self._on_state(state, detail)


# ---- a link that dies says why ---------------------------------------------------------------------

#: longest exception text carried into a LinkError message
MAX_CAUSE_CHARS = 200

_Self = TypeVar("_Self")
EventsMethod = Callable[[_Self], AsyncIterator[LinkEvent]]


def _printable(text: str) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= MAX_CAUSE_CHARS else clean[: MAX_CAUSE_CHARS - 3] + "..."


def unexpected_failure(name: str, exc: BaseException, *, with_text: bool) -> LinkError:
    """The LinkError for an exception a link did not expect: its type, where it was raised (file, line,
    function) and, when ``with_text``, its message (printable, capped). Links whose errors may quote
    the data they carry (card numbers, health data, an HTTP header with a key) pass ``with_text=False``:
    the type and the place are enough to find the bug, the original stays chained as ``__cause__``."""
    where = ""
    tb = exc.__traceback__
    if tb is not None:
        last = traceback.extract_tb(tb)[-1]
        where = f" at {Path(last.filename).name}:{last.lineno} in {last.name}"
    text = f": {_printable(str(exc))}" if with_text and str(exc) else ""
    return LinkError(f"{name}: stopped by an unexpected {type(exc).__name__}{where}{text}", transient=False)


def says_why(method: EventsMethod[_Self]) -> EventsMethod[_Self]:
    """Decorates a link's ``events()``: the driver-package errors (LinkError, CaptureError, FrameError)
    pass as they are; any other exception ends the stream as ``LinkError(transient=False)`` naming the
    link and the cause (see ``unexpected_failure``), so the daemon logs why its link died instead of
    losing a task to an exception nobody reads. The class attribute ``failure_text`` (default False)
    says whether the exception's own text may be quoted. Closing the outer stream closes the inner."""

    @functools.wraps(method)
    async def events(self: _Self) -> AsyncIterator[LinkEvent]:
        stream = method(self)
        try:
            async for event in stream:
                yield event
        except DriverError:
            raise
        except Exception as exc:  # the boundary: translated, with the cause chained
            name = getattr(self, "name", type(self).__name__)
            raise unexpected_failure(name, exc, with_text=bool(getattr(self, "failure_text", False))) from exc
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    return events
