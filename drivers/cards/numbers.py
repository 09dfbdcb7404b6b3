"""Card numbers: raw UID bytes, what readers type, what the platform wants. Pure, stdlib only.

A card is stored as its raw UID bytes in the order the card sends them (``CardUid``; for Mifare that is
the order an Android phone shows, ``1c78f2bf``; for EM4100 the 5-byte ID, version byte first).
Readers render those bytes in one of several ``ReaderFormat``s (reference: scales.md §C):

=============== ================================================ ==========================
format          what the reader emits                            ``1c78f2bf`` / EM ``06008e6d5d``
=============== ================================================ ==========================
decimal         the UID as a big-endian integer                  ``477688511``
decimal_le      the UID as a little-endian integer (USB wedges)  ``3220338716``
decimal10       big-endian integer, 10 digits zero-padded        ``0477688511``
hex             hex, bytes in UID order                          ``1C78F2BF``
hex_reversed    hex, bytes reversed                              ``BFF2781C``
em4100          10-digit decimal of bytes 1-4 (version dropped)  EM: ``0009334109``
w26             facility byte, 16-bit card (last 3 bytes)        EM: ``142,27997`` / ``14227997``
first_cascade   7-byte UID, first cascade level only             ``04c43bc21c2680``: ``1002701960``
=============== ================================================ ==========================

The platform takes ``cardNumber`` plus ``cardNumberFormat`` (``DECIMAL`` | ``HEX_MSB`` | ``HEX_LSB``,
platform-api.md §7): one number ``N`` written as decimal digits, as big-endian hex, or as little-endian
hex. ``ByteOrder`` says how the platform's number relates to the UID: ``msb`` (the platform's own
convention: ``042b73321a3180`` = ``1173673668653440``) or ``lsb`` (members enrolled with a USB
keyboard reader that types the little-endian integer). Formats that render only part of the ID
(``em4100``, ``w26``, ``first_cascade``) *are* the number the platform holds; byte order does not apply.

Privacy: card numbers are personal data. Nothing here puts a card number into an exception message or
a ``repr``; use ``mask`` before logging one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple

from ..errors import FrameError

__all__ = [
    "DEFAULT_FALLBACKS",
    "ByteOrder",
    "CardNumberError",
    "CardNumberFormat",
    "CardUid",
    "PlatformCard",
    "ReaderFormat",
    "candidate",
    "fallbacks",
    "from_platform",
    "mask",
    "parse",
    "parse_fallbacks",
    "platform_queries",
    "render",
    "to_platform",
]

#: ISO 14443 UIDs are 4, 7 or 10 bytes, EM4100 IDs 5; partial IDs (w26, first cascade) 3.
MAX_UID_BYTES = 10
#: Widths tried, smallest first, when a decimal reader output is turned back into bytes.
_DECIMAL_WIDTHS = (4, 5, 7, 8, 10)
_CASCADE_TAG = 0x88
_HEX_SEPARATORS = re.compile(r"[\s:\-]")


class CardNumberError(FrameError):
    """A card text is not valid in the given format. The message never contains the card number."""


class ReaderFormat(StrEnum):
    DECIMAL = "decimal"
    DECIMAL_LE = "decimal_le"
    DECIMAL10 = "decimal10"
    HEX = "hex"
    HEX_REVERSED = "hex_reversed"
    EM4100 = "em4100"
    W26 = "w26"
    FIRST_CASCADE = "first_cascade"

    @property
    def partial(self) -> bool:
        """The format shows only part of the ID: it is itself the number the platform holds."""
        return self in _PARTIAL


_PARTIAL = frozenset({ReaderFormat.EM4100, ReaderFormat.W26, ReaderFormat.FIRST_CASCADE})


class CardNumberFormat(StrEnum):
    """The platform's ``cardNumberFormat`` (platform-api.md §7)."""

    DECIMAL = "DECIMAL"
    HEX_MSB = "HEX_MSB"
    HEX_LSB = "HEX_LSB"


class ByteOrder(StrEnum):
    MSB = "msb"
    LSB = "lsb"


class PlatformCard(NamedTuple):
    """What to put in ``?cardNumber=...&cardNumberFormat=...``. Unpacks as ``(number, fmt)``."""

    card_number: str
    card_number_format: CardNumberFormat


@dataclass(frozen=True, slots=True)
class CardUid:
    """A card's ID bytes in the order the card sends them. ``repr`` is masked."""

    data: bytes

    def __post_init__(self) -> None:
        if not 1 <= len(self.data) <= MAX_UID_BYTES:
            raise CardNumberError(f"a card ID has 1 to {MAX_UID_BYTES} bytes, not {len(self.data)}")

    @classmethod
    def from_hex(cls, text: str) -> CardUid:
        return parse(text, ReaderFormat.HEX)

    @property
    def hex(self) -> str:
        """Lowercase hex in UID order (``1c78f2bf``)."""
        return self.data.hex()

    def as_int(self, order: ByteOrder = ByteOrder.MSB) -> int:
        return int.from_bytes(self.data, "big" if order is ByteOrder.MSB else "little")

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"CardUid({mask(self.data.hex())}, {len(self.data)} bytes)"

    __str__ = __repr__


