"""Tanita key/value driver: shared and own vectors, quirks, round trips through the wire builder."""

from __future__ import annotations

import math
from datetime import date, time
from typing import Any

import pytest
from builders import TANITA_BC601_HEAD_IMPERIAL, TANITA_BC601_HEAD_METRIC, TANITA_PRO_HEAD, q, tanita_line
from expected import Naming, difference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from props import (
    HEAVY,
    decode_stream,
    frames,
    garbage_then_frame,
    no_terminators,
    robust,
    split_at,
)
from vectorlib import MODES, Vector, check_vector, require_slow, vector_params

from drivers import ChecksumError, DeviceReport, FrameError, Reading, Segment, tanita
from drivers.tanita_pc import ERROR_CODES

SPEC = tanita.SPEC
KG_PER_LB = 0.45359237
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=100_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vector", vector_params("tanita", shared=True))
def test_shared_vectors(vector: Vector, mode: str) -> None:
    check_vector(SPEC, vector, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vector", vector_params("tanita", shared=False))
def test_own_vectors(vector: Vector, mode: str) -> None:
    check_vector(SPEC, vector, mode)


SC240 = (
    b'{0,16,~0,1,~1,1,~2,1,MO,"SC-240",SN,"00000002",Bt,0,GE,1,AG,30,Hm,170,Pt,0.0,Wk,82.7,FW,18.6,fW,15.4,'
    b"MW,67.3,mW,64.0,sW,19,bW,3.3,wW,48.0,ww,58.0,MI,28.6,Sw,63.6,OV,30.0,IF,6,rb,8255,rB,1973,rJ,12,rA,28,"
    b"ZF,369.4,CS,FD"
)


def test_checksum_of_published_lines() -> None:
    body = SC240[: SC240.rindex(b",CS,") + 1]
    assert tanita.checksum(body) == "FD"


def test_bad_checksum_is_a_checksum_error_with_data() -> None:
    with pytest.raises(ChecksumError) as info:
        tanita.parse(SC240[:-2] + b"FE")
    assert (info.value.expected, info.value.actual) == ("FD", "FE")
    assert isinstance(info.value, FrameError)


def test_lowercase_checksum_digits_accepted() -> None:
    line = tanita_line([("MO", q("BD-815")), ("Wg", "3125")], terminator=b"")
    cs = line[-2:]
    lower, upper = tanita.parse(line[:-2] + cs.lower()), tanita.parse(line)
    assert isinstance(lower, Reading) and isinstance(upper, Reading)
    assert lower.measurement == upper.measurement


def test_sc240_reading_details() -> None:
    reading = tanita.parse(SC240)
    assert isinstance(reading, Reading)
    whole = {
        "weight_kg": 82.7,
        "height_cm": 170,
        "fat_percent": 18.6,
        "fat_mass_kg": 15.4,
        "fat_free_mass_kg": 67.3,
        "muscle_mass_kg": 64.0,  # Tanita muscle mass is not skeletal muscle mass: no skeletal_muscle_*
        "bone_mass_kg": 3.3,
        "total_body_water_kg": 48.0,
        "total_body_water_percent": 58.0,
        "bmi": 28.6,
        "visceral_fat_rating": 6,
        "bmr_kcal": 1973,
        "metabolic_age_years": 28,
        "impedance_ohm": 369.4,
        "model": "SC-240",
    }
    assert difference(reading, whole, Naming.DRIVER) is None
    assert reading.raw == SC240.decode()
    assert reading.fields["SN"] == "00000002"
    assert "~0" not in reading.fields


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_error_codes_are_device_reports(code: str) -> None:
    report = tanita.parse(code.encode())
    assert report == DeviceReport("tanita", code, ERROR_CODES[code], code, is_error=True)


def test_segmental_error_flag_drops_segments_keeps_flag() -> None:
    pairs = [("MO", q("MC-980")), ("St", "1"), ("Wk", "70.0"), ("FR", "20.0"), ("mT", "30.0")]
    reading = tanita.parse(tanita_line(pairs, terminator=b""))
    assert isinstance(reading, Reading)
    assert dict(reading.measurement.segments) == {}
    assert reading.fields["St"] == "1"
    assert reading.fields["FR"] == "20.0"
    ok = tanita.parse(tanita_line([*pairs[:1], ("St", "0"), *pairs[2:]], terminator=b""))
    assert isinstance(ok, Reading)
    assert ok.measurement.segments[Segment.RIGHT_LEG].fat_percent == 20.0
    assert ok.measurement.segments[Segment.TRUNK].muscle_mass_kg == 30.0


@pytest.mark.parametrize(
    ("hf", "cm"),
    [("5-10.0", 177.8), ("5'10.0", 177.8), ("5 10", 177.8), ("6-00.5", 184.15), ('"5-07.5"', 171.45)],
)
def test_hf_feet_inches_forms(hf: str, cm: float) -> None:
    reading = tanita.parse(tanita_line([("Hf", hf), ("Wp", "150.0")], terminator=b""))
    assert isinstance(reading, Reading)
    assert reading.measurement.height_cm == pytest.approx(cm, abs=0.01)


@pytest.mark.parametrize("hf", ["5-12.0", "510", "five-ten", "5-"])
def test_hf_rejects_non_feet_inches(hf: str) -> None:
    with pytest.raises(FrameError):
        tanita.parse(tanita_line([("Hf", hf), ("Wp", "150.0")], terminator=b""))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("Da", "25/09/2014", "2014-09-25"),
        ("DA", "19/01/30", "2019-01-30"),
        ("DT", "2026/06/03", "2026-06-03"),
        ("DT", "12/01/2016", "2016-01-12"),
        ("Da", "03/11/25", "2025-11-03"),
        ("DA", "30/13/2019", None),
        ("Da", "29/02/2023", None),
        ("DT", "yesterday", None),
    ],
)
def test_date_keys_and_formats(key: str, value: str, expected: str | None) -> None:
    reading = tanita.parse(tanita_line([(key, q(value)), ("Wk", "70.0")], terminator=b""))
    assert isinstance(reading, Reading)
    assert reading.device_time == expected
    assert reading.fields[key] == value


