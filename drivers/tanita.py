"""Tanita key/value line family: MC-780/MC-980, SC-240/SC-330, DC-3x0, BC-420, WB-3000, BD-815,
HD-351BT, and BC-601 SD-card files.

A record is one ASCII line ``{0,16,~0,1,...,MO,"MC-780",Wk,70.5,...,CS,A5`` + CR LF. ``CS`` is the sum
of every byte from ``{`` up to and including the comma before ``CS``, mod 256, as two hex digits.
Field codes are case-sensitive (``FW`` fat %, ``fW`` fat mass, ``MW`` fat-free mass, ``mW`` muscle
mass). See shared/reference/scales.md §A1.

Quirks handled:

* date keys ``Da`` / ``DA`` / ``DT`` in dd/mm/yyyy, yyyy/mm/dd, yy/mm/dd (``DA``, DC-320) and dd/mm/yy;
  time keys ``TI`` (hh:mm) and ``Ti`` (hh:mm:ss). An impossible date is kept in ``fields`` only.
* weight keys ``Wk`` kg, ``Wp`` lb, ``Ws`` stone.pounds (``12.08.6``), ``Wg`` grams (BD-815).
* lb units: with ``Wp`` / ``Ws`` every mass is in lb and the height comes as ``Hf`` feet-inches; BC-601
  files with ``~0,3`` keep the key ``Wk`` but write lb, and ``Hm`` in inches. All converted to kg / cm.
* ``St,1`` (segmental measurement error): segment values are dropped, ``St`` stays in ``fields``.
* a trailing ``}`` after the checksum; noise glued before ``{`` (the last ``{`` starts the record).
* lines without ``{``: error codes ``E0``..``E9`` and PC-mode replies become ``DeviceReport``s.
* numbers must be plain decimals (no ``nan``, ``inf``, exponents or ``_``): anything else is a FrameError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from types import MappingProxyType

from .errors import ChecksumError, FrameError
from .framing import LineFramer
from .model import DeviceReport, Measurement, ParseResult, Reading, Segment, SegmentValues
from .registry import DriverSpec, LinkKind, SerialSettings
from .tanita_pc import ERROR_CODES, ReplyKind, classify
from .units import KG_PER_LB, KJ_PER_KCAL, LB_PER_STONE, inch_to_cm

NAME = "tanita"
MAX_LINE_BYTES = 4096

WEIGHT_KEYS = ("Wk", "Wp", "Ws", "Wg")
_SEGMENT_BY_LETTER: Mapping[str, Segment] = MappingProxyType(
    {"R": Segment.RIGHT_LEG, "L": Segment.LEFT_LEG, "r": Segment.RIGHT_ARM, "l": Segment.LEFT_ARM, "T": Segment.TRUNK}
)
# prefix -> SegmentValues attribute, and whether it is a mass (converted in imperial mode)
_SEGMENT_PREFIX: Mapping[str, tuple[str, bool]] = MappingProxyType(
    {
        "F": ("fat_percent", False),
        "f": ("fat_mass_kg", True),
        "M": ("fat_free_mass_kg", True),
        "m": ("muscle_mass_kg", True),
    }
)
#: feet-inches: ``5-07.5``, ``5'07.5``, ``5'7.5"``, ``5 07.5``, ``5.07.5`` (inches < 12)
_FT_IN = re.compile(r"^(\d{1,2})\s*(?:['\-.]|\s)\s*(\d{1,2}(?:\.\d+)?)\s*(?:\"|'')?$")
#: stone.pounds: ``11.03.4`` = 11 st 3.4 lb
_ST_LB = re.compile(r"^(\d{1,3})\.(\d{1,2}(?:\.\d+)?)$")
_DATE = re.compile(r"^(\d{1,4})[/.\-](\d{1,2})[/.\-](\d{1,4})$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
#: a plain decimal number as Tanita writes it (no exponent, no inf/nan, no ``_``)
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")


def checksum(body: bytes) -> str:
    """Checksum of the bytes from ``{`` up to and including the comma before ``CS``."""
    return f"{sum(body) & 0xFF:02X}"


def _split(text: str) -> list[str]:
    """Split on commas outside double quotes."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == "," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quoted:
        raise FrameError("unterminated quoted string")
    out.append("".join(cur))
    return out


def _unquote(value: str) -> str:
    v = value.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1]
    return v


