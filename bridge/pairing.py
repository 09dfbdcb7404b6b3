"""Who stood on the scale: a pure state machine pairing card reads with readings.

A card read opens a window (``window_s``) on its scale; the next stable weighing on that scale inside
the window belongs to that card. A reading that carries its own member ID (Tanita ``ID``) needs no
card. A stable weighing with no member is unidentified: parked or dropped by policy (never silently:
the caller logs every outcome). Unstable or zero readings are ignored. No clock and no I/O: the caller
passes the time of every event.

Rules (each one is tested in tests/test_pairing.py):

- Every reading yields exactly one of ``Paired`` / ``Unidentified`` (stable, positive weight) or
  ``Ignored`` (anything else), plus any ``CardExpired`` that became due first. A card pairs at most
  once; a weighing is never attributed to two members.
- Window: a card read at ``t`` pairs with a weighing at ``t <= at <= t + window_s``. A weighing *before*
  the card (events delivered out of order) does not belong to it.
- A second, different card on the same scale inside the window wins; the older one is reported as
  ``CardSuperseded``. The same card again refreshes the window (one presentation, no event). A card
  that arrives late with an older time than the open one is itself superseded at once.
- A reading with its own ID is paired with that ID (``CardSource.SCALE_ID``); an open card window on
  that scale stays open for the next weighing.
- A card nobody stood on for ``window_s`` is reported as ``CardExpired`` (from ``tick``, ``card`` or
  ``reading``, whichever sees the time pass first). A card that arrives already older than the window
  is expired at once.
- Several scales: windows are per ``scale``. A card read with ``scale=""`` (one reader shared by all
  scales) is a wildcard: it pairs with the next weighing on any scale, after that scale's own card.
- Time: the machine keeps the latest time it was given; a time earlier than that never re-opens or
  prolongs anything (host clock steps, events from several tasks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from drivers.model import Reading


class UnidentifiedPolicy(StrEnum):
    PARK = "park"
    DROP = "drop"


class CardSource(StrEnum):
    READER = "reader"  # a card reader / kiosk line / capture card event
    SCALE_ID = "scale_id"  # the scale's own member/ID field


@dataclass(frozen=True, slots=True)
class CardRead:
    number: str  # as the reader produced it (personal data: mask before logging)
    at: datetime
    scale: str = ""
    source: CardSource = CardSource.READER


@dataclass(frozen=True, slots=True)
class Paired:
    reading: Reading
    card: CardRead
    at: datetime


@dataclass(frozen=True, slots=True)
class Unidentified:
    reading: Reading
    at: datetime
    park: bool  # False = dropped by policy (the caller logs it)


@dataclass(frozen=True, slots=True)
class Ignored:
    reading: Reading
    reason: str


@dataclass(frozen=True, slots=True)
class CardExpired:
    card: CardRead


@dataclass(frozen=True, slots=True)
class CardSuperseded:
    old: CardRead
    new: CardRead


@dataclass(frozen=True, slots=True)
class LateCard:
    """A card read shortly *after* an unidentified weighing on its scale (``late_card_s``): the member
    stepped on first and tapped second. The caller attaches the card to that parked weighing; no window
    is opened."""

    card: CardRead
    reading_at: datetime


PairingEvent = Paired | Unidentified | Ignored | CardExpired | CardSuperseded | LateCard

#: The scale key of a card read that applies to every scale.
ANY_SCALE = ""


class Pairing:
    def __init__(
        self,
        window_s: float = 60.0,
        policy: UnidentifiedPolicy = UnidentifiedPolicy.PARK,
        late_card_s: float = 0.0,
    ) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be positive")
        self.window = timedelta(seconds=window_s)
        self.policy = policy
        self._open: dict[str, CardRead] = {}
        self._now: datetime | None = None
        #: 0 = off. A card this soon after a parked unidentified weighing on its scale claims it.
        self.late_card = timedelta(seconds=max(0.0, late_card_s))
        self._unclaimed: dict[str, datetime] = {}

    @property
    def horizon(self) -> timedelta:
        """How far past an event stream's last event every window it opened has closed."""
        return max(self.window, self.late_card) + timedelta(microseconds=1)

    def open_cards(self) -> dict[str, CardRead]:
        return dict(self._open)

    def next_deadline(self) -> datetime | None:
        """When the next open card expires: call ``tick`` then (or later). None if no card is open."""
        if not self._open:
            return None
        return min(c.at for c in self._open.values()) + self.window

    def _advance(self, now: datetime) -> datetime:
        if self._now is None or now > self._now:
            self._now = now
        return self._now

    def card(self, card: CardRead) -> list[PairingEvent]:
        out: list[PairingEvent] = list(self.tick(card.at))
        if self._advance(card.at) - card.at > self.window:
            return [*out, CardExpired(card)]  # arrived too late to open a window
        parked_at = self._unclaimed.get(card.scale)
        if parked_at is not None and self.late_card and timedelta(0) <= card.at - parked_at <= self.late_card:
            del self._unclaimed[card.scale]
            return [*out, LateCard(card, parked_at)]
        old = self._open.get(card.scale)
        if old is not None and old.at > card.at:
            # a late arrival older than the open card: the newer one wins
            if old.number != card.number:
                out.append(CardSuperseded(card, old))
            return out
        if old is not None and old.number != card.number:
            out.append(CardSuperseded(old, card))
        self._open[card.scale] = card
        return out

    def reading(self, reading: Reading, at: datetime, scale: str = "") -> list[PairingEvent]:
        out: list[PairingEvent] = list(self.tick(at))
        if not reading.stable:
            return [*out, Ignored(reading, "unstable")]
        if not reading.is_weighing:
            return [*out, Ignored(reading, "no weight")]
        self._unclaimed.pop(scale, None)  # a newer weighing: a late card can no longer mean the older one
        device_id = (reading.device_id or "").strip()
        if device_id:
            return [*out, Paired(reading, CardRead(device_id, at, scale, CardSource.SCALE_ID), at)]
        card = self._take(scale, at)
        if card is not None:
            return [*out, Paired(reading, card, at)]
        park = self.policy is UnidentifiedPolicy.PARK
        if park and self.late_card:
            self._unclaimed[scale] = at
        return [*out, Unidentified(reading, at, park=park)]

    def _take(self, scale: str, at: datetime) -> CardRead | None:
        for key in (scale, ANY_SCALE) if scale != ANY_SCALE else (ANY_SCALE,):
            card = self._open.get(key)
            if card is not None and card.at <= at <= card.at + self.window:
                return self._open.pop(key)
        return None

    def tick(self, now: datetime) -> list[PairingEvent]:
        current = self._advance(now)
        expired = [s for s, c in self._open.items() if current - c.at > self.window]
        return [CardExpired(self._open.pop(s)) for s in expired]