@pytest.mark.parametrize(("key", "value", "expected"), [("TI", "10:15", "10:15:00"), ("Ti", "23:48:53", "23:48:53")])
def test_time_keys(key: str, value: str, expected: str) -> None:
    reading = tanita.parse(tanita_line([("Da", q("01/02/2020")), (key, q(value)), ("Wk", "70.0")], terminator=b""))
    assert isinstance(reading, Reading)
    assert reading.device_time == f"2020-02-01T{expected}"


def test_pc_mode_replies() -> None:
    assert tanita.parse(b"D1") == DeviceReport("tanita", "D1", "command acknowledged", "D1", is_error=False)
    r = tanita.parse(b"D5!")
    assert isinstance(r, DeviceReport) and r.is_error
    r = tanita.parse(b"!")
    assert isinstance(r, DeviceReport) and r.is_error and r.code == "!"


def test_profile_line_is_not_a_weighing() -> None:
    line = tanita_line([("MO", q("BC-601")), ("DB", q("31/08/1985")), ("Hm", "173.0")], head="{0,16,~1,2,~3,4,")
    assert tanita.parse(line.rstrip()) is None


# ------------------------------------------------------------------------------------- round trips


Pairs = list[tuple[str, str]]


def _draw_member(draw: st.DrawFn, pairs: Pairs, exp: dict[str, Any]) -> None:
    if draw(st.booleans()):
        member = draw(st.text(alphabet="0123456789", min_size=16, max_size=16))
        pairs.append(("ID", q(member)))
        exp["device_id"] = None if set(member) == {"0"} else member


def _draw_device_time(draw: st.DrawFn, pairs: Pairs, exp: dict[str, Any]) -> None:
    d = draw(st.one_of(st.none(), st.dates(date(2000, 1, 1), date(2099, 12, 31))))
    if d is None:
        return
    key, text = draw(
        st.sampled_from(
            [
                ("Da", d.strftime("%d/%m/%Y")),
                ("DA", d.strftime("%y/%m/%d")),
                ("DT", d.strftime("%Y/%m/%d")),
                ("DT", d.strftime("%d/%m/%Y")),
            ]
        )
    )
    pairs.append((key, q(text)))
    t = draw(st.one_of(st.none(), st.times().map(lambda x: time(x.hour, x.minute, x.second))))
    stamp = d.isoformat()
    if t is not None:
        if draw(st.booleans()):
            pairs.append(("TI", q(t.strftime("%H:%M"))))
            stamp += "T" + t.strftime("%H:%M:00")
        else:
            pairs.append(("Ti", q(t.strftime("%H:%M:%S"))))
            stamp += "T" + t.strftime("%H:%M:%S")
    exp["device_time"] = stamp


