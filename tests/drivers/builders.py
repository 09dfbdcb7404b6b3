"""Test-only frame builders: they write the literal wire bytes of each protocol, independently of the
drivers' code (the Tanita checksum is computed here again), so round trips test the parsers against
the format, not against themselves."""

from __future__ import annotations

from collections.abc import Sequence

CRLF = b"\r\n"

# ------------------------------------------------------------------------------------------- Tanita A1

TANITA_PRO_HEAD = "{0,16,~0,1,~1,1,~2,1,"
TANITA_BC601_HEAD_METRIC = "{0,16,~0,2,~1,2,~2,3,~3,4,"
TANITA_BC601_HEAD_IMPERIAL = "{0,16,~0,3,~1,2,~2,3,~3,4,"


def q(text: str) -> str:
    """A Tanita string value: in double quotes."""
    return f'"{text}"'


def tanita_checksum(body: bytes) -> str:
    total = 0
    for byte in body:
        total = (total + byte) % 256
    return hex(total)[2:].upper().zfill(2)


def tanita_line(
    pairs: Sequence[tuple[str, str]],
    *,
    head: str = TANITA_PRO_HEAD,
    brace: bool = False,
    checksum: str | None = None,
    terminator: bytes = CRLF,
) -> bytes:
    """``{0,16,~0,1,...,KEY,value,...,CS,HH`` + terminator. ``checksum`` overrides the computed one."""
    body = head + "".join(f"{key},{value}," for key, value in pairs)
    cs = tanita_checksum(body.encode("ascii")) if checksum is None else checksum
    return (body + "CS," + cs + ("}" if brace else "")).encode("ascii") + terminator


# ------------------------------------------------------------------------------- Tanita BC-418 / TBF-310


def csv_line(values: Sequence[str], terminator: bytes = CRLF) -> bytes:
    return ",".join(values).encode("ascii") + terminator


def pc_command(text: str) -> bytes:
    return text.encode("ascii") + CRLF


# --------------------------------------------------------------------------------------------- A&D


def ad_data(value: float, decimals: int, width: int) -> str:
    """Sign + zero-padded figures (the decimal point counts): ``ad_data(75.4, 2, 8) == '+0075.40'``."""
    sign = "-" if value < 0 else "+"
    digits = f"{abs(value):0{width - 1}.{decimals}f}"
    if len(digits) != width - 1:
        raise ValueError(f"{value} does not fit {width} characters")
    return sign + digits


def ad_indicator_line(head: str, kind: str, data: str, unit: str, terminator: bytes = CRLF) -> bytes:
    """``ST,GS,+0075.40kg``: 2 + 1 + 2 + 1 + 8 + 2 = 16 characters."""
    assert len(head) == 2 and len(kind) == 2 and len(data) == 8 and len(unit) == 2
    return f"{head},{kind},{data}{unit}".encode("ascii") + terminator


def ad_balance_line(head: str, data: str, unit: str, terminator: bytes = CRLF) -> bytes:
    """``ST,+001234.5 g``: header, comma, 9 data characters, unit padded to 3 on the left."""
    assert len(head) == 2 and len(data) == 9
    return f"{head},{data}{unit:>3}".encode("ascii") + terminator


# ------------------------------------------------------------------------------------------ MT-SICS


def mt_sics_line(command: str, status: str, value: str | None = None, unit: str | None = None) -> bytes:
    """``S S     100.00 g``: value right-aligned in 10 characters, one space, unit."""
    text = f"{command} {status}"
    if value is not None:
        text += f" {value:>10} {unit}"
    return text.encode("ascii") + CRLF
