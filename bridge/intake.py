"""From link events to weighings ready to commit: framing, decoding, dedupe, pairing.

Synchronous and free of I/O except the dedupe question, which the caller answers (``is_duplicate``:
the outbox knows what was captured). The pump feeds events and commits what comes out. Every outcome
is returned (and logged by the caller), so nothing is dropped silently. A weighing outside the
plausible ranges is captured parked, with the reason, and never posted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drivers.errors import FrameError
from drivers.events import EventKind, LinkEvent
from drivers.framing import Framer
from drivers.model import DeviceReport, Reading
from drivers.registry import BleMode, Decoder, DriverSpec, LinkKind, flush_decoder

from .body import weighing_body
from .outbox import JobState
from .pairing import CardExpired, CardRead, CardSuperseded, Ignored, Paired, Pairing, PairingEvent, Unidentified
from .plausibility import park_reason

#: devices whose decoders are kept at once (one per BLE address); older ones are flushed and dropped
MAX_DECODERS = 64
UNIDENTIFIED_NOTE = "no member: no card read within the pairing window and no ID on the scale"


@dataclass(frozen=True, slots=True)
class Capture:
    """A weighing to commit to the outbox."""

    reading: Reading
    body: dict[str, Any]
    card: str | None
    card_source: str | None
    state: JobState
    dedupe_key: str
    dedupe_ttl_s: float
    received_at: datetime
    reading_scale: str = ""
    #: why it is not pending (an unidentified or implausible weighing), for the outbox note
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    error: FrameError
    frame: bytes


@dataclass(frozen=True, slots=True)
class Duplicate:
    reading: Reading
    dedupe_key: str


@dataclass(frozen=True, slots=True)
class Dropped:
    reading: Reading
    reason: str


@dataclass(frozen=True, slots=True)
class CardSeen:
    card: CardRead


Outcome = Capture | Rejected | Duplicate | Dropped | CardSeen | DeviceReport | PairingEvent


def dedupe_key(reading: Reading, event: LinkEvent, spec: DriverSpec | None = None) -> str:
    """Same reading read twice (BLE repeats, serial retransmits) -> same key. A driver may define what
    "the same" means for its payloads (``DriverSpec.dedupe_key``, e.g. Mi scales mask the
    load-removed bit); otherwise the raw frame text decides."""
    if spec is not None and spec.dedupe_key is not None:
        try:
            payload = bytes.fromhex(reading.raw)
        except ValueError:
            payload = reading.raw.encode("utf-8", "replace")
        return spec.dedupe_key(event.address or "", payload)
    digest = hashlib.sha256(reading.raw.encode("utf-8", "replace")).hexdigest()[:32]
    return f"{reading.driver}:{event.address or ''}:{digest}"


class Intake:
    def __init__(
        self,
        spec: DriverSpec,
        pairing: Pairing,
        *,
        scale: str = "",
        is_duplicate: Callable[[str, datetime], bool] = lambda key, at: False,
        dedupe_window_s: float = 600.0,
        broadcast_dedupe_window_s: float = 7 * 86400.0,
    ) -> None:
        self.spec = spec
        self.scale = scale
        self.pairing = pairing
        self.is_duplicate = is_duplicate
        self._framer: Framer = spec.make_framer()
        self._decoders: dict[str, Decoder] = {}
        self._recent: dict[str, float] = {}
        broadcast = spec.link is LinkKind.BLE and spec.ble is not None and spec.ble.mode is BleMode.BROADCAST
        broadcast = broadcast or spec.link is LinkKind.CLOUD  # a cloud lists a test again all day and after restarts
        self.dedupe_ttl_s = broadcast_dedupe_window_s if broadcast else dedupe_window_s
        self.frames = 0
        self.rejected = 0

    def _decoder(self, event: LinkEvent, out: list[Outcome]) -> Decoder:
        """The decoder of this event's device, most recently used last. Past ``MAX_DECODERS`` devices
        (a neighbour cycling BLE addresses) the least recently used one is flushed through pairing and
        dropped, so memory stays bounded and nothing it held is lost."""
        key = event.address or ""
        dec = self._decoders.pop(key, None)
        if dec is None:
            dec = self.spec.new_decoder()
        self._decoders[key] = dec
        while len(self._decoders) > MAX_DECODERS:
            old = next(iter(self._decoders))
            out.extend(self.session_ended(old or None, event.received_at))
        return dec

    def feed(self, event: LinkEvent) -> list[Outcome]:
        if event.kind is EventKind.CARD:
            return self.card(event.payload.decode("ascii", "replace").strip(), event.received_at)
        if event.kind is EventKind.TX:
            return []
        if event.kind is EventKind.SESSION_END:
            return self.session_ended(event.address, event.received_at)
        frames = self._framer.feed(event.payload) if event.kind is EventKind.RX else [event.payload]
        out: list[Outcome] = []
        for frame in frames:
            self.frames += 1
            try:
                results = self._decoder(event, out).decode(frame, event.channel)
            except FrameError as exc:
                self.rejected += 1
                out.append(Rejected(exc, frame))
                continue
            for result in results:
                if isinstance(result, DeviceReport):
                    out.append(result)
                else:
                    out.extend(self.reading(result, event))
        return out

    def flush(self, at: datetime) -> list[Outcome]:
        """End of input (a replay finished): what the decoders still hold (e.g. a body-composition
        record waiting for its weight) goes through pairing like any reading."""
        out: list[Outcome] = []
        for address, decoder in self._decoders.items():
            event = LinkEvent(EventKind.NOTIFY, b"", at, address=address or None, scale=self.scale)
            for result in flush_decoder(decoder):
                if isinstance(result, DeviceReport):
                    out.append(result)
                else:
                    out.extend(self.reading(result, event))
        return out

    def session_ended(self, address: str | None, at: datetime) -> list[Outcome]:
        """A BLE GATT session with ``address`` ended: what its decoder holds (a weight waiting for its
        composition, drivers/ble_standard.py) goes through pairing now; the next session starts afresh."""
        decoder = self._decoders.pop(address or "", None)
        if decoder is None:
            return []
        event = LinkEvent(EventKind.NOTIFY, b"", at, address=address, scale=self.scale)
        out: list[Outcome] = []
        for result in flush_decoder(decoder):
            if isinstance(result, DeviceReport):
                out.append(result)
            else:
                out.extend(self.reading(result, event))
        return out

    def card(self, number: str, at: datetime) -> list[Outcome]:
        if not number:
            return []
        card = CardRead(number, at, self.scale)
        return [CardSeen(card), *self.pairing.card(card)]

    def reading(self, reading: Reading, event: LinkEvent) -> list[Outcome]:
        at = event.received_at
        if reading.is_weighing:
            key = dedupe_key(reading, event, self.spec)
            if self.is_duplicate(key, at):
                return [Duplicate(reading, key)]
        out: list[Outcome] = []
        for ev in self.pairing.reading(reading, at, self.scale):
            if isinstance(ev, Paired):
                out.append(
                    self._capture(
                        ev.reading, at, ev.card.number, ev.card.source.value, state=JobState.PENDING, event=event
                    )
                )
            elif isinstance(ev, Unidentified):
                if ev.park:
                    out.append(self._capture(ev.reading, at, None, None, state=JobState.UNIDENTIFIED, event=event))
                else:
                    out.append(Dropped(ev.reading, "no member and unidentified = drop"))
            else:
                out.append(ev)
        return out

    def tick(self, now: datetime) -> list[Outcome]:
        return list(self.pairing.tick(now))

    def _capture(
        self, reading: Reading, at: datetime, card: str | None, source: str | None, *, state: JobState, event: LinkEvent
    ) -> Capture:
        note = UNIDENTIFIED_NOTE if state is JobState.UNIDENTIFIED else None
        implausible = park_reason(reading.measurement)
        if implausible is not None:  # kept for staff with the reason, never posted (docs/plausibility.md)
            state, note = JobState.PARKED, implausible
        return Capture(
            reading=reading,
            body=weighing_body(reading, received_at=at, scale=self.scale),
            card=card,
            card_source=source,
            state=state,
            dedupe_key=dedupe_key(reading, event, self.spec),
            dedupe_ttl_s=self.dedupe_ttl_s,
            received_at=at,
            reading_scale=self.scale,
            note=note,
        )


__all__ = [
    "Capture",
    "CardExpired",
    "CardSeen",
    "CardSuperseded",
    "Dropped",
    "Duplicate",
    "Ignored",
    "Intake",
    "Outcome",
    "Rejected",
]
