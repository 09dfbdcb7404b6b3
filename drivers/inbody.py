"""InBody analysers (270/570/770/970) through the vendor's cloud, LookinBody Web: the answers of its
partner API turned into readings, and a sans-I/O poll scheduler. Pure, stdlib only.

Facts (shared/reference/inbody-seca.md §3.1a, VERIFIED as to shape by four public code bases; no public
answer with real values exists): ``POST /inbody/GetTodayMeasurements {Date}`` lists the day's tests as
``[{UserID, UserToken, DateTimes}]``; ``GetFullInBodyData[ByID]`` answers with descriptive keys
(``Weight``, ``TBW(TotalBodyWater)``, ``SMM(SkeletalMuscleMass)``), ``GetInBodyData[ByID]`` with
abbreviated ones (``WT``, ``PBF``, ``BFM``, ``SMM``, ``TBW``, ``BMI``); test times are
``yyyyMMddHHmmss`` (ISO ``yyyy-MM-ddTHH:mm:ss`` is accepted too); numbers may come as text.

**The frame** is an *envelope* the link builds around what the API answered (one JSON object, see
``test_envelope``): the account, the test's ``UserID`` / ``UserToken`` / time, how the member is
identified, the mass unit, and every answer text verbatim. Kinds: ``test`` (a Reading), ``list`` (a
day's listing: nothing to decode, kept for captures), ``error`` (a failed call: a DeviceReport).

**Mapping** (only where the meaning matches; docs/inbody.md): ``WT/Weight`` weight, ``PBF`` fat %,
``BFM`` fat mass, ``SMM`` *skeletal* muscle mass, ``TBW`` water (l = kg), ``BMI``, ``BMR`` (kcal),
``VFL`` visceral fat level, ``FFM`` fat-free mass (``LBM``, InBody's lean body mass = weight - BFM,
only when it checks out against weight - BFM), ``HT/Height``; segmental lean (kg) -> segment
fat-free mass, segmental fat (kg) -> segment fat mass. InBody's segmental *percentages* are relative
to an ideal (INFERENCE from its result sheets), not shares of the segment, so they stay in ``fields``.
``SLM`` (soft lean mass) is not fat-free mass: ``rawResults.unmapped``.

**Units**: masses are kg unless the envelope says ``"mass_unit": "lb"`` or a value/key carries a unit
(``"70.5 kg"``, ``"155 lb"``, ``Weight(lb)``); kJ and inches are converted. When weight, height and BMI
are all there the BMI must agree with the weight in the declared unit; if it agrees with the other
unit instead, the test is rejected with a FrameError saying which ``mass_unit`` to set (never posted
2.2 times too heavy). Values outside plausible ranges are dropped (kept in ``fields``); no weight:
FrameError. The member: ``UserID`` (``identify_by = "user_id"``) or the digits of ``UserToken``, the
phone (``"phone"``), as ``device_id`` (the card number, converted like a card reader's).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from .errors import FrameError
from .framing import PassthroughFramer
from .model import DeviceReport, Measurement, ParseResult, Reading, Segment, SegmentValues
from .registry import DriverSpec, LinkKind
from .units import CM_PER_INCH, KG_PER_LB, KJ_PER_KCAL

NAME = "inbody"
FORMAT = "lookinbody/1"
#: frames larger than this are rejected unread (an answer for one test is a few kB)
MAX_FRAME_BYTES = 1 << 20
#: error answers are kept this long in an ``error`` envelope
MAX_ERROR_TEXT = 2000

ENDPOINT_TEST = "/user/test"
ENDPOINT_TODAY = "/inbody/GetTodayMeasurements"
ENDPOINT_FULL_BY_ID = "/inbody/GetFullInBodyDataByID"
ENDPOINT_FULL = "/inbody/GetFullInBodyData"
ENDPOINT_ABBR_BY_ID = "/inbody/GetInBodyDataByID"
ENDPOINT_ABBR = "/inbody/GetInBodyData"


class EnvelopeKind(StrEnum):
    TEST = "test"
    LIST = "list"
    ERROR = "error"


class IdentifyBy(StrEnum):
    USER_ID = "user_id"  # the gym sets the InBody UserID to the member's card number
    PHONE = "phone"  # the UserToken (phone number, digits only) is used as the card number


class MassUnit(StrEnum):
    KG = "kg"
    LB = "lb"


class DateFormat(StrEnum):
    """How the ``Date`` of GetTodayMeasurements is written (UNKNOWN publicly; compact by default,
    like the test times)."""

    COMPACT = "yyyyMMdd"
    ISO = "yyyy-MM-dd"

    def render(self, day: date) -> str:
        return day.strftime("%Y%m%d" if self is DateFormat.COMPACT else "%Y-%m-%d")


# ---------------------------------------------------------------------------------------------- times

_COMPACT_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$")
_ISO_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)


def parse_test_time(text: str) -> datetime | None:
    """``yyyyMMddHHmmss`` or ISO ``yyyy-MM-ddTHH:mm[:ss[.fff]]`` (a zone suffix is ignored: InBody
    times are the analyser's local time) -> naive datetime; None if neither or impossible."""
    s = text.strip()
    m = _COMPACT_TIME.match(s) or _ISO_TIME.match(s)
    if m is None:
        return None
    parts = [int(g) if g else 0 for g in m.groups()]
    try:
        return datetime(*parts)  # type: ignore[arg-type]
    except ValueError:
        return None


def compact_time(text: str) -> str | None:
    """The test time in the API's own ``yyyyMMddHHmmss`` form (the dedupe key and request value)."""
    t = parse_test_time(text)
    return None if t is None else t.strftime("%Y%m%d%H%M%S")


# --------------------------------------------------------------------------------------------- listing


@dataclass(frozen=True, slots=True)
class TestRef:
    """One test of a day's listing. ``datetimes`` is the text as listed (sent back verbatim)."""

    user_id: str
    user_token: str
    datetimes: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.user_id or "tel:" + self.user_token, compact_time(self.datetimes) or self.datetimes)

    def __repr__(self) -> str:  # personal data: never in a log line by accident
        return f"TestRef(datetimes={self.datetimes!r})"


