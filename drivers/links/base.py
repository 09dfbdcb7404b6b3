"""What every link offers to the daemon."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ..events import LinkEvent


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
        """One word for STATUS= and health: connecting | connected | disconnected | closed."""
        ...


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
