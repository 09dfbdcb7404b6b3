"""MT-SICS responses: vectors, poll settings, round trips through the wire builder, robustness."""

from __future__ import annotations

import math
from typing import Any

import pytest
from builders import mt_sics_line
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

from drivers import DeviceReport, FrameError, Reading, mt_sics

SPEC = mt_sics.SPEC
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=100_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
UNIT_KG = {"g": 0.001, "kg": 1.0, "mg": 1e-6, "lb": 0.45359237, "oz": 0.028349523125, "ct": 0.0002}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("vector", vector_params("mt_sics", shared=False))
def test_own_vectors(vector: Vector, mode: str) -> None:
    check_vector(SPEC, vector, mode)


def test_poll_settings() -> None:
    assert SPEC.poll_command == b"S\r\n" == mt_sics.POLL_STABLE
    assert mt_sics.POLL_IMMEDIATE == b"SI\r\n"
    assert SPEC.poll_interval_s > 0
    assert "SI" in SPEC.notes["poll"]


def test_manual_example_builder_matches() -> None:
    assert mt_sics_line("S", "S", "100.00", "g") == b"S S     100.00 g\r\n"


def test_status_reports() -> None:
    for status in ("I", "+", "-"):
        report = mt_sics.parse(f"S {status}".encode())
        assert isinstance(report, DeviceReport) and report.code == f"S {status}" and report.is_error


# ------------------------------------------------------------------------------------- round trips


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, float, bool]:
    command = draw(st.sampled_from(["S", "SI"]))
    status = draw(st.sampled_from(["S", "D"]))
    unit = draw(st.sampled_from(list(UNIT_KG)))
    decimals = draw(st.integers(0, 5))
    value = draw(st.integers(-(10**8), 10**8)) / 10**decimals
    text = f"{value:.{decimals}f}"
    return mt_sics_line(command, status, text, unit), float(text) * UNIT_KG[unit], status == "S"


def check_round_trip(item: tuple[bytes, float, bool]) -> None:
    line, kg, stable = item
    results, rejected = decode_stream(SPEC, [line])
    assert rejected == 0 and len(results) == 1
    reading = results[0]
    assert isinstance(reading, Reading) and reading.stable is stable
    assert reading.measurement.weight_kg is not None
    assert math.isclose(reading.measurement.weight_kg, kg, rel_tol=1e-6, abs_tol=1e-6)


@FAST
@given(responses())
def test_round_trip(item: tuple[bytes, float, bool]) -> None:
    check_round_trip(item)


@HEAVY
@given(st.lists(responses(), min_size=1, max_size=6), st.lists(st.integers()))
def test_any_chunking_gives_the_same_frames(items: list[tuple[bytes, float, bool]], cuts: list[int]) -> None:
    check_chunking(SPEC, [i[0] for i in items], cuts)


def _robust(data: bytes) -> None:
    robust(SPEC, data)


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_frame_error(data: bytes) -> None:
    _robust(data)


TOKEN_SOUP = st.text(alphabet=st.sampled_from(list("SIDZTE+-. 0123456789gklbmPC%")), max_size=40)


@FAST
@given(TOKEN_SOUP)
def test_token_soup_raises_only_frame_error(text: str) -> None:
    _robust(text.encode())


@HEAVY
@given(st.lists(no_terminators(b""), min_size=1, max_size=20), responses())
def test_garbage_stream_stays_under_cap_and_resyncs(garbage: list[bytes], item: tuple[bytes, float, bool]) -> None:
    big = [g * (1 + mt_sics.MAX_LINE_BYTES // max(1, len(g))) for g in garbage if g] or [b"x" * 500]
    out = garbage_then_frame(SPEC, big, item[0], mt_sics.MAX_LINE_BYTES, separator=b"\r\n")
    assert out[-1] == item[0].rstrip(b"\r\n")
    check_round_trip((out[-1] + b"\r\n", item[1], item[2]))


def test_malformed_raise_frame_error() -> None:
    for line in (b"", b"S", b"S S", b"S S 1.0", b"S S 1.0 g extra", b"s s 1.0 g", b"\x80"):
        with pytest.raises(FrameError):
            mt_sics.parse(line)


LONG_PROFILES: dict[str, Any] = {
    "random_bytes": lambda: given(st.binary(max_size=200))(_robust),
    "token_soup": lambda: given(TOKEN_SOUP)(lambda t: _robust(t.encode())),
    "round_trip": lambda: given(responses())(check_round_trip),
}


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("prop", sorted(LONG_PROFILES))
def test_long_profile(request: pytest.FixtureRequest, prop: str) -> None:
    require_slow(request)
    SLOW(LONG_PROFILES[prop]())()
