"""Member cards: number formats, serial RFID frame parsers, keyboard-wedge key mapping. Pure, stdlib only.

Not a scale driver: the registry skips sub-packages. The I/O sources live in ``drivers.links.cards``.
"""

from .numbers import (
    DEFAULT_FALLBACKS,
    ByteOrder,
    CardNumberError,
    CardNumberFormat,
    CardUid,
    PlatformCard,
    ReaderFormat,
    fallbacks,
    mask,
    parse,
    parse_fallbacks,
    render,
    to_platform,
)

__all__ = [
    "DEFAULT_FALLBACKS",
    "ByteOrder",
    "CardNumberError",
    "CardNumberFormat",
    "CardUid",
    "PlatformCard",
    "ReaderFormat",
    "fallbacks",
    "mask",
    "parse",
    "parse_fallbacks",
    "render",
    "to_platform",
]
