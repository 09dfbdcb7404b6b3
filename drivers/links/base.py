"""What every link offers to the daemon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import Protocol, runtime_checkable

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
