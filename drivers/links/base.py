"""What every link offers to the daemon."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
