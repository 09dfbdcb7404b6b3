"""Who stood on the scale: a pure state machine pairing card reads with readings.

A card read opens a window (``window_s``) on its scale; the next stable weighing on that scale inside
the window belongs to that card. A reading that carries its own member ID (Tanita ``ID``) needs no
card. A stable weighing with no member is unidentified: parked or dropped by policy (never silently:
the caller logs every outcome). Unstable or zero readings are ignored. No clock and no I/O: the caller
passes the time of every event.
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


PairingEvent = Paired | Unidentified | Ignored | CardExpired | CardSuperseded


class Pairing:
    def __init__(self, window_s: float = 60.0, policy: UnidentifiedPolicy = UnidentifiedPolicy.PARK) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window = timedelta(seconds=window_s)
        self.policy = policy
        self._open: dict[str, CardRead] = {}

    def open_cards(self) -> dict[str, CardRead]:
        return dict(self._open)

    def card(self, card: CardRead) -> list[PairingEvent]:
        out: list[PairingEvent] = list(self.tick(card.at))
        old = self._open.get(card.scale)
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
        if reading.device_id:
            return [*out, Paired(reading, CardRead(reading.device_id, at, scale, CardSource.SCALE_ID), at)]
        card = self._open.pop(scale, None)
        if card is not None:
            return [*out, Paired(reading, card, at)]
        return [*out, Unidentified(reading, at, park=self.policy is UnidentifiedPolicy.PARK)]

    def tick(self, now: datetime) -> list[PairingEvent]:
        expired = [s for s, c in self._open.items() if now - c.at > self.window]
        return [CardExpired(self._open.pop(s)) for s in expired]