def _number(key: str, value: str) -> float:
    v = value.strip()
    if len(v) > 24 or not _NUMBER.match(v):
        raise FrameError(f"field {key} is not a number: {value[:20]!r}")
    return float(v)


def _date(key: str, value: str) -> str | None:
    m = _DATE.match(value.strip())
    if not m:
        return None
    a, b, c = m.groups()
    if len(a) == 4:  # yyyy/mm/dd (MC-780A JP)
        year, month, day = int(a), int(b), int(c)
    elif len(c) == 4:  # dd/mm/yyyy (MC-980, SC-330, BC-601)
        day, month, year = int(a), int(b), int(c)
    elif key == "DA":  # yy/mm/dd (DC-320)
        year, month, day = 2000 + int(a), int(b), int(c)
    else:  # dd/mm/yy
        day, month, year = int(a), int(b), 2000 + int(c)
    try:
        return date(year, month, day).isoformat()
    except ValueError:  # 31/02, month 13, year 0: keep the raw text in fields only
        return None


def _time(value: str) -> str | None:
    m = _TIME.match(value.strip())
    if not m:
        return None
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if h > 23 or mi > 59 or s > 59:
        return None
    return f"{h:02d}:{mi:02d}:{s:02d}"


def _weight_kg(fields: Mapping[str, str], imperial_file: bool) -> float | None:
    if "Wk" in fields:
        # BC-601 imperial files (~0,3) keep the key Wk but write pounds
        return _number("Wk", fields["Wk"]) * (KG_PER_LB if imperial_file else 1.0)
    if "Wp" in fields:
        return _number("Wp", fields["Wp"]) * KG_PER_LB
    if "Ws" in fields:
        m = _ST_LB.match(fields["Ws"].strip())
        if not m or float(m.group(2)) >= LB_PER_STONE:
            raise FrameError(f"field Ws is not stone.pounds: {fields['Ws'][:20]!r}")
        return (int(m.group(1)) * LB_PER_STONE + float(m.group(2))) * KG_PER_LB
    if "Wg" in fields:
        return _number("Wg", fields["Wg"]) / 1000.0
    return None


def _height_cm(fields: Mapping[str, str], imperial: bool) -> float | None:
    if "Hf" in fields:
        m = _FT_IN.match(fields["Hf"].strip())
        if not m or float(m.group(2)) >= 12:
            raise FrameError(f"field Hf is not feet-inches: {fields['Hf'][:20]!r}")
        return inch_to_cm(int(m.group(1)) * 12 + float(m.group(2)))
    if "Hm" in fields:
        h = _number("Hm", fields["Hm"])
        return inch_to_cm(h) if imperial else h
    return None