def _draw_weight(draw: st.DrawFn, mode: str, mass: float, pairs: Pairs, exp: dict[str, Any]) -> None:
    tenths = draw(st.integers(1, 4000))
    if mode.startswith("Wk"):
        pairs.append(("Wk", f"{tenths / 10:.1f}"))
        exp["weight_kg"] = tenths / 10 * mass
    elif mode == "Wp":
        pairs.append(("Wp", f"{tenths / 10:.1f}"))
        exp["weight_kg"] = tenths / 10 * KG_PER_LB
    elif mode == "Ws":
        stone, lb_tenths = draw(st.integers(0, 40)), draw(st.integers(0, 139))
        pairs.append(("Ws", f"{stone}.{lb_tenths // 10:02d}.{lb_tenths % 10}"))
        exp["weight_kg"] = (stone * 14 + lb_tenths / 10) * KG_PER_LB
    else:
        grams = draw(st.integers(0, 30000))
        pairs.append(("Wg", str(grams)))
        exp["weight_kg"] = grams / 1000


def _draw_height(draw: st.DrawFn, mode: str, pairs: Pairs, exp: dict[str, Any]) -> None:
    if not draw(st.booleans()):
        return
    h = draw(st.integers(900, 2499)) / 10
    if mode == "Wp" and draw(st.booleans()):
        ft, inch = draw(st.integers(3, 7)), draw(st.integers(0, 119)) / 10
        pairs.append(("Hf", f"{ft}-{inch:04.1f}"))
        exp["height_cm"] = (ft * 12 + inch) * 2.54
    else:
        pairs.append(("Hm", f"{h:.1f}"))
        exp["height_cm"] = h * 2.54 if mode == "Wk_imperial_file" else h


def _draw_composition(draw: st.DrawFn, mass: float, pairs: Pairs, exp: dict[str, Any]) -> None:
    optional = (("FW", "fat_percent", False), ("fW", "fat_mass_kg", True), ("wW", "total_body_water_kg", True))
    for key, attr, is_mass in optional:
        if draw(st.booleans()):
            v = draw(st.integers(-50, 900)) / 10
            pairs.append((key, f"{v:.1f}"))
            exp[attr] = v * (mass if is_mass else 1.0)
    if draw(st.booleans()):
        kcal = draw(st.integers(500, 5000))
        if draw(st.booleans()):
            pairs.append(("rB", str(kcal)))
            exp["bmr_kcal"] = kcal
        else:
            pairs.append(("rb", str(kcal * 4)))
            exp["bmr_kcal"] = kcal * 4 / 4.184


def _draw_segments(draw: st.DrawFn, mass: float, pairs: Pairs, exp: dict[str, Any]) -> None:
    status = draw(st.sampled_from([None, "0", "1"]))
    if status is not None:
        pairs.append(("St", status))
    segs: dict[Segment, float] = {}
    for letter, seg in (("R", Segment.RIGHT_LEG), ("l", Segment.LEFT_ARM), ("T", Segment.TRUNK)):
        if draw(st.booleans()):
            v = draw(st.integers(0, 600)) / 10
            pairs.append(("f" + letter, f"{v:.1f}"))
            segs[seg] = v * mass
    exp["segments"] = {} if status == "1" else segs


