"""Capture files (record, replay, test vectors): JSON Lines.

Line 1 is a header ``{"format": "scale-bridge-capture", "version": 1, "driver": ..., "link": ...,
"note": ..., "started_at": ISO-8601 (optional)}``; every further line is an event
``{"t": seconds_from_start, "kind": "rx"|"tx"|"adv"|"notify"|"card", "hex": "...", ...}``.
Optional event keys: ``channel`` (``service_uuid``/``characteristic`` accepted as aliases),
``address``, ``rssi``, ``name``, ``scale``; a card event may give ``value`` (the text the reader
produced) instead of ``hex``. Vectors may add ``"expect"``; unknown keys are kept out of the event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import CaptureError
from .events import EventKind, LinkEvent

FORMAT = "scale-bridge-capture"
VERSION = 1


@dataclass(frozen=True, slots=True)
class CaptureHeader:
    driver: str
    link: str
    note: str = ""
    started_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "driver": self.driver, "link": self.link}
        doc["note"] = self.note
        if self.started_at is not None:
            doc["started_at"] = self.started_at.isoformat()
        doc.update(self.extra)
        return json.dumps(doc, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class CaptureEvent:
    t_s: float
    event: LinkEvent
    expect: Any = None


def parse_header(line: str) -> CaptureHeader:
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CaptureError(f"header is not JSON ({exc.msg})", 1) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CaptureError(f'not a capture file (first line must have "format": "{FORMAT}")', 1)
    if doc.get("version") != VERSION:
        raise CaptureError(f"unsupported capture version {doc.get('version')!r} (this build reads {VERSION})", 1)
    driver, link = doc.get("driver"), doc.get("link")
    if not isinstance(driver, str) or not isinstance(link, str):
        raise CaptureError('header needs string "driver" and "link"', 1)
    started = None
    if isinstance(doc.get("started_at"), str):
        try:
            started = datetime.fromisoformat(doc["started_at"])
        except ValueError:
            raise CaptureError("header started_at is not ISO-8601", 1) from None
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
    known = {"format", "version", "driver", "link", "note", "started_at"}
    extra = {k: v for k, v in doc.items() if k not in known}
    return CaptureHeader(driver, link, str(doc.get("note", "")), started, extra)


def parse_event(line: str, line_no: int, start: datetime) -> CaptureEvent:
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CaptureError(f"not JSON ({exc.msg})", line_no) from None
    if not isinstance(doc, dict):
        raise CaptureError("event must be a JSON object", line_no)
    try:
        kind = EventKind(str(doc.get("kind")))
    except ValueError:
        raise CaptureError(f"unknown event kind {doc.get('kind')!r}", line_no) from None
    t = doc.get("t", 0.0)
    if not isinstance(t, int | float) or t < 0:
        raise CaptureError('"t" must be a non-negative number of seconds', line_no)
    if "hex" in doc:
        try:
            payload = bytes.fromhex(str(doc["hex"]))
        except ValueError:
            raise CaptureError('"hex" is not hexadecimal', line_no) from None
    elif kind is EventKind.CARD and isinstance(doc.get("value"), str):
        payload = doc["value"].encode("ascii", "replace")
    else:
        raise CaptureError('event needs "hex" (or "value" for a card)', line_no)
    channel = doc.get("channel") or doc.get("service_uuid") or doc.get("characteristic") or ""
    rssi = doc.get("rssi")
    event = LinkEvent(
        kind=kind,
        payload=payload,
        received_at=start + timedelta(seconds=float(t)),
        channel=str(channel).lower(),
        address=doc.get("address"),
        rssi=rssi if isinstance(rssi, int) else None,
        name=doc.get("name"),
        scale=str(doc.get("scale", "")),
    )
    return CaptureEvent(float(t), event, doc.get("expect"))


def read_capture(
    lines: Iterable[str], *, start: datetime | None = None
) -> tuple[CaptureHeader, Iterator[CaptureEvent]]:
    """Parse a capture. Events are produced lazily (captures can be large).

    ``received_at`` of each event = ``start`` (default: the header's ``started_at``, else now) + t.
    """
    it = iter(lines)
    first = next(it, None)
    if first is None:
        raise CaptureError("empty file")
    header = parse_header(first)
    origin = start or header.started_at or datetime.now(UTC)

    def events() -> Iterator[CaptureEvent]:
        for n, line in enumerate(it, start=2):
            if line.strip():
                yield parse_event(line, n, origin)

    return header, events()


def event_to_json(event: LinkEvent, t_s: float, *, expect: Any = None) -> str:
    doc: dict[str, Any] = {"t": round(t_s, 6), "kind": event.kind.value, "hex": event.payload.hex()}
    if event.channel:
        doc["channel"] = event.channel
    if event.address:
        doc["address"] = event.address
    if event.rssi is not None:
        doc["rssi"] = event.rssi
    if event.name:
        doc["name"] = event.name
    if event.scale:
        doc["scale"] = event.scale
    if expect is not None:
        doc["expect"] = expect
    return json.dumps(doc, separators=(",", ":"))
