"""Bluetooth UUID helpers and the hex-line format of the decode CLI (no SPEC: not a driver).

BLE channels (service-data UUIDs, characteristic UUIDs) travel through the bridge as full lowercase
128-bit strings, the form bleak uses: ``0000181b-0000-1000-8000-00805f9b34fb``. People write the
16-bit short form (``181b``, ``0x2A9C``); these helpers convert between the two.

``parse_hex_line`` reads one line of the decode CLI: a payload in hex, optionally preceded by the UUID
of its service or characteristic and whitespace::

    181b 0226b20705040f0201ac018642
    2a9c 1e 06 ea 00 ...
    00002a9d-0000-1000-8000-00805f9b34fb 00:8c:3c
    229e43e507040b101301

Spaces and colons inside the hex are ignored, as is a ``#`` comment at the end of the line. A first
token counts as a UUID when it is a 128-bit UUID, ``0x`` + 4 or 8 hex digits, or 4 (or 8, with
``0000`` in front) hex digits in the ranges the Bluetooth SIG assigns to services (0x1800-0x18FF),
characteristics (0x2A00-0x2BFF) and member services (0xFD00-0xFFFF). Anything else is hex payload.
So ``181b 0226...`` is a channel and a payload, while ``0226 b207 ...`` is one payload written in
groups. Write the payload without spaces (or one byte per group) to avoid any doubt.
"""

from __future__ import annotations

import re

from .errors import FrameError

BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"
_FULL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHORT = re.compile(r"^(?:0x)?([0-9a-f]{4}|[0-9a-f]{8})$")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
#: 16-bit ranges that count as a channel token in ``parse_hex_line`` (see module docstring)
_ASSIGNED_RANGES = ((0x1800, 0x18FF), (0x2A00, 0x2BFF), (0xFD00, 0xFFFF))


def full_uuid(uuid: str) -> str:
    """``"2a9c"``, ``"0x2A9C"``, ``"00002a9c"`` or a full UUID -> the full lowercase 128-bit form.

    Raises ``ValueError`` for anything that is not a UUID.
    """
    text = uuid.strip().lower()
    if _FULL.match(text):
        return text
    m = _SHORT.match(text)
    if m is None:
        raise ValueError(f"not a Bluetooth UUID: {uuid!r}")
    digits = m.group(1)
    return digits.rjust(8, "0") + BASE_SUFFIX


def short_uuid(uuid: str) -> str:
    """The 16-bit form (``"2a9c"``) of a UUID on the Bluetooth base UUID; other UUIDs stay 128-bit.

    32-bit base UUIDs above 0xFFFF keep their 8 digits. Raises ``ValueError`` for a non-UUID.
    """
    full = full_uuid(uuid)
    if not full.endswith(BASE_SUFFIX):
        return full
    head = full[:8]
    return head[4:] if head.startswith("0000") else head


def is_uuid(text: str) -> bool:
    try:
        full_uuid(text)
    except ValueError:
        return False
    return True


def _is_channel_token(token: str) -> bool:
    t = token.lower()
    if _FULL.match(t):
        return True
    if t.startswith("0x"):
        return _SHORT.match(t) is not None
    if len(t) == 8 and t.startswith("0000"):
        t = t[4:]
    if len(t) != 4 or not set(t) <= _HEX_DIGITS:
        return False
    value = int(t, 16)
    return any(lo <= value <= hi for lo, hi in _ASSIGNED_RANGES)


def parse_hex(text: str) -> bytes:
    """Hex digits with optional spaces, colons, dashes or a ``0x`` prefix -> bytes (FrameError if not)."""
    cleaned = text.strip()
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    digits: list[str] = []
    for column, ch in enumerate(cleaned, start=1):
        if ch in _HEX_DIGITS:
            digits.append(ch)
        elif ch in " \t:-":
            continue
        else:
            raise FrameError(f"not hexadecimal: {ch!r} at column {column}")
    if not digits:
        raise FrameError("no payload: expected hex digits")
    if len(digits) % 2:
        raise FrameError(f"odd number of hex digits ({len(digits)}): a byte is missing a digit")
    return bytes.fromhex("".join(digits))


def parse_hex_line(line: str) -> tuple[str, bytes]:
    """One line of the decode CLI -> ``(channel, payload)``.

    ``channel`` is the full lowercase UUID, or ``""`` when the line gives none. Raises ``FrameError``
    with the reason (empty line, not hex, odd number of digits).
    """
    text = line.split("#", 1)[0].strip()
    if not text:
        raise FrameError("empty line: expected '[uuid] hex-payload'")
    parts = text.split(None, 1)
    if len(parts) == 2 and _is_channel_token(parts[0]):
        channel = full_uuid(parts[0])
        try:
            return channel, parse_hex(parts[1])
        except FrameError as exc:
            raise FrameError(f"payload after UUID {short_uuid(channel)}: {exc.reason}") from None
    return "", parse_hex(text)