def _device_report(text: str) -> DeviceReport | None:
    """Error codes (E0..E9, sent unsolicited) and PC-mode replies (echoes, ``Dn!``, ``!``, ``D?`` data)."""
    reply = classify(text)
    if reply.kind is ReplyKind.OTHER:
        return None
    return DeviceReport(NAME, reply.code, reply.message, text, is_error=reply.is_error)


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Decode one Tanita line (without its CR LF).

    Records start at ``{``; anything before the last ``{`` of the line is noise (a record has exactly
    one ``{``: strings hold digits, dates and model names). Lines without ``{`` may be PC-mode replies or
    error codes (``E0``..``E9``) -> ``DeviceReport``; anything else is rejected.
    """
    start = frame.rfind(b"{")
    if start < 0:
        try:
            plain = frame.decode("ascii").strip(" \r\n\t\x00")
        except UnicodeDecodeError:
            raise FrameError("not ASCII", frame) from None
        report = _device_report(plain)
        if report is not None:
            return report
        raise FrameError("not a Tanita record (no '{')", frame)
    try:
        text = frame[start:].decode("ascii").rstrip(" \r\n\t\x00")
    except UnicodeDecodeError:
        raise FrameError("not ASCII", frame) from None
    cs_at = text.rfind(",CS,")
    if cs_at < 0:
        raise FrameError("no CS checksum field", frame)
    body = text[: cs_at + 1].encode("ascii")
    actual = text[cs_at + 4 :].rstrip("} ").upper()  # hand-edited samples end in '}'
    expected = checksum(body)
    if actual != expected:
        raise ChecksumError(expected, actual, frame)

    tokens = _split(text[1:cs_at])  # drop '{'; '0' is the value of the first (unnamed) control field
    if len(tokens) < 2 or tokens[0] != "0":
        raise FrameError("record does not start with {0,", frame)
    pairs = tokens[2:]
    if len(pairs) % 2:
        raise FrameError("odd number of key/value tokens", frame)
    fields: dict[str, str] = {}
    for i in range(0, len(pairs), 2):
        key = pairs[i].strip()
        if not key or len(key) > 3:
            raise FrameError(f"bad field code {key[:8]!r}", frame)
        fields.setdefault(key, _unquote(pairs[i + 1]))
    visible = {k: v for k, v in fields.items() if not k.startswith("~")}
    try:
        weight = _weight_kg(fields, _imperial_file(fields))
        if weight is None:
            return None  # a valid record that is not a weighing (e.g. BC-601 profile line)
        return _reading(text, fields, visible, weight)
    except FrameError as exc:
        raise FrameError(exc.reason, frame) from None


def _imperial_file(fields: Mapping[str, str]) -> bool:
    """BC-601 files: ``~0,2`` metric, ``~0,3`` imperial (masses in lb, ``Hm`` in inches)."""
    return fields.get("~0", "").strip() == "3"


def _reading(text: str, fields: dict[str, str], visible: dict[str, str], weight_kg: float) -> Reading:
    # masses in lb: BC-601 imperial files, and pro units in lb / st-lb mode (weight key Wp / Ws)
    imperial = _imperial_file(fields) or "Wp" in fields or "Ws" in fields
    mass = KG_PER_LB if imperial else 1.0

    def num(key: str, factor: float = 1.0) -> float | None:
        return round(_number(key, fields[key]) * factor, 4) if key in fields else None

    bmr_kcal = num("rB")
    if bmr_kcal is None and "rb" in fields:
        bmr_kcal = round(_number("rb", fields["rb"]) / KJ_PER_KCAL, 1)
    age = num("rA")
    segment_error = fields.get("St", "0") not in ("0", "")
    segments: dict[Segment, SegmentValues] = {}
    if not segment_error:
        for letter, segment in _SEGMENT_BY_LETTER.items():
            values: dict[str, float] = {}
            for prefix, (attr, is_mass) in _SEGMENT_PREFIX.items():
                v = num(prefix + letter, mass if is_mass else 1.0)
                if v is not None:
                    values[attr] = v
            if values:
                segments[segment] = SegmentValues(**values)
    measurement = Measurement(
        weight_kg=round(weight_kg, 4),
        height_cm=(None if (h := _height_cm(fields, _imperial_file(fields))) is None else round(h, 2)),
        fat_percent=num("FW"),
        fat_mass_kg=num("fW", mass),
        fat_free_mass_kg=num("MW", mass),
        muscle_mass_kg=num("mW", mass),
        bone_mass_kg=num("bW", mass),
        total_body_water_kg=num("wW", mass),
        total_body_water_percent=num("ww"),
        visceral_fat_rating=num("IF"),
        bmr_kcal=bmr_kcal,
        bmi=num("MI"),
        metabolic_age_years=None if age is None else int(age),
        impedance_ohm=num("ZF"),
        segments=MappingProxyType(segments),
    )
    device_id = fields.get("ID", "").strip() or None
    if device_id is not None and set(device_id) <= {"0"}:
        device_id = None
    date = next((d for k in ("Da", "DA", "DT") if k in fields and (d := _date(k, fields[k]))), None)
    time = next((t for k in ("TI", "Ti") if k in fields and (t := _time(fields[k]))), None)
    device_time = None if date is None else (date + ("T" + time if time else ""))
    return Reading(
        driver=NAME,
        measurement=measurement,
        stable=True,  # Tanita sends a line only once the result is final
        raw=text,
        device_id=device_id,
        device_time=device_time,
        model=fields.get("MO"),
        fields=MappingProxyType(visible),
    )


#: Fields that identify a person or a unit: rewritten by ``redact_line`` (record --redact).
REDACTED_KEYS = ("ID", "CC", "SN")
_QUOTED_FIELD = re.compile(r'(?<![A-Za-z~])(ID|CC|SN),"([^"\r\n]*)"')


def redact_line(line: bytes, replace: Callable[[str], str]) -> bytes:
    """Rewrite the ``ID``, ``CC`` and ``SN`` values of a Tanita line with ``replace(value)`` (which must
    keep the length) and recompute ``CS`` so the line still decodes. All-zero values ("no ID") are kept.

    Pure. Keeps everything else byte for byte (noise before ``{``, a trailing ``}``, CR LF). A record
    whose checksum was already wrong gets its values replaced but keeps its (wrong) checksum; a line
    that is not a well-formed record still has quoted ``ID``/``CC``/``SN`` values replaced.
    """
    body = line.rstrip(b"\r\n")
    ending = line[len(body) :]
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return line
    start = text.rfind("{")
    cs_at = text.rfind(",CS,")
    if start < 0 or cs_at < start:
        return _redact_loose(text, replace).encode("ascii") + ending
    record = text[start : cs_at + 1]
    try:
        tokens = _split(record[1:-1])
    except FrameError:
        return _redact_loose(text, replace).encode("ascii") + ending
    was_valid = text[cs_at + 4 :].rstrip("} ").upper() == checksum(record.encode("ascii"))
    for i in range(2, len(tokens) - 1, 2):
        if tokens[i].strip() in REDACTED_KEYS:
            tokens[i + 1] = _replace_value(tokens[i + 1], replace)
    new_record = "{" + ",".join(tokens) + ","
    tail = text[cs_at + 4 :]
    if was_valid:
        cs_digits = len(tail.rstrip("} "))
        tail = checksum(new_record.encode("ascii")) + tail[cs_digits:]
    return (text[:start] + new_record + "CS," + tail).encode("ascii") + ending


def _replace_value(token: str, replace: Callable[[str], str]) -> str:
    value = _unquote(token)
    if not value or set(value) <= {"0"}:
        return token
    new = replace(value)
    if len(new) != len(value):
        raise ValueError("a redaction must keep the value's length")
    return token.replace(value, new, 1)


def _redact_loose(text: str, replace: Callable[[str], str]) -> str:
    def sub(m: re.Match[str]) -> str:
        value = m.group(2)
        return m.group(0) if not value or set(value) <= {"0"} else f'{m.group(1)},"{replace(value)}"'

    return _QUOTED_FIELD.sub(sub, text)


def _framer() -> LineFramer:
    return LineFramer(max_line_bytes=MAX_LINE_BYTES, start=b"{")


SPEC = DriverSpec(
    name=NAME,
    pc_mode="mc980",
    redact=redact_line,
    summary="Tanita key/value lines (MC-780/980, SC-240/330, DC-3x0, BC-420, WB-3000, BD-815, BC-601 files)",
    link=LinkKind.SERIAL,
    parse=parse,
    make_framer=_framer,
    models=(
        "MC-780",
        "MC-980",
        "SC-240",
        "SC-330",
        "DC-320",
        "DC-360",
        "BC-420",
        "WB-3000",
        "BD-815",
        "HD-351BT",
        "BC-601",
    ),
    serial=SerialSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
    notes={
        "checksum": "sum of bytes from '{' through the comma before CS, mod 256, 2 hex digits",
        "serial": "9600 8N1 is common (MC-780, BD-815, HD-351BT); MC-980 selectable 4800/9600/19200; "
        "WB-110S 2400 7E1. Set [scale] serial settings per site.",
        "error_codes": "; ".join(f"{k} {v}" for k, v in ERROR_CODES.items()),
        "imperial": "~0,3 (BC-601 files): masses in lb, Hm in inches. Wp / Ws (pro units): masses in lb, "
        "height as Hf feet-inches.",
        "segmental": "St,1 = segmental measurement error: segment values are dropped, St kept in fields",
    },
)
