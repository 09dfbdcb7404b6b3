"""A&D weighing indicators and balances, "A&D format" (shared/reference/scales.md §A7).

Indicator (AD-4404 / AD-4325 family), 16 characters + CR LF (or CR)::

    ST,GS,+0075.40kg
    ^^ ^^ ^^^^^^^^^^
    |  |  |       unit (2): "kg", " g", " t", "lb"
    |  |  data (8): sign + 7 figures including the decimal point (spaces when out of range)
    |  header 2: GS gross, NT net, TR tare (also TW, TN, "G ", "N ", "T ", PT on some models)
    header 1: ST stable, US unstable, OL / LO out of range

Balance (EK-L, GH series), and the A&D platform-scale "Format 2" (no GS/NT field)::

    ST,+001234.5 g        header, ',', 9 data characters, unit (space padded: g kg PC % oz lb ozt tl)
    ST,+002.40kg          Format 2

Kern indicators reuse the A&D headers with a 4-character unit field (``  kg``). Frames are split by
fields (headers, figures, unit), not fixed widths; control characters are rejected.

The two are told apart by the comma after the second header. Only these become readings:

* ``ST`` with ``GS`` / ``NT`` (``G `` / ``N `` are the same headers on other models) or a balance
  ``ST`` frame, in a mass unit -> stable ``Reading`` (weight in kg; g, t, lb, oz, ozt converted);
* ``US`` with the same headers -> ``Reading(stable=False)`` (live weight, never a weighing).

Valid frames that are not weighings return ``None``: ``OL`` / ``LO`` (out of range), tare frames
(``TR``, ``T ``, ``PT``, ``TW``, ``TN``), ``QT`` (stable count), and non-mass units (``PC``, ``%``, the
tael ``tl`` whose size depends on the region). Anything else raises ``FrameError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from .errors import FrameError
from .framing import LineFramer
from .model import Measurement, ParseResult, Reading
from .registry import DriverSpec, LinkKind, SerialSettings

NAME = "ad_indicator"
MAX_LINE_BYTES = 64

#: mass unit (as on the wire, stripped) -> kg per unit
MASS_UNITS_KG: Mapping[str, float] = MappingProxyType(
    {
        "kg": 1.0,
        "g": 0.001,
        "t": 1000.0,
        "lb": 0.45359237,
        "oz": 0.028349523125,
        "ozt": 0.0311034768,
    }
)
#: valid units that are not masses (a count, a percentage) or not convertible (tael: region-dependent)
OTHER_UNITS = frozenset({"PC", "pcs", "%", "tl", "mom", "dwt", "GN", "ct"})

STABLE = "ST"
UNSTABLE = "US"
OUT_OF_RANGE = frozenset({"OL", "LO"})
COUNT = "QT"
#: second headers that carry a gross or net weight
WEIGHT_KINDS = frozenset({"GS", "NT", "G ", "N "})
#: second headers that are valid but carry no weighing (tare, preset tare, totals)
OTHER_KINDS = frozenset({"TR", "T ", "PT", "TW", "TN"})

#: sign, optional spaces (A&D pads between sign and figures), figures with one decimal point. Only the
#: space character: a tab or other control byte is not padding (``float()`` refuses it; H2, issue 14).
_VALUE = re.compile(r"^[+-]? *(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
#: the payload after the header(s): data, optional space padding, unit (1-4 printable non-digits:
#: A&D writes 2-3 characters, Kern's A&D-compatible indicators a 4-character field such as "  kg")
_PAYLOAD = re.compile(r"^(?P<data>[+-]?[ 0-9.]*?) *(?P<unit>[A-Za-z%]{1,4}) *$")


def _value(data: str, frame: bytes) -> float:
    v = data.strip(" ")
    if len(v) > 12 or not _VALUE.match(v):
        raise FrameError(f"data is not a number: {data!r}", frame)
    try:
        return float(v.replace(" ", ""))
    except ValueError:  # cannot happen after the match; a parser raises nothing but FrameError
        raise FrameError(f"data is not a number: {data!r}", frame) from None


def _split(text: str, frame: bytes) -> tuple[str, str | None, str, str]:
    """(header 1, header 2 or None, data, unit), by fields rather than fixed widths.

    Indicator: ``ST,GS,<data><unit>``. Balance and A&D platform-scale "Format 2" (no GS/NT field):
    ``ST,<data><unit>``. The unit is what follows the figures, space padding stripped.
    """
    if len(text) < 6 or text[2] != ",":
        raise FrameError("not an A&D frame (no 'XX,' header)", frame)
    head = text[:2]
    kind: str | None = None
    rest = text[3:]
    if len(rest) >= 3 and rest[2] == "," and not rest[0].isdigit() and rest[0] not in "+-.":
        kind, rest = rest[:2], rest[3:]
    m = _PAYLOAD.match(rest)
    if m is None:
        raise FrameError("frame too short or malformed: expected data then a unit", frame)
    return head, kind, m.group("data"), m.group("unit")


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Decode one A&D line (without CR LF)."""
    try:
        text = frame.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise FrameError("not ASCII", frame) from None
    if not text.isprintable():
        raise FrameError("control character in an A&D frame", frame)
    if len(text) > 32:
        raise FrameError("line too long for an A&D frame", frame)
    head, kind, data, unit = _split(text, frame)
    if head not in (STABLE, UNSTABLE, COUNT) and head not in OUT_OF_RANGE:
        raise FrameError(f"unknown header {head!r}", frame)
    if kind is not None and kind not in WEIGHT_KINDS and kind not in OTHER_KINDS:
        raise FrameError(f"unknown second header {kind!r}", frame)
    if unit not in MASS_UNITS_KG and unit not in OTHER_UNITS:
        raise FrameError(f"unknown unit {unit!r}", frame)
    if head in OUT_OF_RANGE:
        return None  # data may be spaces or 9s: no weighing
    value = _value(data, frame)  # OL / LO returned above: their data may be blank
    if head == COUNT or unit not in MASS_UNITS_KG:
        return None
    if kind is not None and kind not in WEIGHT_KINDS:
        return None  # tare / total: valid, not a weighing
    fields = {"header": head, "data": data.strip(), "unit": unit}
    if kind is not None:
        fields["kind"] = kind.strip()
    return Reading(
        driver=NAME,
        measurement=Measurement(weight_kg=round(value * MASS_UNITS_KG[unit], 6)),
        stable=head == STABLE,
        raw=text,
        fields=MappingProxyType(fields),
    )


def _framer() -> LineFramer:
    return LineFramer(max_line_bytes=MAX_LINE_BYTES, cr_terminates=True)


SPEC = DriverSpec(
    name=NAME,
    summary="A&D indicator / balance 'A&D format' lines (ST,GS,+0075.40kg; ST,+001234.5 g)",
    link=LinkKind.SERIAL,
    parse=parse,
    make_framer=_framer,
    models=("AD-4404", "AD-4403", "AD-4325", "EK-L", "GH"),
    serial=SerialSettings(baudrate=2400, bytesize=7, parity="E", stopbits=1),
    notes={
        "serial": "A&D ships many units at 2400 7E1; the baud rate, parity and length are menu settings "
        "that vary by model and site: set them in [scale].",
        "format": "the indicator/balance must be set to 'A&D format' and stream or print mode",
        "stability": "only ST frames with GS/NT (or balance ST) in a mass unit are stable readings",
    },
)
