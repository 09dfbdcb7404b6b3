"""What a tapped card could mean: every reader format its text parses in, with the ID that implies,
the card in every format, and the platform query each ``[cards] format`` / ``byte_order`` would send.
Pure; used by ``scale-bridge scan --cards`` so an installer can find a reader's format."""

from __future__ import annotations

from dataclasses import dataclass

from .numbers import (
    ByteOrder,
    CardNumberError,
    CardNumberFormat,
    CardUid,
    PlatformCard,
    ReaderFormat,
    parse,
    render,
    to_platform,
)

#: formats tried on a card text, most common first (decimal10 is decimal with padding: shown, not tried)
_TRY = (
    ReaderFormat.DECIMAL_LE,
    ReaderFormat.DECIMAL,
    ReaderFormat.HEX,
    ReaderFormat.HEX_REVERSED,
    ReaderFormat.EM4100,
    ReaderFormat.W26,
    ReaderFormat.FIRST_CASCADE,
)


@dataclass(frozen=True, slots=True)
class Interpretation:
    """The reader's text read as ``reader_format``."""

    reader_format: ReaderFormat
    uid: CardUid
    #: the card in every format that applies to this ID
    renderings: dict[ReaderFormat, str]
    #: byte order -> the primary platform query with that ``[cards] byte_order``
    platform: dict[ByteOrder, PlatformCard]

    def to_json(self) -> dict[str, object]:
        return {
            "format": self.reader_format.value,
            "uid": self.uid.hex,
            "renderings": {f.value: text for f, text in self.renderings.items()},
            "platform": {o.value: [p.card_number, p.card_number_format.value] for o, p in self.platform.items()},
        }


def _looks_hex(text: str) -> bool:
    return any(c in "abcdefABCDEF" for c in text)


def explain(text: str, platform_format: CardNumberFormat | str = CardNumberFormat.DECIMAL) -> list[Interpretation]:
    """Every plausible reading of a card text. Decimal-looking text is not offered as hex (and hex
    with letters not as decimal): a keyboard reader set to hex almost always shows a letter within a
    few cards, and listing both for every tap would bury the answer."""
    card = text.strip()
    out: list[Interpretation] = []
    for fmt in _TRY:
        if fmt in (ReaderFormat.HEX, ReaderFormat.HEX_REVERSED) and not _looks_hex(card):
            continue
        try:
            uid = parse(card, fmt)
        except CardNumberError:
            continue
        renderings = {f: r for f in ReaderFormat if (r := render(uid, f)) is not None}
        if fmt.partial:
            platform = {ByteOrder.MSB: to_platform(card, fmt, ByteOrder.MSB, platform_format=platform_format)}
        else:
            platform = {o: to_platform(card, fmt, o, platform_format=platform_format) for o in ByteOrder}
        out.append(Interpretation(fmt, uid, renderings, platform))
    return out