@st.composite
def tanita_records(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A random record built on the wire, and what it must decode to."""
    mode = draw(st.sampled_from(["Wk", "Wk_imperial_file", "Wp", "Ws", "Wg"]))
    pairs: Pairs = [("MO", q(draw(st.sampled_from(["MC-980", "SC-240", "BC-601", "DC-320"]))))]
    exp: dict[str, Any] = {}
    _draw_member(draw, pairs, exp)
    _draw_device_time(draw, pairs, exp)
    imperial = mode in ("Wk_imperial_file", "Wp", "Ws")
    mass = KG_PER_LB if imperial else 1.0
    _draw_weight(draw, mode, mass, pairs, exp)
    _draw_height(draw, mode, pairs, exp)
    _draw_composition(draw, mass, pairs, exp)
    _draw_segments(draw, mass, pairs, exp)
    # order on the wire does not matter to the parser; shuffle everything after MO
    rest = draw(st.permutations(pairs[1:]))
    head = {"Wk_imperial_file": TANITA_BC601_HEAD_IMPERIAL, "Wk": TANITA_PRO_HEAD}.get(mode, TANITA_PRO_HEAD)
    if mode == "Wk" and draw(st.booleans()):
        head = TANITA_BC601_HEAD_METRIC
    line = tanita_line([pairs[0], *rest], head=head, brace=draw(st.booleans()))
    return line, exp


def _close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, abs_tol=0.01)


def check_round_trip(record: tuple[bytes, dict[str, Any]]) -> None:
    line, exp = record
    results, rejected = decode_stream(SPEC, [line])
    assert rejected == 0 and len(results) == 1
    reading = results[0]
    assert isinstance(reading, Reading) and reading.stable
    m = reading.measurement
    assert _close(m.weight_kg, exp["weight_kg"])
    for attr in ("height_cm", "fat_percent", "fat_mass_kg", "total_body_water_kg"):
        if attr in exp:
            assert _close(getattr(m, attr), exp[attr]), attr
        else:
            assert getattr(m, attr) is None, attr
    if "bmr_kcal" in exp:
        assert m.bmr_kcal is not None and abs(m.bmr_kcal - exp["bmr_kcal"]) <= 1
    assert reading.device_time == exp.get("device_time")
    assert reading.device_id == exp.get("device_id")
    assert set(m.segments) == set(exp["segments"])
    for seg, v in exp["segments"].items():
        assert _close(m.segments[seg].fat_mass_kg, v)


@FAST
@given(tanita_records())
def test_round_trip(record: tuple[bytes, dict[str, Any]]) -> None:
    check_round_trip(record)


@HEAVY
@given(tanita_records(), st.lists(st.integers(0, 10_000), max_size=8))
def test_round_trip_any_chunking(record: tuple[bytes, dict[str, Any]], cuts: list[int]) -> None:
    stream = record[0] * 3
    assert frames(SPEC, split_at(stream, cuts)) == frames(SPEC, [stream])
    results, _ = decode_stream(SPEC, split_at(stream, cuts))
    assert len(results) == 3


@FAST
@given(tanita_records(), st.integers(0, 255))
def test_any_single_bit_flip_is_rejected(record: tuple[bytes, dict[str, Any]], pos: int) -> None:
    line = record[0].rstrip(b"\r\n")
    i = pos % len(line)
    flipped = line[:i] + bytes([line[i] ^ 0x01]) + line[i + 1 :]
    with pytest.raises(FrameError):
        tanita.parse(flipped)


# -------------------------------------------------------------------------------------- robustness


@st.composite
def checksummed_noise(draw: st.DrawFn) -> bytes:
    """Token soup with a valid checksum: reaches past the checksum into the field parser."""
    alphabet = st.sampled_from(list('",019.-/:WkpsgHfm~ '))
    tokens = draw(st.lists(st.text(alphabet=alphabet, max_size=8), max_size=30))
    keys = ["Wk", "Wp", "Ws", "Wg", "Hm", "Hf", "Da", "DA", "DT", "TI", "Ti", "St", "ID", "rb", "rB", "fR", "~0", "rA"]
    pairs = [(draw(st.sampled_from(keys)), t) for t in tokens]
    return tanita_line(pairs, head=draw(st.sampled_from(["{0,16,", "{0,16,~0,3,", "{1,", "{0,"])), terminator=b"")


def _robust(data: bytes) -> None:
    robust(SPEC, data)


@FAST
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_frame_error(data: bytes) -> None:
    _robust(data)


@FAST
@given(checksummed_noise())
def test_checksummed_noise_raises_only_frame_error(data: bytes) -> None:
    _robust(data)


@HEAVY
@given(st.lists(no_terminators(b"{"), min_size=1, max_size=30), tanita_records())
def test_garbage_stream_stays_under_cap_and_resyncs(garbage: list[bytes], record: tuple[bytes, dict[str, Any]]) -> None:
    # enough garbage to overflow the cap several times, without a terminator
    big = [g * (1 + tanita.MAX_LINE_BYTES // max(1, len(g))) for g in garbage if g] or [b"x" * 5000]
    out = garbage_then_frame(SPEC, big, record[0], tanita.MAX_LINE_BYTES)
    assert len(out) == 1
    check_round_trip((out[0] + b"\r\n", record[1]))


def test_garbage_with_start_bytes_resyncs() -> None:
    framer = SPEC.make_framer()
    for _ in range(10):
        framer.feed(b"{garbage" * 100)
        assert framer.buffered_bytes <= tanita.MAX_LINE_BYTES  # type: ignore[attr-defined]
    out = framer.feed(SC240 + b"\r\n")
    assert [tanita.parse(f) for f in out] == [tanita.parse(SC240)]


def test_garbage_and_frame_in_one_chunk_resync() -> None:
    out = frames(SPEC, [b"\xff" * 10_000 + SC240 + b"\r\n"])
    assert out == [SC240]


# ------------------------------------------------------------------------------------ long profile


LONG_PROFILES: dict[str, Any] = {
    "random_bytes": lambda: given(st.binary(max_size=600))(_robust),
    "checksummed_noise": lambda: given(checksummed_noise())(_robust),
    "round_trip": lambda: given(tanita_records())(check_round_trip),
}


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("prop", sorted(LONG_PROFILES))
def test_long_profile(request: pytest.FixtureRequest, prop: str) -> None:
    require_slow(request)
    SLOW(LONG_PROFILES[prop]())()
