"""Pseudonyms for recordings sent to support (``scale-bridge record --redact``). Pure, stdlib only.

A pseudonym is a keyed hash of the value (HMAC-SHA256), rendered with the same length and the same
kind of characters, so a redacted capture still decodes (a 16-digit Tanita ``ID`` stays 16 digits) and
one member stays one pseudonym throughout a recording. The key is random per recording (the caller's
``os.urandom``): card numbers have little entropy, and an unkeyed hash could be reversed by trying
them all. A pseudonym is never all zeros (Tanita's "no ID") and never the value itself.
"""

from __future__ import annotations

import hashlib
import hmac
import string

_DIGITS = string.digits
_HEX_LOWER = "0123456789abcdef"
_HEX_UPPER = "0123456789ABCDEF"
_ALNUM = string.ascii_uppercase + string.digits


def _alphabet(value: str) -> str:
    if value.isascii() and value.isdigit():
        return _DIGITS
    if all(c in _HEX_UPPER for c in value):
        return _HEX_UPPER
    if all(c in _HEX_LOWER for c in value):
        return _HEX_LOWER
    return _ALNUM


def pseudonym(value: str, key: bytes) -> str:
    """Same length, same character class (digits, hex, else A-Z0-9), stable for one ``key``."""
    if not value:
        return value
    alphabet = _alphabet(value)
    counter = 0
    while True:
        out: list[str] = []
        block = 0
        while len(out) < len(value):
            msg = f"{counter}:{block}:{value}".encode()
            digest = hmac.new(key, msg, hashlib.sha256).digest()
            out.extend(alphabet[b % len(alphabet)] for b in digest)
            block += 1
        candidate = "".join(out[: len(value)])
        if candidate != value and set(candidate) != {"0"}:
            return candidate
        counter += 1


def is_unset(value: str) -> bool:
    """Tanita writes all zeros for "no ID": nothing personal, kept as is."""
    return not value or set(value) <= {"0"}