def _text(value: Any) -> str:
    if value is None or isinstance(value, bool | dict | list):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _get(doc: Mapping[str, Any], *names: str) -> Any:
    """Case-insensitive key lookup (the API's own spelling varies: ``DateTimes``/``Datetimes``)."""
    wanted = {n.lower() for n in names}
    for k, v in doc.items():
        if isinstance(k, str) and k.lower() in wanted:
            return v
    return None


def parse_listing(text: str | bytes) -> list[TestRef]:
    """GetTodayMeasurements' answer -> the tests it lists. A ``DateTimes`` with several times (a list, or
    text separated by commas/spaces) gives one TestRef each. Entries without a usable time are skipped;
    an answer that is not a JSON array (or an object holding one) raises FrameError."""
    doc = _json(text)
    if isinstance(doc, dict):
        inner = next((v for v in doc.values() if isinstance(v, list)), None)
        if inner is None:
            raise FrameError("listing is an object without a list")
        doc = inner
    if not isinstance(doc, list):
        raise FrameError("listing is not a JSON array")
    out: list[TestRef] = []
    seen: set[tuple[str, str]] = set()
    for entry in doc:
        if not isinstance(entry, dict):
            continue
        user_id = _text(_get(entry, "UserID"))
        token = _text(_get(entry, "UserToken", "usertoken"))
        raw_times = _get(entry, "DateTimes", "Datetimes", "TestDatetimes")
        times = raw_times if isinstance(raw_times, list) else re.split(r"[\s,;]+", _text(raw_times))
        for t in times:
            t_text = _text(t)
            if not t_text or compact_time(t_text) is None or not (user_id or token):
                continue
            ref = TestRef(user_id, token, t_text)
            if ref.key not in seen:
                seen.add(ref.key)
                out.append(ref)
    return out


# ------------------------------------------------------------------------------------------- envelopes


def _dump(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True, sort_keys=True).encode("ascii")


def test_envelope(
    *,
    account: str,
    test: TestRef,
    answers: Mapping[str, str],
    identify_by: IdentifyBy = IdentifyBy.USER_ID,
    mass_unit: MassUnit = MassUnit.KG,
) -> bytes:
    """The frame for one test: ``answers`` maps the endpoint to the answer text, verbatim."""
    return _dump(
        {
            "format": FORMAT,
            "kind": EnvelopeKind.TEST.value,
            "account": account,
            "user_id": test.user_id,
            "user_token": test.user_token,
            "datetimes": test.datetimes,
            "identify_by": identify_by.value,
            "mass_unit": mass_unit.value,
            "answers": dict(answers),
        }
    )


def list_envelope(*, account: str, day: str, answer: str) -> bytes:
    return _dump({"format": FORMAT, "kind": EnvelopeKind.LIST.value, "account": account, "date": day, "answer": answer})


