"""mi_scale: shared and project vectors, round trips through literal-byte builders, random input,
the acceptance rule and the persistent dedupe key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ble_builders as B
import ble_vectors as V
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import DeviceReport, FrameError, Reading
from drivers import mi_scale as mi
from drivers.registry import BleMode, get

SPEC = get("mi_scale")
KG_PER_LB = 0.45359237


def _params(docs: list[dict[str, Any]], *, frames: bool) -> list[Any]:
    return [pytest.param(d, id=d["name"]) for d in docs if ("frames" in d) is frames]


def _shared_params() -> list[Any]:
    if not V.SHARED_VECTORS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared vectors folder absent: {V.SHARED_VECTORS}"))]
    return _params(V.shared("mi_scale"), frames=False)


def check_single(doc: dict[str, Any]) -> None:
    frame, channel, expect = bytes.fromhex(doc["hex"]), V.channel_of(doc), doc["expect"]
    if expect == "FrameError":
        with pytest.raises(FrameError):
            mi.parse(frame, channel)
        return
    problem = V.mismatch(mi.parse(frame, channel), expect, doc["_naming"])
    assert problem is None, f"{doc['name']}: {problem}"
    results = V.run_frames("mi_scale", [doc])
    assert len(results) == (0 if expect is None else 1)
    if results:
        assert V.mismatch(results[0], expect, doc["_naming"]) is None


@pytest.mark.parametrize("doc", _shared_params())
def test_shared_vector(doc: dict[str, Any]) -> None:
    check_single(doc)


@pytest.mark.parametrize("doc", _params(V.own("mi_scale"), frames=False))
def test_own_vector(doc: dict[str, Any]) -> None:
    check_single(doc)


@pytest.mark.parametrize("doc", _params(V.own("mi_scale"), frames=True))
def test_own_sequence(doc: dict[str, Any]) -> None:
    results = V.run_frames("mi_scale", doc["frames"])
    assert len(results) == len(doc["expect"])
    for result, expect in zip(results, doc["expect"], strict=True):
        problem = V.mismatch(result, expect, doc["_naming"])
        assert problem is None, f"{doc['name']}: {problem}"
    keys = {
        mi.dedupe_key(f["address"], bytes.fromhex(f["hex"]))
        for f, r in zip(doc["frames"], results, strict=True)
        if isinstance(r, Reading) and r.is_weighing
    }
    assert len(keys) == doc["expect_dedupe_keys"], keys


def test_own_vectors_exist_and_are_labelled() -> None:
    docs = V.own("mi_scale")
    assert len(docs) >= 15
    for doc in docs:
        assert doc["driver"] == "mi_scale" and doc.get("source"), doc["_where"]
        if "frames" not in doc and isinstance(doc["expect"], dict) and "device_report" not in doc["expect"]:
            reading = mi.parse(bytes.fromhex(doc["hex"]), V.channel_of(doc))
            assert isinstance(reading, Reading)
            if reading.measurement.impedance_ohm is not None:
                assert "impedance_ohm" in doc["expect"], doc["name"]


def test_spec_shape() -> None:
    assert SPEC.ble is not None and SPEC.ble.mode is BleMode.BROADCAST
    assert SPEC.ble.requires_service_data
    assert SPEC.ble.service_uuids == {mi.UUID_V1, mi.UUID_V2}
    assert set(SPEC.ble.name_prefixes) == {"MI_SCALE", "MISCA", "MIBCS", "MIBFS", "MI SCALE2"}


def test_device_time_from_payload() -> None:
    reading = mi.parse(bytes.fromhex("0226b20705040f0201ac018642"), "181b")
    assert isinstance(reading, Reading) and reading.device_time == "1970-05-04T15:02:01"
    bad = mi.parse(B.mi_v1(15000, time=(2024, 13, 1, 0, 0, 0)), "181d")
    assert isinstance(bad, Reading) and bad.device_time is None and bad.is_weighing


def test_fields_for_raw_results() -> None:
    reading = mi.parse(B.mi_v2(16000, impedance=480, lb=True, removed=True), "181b")
    assert isinstance(reading, Reading)
    assert reading.fields["unit"] == "lb" and reading.fields["load_removed"] == "1"
    assert reading.fields["impedance_ohm"] == "480" and reading.fields["weight"] == "160"
    assert reading.raw == B.mi_v2(16000, impedance=480, lb=True, removed=True).hex()


# ----------------------------------------------------------------------------- round trips

times = st.tuples(
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
)


def iso(t: B.Time) -> str | None:
    try:
        return datetime(*t).isoformat()
    except ValueError:
        return None


@st.composite
def mi_frames(draw: st.DrawFn) -> tuple[bytes, str, dict[str, Any]]:
    version = draw(st.sampled_from((1, 2)))
    unit = draw(st.sampled_from(("kg", "lb", "catty")))
    weight = draw(st.integers(0, 0xFFFF))
    flags = {
        "stabilised": draw(st.booleans()),
        "removed": draw(st.booleans()),
        "object_mode": draw(st.booleans()),
        "lb": unit == "lb",
        "catty": unit == "catty",
    }
    time = draw(times)
    impedance = None
    if version == 1:
        frame = B.mi_v1(weight, time=time, **flags)
    else:
        impedance = draw(st.none() | st.integers(0, 0xFFFF))
        raw_only = draw(st.integers(0, 0xFFFF))
        frame = B.mi_v2(weight, impedance=impedance, impedance_raw=raw_only, time=time, **flags)
    kg = weight / 200 if unit == "kg" else weight / 100 * (KG_PER_LB if unit == "lb" else 0.5)
    want = {
        "stable": flags["stabilised"] and weight > 0,
        "weight_kg": kg,
        # 0xFFF0 and up are failure sentinels (0xFFFD BIA failed), never ohms
        "impedance": impedance if impedance is not None and 0 < impedance < 0xFFF0 else None,
        "time": iso(time),
        "unit": unit,
        "removed": flags["removed"],
    }
    short, full = ("181d", mi.UUID_V1) if version == 1 else ("181b", mi.UUID_V2)
    channel = draw(st.sampled_from(("", short, full)))
    return frame, channel, want


@settings(max_examples=600, deadline=None)
@given(case=mi_frames())
def test_round_trip(case: tuple[bytes, str, dict[str, Any]]) -> None:
    frame, channel, want = case
    reading = mi.parse(frame, channel)
    raw_weight = int.from_bytes(frame[1:3] if len(frame) == mi.LEN_V1 else frame[11:13], "little")
    if raw_weight == mi.WEIGHT_OVERLOAD:  # the overload sentinel: a device report, never a weighing
        assert isinstance(reading, DeviceReport) and reading.code == "overload" and reading.is_error
        return
    assert isinstance(reading, Reading)
    # acceptance rule: stabilised and weight > 0 is a weighing, whatever load-removed says
    assert reading.stable is want["stable"] and reading.is_weighing is want["stable"]
    assert reading.fields["load_removed"] == ("1" if want["removed"] else "0")
    assert reading.fields["unit"] == want["unit"]
    assert reading.device_time == want["time"]
    if want["stable"]:
        assert reading.measurement.weight_kg is not None
        assert abs(reading.measurement.weight_kg - want["weight_kg"]) < 1e-3
        assert reading.measurement.impedance_ohm == want["impedance"]
    else:
        assert reading.measurement.weight_kg is None and reading.measurement.impedance_ohm is None
    assert abs(float(reading.fields["weight_kg"]) - want["weight_kg"]) < 1e-3


# ----------------------------------------------------------------------------- dedupe key


@settings(max_examples=300, deadline=None)
@given(case=mi_frames(), address=st.sampled_from(("C8:47:8C:00:00:01", "c8:47:8c:00:00:01", " C8:47:8C:00:00:01 ")))
def test_dedupe_key_ignores_load_removed_and_address_case(case: tuple[bytes, str, Any], address: str) -> None:
    frame = bytearray(case[0])
    at = 0 if len(frame) == mi.LEN_V1 else 1
    on, off = bytearray(frame), bytearray(frame)
    on[at] |= 0x80
    off[at] &= 0x7F
    key = mi.dedupe_key(address, bytes(on))
    assert key == mi.dedupe_key("C8:47:8C:00:00:01", bytes(off))
    assert key.startswith("mi_scale:C8:47:8C:00:00:01:")


@settings(max_examples=300, deadline=None)
@given(case=mi_frames(), index=st.integers(0, 12), bit=st.integers(0, 7))
def test_dedupe_key_changes_with_content(case: tuple[bytes, str, dict[str, Any]], index: int, bit: int) -> None:
    frame = case[0]
    index %= len(frame)
    removed_bit = (index == 0 and len(frame) == mi.LEN_V1) or (index == 1 and len(frame) == mi.LEN_V2)
    if removed_bit and bit == 7:
        return
    other = bytearray(frame)
    other[index] ^= 1 << bit
    assert mi.dedupe_key("AA", frame) != mi.dedupe_key("AA", bytes(other))
    assert mi.dedupe_key("AA", frame) != mi.dedupe_key("BB", frame)


def test_dedupe_key_other_lengths() -> None:
    assert mi.dedupe_key("aa", b"\x80\x01") == "mi_scale:AA:8001"


# ----------------------------------------------------------------------------- random input

channels = st.sampled_from(["", "181d", "181b", mi.UUID_V1, mi.UUID_V2, "2a9c", "fe95", "nonsense"])


def check_random(frame: bytes, channel: str) -> None:
    try:
        result = mi.parse(frame, channel)
    except FrameError:
        return
    assert isinstance(result, Reading) and result.driver == "mi_scale"
    assert len(frame) in (mi.LEN_V1, mi.LEN_V2)
    w = result.measurement.weight_kg
    assert (w is None) is (not result.stable)
    assert w is None or 0 < w <= 0xFFFF / 200 + 1e-9
    mi.dedupe_key("AA:BB", frame)


@settings(max_examples=1000, deadline=None)
@given(frame=st.binary(max_size=20), channel=channels)
def test_random_frames_only_frame_error(frame: bytes, channel: str) -> None:
    check_random(frame, channel)


@settings(max_examples=1000, deadline=None)
@given(frame=st.binary(min_size=10, max_size=10) | st.binary(min_size=13, max_size=13), channel=channels)
def test_random_right_length_frames(frame: bytes, channel: str) -> None:
    check_random(frame, channel)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_long_profile(request: pytest.FixtureRequest) -> None:
    """≥ 100k examples of random payloads, plus round trips."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("long profile: run with -m slow")

    @settings(max_examples=100_000, deadline=None, database=None)
    @given(frame=st.binary(min_size=0, max_size=16) | st.binary(min_size=13, max_size=13), channel=channels)
    def random_frames(frame: bytes, channel: str) -> None:
        check_random(frame, channel)

    @settings(max_examples=30_000, deadline=None, database=None)
    @given(case=mi_frames())
    def round_trips(case: tuple[bytes, str, dict[str, Any]]) -> None:
        test_round_trip.hypothesis.inner_test(case)  # type: ignore[attr-defined]

    random_frames()
    round_trips()


def test_spec_offers_the_dedupe_key() -> None:
    assert SPEC.dedupe_key is mi.dedupe_key
    payload = bytes.fromhex("0226e607020e10293af7019a38")
    removed = bytes([payload[0], payload[1] | 0x80]) + payload[2:]
    assert SPEC.dedupe_key("c8:47:8c:00:00:01", payload) == SPEC.dedupe_key("C8:47:8C:00:00:01", removed)