def mask(card: str) -> str:
    """For logs: keep the last 4 characters (``3220338716`` -> ``******8716``); short values fully."""
    if len(card) <= 4:
        return "*" * len(card)
    return "*" * (len(card) - 4) + card[-4:]


# ---------------------------------------------------------------------------------------------- parsing


def _digits(text: str, fmt: ReaderFormat, max_digits: int = 25) -> int:
    s = text.strip()
    if not s or not s.isascii() or not s.isdigit():
        raise CardNumberError(f"not a {fmt} card number: expected decimal digits ({len(s)} characters given)")
    if len(s) > max_digits:
        raise CardNumberError(f"not a {fmt} card number: {len(s)} digits, at most {max_digits}")
    return int(s)


def _width_for(value: int, fmt: ReaderFormat) -> int:
    needed = max(1, (value.bit_length() + 7) // 8)
    for width in _DECIMAL_WIDTHS:
        if needed <= width:
            return width
    raise CardNumberError(f"not a {fmt} card number: more than {MAX_UID_BYTES} bytes")


def _hex_bytes(text: str, fmt: ReaderFormat) -> bytes:
    s = _HEX_SEPARATORS.sub("", text.strip())
    if s[:2] in ("0x", "0X"):
        s = s[2:]
    if not s or not s.isascii() or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise CardNumberError(f"not a {fmt} card number: expected hex digits")
    if len(s) % 2:
        s = "0" + s
    if len(s) // 2 > MAX_UID_BYTES:
        raise CardNumberError(f"not a {fmt} card number: more than {MAX_UID_BYTES} bytes")
    return bytes.fromhex(s)


def parse(text: str, fmt: ReaderFormat | str) -> CardUid:
    """Reader text -> the ID bytes it encodes. Raises ``CardNumberError``.

    Decimal outputs lose leading zero bytes; they come back as the smallest usual UID width (4, 5, 7,
    8 or 10 bytes). ``em4100`` gives the 4 ID bytes (the version byte is unknown), ``w26`` the last 3
    bytes, ``first_cascade`` the first 3 UID bytes.
    """
    f = ReaderFormat(fmt)
    if f in (ReaderFormat.DECIMAL, ReaderFormat.DECIMAL10):
        value = _digits(text, f)
        return CardUid(value.to_bytes(_width_for(value, f), "big"))
    if f is ReaderFormat.DECIMAL_LE:
        value = _digits(text, f)
        return CardUid(value.to_bytes(_width_for(value, f), "little"))
    if f is ReaderFormat.HEX:
        return CardUid(_hex_bytes(text, f))
    if f is ReaderFormat.HEX_REVERSED:
        return CardUid(_hex_bytes(text, f)[::-1])
    if f is ReaderFormat.EM4100:
        value = _digits(text, f, max_digits=10)
        if value > 0xFFFFFFFF:
            raise CardNumberError("not an em4100 card number: larger than 32 bits")
        return CardUid(value.to_bytes(4, "big"))
    if f is ReaderFormat.W26:
        return CardUid(_parse_w26(text))
    # FIRST_CASCADE
    value = _digits(text, f, max_digits=10)
    if value > 0xFFFFFFFF:
        raise CardNumberError("not a first_cascade card number: larger than 32 bits")
    level1 = value.to_bytes(4, "little")
    if level1[0] != _CASCADE_TAG:
        raise CardNumberError("not a first_cascade card number: no cascade tag 0x88 in the low byte")
    return CardUid(level1[1:])


def _parse_w26(text: str) -> bytes:
    s = text.strip()
    if "," in s:
        facility_s, _, card_s = s.partition(",")
        facility = _digits(facility_s, ReaderFormat.W26, 3)
        card = _digits(card_s, ReaderFormat.W26, 5)
    else:
        # no separator: the card part is the last 5 digits (zero-padded), the facility what precedes it
        digits = _digits(s, ReaderFormat.W26, 8)
        facility, card = divmod(digits, 100_000)
    if facility > 0xFF or card > 0xFFFF:
        raise CardNumberError("not a w26 card number: facility must be 0-255 and card 0-65535")
    return bytes([facility]) + card.to_bytes(2, "big")


# -------------------------------------------------------------------------------------------- rendering


def render(uid: CardUid, fmt: ReaderFormat | str) -> str | None:
    """The text a reader in ``fmt`` would emit for this card; None where the format does not apply
    (em4100 needs a 4- or 5-byte ID, w26 a 3- or 5-byte one, first_cascade a 7-byte (or 3-byte) UID,
    decimal10 a value below 10^10)."""
    f = ReaderFormat(fmt)
    data = uid.data
    if f is ReaderFormat.DECIMAL:
        return str(uid.as_int(ByteOrder.MSB))
    if f is ReaderFormat.DECIMAL_LE:
        return str(uid.as_int(ByteOrder.LSB))
    if f is ReaderFormat.DECIMAL10:
        value = uid.as_int(ByteOrder.MSB)
        return f"{value:010d}" if value < 10**10 else None
    if f is ReaderFormat.HEX:
        return data.hex().upper()
    if f is ReaderFormat.HEX_REVERSED:
        return data[::-1].hex().upper()
    if f is ReaderFormat.EM4100:
        if len(data) not in (4, 5):
            return None
        return f"{int.from_bytes(data[-4:], 'big'):010d}"
    if f is ReaderFormat.W26:
        if len(data) not in (3, 5):
            return None
        return f"{data[-3]},{int.from_bytes(data[-2:], 'big')}"
    # FIRST_CASCADE
    if len(data) not in (3, 7):
        return None
    return str(int.from_bytes(bytes([_CASCADE_TAG]) + data[:3], "little"))


def _w26_digits(rendered: str) -> str:
    facility, _, card = rendered.partition(",")
    return f"{facility}{int(card):05d}"


# ------------------------------------------------------------------------------------------ to platform


def _encode(value: int, width: int, digits: str, fmt: CardNumberFormat) -> PlatformCard:
    if fmt is CardNumberFormat.DECIMAL:
        return PlatformCard(digits, fmt)
    order: Literal["big", "little"] = "big" if fmt is CardNumberFormat.HEX_MSB else "little"
    width = max(width, (value.bit_length() + 7) // 8, 1)
    return PlatformCard(value.to_bytes(width, order).hex(), fmt)


def to_platform(
    card: CardUid | str,
    reader_format: ReaderFormat | str,
    byte_order: ByteOrder | str = ByteOrder.MSB,
    *,
    platform_format: CardNumberFormat | str = CardNumberFormat.DECIMAL,
) -> PlatformCard:
    """The primary platform query for a card: ``(cardNumber, cardNumberFormat)``.

    ``card`` is the reader's text (in ``reader_format``) or the ID bytes. Full-ID formats: the number
    is the UID read in ``byte_order`` and written in ``platform_format`` (hex keeps the UID's width,
    so ``042b73321a3180`` stays 7 bytes). When the reader's own decimal text already is that number,
    it is sent verbatim (leading zeros kept: the platform may compare strings; whether it does is
    unknown). Partial formats (em4100, w26, first_cascade): the reader's number is the card number.
    Raises ``CardNumberError``.
    """
    f = ReaderFormat(reader_format)
    order = ByteOrder(byte_order)
    pfmt = CardNumberFormat(platform_format)
    uid = card if isinstance(card, CardUid) else parse(card, f)
    if f.partial:
        rendered = render(uid, f)
        if rendered is None:
            raise CardNumberError(f"a {len(uid)}-byte card ID has no {f} form")
        digits = _w26_digits(rendered) if f is ReaderFormat.W26 else rendered
        width = 0 if f is ReaderFormat.W26 else 4  # em4100 and first_cascade are 32-bit numbers
        return _encode(int(digits), width, digits, pfmt)
    value = uid.as_int(order)
    digits = str(value)
    if isinstance(card, str) and f in _DECIMAL_TEXT[order]:
        digits = card.strip()
    return _encode(value, len(uid), digits, pfmt)


_DECIMAL_TEXT = {
    ByteOrder.MSB: frozenset({ReaderFormat.DECIMAL, ReaderFormat.DECIMAL10}),
    ByteOrder.LSB: frozenset({ReaderFormat.DECIMAL_LE}),
}


def from_platform(card_number: str, fmt: CardNumberFormat | str) -> int:
    """The number a platform ``(cardNumber, cardNumberFormat)`` pair denotes (for tests and scan)."""
    f = CardNumberFormat(fmt)
    if f is CardNumberFormat.DECIMAL:
        return _digits(card_number, ReaderFormat.DECIMAL)
    data = _hex_bytes(card_number, ReaderFormat.HEX)
    return int.from_bytes(data, "big" if f is CardNumberFormat.HEX_MSB else "little")


def candidate(uid: CardUid, alternative: ReaderFormat | str) -> PlatformCard | None:
    """The platform query if the platform holds the card as a reader in ``alternative`` would have
    typed it: decimal forms as ``DECIMAL``, hex forms as ``HEX_MSB`` (lowercase). None if the format
    does not apply to this ID."""
    f = ReaderFormat(alternative)
    rendered = render(uid, f)
    if rendered is None:
        return None
    if f in (ReaderFormat.HEX, ReaderFormat.HEX_REVERSED):
        return PlatformCard(rendered.lower(), CardNumberFormat.HEX_MSB)
    if f is ReaderFormat.W26:
        return PlatformCard(_w26_digits(rendered), CardNumberFormat.DECIMAL)
    return PlatformCard(rendered, CardNumberFormat.DECIMAL)


#: Tried after a 404 when the config names none: other numbers first (byte order, EM version byte
#: dropped), then other spellings of numbers already tried (zero padding, hex), in case the platform
#: compares text (unknown). w26 and first_cascade are left out on purpose: they are short partial
#: numbers, so a wrong guess could match *another* member's card.
DEFAULT_FALLBACKS: tuple[ReaderFormat, ...] = (
    ReaderFormat.DECIMAL,
    ReaderFormat.DECIMAL_LE,
    ReaderFormat.EM4100,
    ReaderFormat.DECIMAL10,
    ReaderFormat.HEX,
    ReaderFormat.HEX_REVERSED,
)


Alternative = ReaderFormat | CardNumberFormat


def parse_fallbacks(names: Sequence[str]) -> tuple[Alternative, ...]:
    """Config ``[cards] fallbacks``: ``[]`` = ``DEFAULT_FALLBACKS``, ``["none"]`` = no fallbacks,
    otherwise names in the order to try: a reader format (``decimal_le``: the platform may hold the
    card as such a reader typed it) or a platform format (``HEX_LSB``: the primary number, written in
    that ``cardNumberFormat``). Raises ``ValueError`` naming the bad entry."""
    if not names:
        return DEFAULT_FALLBACKS
    if list(names) == ["none"]:
        return ()
    out: list[Alternative] = []
    for name in names:
        alt = _alternative(name)
        if alt not in out:
            out.append(alt)
    return tuple(out)


def _alternative(name: Alternative | str) -> Alternative:
    if isinstance(name, ReaderFormat | CardNumberFormat):
        return name
    if name in CardNumberFormat._value2member_map_:
        return CardNumberFormat(name)
    if name in ReaderFormat._value2member_map_:
        return ReaderFormat(name)
    known = ", ".join([*(m.value for m in ReaderFormat), *(m.value for m in CardNumberFormat)])
    raise ValueError(f"unknown card format {name!r} (known: {known}, or 'none' alone)")


def fallbacks(
    card: CardUid | str,
    reader_format: ReaderFormat | str,
    byte_order: ByteOrder | str = ByteOrder.MSB,
    *,
    platform_format: CardNumberFormat | str = CardNumberFormat.DECIMAL,
    alternatives: Iterable[Alternative | str] | None = None,
) -> list[PlatformCard]:
    """Other queries to try, in order, after the primary ``to_platform`` query got a 404.

    One candidate per alternative (``DEFAULT_FALLBACKS`` when None; see ``parse_fallbacks``) that
    applies to the card, in the given order, without duplicates and without the primary query itself.
    Raises ``CardNumberError`` if the reader text does not parse.
    """
    f = ReaderFormat(reader_format)
    uid = card if isinstance(card, CardUid) else parse(card, f)
    primary = to_platform(card, f, byte_order, platform_format=platform_format)
    seen = {primary}
    out: list[PlatformCard] = []
    for name in DEFAULT_FALLBACKS if alternatives is None else alternatives:
        alt = _alternative(name)
        if isinstance(alt, CardNumberFormat):
            c: PlatformCard | None = to_platform(card, f, byte_order, platform_format=alt)
        else:
            c = candidate(uid, alt)
        if c is not None and c not in seen:
            seen.add(c)
            out.append(c)
    return out


def platform_queries(
    text: str,
    reader_format: ReaderFormat | str,
    byte_order: ByteOrder | str = ByteOrder.MSB,
    platform_format: CardNumberFormat | str = CardNumberFormat.DECIMAL,
    fallback_names: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """Every query to try for a card, in order: ``to_platform`` then ``fallbacks`` (config names as
    in ``parse_fallbacks``). Never raises for a card text: one the format cannot read is sent as it
    is (the platform answers 404 and the weighing is parked), so a misconfigured format costs a
    lookup, not a crash. Raises ``ValueError`` only for bad config values."""
    alts = parse_fallbacks(fallback_names)
    # bad config values raise here, whatever the card
    ReaderFormat(reader_format)
    ByteOrder(byte_order)
    CardNumberFormat(platform_format)
    card = text.strip()
    try:
        primary = to_platform(card, reader_format, byte_order, platform_format=platform_format)
        rest = fallbacks(card, reader_format, byte_order, platform_format=platform_format, alternatives=alts)
    except CardNumberError:
        return [(card, str(CardNumberFormat(platform_format)))] if card else []
    return [(n, str(f)) for n, f in [primary, *rest]]
