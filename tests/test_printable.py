"""L4 (issue 14): terminal escapes from outside are escaped before printing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.printable import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J\x1b[H\x1b[32mAll delivered\x1b[8m", "\\x1b[2J\\x1b[H\\x1b[32mAll delivered\\x1b[8m"),
        ("bell\x07", "bell\\x07"),
        ("line\r\nbreak", "line\\x0d\\x0abreak"),
        ("\x9b31m C1 CSI", "\\x9b31m C1 CSI"),
        ("abc\u202etxt.exe", "abc\\u202etxt.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("Müller café 体重", "Müller café 体重"),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_escapes(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_max_chars_and_non_str() -> None:
    assert printable("x" * 10, max_chars=4) == "xxx\u2026"
    assert printable(42) == "42"


@given(st.text())
def test_result_has_no_control_or_format_characters(text: str) -> None:
    out = printable(text)
    assert out.isprintable() or out == ""
    assert all(ord(c) >= 0x20 and c != "\x7f" for c in out)