def error_envelope(*, account: str, endpoint: str, status: int, answer: str) -> bytes:
    """A failed call: ``status`` is the HTTP status, 0 when there was none (timeout, refused)."""
    return _dump(
        {
            "format": FORMAT,
            "kind": EnvelopeKind.ERROR.value,
            "account": account,
            "endpoint": endpoint,
            "status": status,
            "answer": answer[:MAX_ERROR_TEXT],
        }
    )


def _json(data: str | bytes) -> Any:
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError(f"larger than {MAX_FRAME_BYTES} bytes")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "not JSON"
        raise FrameError(reason) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _envelope(frame: bytes) -> dict[str, Any]:
    if not frame.isascii():  # the link writes ASCII only (_dump); the raw text below relies on it
        raise FrameError("not a LookinBody envelope (non-ASCII bytes)", frame[:64])
    doc = _json(frame)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FrameError(f'not a LookinBody envelope (no "format": "{FORMAT}")', frame[:64])
    return doc


def _str_field(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise FrameError(f"envelope {key} is not text")
    return value


# ------------------------------------------------------------------------------------------ the values


class _Kind(StrEnum):
    MASS = "mass"
    PERCENT = "percent"
    ENERGY = "energy"
    LENGTH = "length"
    PLAIN = "plain"


#: Measurement attribute -> normalised key spellings (lowercase, letters and digits only), kind
_WHOLE: Mapping[str, tuple[frozenset[str], _Kind]] = MappingProxyType(
    {
        "weight_kg": (frozenset({"wt", "weight", "bodyweight"}), _Kind.MASS),
        "fat_percent": (frozenset({"pbf", "percentbodyfat", "bodyfatpercent", "bodyfatpercentage"}), _Kind.PERCENT),
        "fat_mass_kg": (frozenset({"bfm", "bodyfatmass"}), _Kind.MASS),
        "skeletal_muscle_mass_kg": (frozenset({"smm", "skeletalmusclemass"}), _Kind.MASS),
        "total_body_water_kg": (frozenset({"tbw", "totalbodywater"}), _Kind.MASS),
        "bmi": (frozenset({"bmi", "bodymassindex"}), _Kind.PLAIN),
        "bmr_kcal": (frozenset({"bmr", "basalmetabolicrate"}), _Kind.ENERGY),
        "visceral_fat_rating": (frozenset({"vfl", "visceralfatlevel"}), _Kind.PLAIN),
        "fat_free_mass_kg": (frozenset({"ffm", "fatfreemass"}), _Kind.MASS),
        "soft_lean_mass_kg": (frozenset({"slm", "softleanmass"}), _Kind.MASS),
        "height_cm": (frozenset({"ht", "height"}), _Kind.LENGTH),
    }
)
_LBM = frozenset({"lbm", "leanbodymass"})
_SEGMENT_TOKENS: tuple[tuple[str, Segment], ...] = (
    ("rightarm", Segment.RIGHT_ARM),
    ("leftarm", Segment.LEFT_ARM),
    ("rightleg", Segment.RIGHT_LEG),
    ("leftleg", Segment.LEFT_LEG),
    ("trunk", Segment.TRUNK),
    ("ra", Segment.RIGHT_ARM),
    ("la", Segment.LEFT_ARM),
    ("rl", Segment.RIGHT_LEG),
    ("ll", Segment.LEFT_LEG),
    ("tr", Segment.TRUNK),
)
_SEG_LEAN = frozenset({"lean", "leanmass", "lbm", "ffm", "lm", "leanbodymass", "fatfreemass"})
_SEG_FAT = frozenset({"fat", "fatmass", "bfm", "bodyfatmass", "fm"})
_SEG_SLM = frozenset({"slm", "softleanmass"})
#: plausible ranges after conversion (kg, %, kcal, cm); outside: dropped, noted in ``fields``
_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "weight_kg": (2.0, 450.0),
        "fat_percent": (0.0, 90.0),
        "fat_mass_kg": (0.0, 400.0),
        "skeletal_muscle_mass_kg": (0.0, 200.0),
        "total_body_water_kg": (0.0, 300.0),
        "bmi": (5.0, 150.0),
        "bmr_kcal": (100.0, 10000.0),
        "visceral_fat_rating": (0.0, 60.0),
        "fat_free_mass_kg": (0.0, 400.0),
        "soft_lean_mass_kg": (0.0, 400.0),
        "height_cm": (40.0, 260.0),
        "segment": (0.0, 200.0),
    }
)
_UNIT_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "kg": "kg",
        "lb": "lb",
        "lbs": "lb",
        "%": "%",
        "kcal": "kcal",
        "kj": "kj",
        "cm": "cm",
        "in": "in",
        "l": "l",
        "ltr": "l",
        "": "",
    }
)
_VALUE = re.compile(r"^([+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+))\s*([A-Za-z%]{0,4})$")
_PAREN = re.compile(r"^(.*?)\((.*)\)\s*$")


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9%]", "", key.lower())


