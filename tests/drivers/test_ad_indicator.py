"""A&D indicator / balance format: vectors, round trips through the wire builder, robustness."""

from __future__ import annotations

import math
from typing import Any

import pytest
from builders import ad_balance_line, ad_data, ad_indicator_line
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

from drivers import FrameError, Reading, ad_indicator

SPEC = ad_indicator.SPEC
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=100_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
UNIT_KG = {"kg": 1.0, " g": 0.001, "lb": 0.45359237, " t": 1000.0}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vector", vector_params("ad_indicator", shared=False))
def test_own_vectors(vector: Vector, mode: str) -> None:
    check_vector(SPEC, vector, mode)


def test_indicator_frame_is_16_characters() -> None:
    line = ad_indicator_line("ST", "GS", ad_data(75.4, 2, 8), "kg")
    assert line == b"ST,GS,+0075.40kg\r\n"
    assert len(line.rstrip(b"\r\n")) == 16


def test_reading_fields_and_raw() -> None:
    reading = ad_indicator.parse(b"ST,NT,+0074.15kg")
    assert isinstance(reading, Reading)
    assert reading.raw == "ST,NT,+0074.15kg"
    assert dict(reading.fields) == {"header": "ST", "kind": "NT", "data": "+0074.15", "unit": "kg"}
    assert reading.is_weighing


def test_unstable_is_never_a_weighing() -> None:
    reading = ad_indicator.parse(b"US,GS,+0075.40kg")
    assert isinstance(reading, Reading) and not reading.is_weighing


@pytest.mark.parametrize("line", [b"OL,GS,+9999.99kg", b"LO,NT,-9999.99kg", b"ST,TR,+0000.50kg", b"QT,+00000012 PC"])
def test_not_weighings(line: bytes) -> None:
    assert ad_indicator.parse(line) is None


# ------------------------------------------------------------------------------------- round trips


@st.composite
def indicator_frames(draw: st.DrawFn) -> tuple[bytes, float, bool]:
    head = draw(st.sampled_from(["ST", "US"]))
    kind = draw(st.sampled_from(["GS", "NT", "G ", "N "]))
    unit = draw(st.sampled_from(list(UNIT_KG)))
    decimals = draw(st.integers(0, 4))
    limit = 10 ** (6 - decimals) - 1 if decimals else 9_999_999
    count = draw(st.integers(-limit, limit))
    value = count / 10**decimals
    data = ad_data(value, decimals, 8)
    return ad_indicator_line(head, kind, data, unit), value * UNIT_KG[unit], head == "ST"


@st.composite
def balance_frames(draw: st.DrawFn) -> tuple[bytes, float, bool]:
    head = draw(st.sampled_from(["ST", "US"]))
    unit = draw(st.sampled_from(["g", "kg", "lb", "oz"]))
    decimals = draw(st.integers(0, 4))
    limit = 10 ** (7 - decimals) - 1 if decimals else 99_999_999
    value = draw(st.integers(-limit, limit)) / 10**decimals
    factor = {"g": 0.001, "kg": 1.0, "lb": 0.45359237, "oz": 0.028349523125}[unit]
    return ad_balance_line(head, ad_data(value, decimals, 9), unit), value * factor, head == "ST"


def check_round_trip(frame: tuple[bytes, float, bool]) -> None:
    line, kg, stable = frame
    results, rejected = decode_stream(SPEC, [line])
    assert rejected == 0 and len(results) == 1
    reading = results[0]
    assert isinstance(reading, Reading)
    assert reading.stable is stable
    assert reading.measurement.weight_kg is not None
    assert math.isclose(reading.measurement.weight_kg, kg, rel_tol=1e-6, abs_tol=1e-6)


@FAST
@given(st.one_of(indicator_frames(), balance_frames()))
def test_round_trip(frame: tuple[bytes, float, bool]) -> None:
    check_round_trip(frame)


@HEAVY
@given(st.lists(st.one_of(indicator_frames(), balance_frames()), min_size=1, max_size=6), st.lists(st.integers()))
def test_any_chunking_gives_the_same_frames(items: list[tuple[bytes, float, bool]], cuts: list[int]) -> None:
    check_chunking(SPEC, [i[0] for i in items], cuts)


def _robust(data: bytes) -> None:
    robust(SPEC, data)


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_frame_error(data: bytes) -> None:
    _robust(data)


FIELD_SOUP = st.text(alphabet=st.sampled_from(list("STUGNOLQR,+- .0123456789kglbtP%")), max_size=24)


@FAST
@given(FIELD_SOUP)
def test_field_soup_raises_only_frame_error(text: str) -> None:
    _robust(text.encode())


@HEAVY
@given(st.lists(no_terminators(b""), min_size=1, max_size=20), indicator_frames())
def test_garbage_stream_stays_under_cap_and_resyncs(garbage: list[bytes], frame: tuple[bytes, float, bool]) -> None:
    big = [g * (1 + ad_indicator.MAX_LINE_BYTES // max(1, len(g))) for g in garbage if g] or [b"x" * 500]
    # no start byte in this format: the next terminator ends the garbage, the frame after it is clean
    out = garbage_then_frame(SPEC, big, frame[0], ad_indicator.MAX_LINE_BYTES, separator=b"\r\n")
    assert out[-1] == frame[0].rstrip(b"\r\n")
    check_round_trip((out[-1] + b"\r\n", frame[1], frame[2]))


def test_malformed_frames_raise_frame_error() -> None:
    for line in (b"ST,GS,+0075.40", b"ST", b"", b"ST,GS,+0075.40kgEXTRAEXTRAEXTRAEXTRA", b"\xff\xfe"):
        with pytest.raises(FrameError):
            ad_indicator.parse(line)


LONG_PROFILES: dict[str, Any] = {
    "random_bytes": lambda: given(st.binary(max_size=200))(_robust),
    "field_soup": lambda: given(FIELD_SOUP)(lambda t: _robust(t.encode())),
    "round_trip": lambda: given(st.one_of(indicator_frames(), balance_frames()))(check_round_trip),
}


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("prop", sorted(LONG_PROFILES))
def test_long_profile(request: pytest.FixtureRequest, prop: str) -> None:
    require_slow(request)
    SLOW(LONG_PROFILES[prop]())()
