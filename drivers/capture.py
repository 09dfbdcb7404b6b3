"""Capture files (record, replay, test vectors): JSON Lines.

Line 1 is a header ``{"format": "scale-bridge-capture", "version": 1, "driver": ..., "link": ...,
"note": ..., "started_at": ISO-8601 (optional)}``; every further line is an event
``{"t": seconds_from_start, "kind": "rx"|"tx"|"adv"|"notify"|"card"|"session_end", "hex": "...", ...}``.
Optional event keys: ``channel`` (``service_uuid``/``characteristic`` accepted as aliases),
``address``, ``rssi``, ``name``, ``scale``; a card event may give ``value`` (the text the reader
produced) instead of ``hex``. Vectors may add ``"expect"``; unknown keys are kept out of the event.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import CaptureError
from .events import EventKind, LinkEvent

FORMAT = "scale-bridge-capture"
VERSION = 1
#: the largest ``t`` accepted (10 years of seconds): a recording is hours long; beyond this, a value
#: is garbage, and ``started_at + t`` would leave the range of ``datetime``
MAX_T_S = 10 * 366 * 86400.0
#: event times (``started_at + t``) outside these are refused: the bridge adds windows and TTLs of
#: days to them, which must stay inside ``datetime``'s range
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _loads(line: str, line_no: int, what: str) -> Any:
    """``json.loads`` raising only CaptureError: NaN/Infinity refused (strict JSON), deep nesting
    (RecursionError) and numbers too long to convert reported with the line."""
    try:
        return json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise CaptureError(f"{what} is not JSON ({exc.msg})", line_no) from None
    except RecursionError:
        raise CaptureError(f"{what} is nested too deeply", line_no) from None
    except ValueError as exc:  # NaN / Infinity, or an integer with more digits than Python converts
        raise CaptureError(f"{what} is not JSON ({exc})", line_no) from None


def _optional_str(doc: dict[str, Any], key: str, line_no: int) -> str | None:
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    raise CaptureError(f'"{key}" must be a string', line_no)


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
    doc = _loads(line, 1, "header")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CaptureError(f'not a capture file (first line must have "format": "{FORMAT}")', 1)
    if type(doc.get("version")) is not int or doc.get("version") != VERSION:
        version = str(doc.get("version"))[:20]
        raise CaptureError(f"unsupported capture version {version!r} (this build reads {VERSION})", 1)
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
        try:
            started.astimezone(UTC)
        except OverflowError:
            raise CaptureError("header started_at is out of range", 1) from None
    known = {"format", "version", "driver", "link", "note", "started_at"}
    extra = {k: v for k, v in doc.items() if k not in known}
    note = doc.get("note", "")
    return CaptureHeader(driver, link, note if isinstance(note, str) else "", started, extra)


def _event_t_s(doc: dict[str, Any], line_no: int) -> float:
    """The event's ``t``: seconds since the capture's start, in range."""
    t = doc.get("t", 0.0)
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise CaptureError('"t" must be a non-negative number of seconds', line_no)
    try:
        t_s = float(t)
    except OverflowError:
        t_s = math.inf
    if not 0 <= t_s <= MAX_T_S:  # NaN fails both comparisons
        raise CaptureError(f'"t" must be between 0 and {MAX_T_S:.0f} seconds', line_no)
    return t_s


def _event_payload(doc: dict[str, Any], kind: EventKind, line_no: int) -> bytes:
    """The event's bytes: ``hex``, or a card's printable ``value``."""
    if "hex" in doc:
        if not isinstance(doc["hex"], str):
            raise CaptureError('"hex" must be a string of hexadecimal digits', line_no)
        try:
            return bytes.fromhex(doc["hex"])
        except ValueError:
            raise CaptureError('"hex" is not hexadecimal', line_no) from None
    if kind is EventKind.CARD and isinstance(doc.get("value"), str):
        value = doc["value"]
        if not (value.isascii() and value.isprintable()):
            raise CaptureError('card "value" must be printable ASCII', line_no)
        return bytes(value.encode("ascii"))
    raise CaptureError('event needs "hex" (or "value" for a card)', line_no)


def parse_event(line: str, line_no: int, start: datetime) -> CaptureEvent:
    """One event line. Raises only CaptureError (with ``line_no``), whatever the line holds."""
    doc = _loads(line, line_no, "event")
    if not isinstance(doc, dict):
        raise CaptureError("event must be a JSON object", line_no)
    kind_text = doc.get("kind")
    try:
        kind = EventKind(kind_text if isinstance(kind_text, str) else "")
    except ValueError:
        raise CaptureError(f"unknown event kind {str(kind_text)[:20]!r}", line_no) from None
    t_s = _event_t_s(doc, line_no)
    payload = _event_payload(doc, kind, line_no)
    channel = doc.get("channel") or doc.get("service_uuid") or doc.get("characteristic") or ""
    if not isinstance(channel, str):
        raise CaptureError('"channel" must be a string', line_no)
    rssi = doc.get("rssi")
    try:
        received_at = start + timedelta(seconds=t_s)
        in_range = EARLIEST <= received_at < LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise CaptureError(f"start time + t ({t_s:g} s) is not between {EARLIEST.year} and {LATEST.year}", line_no)
    event = LinkEvent(
        kind=kind,
        payload=payload,
        received_at=received_at,
        channel=channel.lower(),
        address=_optional_str(doc, "address", line_no),
        rssi=rssi if isinstance(rssi, int) and not isinstance(rssi, bool) and -200 <= rssi <= 200 else None,
        name=_optional_str(doc, "name", line_no),
        scale=_optional_str(doc, "scale", line_no) or "",
    )
    return CaptureEvent(t_s, event, doc.get("expect"))


def read_capture(
    lines: Iterable[str], *, start: datetime | None = None
) -> tuple[CaptureHeader, Iterator[CaptureEvent]]:
    """Parse a capture. Events are produced lazily (captures can be large).

    ``received_at`` of each event = ``start`` (default: the header's ``started_at``, else now) + t.
    Raises only CaptureError, with the line number.
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


def _text_lines(lines: Iterable[bytes]) -> Iterator[str]:
    for n, raw in enumerate(lines, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CaptureError(f"not UTF-8 text (byte {exc.start + 1})", n) from None


def read_capture_bytes(
    lines: Iterable[bytes], *, start: datetime | None = None
) -> tuple[CaptureHeader, Iterator[CaptureEvent]]:
    """``read_capture`` for lines of bytes (a file opened in binary mode): invalid UTF-8 is a
    CaptureError naming its line, not a UnicodeDecodeError from the file object."""
    return read_capture(_text_lines(lines), start=start)


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
