"""BC-418 / TBF-310 positional CSV: vectors, layouts, round trips through the wire builder, robustness."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pytest
from builders import csv_line, q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from props import (
    HEAVY,
    check_chunking,
    decode_stream,
    garbage_then_frame,
    no_terminators,
    robust,
)
from vectorlib import MODES, Vector, check_vector, require_slow, vector_params

from drivers import DeviceReport, FrameError, Reading, Segment, tanita_bc418
from drivers.tanita_bc418 import BC418, DEFAULT_LAYOUTS, TBF310, Layout, make_parse

SPEC = tanita_bc418.SPEC
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=100_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vector", vector_params("tanita_bc418", shared=False))
def test_own_vectors(vector: Vector, mode: str) -> None:
    check_vector(SPEC, vector, mode)


def test_layout_lengths_and_serial_settings() -> None:
    assert len(BC418.fields) == 38
    assert len(TBF310.fields) == 12
    serial = SPEC.serial
    assert serial is not None and (serial.baudrate, serial.bytesize, serial.parity) == (4800, 8, "N")
    assert "2400 7E1" in SPEC.notes["serial"]


def test_bc418_bmr_is_kept_raw_not_posted() -> None:
    values = ["0"] * 38
    values[5] = "80.0"
    values[12] = "7850"
    reading = tanita_bc418.parse(",".join(values).encode())
    assert isinstance(reading, Reading)
    assert reading.measurement.bmr_kcal is None
    assert reading.fields["bmr"] == "7850" and reading.fields["bmr_unit"] == "unknown"


def test_site_layout_with_verified_bmr_unit_and_custom_order() -> None:
    custom = Layout("site_bc418_kj", "BC-418", tuple("bmr_kj" if f == "bmr_raw" else f for f in BC418.fields))
    tbf_age_first = Layout("tbf_age_first", "TBF-310", ("age", "weight_kg", "height_cm", "bmr_kcal"))
    parse = make_parse([custom, tbf_age_first])
    values = ["0"] * 38
    values[5], values[12] = "80.0", "7850"
    reading = parse(",".join(values).encode(), "")
    assert isinstance(reading, Reading) and reading.measurement.bmr_kcal == pytest.approx(7850 / 4.184, abs=0.1)
    other = parse(b"35,72.5,180,1650", "")
    assert isinstance(other, Reading)
    assert (other.measurement.weight_kg, other.measurement.height_cm, other.measurement.bmr_kcal) == (72.5, 180, 1650)
    assert other.fields["age"] == "35" and other.fields["layout"] == "tbf_age_first"


def test_layouts_of_the_same_length_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        make_parse([TBF310, Layout("x", "X", (*(f"f{i}" for i in range(11)), "weight_kg"))])
    with pytest.raises(ValueError, match="weight_kg"):
        Layout("x", "X", ("a", "b"))


def test_pc_replies_are_device_reports() -> None:
    for code, err in (("U0", False), ("G1", False), ("D0", False), ("D2!", True), ("!", True), ("E7", True)):
        report = tanita_bc418.parse(code.encode())
        assert isinstance(report, DeviceReport) and report.code == code and report.is_error is err


# ------------------------------------------------------------------------------------- round trips

tenths = st.integers(0, 2500).map(lambda n: n / 10)


@st.composite
def bc418_lines(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    d = draw(st.dates(date(2000, 1, 1), date(2099, 12, 31)))
    hh, mm = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    weight = draw(st.integers(100, 3000)) / 10
    height = draw(st.integers(90, 249))
    fat = draw(tenths)
    seg = [draw(tenths) for _ in range(20)]
    values = [q(d.strftime("%d/%m/%y")), q(f"{hh:02d}:{mm:02d}"), draw(st.sampled_from(["0", "2"])), "1", str(height)]
    values += [f"{weight:.1f}", f"{fat:.1f}", "12.0", "60.0", "44.0", "35", "24.0", "7000", "500"]
    values += ["240", "245", "290", "295"] + [f"{v:.1f}" for v in seg]
    exp = {"weight": weight, "height": height, "fat": fat, "time": f"{d.isoformat()}T{hh:02d}:{mm:02d}:00", "seg": seg}
    return csv_line(values, draw(st.sampled_from([b"\r\n", b"\r", b"\n"]))), exp


def check_bc418(item: tuple[bytes, dict[str, object]]) -> None:
    line, exp = item
    results, rejected = decode_stream(SPEC, [line])
    assert rejected == 0 and len(results) == 1
    r = results[0]
    assert isinstance(r, Reading) and r.model == "BC-418"
    m = r.measurement
    assert m.weight_kg == exp["weight"] and m.height_cm == exp["height"] and m.fat_percent == exp["fat"]
    assert r.device_time == exp["time"]
    seg = exp["seg"]
    assert isinstance(seg, list)
    order = (Segment.RIGHT_LEG, Segment.LEFT_LEG, Segment.RIGHT_ARM, Segment.LEFT_ARM, Segment.TRUNK)
    for i, s in enumerate(order):
        v = m.segments[s]
        assert (v.fat_percent, v.fat_mass_kg, v.fat_free_mass_kg, v.muscle_mass_kg) == tuple(seg[4 * i : 4 * i + 4])


@st.composite
def tbf310_lines(draw: st.DrawFn) -> tuple[bytes, dict[str, float]]:
    weight = draw(st.integers(100, 3000)) / 10
    bmr_kj = draw(st.integers(2000, 20000))
    imp = draw(st.integers(200, 1000))
    values = ["0", draw(st.sampled_from(["1", "2"])), "185", f"{weight:.1f}", str(imp), "28.4", "31.4", "79.2"]
    values += ["58.0", "27", "32.3", str(bmr_kj)]
    return csv_line(values), {"weight": weight, "bmr_kcal": bmr_kj / 4.184, "imp": imp}


def check_tbf310(item: tuple[bytes, dict[str, float]]) -> None:
    line, exp = item
    r = tanita_bc418.parse(line.rstrip(b"\r\n"))
    assert isinstance(r, Reading) and r.model == "TBF-310"
    assert r.measurement.weight_kg == exp["weight"] and r.measurement.impedance_ohm == exp["imp"]
    assert r.measurement.bmr_kcal is not None and math.isclose(r.measurement.bmr_kcal, exp["bmr_kcal"], abs_tol=1)


@FAST
@given(bc418_lines())
def test_bc418_round_trip(item: tuple[bytes, dict[str, object]]) -> None:
    check_bc418(item)


@FAST
@given(tbf310_lines())
def test_tbf310_round_trip(item: tuple[bytes, dict[str, float]]) -> None:
    check_tbf310(item)


@HEAVY
@given(st.lists(st.one_of(bc418_lines(), tbf310_lines()), min_size=1, max_size=5), st.lists(st.integers()))
def test_any_chunking_gives_the_same_frames(items: list[tuple[bytes, object]], cuts: list[int]) -> None:
    check_chunking(SPEC, [i[0] for i in items], cuts)


def _robust(data: bytes) -> None:
    robust(SPEC, data)


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_frame_error(data: bytes) -> None:
    _robust(data)


CSV_SOUP = st.lists(st.text(alphabet=st.sampled_from(list('0123456789./:"-+ E')), max_size=6), min_size=1, max_size=40)


@FAST
@given(CSV_SOUP)
def test_csv_soup_raises_only_frame_error(values: list[str]) -> None:
    _robust(",".join(values).encode())


@HEAVY
@given(st.lists(no_terminators(b""), min_size=1, max_size=20), tbf310_lines())
def test_garbage_stream_stays_under_cap_and_resyncs(garbage: list[bytes], item: tuple[bytes, dict[str, float]]) -> None:
    big = [g * (1 + tanita_bc418.MAX_LINE_BYTES // max(1, len(g))) for g in garbage if g] or [b"x" * 5000]
    out = garbage_then_frame(SPEC, big, item[0], tanita_bc418.MAX_LINE_BYTES, separator=b"\r\n")
    check_tbf310((out[-1], item[1]))


def test_malformed_raise_frame_error() -> None:
    for line in (b"", b"1,2,3", b"0,2,185,110.6,431,28.4,31.4,79.2,58.0,27,32.3,97e1", b"\xff,\xfe"):
        with pytest.raises(FrameError):
            tanita_bc418.parse(line)
    assert len({len(layout.fields) for layout in DEFAULT_LAYOUTS}) == len(DEFAULT_LAYOUTS)


LONG_PROFILES: dict[str, Any] = {
    "random_bytes": lambda: given(st.binary(max_size=400))(_robust),
    "csv_soup": lambda: given(CSV_SOUP)(lambda v: _robust(",".join(v).encode())),
    "bc418_round_trip": lambda: given(bc418_lines())(check_bc418),
    "tbf310_round_trip": lambda: given(tbf310_lines())(check_tbf310),
}


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("prop", sorted(LONG_PROFILES))
def test_long_profile(request: pytest.FixtureRequest, prop: str) -> None:
    require_slow(request)
    SLOW(LONG_PROFILES[prop]())()
