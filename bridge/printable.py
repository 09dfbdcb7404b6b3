"""``printable(text)``: text from outside (the platform's errorMessage, a card typed at a prompt, a
scale's line) made safe to print on a terminal or a log line (issue 14, L4). Pure.

Control characters (C0, DEL, C1: ESC sequences that clear the screen, move the cursor, hide text or
set the window title), and the Unicode format characters that reorder or hide text (bidi overrides,
zero-width), are replaced by visible escapes: ``\\x1b``, ``\\u202e``. Printable text, including
non-ASCII letters, is unchanged. ``max_chars`` bounds the result (an ellipsis marks a cut).
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _safe(ch: str) -> bool:
    if ch == "\\":
        return True
    # Cc: control; Cf: format (bidi overrides, zero-width); Cs: lone surrogates; Co/Cn: private, unassigned;
    # Zl/Zp: line and paragraph separators
    return ch == " " or (ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Cs", "Co", "Cn"))


def printable(text: object, *, max_chars: int | None = None) -> str:
    """``text`` (``str()`` of anything) with every non-printable character escaped."""
    s = text if isinstance(text, str) else str(text)
    out = s if s.isascii() and s.isprintable() else "".join(ch if _safe(ch) else _escape(ch) for ch in s)
    if max_chars is not None and len(out) > max_chars:
        out = out[: max(0, max_chars - 1)] + "\u2026"
    return out
