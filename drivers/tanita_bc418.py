"""Older Tanita analysers with positional CSV results: BC-418 (remote mode) and TBF-310.

Neither line has keys, so the meaning of each position comes from a ``Layout`` (data, not code): a
tuple of field names, one per position. Layouts are chosen by field count; a site whose unit writes
another order can build its own layouts and decode with ``make_parse(layouts)``. Field names that the
parser understands are listed in ``FIELD_KINDS``; any other name is kept verbatim in ``fields``.

Built-in layouts (shared/reference/scales.md §A2; source: the obiba/onyx instrument runners):

* ``bc418`` - 38 fields: date "dd/mm/yy", time "hh:mm", body type, gender, height cm, weight kg, fat %,
  fat mass, FFM, TBW kg, age, BMI, BMR, whole-body impedance, 4 segment impedances (RL, LL, RA, LA),
  then fat %, fat mass, FFM and predicted muscle mass for right leg, left leg, right arm, left arm,
  trunk. Serial 4800 8N1 (Onyx).
* ``tbf310`` - 12 fields (Onyx order): body type, gender, height, weight, impedance, fat %, fat mass, FFM,
  TBW, age, BMI, BMR in kJ. Serial **2400 7E1** (official sheet and Onyx runner; set it in [scale]).
* ``tbf310_jp`` - 15 fields (Japanese data sheet order, unverified on a device): date "yy/mm/dd", time,
  body type, gender, age, height, weight, impedance, fat %, fat mass, FFM, TBW, BMI, standard weight,
  degree of obesity. No BMR.

BMR unit decision: the BC-418 BMR unit is UNKNOWN (kJ or kcal; no captured line exists). Guessing from
the magnitude would silently post wrong numbers for some members, so the BC-418 value is kept raw in
``fields["bmr"]`` and **not** posted (``bmr_raw``). A site that verified its unit can switch the layout
position to ``bmr_kj`` or ``bmr_kcal``. The TBF-310 value (Onyx sample 9771) is only plausible in kJ, so
``tbf310`` converts it (kJ / 4.184, the factor Tanita's own rb/rB pairs use).

Also decoded: PC-mode echoes and error codes on the same line (``U0``, ``D3``, ``G1``, ``E2`` ...) ->
``DeviceReport`` (see ``drivers.tanita_pc``). Whether the BC-418 line carries a checksum is UNKNOWN: a
line with an extra field does not match any layout and is rejected, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

from .errors import FrameError
from .framing import LineFramer
from .model import DeviceReport, Measurement, ParseResult, Reading, Segment, SegmentValues
from .registry import DriverSpec, LinkKind, SerialSettings
from .tanita_pc import ReplyKind, classify
from .units import KJ_PER_KCAL

NAME = "tanita_bc418"
MAX_LINE_BYTES = 1024

#: Field names a layout may use. Segment fields are ``seg_<segment>_<attr>`` (see ``_SEGMENT_FIELD``).
FIELD_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "date_dmy": "device date dd/mm/yy (or dd/mm/yyyy)",
        "date_ymd": "device date yy/mm/dd (or yyyy/mm/dd)",
        "time": "device time hh:mm[:ss]",
        "body_type": "0 standard / 2 athletic (last digit counts)",
        "gender": "1 male / 2 female",
        "age": "years",
        "height_cm": "cm",
        "weight_kg": "kg",
        "fat_percent": "%",
        "fat_mass_kg": "kg",
        "fat_free_mass_kg": "kg",
        "total_body_water_kg": "kg (= litres)",
        "bmi": "kg/m2",
        "bmr_kj": "kJ, converted to kcal",
        "bmr_kcal": "kcal",
        "bmr_raw": "unit unknown: kept in fields only",
        "impedance_ohm": "whole-body impedance, ohm",
        "standard_weight_kg": "kept in fields",
        "obesity_percent": "degree of obesity, kept in fields",
    }
)
_SEGMENT_ATTRS = ("fat_percent", "fat_mass_kg", "fat_free_mass_kg", "muscle_mass_kg")
_SEGMENT_NAMES: Mapping[str, Segment] = MappingProxyType({s.value: s for s in Segment})
_SEGMENT_FIELD = re.compile(r"^seg_(right_arm|left_arm|right_leg|left_leg|trunk)_(" + "|".join(_SEGMENT_ATTRS) + ")$")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_DATE = re.compile(r"^(\d{2}|\d{4})/(\d{1,2})/(\d{2}|\d{4})$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    model: str
    #: one field name per position: a FIELD_KINDS key, a segment field, or any other label (kept as text)
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.fields)) != len(self.fields):
            raise ValueError(f"layout {self.name}: duplicate field names")
        if "weight_kg" not in self.fields:
            raise ValueError(f"layout {self.name}: needs a weight_kg position")


def _segments(order: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"seg_{s}_{a}" for s in order for a in _SEGMENT_ATTRS)


BC418 = Layout(
    name="bc418",
    model="BC-418",
    fields=(
        "date_dmy",
        "time",
        "body_type",
        "gender",
        "height_cm",
        "weight_kg",
        "fat_percent",
        "fat_mass_kg",
        "fat_free_mass_kg",
        "total_body_water_kg",
        "age",
        "bmi",
        "bmr_raw",
        "impedance_ohm",
        "impedance_right_leg_ohm",
        "impedance_left_leg_ohm",
        "impedance_right_arm_ohm",
        "impedance_left_arm_ohm",
        *_segments(("right_leg", "left_leg", "right_arm", "left_arm", "trunk")),
    ),
)
TBF310 = Layout(
    name="tbf310",
    model="TBF-310",
    fields=(
        "body_type",
        "gender",
        "height_cm",
        "weight_kg",
        "impedance_ohm",
        "fat_percent",
        "fat_mass_kg",
        "fat_free_mass_kg",
        "total_body_water_kg",
        "age",
        "bmi",
        "bmr_kj",
    ),
)
TBF310_JP = Layout(
    name="tbf310_jp",
    model="TBF-310",
    fields=(
        "date_ymd",
        "time",
        "body_type",
        "gender",
        "age",
        "height_cm",
        "weight_kg",
        "impedance_ohm",
        "fat_percent",
        "fat_mass_kg",
        "fat_free_mass_kg",
        "total_body_water_kg",
        "bmi",
        "standard_weight_kg",
        "obesity_percent",
    ),
)
DEFAULT_LAYOUTS: tuple[Layout, ...] = (BC418, TBF310, TBF310_JP)


def _unquote(value: str) -> str:
    v = value.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        v = v[1:-1].strip()
    return v


def _number(name: str, value: str, frame: bytes) -> float:
    if len(value) > 16 or not _NUMBER.match(value):
        raise FrameError(f"{name} is not a number: {value[:20]!r}", frame)
    return float(value)


def _date(value: str, year_first: bool) -> str | None:
    m = _DATE.match(value)
    if not m:
        return None
    a, b, c = m.groups()
    year, month, day = (int(a), int(b), int(c)) if year_first else (int(c), int(b), int(a))
    if year < 100:
        year += 2000
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _time(value: str) -> str | None:
    m = _TIME.match(value)
    if not m:
        return None
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if h > 23 or mi > 59 or s > 59:
        return None
    return f"{h:02d}:{mi:02d}:{s:02d}"


def _report(text: str) -> DeviceReport | None:
    reply = classify(text)
    if reply.kind is ReplyKind.OTHER:
        return None
    return DeviceReport(NAME, reply.code, reply.message, text, is_error=reply.is_error)


def _decode(text: str, values: list[str], layout: Layout, frame: bytes) -> Reading:
    by_name = dict(zip(layout.fields, values, strict=True))
    numbers: dict[str, float] = {}
    segments: dict[Segment, dict[str, float]] = {}
    device_date: str | None = None
    device_time: str | None = None
    for name, value in by_name.items():
        if name in ("date_dmy", "date_ymd"):
            device_date = _date(value, year_first=name == "date_ymd")
        elif name == "time":
            device_time = _time(value)
        elif (m := _SEGMENT_FIELD.match(name)) is not None:
            segments.setdefault(_SEGMENT_NAMES[m.group(1)], {})[m.group(2)] = _number(name, value, frame)
        elif name in FIELD_KINDS:
            numbers[name] = _number(name, value, frame)
    bmr_kcal = numbers.get("bmr_kcal")
    if bmr_kcal is None and "bmr_kj" in numbers:
        bmr_kcal = round(numbers["bmr_kj"] / KJ_PER_KCAL, 1)
    n = numbers.get
    measurement = Measurement(
        weight_kg=n("weight_kg"),
        height_cm=n("height_cm"),
        fat_percent=n("fat_percent"),
        fat_mass_kg=n("fat_mass_kg"),
        fat_free_mass_kg=n("fat_free_mass_kg"),
        total_body_water_kg=n("total_body_water_kg"),
        bmi=n("bmi"),
        impedance_ohm=n("impedance_ohm"),
        bmr_kcal=bmr_kcal,
        segments=MappingProxyType({s: SegmentValues(**v) for s, v in segments.items()}),
    )
    stamp = None if device_date is None else device_date + (f"T{device_time}" if device_time else "")
    fields = {("bmr" if k.startswith("bmr_") else k): v for k, v in by_name.items()}
    fields["layout"] = layout.name
    if "bmr_raw" in by_name:
        fields["bmr_unit"] = "unknown"
    return Reading(
        driver=NAME,
        measurement=measurement,
        stable=True,  # sent once, after the measurement
        raw=text,
        device_time=stamp,
        model=layout.model,
        fields=MappingProxyType(fields),
    )


def make_parse(layouts: Sequence[Layout] = DEFAULT_LAYOUTS) -> Callable[[bytes, str], ParseResult]:
    """A parse function for these layouts (field counts must differ)."""
    by_count: dict[int, Layout] = {}
    for layout in layouts:
        if len(layout.fields) in by_count:
            raise ValueError(f"layouts {by_count[len(layout.fields)].name} and {layout.name} have the same length")
        by_count[len(layout.fields)] = layout
    counts = ", ".join(str(n) for n in sorted(by_count))

    def parse(frame: bytes, channel: str = "") -> ParseResult:
        try:
            text = frame.decode("ascii").strip(" \r\n\t\x00")
        except UnicodeDecodeError:
            raise FrameError("not ASCII", frame) from None
        if "," not in text:
            report = _report(text)
            if report is not None:
                return report
            raise FrameError("not a positional Tanita line", frame)
        values = [_unquote(v) for v in text.split(",")]
        layout = by_count.get(len(values))
        if layout is None:
            report = _report(text)  # a D? query reply is comma separated too
            if report is not None:
                return report
            raise FrameError(f"{len(values)} fields; known layouts have {counts}", frame)
        return _decode(text, values, layout, frame)

    return parse


parse = make_parse()


def _framer() -> LineFramer:
    return LineFramer(max_line_bytes=MAX_LINE_BYTES, cr_terminates=True)


SPEC = DriverSpec(
    name=NAME,
    pc_mode="bc418",
    summary="Tanita BC-418 (remote mode) and TBF-310 positional CSV lines",
    link=LinkKind.SERIAL,
    parse=parse,
    make_framer=_framer,
    models=("BC-418", "TBF-310"),
    serial=SerialSettings(baudrate=4800, bytesize=8, parity="N", stopbits=1),
    notes={
        "serial": "BC-418: 4800 8N1 (as configured by Onyx). TBF-310: 2400 7E1 (official sheet; set it in [scale]).",
        "layouts": "chosen by field count: 38 = BC-418, 12 = TBF-310 (Onyx order), 15 = TBF-310 Japanese sheet "
        "order (unverified). Custom orders: drivers.tanita_bc418.make_parse(layouts).",
        "bmr": "BC-418 BMR unit unknown: kept raw in fields['bmr'] and not posted; TBF-310 BMR is kJ -> kcal.",
        "pc_mode": "BC-418 measurement is started by the host (U0, D0..D4, G1): see drivers.tanita_pc.",
    },
)
