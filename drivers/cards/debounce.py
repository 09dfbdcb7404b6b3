"""One card read per presentation. Pure: the caller passes the time (monotonic seconds)."""

from __future__ import annotations


class Debouncer:
    """Serial readers repeat the frame (~every 50 ms) while a tag is in range. ``accept`` is True for
    the first sighting of a card and again only after that card has been *out of sight* for more than
    ``hold_s`` (every repeat extends the hold) or after another card was seen."""

    def __init__(self, hold_s: float = 1.0) -> None:
        if hold_s < 0:
            raise ValueError("hold_s must be >= 0")
        self.hold_s = hold_s
        self._last: str | None = None
        self._last_at = 0.0

    def accept(self, card: str, at: float) -> bool:
        new = card != self._last or at - self._last_at > self.hold_s or at < self._last_at
        self._last = card
        self._last_at = at
        return new

    def reset(self) -> None:
        self._last = None