def _key_spellings(key: str) -> tuple[set[str], str]:
    """``TBW(TotalBodyWater)`` -> {tbwtotalbodywater, tbw, totalbodywater}; ``Weight(kg)`` -> {weight},
    unit kg. Returns the spellings and a unit named in the key ("" if none)."""
    out = {_norm(key).replace("%", "")}
    unit = ""
    m = _PAREN.match(key)
    if m is not None:
        head, inner = _norm(m.group(1)).replace("%", ""), _norm(m.group(2))
        if inner in _UNIT_WORDS:
            unit = _UNIT_WORDS[inner]
            out = {head}
        else:
            out |= {head, inner.replace("%", "")}
    return {s for s in out if s}, unit


def _number(value: Any) -> tuple[float, str] | None:
    """A JSON number or a number as text, with an optional unit after it -> (value, unit)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            v, unit = float(value), ""
        except OverflowError:  # a JSON integer of hundreds of digits
            return None
    elif isinstance(value, str):
        m = _VALUE.match(value.strip())
        if m is None:
            return None
        unit_word = m.group(2).lower()
        if unit_word not in _UNIT_WORDS:
            return None
        v, unit = float(m.group(1).replace(",", ".")), _UNIT_WORDS[unit_word]
    else:
        return None
    return (v, unit) if math.isfinite(v) else None


def _convert(v: float, unit: str, kind: _Kind, mass_unit: MassUnit) -> float | None:
    """To kg / % / kcal / cm; None when the unit does not fit the quantity."""
    if kind is _Kind.MASS:
        unit = unit or mass_unit.value
        return v if unit in ("kg", "l") else v * KG_PER_LB if unit == "lb" else None
    if kind is _Kind.PERCENT:
        return v if unit in ("", "%") else None
    if kind is _Kind.ENERGY:
        return v if unit in ("", "kcal") else v / KJ_PER_KCAL if unit == "kj" else None
    if kind is _Kind.LENGTH:
        if unit == "":
            unit = "in" if mass_unit is MassUnit.LB and v < 100 else "cm"
        return v if unit == "cm" else v * CM_PER_INCH if unit == "in" else None
    return v if unit == "" else None


def _segment_of(spelling: str) -> tuple[Segment, str] | None:
    for token, segment in _SEGMENT_TOKENS:
        for part in (
            spelling[len(token) :] if spelling.startswith(token) else None,
            spelling[: -len(token)] if spelling.endswith(token) else None,
        ):
            if part:
                rest = part.removesuffix("of").removeprefix("of")
                if rest in _SEG_LEAN or rest in _SEG_FAT or rest in _SEG_SLM:
                    return segment, rest
                if rest.startswith("p") and (rest[1:] in _SEG_LEAN or rest[1:] in _SEG_FAT):
                    return segment, "%"
                for word in ("percentof", "percent", "pct"):
                    if word in rest and rest.replace(word, "") in (_SEG_LEAN | _SEG_FAT):
                        return segment, "%"
    return None


def _records(answer: Any, wanted_time: str | None) -> list[dict[str, Any]]:
    """The result object(s) of an answer: an object, or an array of objects (the one whose time is the
    test's when several are given), or an object wrapping such an array."""
    if isinstance(answer, dict):
        inner = [v for v in answer.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if inner and not any(_whole_attr(k) for k in answer if isinstance(k, str)):
            answer = inner[0]
        else:
            return [answer]
    if not isinstance(answer, list):
        return []
    objs = [x for x in answer if isinstance(x, dict)]
    if len(objs) > 1 and wanted_time is not None:
        for obj in objs:
            for k, v in obj.items():
                if isinstance(k, str) and "date" in k.lower() and compact_time(_text(v)) == wanted_time:
                    return [obj]
    return objs[:1]


def _whole_attr(key: str) -> str | None:
    spellings, _ = _key_spellings(key)
    for attr, (names, _kind) in _WHOLE.items():
        if spellings & names:
            return attr
    return None


@dataclass
class _Acc:
    mass_unit: MassUnit
    values: dict[str, float] = field(default_factory=dict)
    segments: dict[Segment, dict[str, float]] = field(default_factory=dict)
    seg_muscle: dict[Segment, float] = field(default_factory=dict)
    lbm: float | None = None
    fields: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    answer_time: str | None = None

    def add(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or isinstance(value, dict | list):
            return
        spellings, key_unit = _key_spellings(key)
        attr = _whole_attr(key)
        low = key.lower()
        if attr is None and self.answer_time is None and ("datetime" in low or "testdate" in low):
            self.answer_time = compact_time(_text(value))
        parsed = _number(value)
        if parsed is None:
            return
        v, unit = parsed
        unit = unit or key_unit
        self.fields[key] = _text(value)
        if attr is not None:
            kind = _WHOLE[attr][1]
            converted = _convert(v, unit, kind, self.mass_unit)
            if converted is None:
                self.notes.append(f"{key}: unit {unit or '?'} does not fit")
            elif attr not in self.values:  # the first spelling wins (full answer before abbreviated)
                self.values[attr] = converted
            return
        if spellings & _LBM:
            self.lbm = _convert(v, unit, _Kind.MASS, self.mass_unit) if self.lbm is None else self.lbm
            return
        self._add_segment(key, spellings, v, unit)

    def _add_segment(self, key: str, spellings: set[str], v: float, unit: str) -> None:
        """A segmental value (the longest spelling that names a segment decides which)."""
        for spelling in sorted(spellings, key=len, reverse=True):
            found = _segment_of(spelling)
            if found is None:
                continue
            segment, what = found
            if what == "%":
                return  # relative to InBody's ideal: fields only
            kg = _convert(v, unit, _Kind.MASS, self.mass_unit)
            if kg is None:
                self.notes.append(f"{key}: unit {unit or '?'} does not fit")
            elif what in _SEG_SLM:
                self.seg_muscle.setdefault(segment, kg)
            else:
                attr_name = "fat_free_mass_kg" if what in _SEG_LEAN else "fat_mass_kg"
                self.segments.setdefault(segment, {}).setdefault(attr_name, kg)
            return


def _bmi_unit_check(values: Mapping[str, float], declared: MassUnit) -> None:
    w, h, bmi = values.get("weight_kg"), values.get("height_cm"), values.get("bmi")
    if w is None or h is None or bmi is None or h <= 0 or bmi <= 0:
        return
    area_m2 = (h / 100) * (h / 100)  # "**" would raise OverflowError for a height of 1e308
    if not (area_m2 > 0 and math.isfinite(area_m2)):  # an absurd height: plausibility rejects it later
        return

    def close(weight: float) -> bool:
        return abs(weight / area_m2 - bmi) <= 0.05 * bmi

    if close(w):
        return
    other = w / KG_PER_LB if declared is MassUnit.LB else w * KG_PER_LB
    if close(other):
        right = MassUnit.KG if declared is MassUnit.LB else MassUnit.LB
        raise FrameError(
            f"the masses look like {right.value}, not {declared.value} (BMI {bmi:g} fits that): "
            f'set [lookinbody] mass_unit = "{right.value}"'
        )


def _accumulate(answers: Mapping[Any, Any], wanted: str | None, unit: MassUnit, frame: bytes) -> _Acc:
    """Every value of the records of the wanted test, the full answer first: its values win over the
    abbreviated ones."""
    acc = _Acc(unit)
    for endpoint in sorted(answers, key=lambda e: (0 if "full" in str(e).lower() else 1, str(e))):
        text = answers[endpoint]
        if not isinstance(text, str):
            raise FrameError("an answer is not text", frame[:64])
        try:
            parsed = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            acc.notes.append(f"{endpoint}: answer is not JSON")
            continue
        for record in _records(parsed, wanted):
            for k, v in record.items():
                acc.add(k, v)
    return acc


_PARTS_OF_WEIGHT = (
    "fat_mass_kg",
    "skeletal_muscle_mass_kg",
    "total_body_water_kg",
    "fat_free_mass_kg",
    "soft_lean_mass_kg",
)


def _sane_values(acc: _Acc, frame: bytes) -> float:
    """Drop (with a note) what is out of range or heavier than the person; returns the weight (kg)."""
    values = acc.values
    for attr in list(values):
        lo, hi = _RANGES[attr]
        if not lo <= values[attr] <= hi:
            acc.notes.append(f"{attr} {values[attr]:g} outside {lo:g}..{hi:g}: dropped")
            del values[attr]
    weight = values.get("weight_kg")
    if weight is None:
        raise FrameError("no usable weight in the answer", frame[:64])
    for attr in _PARTS_OF_WEIGHT:
        if attr in values and values[attr] > weight:
            acc.notes.append(f"{attr} {values[attr]:g} above the weight: dropped")
            del values[attr]
    if "fat_free_mass_kg" not in values and acc.lbm is not None and "fat_mass_kg" in values:
        if abs(weight - values["fat_mass_kg"] - acc.lbm) <= 0.3:
            values["fat_free_mass_kg"] = acc.lbm
        else:
            acc.notes.append("LBM is not weight - BFM here: not sent as fat-free mass")
    if "visceral_fat_rating" in values:
        values["visceral_fat_rating"] = float(values["visceral_fat_rating"])
    return weight


def _segments(acc: _Acc, weight_kg: float) -> dict[Segment, SegmentValues]:
    segments: dict[Segment, SegmentValues] = {}
    limit_kg = min(weight_kg, _RANGES["segment"][1])
    for segment in set(acc.segments) | set(acc.seg_muscle):
        seg = {k: v for k, v in acc.segments.get(segment, {}).items() if 0 <= v <= limit_kg}
        segments[segment] = SegmentValues(**seg, muscle_mass_kg=acc.seg_muscle.get(segment))
    return segments


def _reading_from(doc: Mapping[str, Any], frame: bytes) -> Reading:
    account = _str_field(doc, "account")
    user_id = _str_field(doc, "user_id").strip()
    token = _str_field(doc, "user_token").strip()
    datetimes = _str_field(doc, "datetimes")
    try:
        identify = IdentifyBy(doc.get("identify_by", IdentifyBy.USER_ID.value))
        unit = MassUnit(doc.get("mass_unit", MassUnit.KG.value))
    except ValueError:
        raise FrameError("envelope identify_by or mass_unit unknown", frame[:64]) from None
    answers = doc.get("answers")
    if not isinstance(answers, dict) or not answers:
        raise FrameError("envelope has no answers", frame[:64])
    wanted = compact_time(datetimes)
    acc = _accumulate(answers, wanted, unit, frame)
    values = acc.values
    _bmi_unit_check(values, unit)
    weight = _sane_values(acc, frame)
    segments = _segments(acc, weight)
    member = user_id if identify is IdentifyBy.USER_ID else re.sub(r"\D", "", token)
    test_time = parse_test_time(datetimes)
    fields = dict(acc.fields)
    fields["account"] = account
    fields["mass_unit"] = unit.value
    if acc.notes:
        fields["notes"] = "; ".join(acc.notes)
    if acc.answer_time is not None and wanted is not None and acc.answer_time != wanted:
        fields["answer_time"] = acc.answer_time
    return Reading(
        driver=NAME,
        measurement=Measurement(**values, segments=MappingProxyType(segments)),  # type: ignore[arg-type]
        stable=True,
        raw=frame.decode("ascii"),
        device_id=member or None,
        device_time=None if test_time is None else test_time.isoformat(),
        model="InBody (LookinBody Web)",
        fields=MappingProxyType(fields),
    )


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """One envelope -> Reading (test), None (listing) or DeviceReport (failed call). Raises only
    FrameError."""
    doc = _envelope(frame)
    kind = doc.get("kind")
    if kind == EnvelopeKind.LIST.value:
        return None
    if kind == EnvelopeKind.ERROR.value:
        status = doc.get("status")
        code = f"http_{status}" if isinstance(status, int) and not isinstance(status, bool) else "http_?"
        endpoint = doc.get("endpoint") if isinstance(doc.get("endpoint"), str) else "?"
        return DeviceReport(
            NAME, code, explain_status(status if isinstance(status, int) else 0, str(endpoint)), frame.decode("ascii")
        )
    if kind != EnvelopeKind.TEST.value:
        raise FrameError(f"unknown envelope kind {str(kind)[:20]!r}", frame[:64])
    return _reading_from(doc, frame)


def explain_status(status: int, endpoint: str) -> str:
    """One line for a failed call, with what to do."""
    if status == 401 and endpoint != ENDPOINT_TEST:
        return (
            f"LookinBody answered 401 on {endpoint}: the account's data-access add-on is not active "
            "(only /user/test works until InBody activates it; ask InBody support)"
        )
    if status in (401, 403):
        return f"LookinBody rejected the Account / API-KEY on {endpoint} (HTTP {status}): check both in LookinBody Web"
    if status == 0:
        return f"LookinBody did not answer {endpoint} (timeout or connection failure)"
    return f"LookinBody answered HTTP {status} on {endpoint}"


def has_weight(answer: str) -> bool:
    """Whether an answer text gives a weight (the link then needs no second endpoint)."""
    try:
        doc = json.loads(answer, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False
    return any(
        _whole_attr(k) == "weight_kg" and _number(v) is not None
        for record in _records(doc, None)
        for k, v in record.items()
        if isinstance(k, str)
    )


def dedupe_key(address: str, payload: bytes) -> str:
    """Persistent dedupe on (account, user, test time): the same test listed twice, fetched again after
    a restart, or answered in the other time format is one weighing. Hashed: no member data in the key."""
    try:
        doc = _envelope(payload)
        account = _str_field(doc, "account").strip().lower()
        user = _str_field(doc, "user_id").strip() or "tel:" + re.sub(r"\D", "", _str_field(doc, "user_token"))
        when = _str_field(doc, "datetimes")
    except FrameError:
        return "inbody:raw:" + hashlib.sha256(payload).hexdigest()[:32]
    ident = f"{account}\x00{user}\x00{compact_time(when) or when.strip()}"
    return "inbody:" + hashlib.sha256(ident.encode("utf-8")).hexdigest()[:32]


# ------------------------------------------------------------------------------------------ redaction

_PERSONAL_KEYS = ("userid", "usertoken", "telhp", "phone", "mobile", "name", "email", "birth", "address", "memberid")


def _personal(key: str) -> bool:
    k = _norm(key)
    return any(p in k for p in _PERSONAL_KEYS)


def _redact_value(value: Any, replace: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (_redact_scalar(v, replace) if isinstance(k, str) and _personal(k) else _redact_value(v, replace))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_value(v, replace) for v in value]
    return value


def _redact_scalar(value: Any, replace: Callable[[str], str]) -> Any:
    if isinstance(value, dict | list):
        return _redact_value(value, replace)
    text = _text(value)
    return replace(text) if text else value


def _redact_text(text: str, replace: Callable[[str], str]) -> str:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return json.dumps(_redact_value(doc, replace), separators=(",", ":"), ensure_ascii=True)


def redact_envelope(payload: bytes, replace: Callable[[str], str]) -> bytes:
    """For ``record --redact``: UserID, UserToken (phone) and every personal-looking key of the answers
    (names, phone, e-mail, birthday) become ``replace(value)``; measurements stay. Not an envelope:
    returned unchanged."""
    try:
        doc = _envelope(payload)
    except FrameError:
        return payload
    for key in ("user_id", "user_token"):
        if isinstance(doc.get(key), str) and doc[key]:
            doc[key] = replace(doc[key])
    if isinstance(doc.get("answers"), dict):
        doc["answers"] = {k: _redact_text(v, replace) if isinstance(v, str) else v for k, v in doc["answers"].items()}
    if isinstance(doc.get("answer"), str):
        doc["answer"] = _redact_text(doc["answer"], replace)
    return _dump(doc)


# ---------------------------------------------------------------------------------------- the schedule


@dataclass(frozen=True, slots=True)
class ListDay:
    """Ask GetTodayMeasurements for ``day`` (the account's local date)."""

    day: date


@dataclass(frozen=True, slots=True)
class FetchTest:
    test: TestRef


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to ask before ``until`` (epoch seconds)."""

    until: float


Step = ListDay | FetchTest | Wait


class PollScheduler:
    """What to ask LookinBody next, given the caller's time (epoch seconds). No clock, no I/O.

    - The account's local date (``zone``) decides the day to list. At the first step it lists the last
      ``lookback_days`` days and today (tests done while the bridge was down); when the date changes it
      lists the day that just ended once more (a test at 23:59 seen after midnight), then the new day.
    - Today is listed every ``interval_s``; each new test of a listing is fetched once, in order.
    - Every request is at least ``pace_s`` after the previous one; after a failure the next request
      waits ``backoff_base_s * 2**(n-1)``, at most ``backoff_cap_s`` (or a longer ``Retry-After`` up
      to the cap); a success resets it. A test that failed goes to the back of the queue (nothing is
      dropped: one bad test never blocks the others).
    - A test listed again (overlapping polls, the day-end sweep) is not fetched twice; memory holds
      only the tests of the days still listed.
    """

    def __init__(
        self,
        zone: tzinfo,
        *,
        interval_s: float = 60.0,
        pace_s: float = 1.0,
        backoff_base_s: float = 5.0,
        backoff_cap_s: float = 900.0,
        lookback_days: int = 1,
    ) -> None:
        if interval_s <= 0 or pace_s < 0 or backoff_base_s <= 0 or backoff_cap_s < backoff_base_s:
            raise ValueError("interval_s > 0, pace_s >= 0, 0 < backoff_base_s <= backoff_cap_s")
        if lookback_days < 0:
            raise ValueError("lookback_days must be >= 0")
        self.zone = zone
        self.interval_s = interval_s
        self.pace_s = pace_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.lookback_days = lookback_days
        self.failures = 0
        self._today: date | None = None
        self._due: deque[date] = deque()
        self._queue: deque[TestRef] = deque()
        self._known: dict[tuple[str, str], date] = {}
        self._not_before = -math.inf
        self._last_today_list = -math.inf

    def local_date(self, now: float) -> date:
        return datetime.fromtimestamp(now, self.zone).date()

    @property
    def pending(self) -> int:
        """Tests listed and not fetched yet."""
        return len(self._queue)

    def _roll(self, now: float) -> date:
        today = self.local_date(now)
        if self._today is None:
            self._due.extend(today - timedelta(days=n) for n in range(self.lookback_days, 0, -1))
            self._due.append(today)
        elif today != self._today:
            for d in (self._today, today):
                if d not in self._due:
                    self._due.append(d)
            oldest = today - timedelta(days=self.lookback_days + 1)
            self._known = {k: d for k, d in self._known.items() if d >= oldest}
        self._today = today
        return today

    def next(self, now: float) -> Step:
        today = self._roll(now)
        if now < self._not_before:
            return Wait(self._not_before)
        if self._queue:
            return FetchTest(self._queue[0])
        if self._due:
            return ListDay(self._due[0])
        due = self._last_today_list + self.interval_s
        if now >= due:
            return ListDay(today)
        return Wait(due)

    def listed(self, day: date, tests: Iterable[TestRef], now: float) -> list[TestRef]:
        """A listing succeeded: returns the tests that are new (queued for fetching)."""
        if day in self._due:
            self._due.remove(day)
        if day == self._today:
            self._last_today_list = now
        new: list[TestRef] = []
        for test in tests:
            if test.key not in self._known:
                self._known[test.key] = day
                self._queue.append(test)
                new.append(test)
        self._ok(now)
        return new

    def fetched(self, test: TestRef, now: float) -> None:
        with_key = [t for t in self._queue if t.key == test.key]
        for t in with_key:
            self._queue.remove(t)
        self._ok(now)

    def failed(self, step: Step, now: float, retry_after_s: float | None = None) -> float:
        """A request failed (timeout, 5xx, 401, garbage): back off. Returns the delay."""
        self.failures += 1
        delay = min(self.backoff_cap_s, self.backoff_base_s * float(2 ** min(self.failures - 1, 30)))
        if retry_after_s is not None and retry_after_s > delay:
            delay = min(self.backoff_cap_s, retry_after_s)
        delay = max(delay, self.pace_s)
        self._not_before = now + delay
        if isinstance(step, FetchTest) and self._queue and self._queue[0].key == step.test.key:
            self._queue.rotate(-1)
        return delay

    def _ok(self, now: float) -> None:
        self.failures = 0
        self._not_before = now + self.pace_s

    def known(self, tests: Sequence[TestRef]) -> bool:
        return all(t.key in self._known for t in tests)


# --------------------------------------------------------------------------------------------- the spec

SPEC = DriverSpec(
    name=NAME,
    redact=redact_envelope,
    summary="InBody via LookinBody Web (cloud API, partner key): weight, SMM, fat, water, segmental",
    link=LinkKind.CLOUD,
    parse=parse,
    make_framer=PassthroughFramer,
    models=("InBody 270", "InBody 570", "InBody 770", "InBody 970"),
    dedupe_key=dedupe_key,
    notes=MappingProxyType(
        {
            "config": '[scale] driver = "inbody" + a [lookinbody] section (docs/inbody.md)',
            "verified": "endpoint and key names: four public code bases; values: no public sample",
        }
    ),
)
