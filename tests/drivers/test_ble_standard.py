"""ble_standard: shared and project vectors, round trips through literal-byte builders, random input,
and the multi-packet merge property."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ble_builders as B
import ble_vectors as V
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import DeviceReport, FrameError, Reading
from drivers import ble_standard as bs
from drivers.registry import BleMode, flush_decoder, get

SPEC = get("ble_standard")
KG_PER_LB = 0.45359237
CHARACTERISTICS = ("2a9d", "2a9c")

# ----------------------------------------------------------------------------- vectors


def _singles(docs: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(d, id=d["name"]) for d in docs if "frames" not in d]


def _sequences(docs: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(d, id=d["name"]) for d in docs if "frames" in d]


def _shared_params() -> list[Any]:
    if not V.SHARED_VECTORS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared vectors folder absent: {V.SHARED_VECTORS}"))]
    return _singles(V.shared("ble_standard"))


def check_single(doc: dict[str, Any]) -> None:
    frame, channel, expect = bytes.fromhex(doc["hex"]), V.channel_of(doc), doc["expect"]
    if expect == "FrameError":
        with pytest.raises(FrameError):
            bs.parse(frame, channel)
        with pytest.raises(FrameError):
            SPEC.new_decoder().decode(frame, channel)
        return
    problem = V.mismatch(bs.parse(frame, channel), expect, doc["_naming"])
    assert problem is None, f"{doc['name']} (parse): {problem}"
    # the per-link decoder (then flush, as at disconnect) gives the same single result
    results = V.run_frames("ble_standard", [doc])
    if expect is None:
        assert results == [], doc["name"]
    else:
        assert len(results) == 1, f"{doc['name']}: {results!r}"
        problem = V.mismatch(results[0], expect, doc["_naming"])
        assert problem is None, f"{doc['name']} (decoder): {problem}"


@pytest.mark.parametrize("doc", _shared_params())
def test_shared_vector(doc: dict[str, Any]) -> None:
    check_single(doc)


@pytest.mark.parametrize("doc", _singles(V.own("ble_standard")))
def test_own_vector(doc: dict[str, Any]) -> None:
    check_single(doc)


@pytest.mark.parametrize("doc", _sequences(V.own("ble_standard")))
def test_own_sequence(doc: dict[str, Any]) -> None:
    results = V.run_frames("ble_standard", doc["frames"])
    assert len(results) == len(doc["expect"]), f"{doc['name']}: {results!r}"
    for result, expect in zip(results, doc["expect"], strict=True):
        problem = V.mismatch(result, expect, doc["_naming"])
        assert problem is None, f"{doc['name']}: {problem}"


def test_own_vectors_exist_and_are_labelled() -> None:
    docs = V.own("ble_standard")
    assert len(docs) >= 20
    for doc in docs:
        assert doc["driver"] == "ble_standard" and doc.get("source"), doc["_where"]
        if "frames" not in doc and isinstance(doc["expect"], dict) and "device_report" not in doc["expect"]:
            reading = bs.parse(bytes.fromhex(doc["hex"]), V.channel_of(doc))
            assert isinstance(reading, Reading)
            if reading.measurement.impedance_ohm is not None:
                assert "impedance_ohm" in doc["expect"], f"{doc['name']}: give impedance_ohm"


# ----------------------------------------------------------------------------- fixed cases


def test_spec_shape() -> None:
    assert SPEC.ble is not None and SPEC.ble.mode is BleMode.GATT
    assert SPEC.ble.characteristics == (bs.WEIGHT_MEASUREMENT, bs.BODY_COMPOSITION_MEASUREMENT)
    assert SPEC.make_framer().feed(b"\x00\x8c\x3c") == [b"\x00\x8c\x3c"]
    assert isinstance(SPEC.new_decoder(), bs.BleStandardDecoder)


@pytest.mark.parametrize("channel", ["2a9c", "2A9C", "0x2a9c", "00002a9c-0000-1000-8000-00805f9b34fb"])
def test_channel_forms(channel: str) -> None:
    reading = bs.parse(bytes.fromhex("1e06ea00e8070511081e0001c91b9c010314803e"), channel)
    assert isinstance(reading, Reading) and reading.measurement.weight_kg == 80.0


def test_muscle_bit_order_follows_the_spec_table() -> None:
    # bit 4 = muscle percentage, bit 5 = muscle mass (RonanB96 has them swapped)
    pct = bs.parse(B.bcm_packet(B.BcmRecord(200, {"muscle_percent": 412}), ["muscle_percent"], multi=False), "2a9c")
    mass = bs.parse(B.bcm_packet(B.BcmRecord(200, {"muscle_mass": 6000}), ["muscle_mass"], multi=False), "2a9c")
    assert isinstance(pct, Reading) and isinstance(mass, Reading)
    assert pct.measurement.muscle_percent == 41.2 and pct.measurement.muscle_mass_kg is None
    assert mass.measurement.muscle_mass_kg == 30.0 and mass.measurement.muscle_percent is None
    assert pct.measurement.skeletal_muscle_percent is None and mass.measurement.skeletal_muscle_mass_kg is None


def test_bmr_kj_to_kcal_uses_the_it_calorie() -> None:
    reading = bs.parse(B.bcm(B.BcmRecord(200, {"bmr": 4187})), "2a9c")
    assert isinstance(reading, Reading) and reading.measurement.bmr_kcal == 1000.0


def test_multi_packet_packet_alone_is_not_stable() -> None:
    first, _ = B.bcm_split(B.BcmRecord(200, {"bmr": 7000, "weight": 16000}), 1)
    reading = bs.parse(first, "2a9c")
    assert isinstance(reading, Reading) and reading.stable is False and reading.fields["multi_packet"] == "1"


def test_weight_scale_feature() -> None:
    # time stamp + multiple users + BMI, weight resolution 7 (0.005 kg), height resolution 3 (0.001 m)
    value = 0b1 | 0b10 | 0b100 | (7 << 3) | (3 << 7)
    feature = bs.decode_feature(value.to_bytes(4, "little"))
    assert feature["time_stamp"] and feature["multiple_users"] and feature["bmi"]
    assert feature["weight_resolution_kg"] == 0.005 and feature["weight_resolution_lb"] == 0.01
    assert feature["height_resolution_m"] == 0.001 and feature["height_resolution_in"] == 0.1
    none = bs.decode_feature(bytes(4))
    assert none["weight_resolution_kg"] is None and none["height_resolution_m"] is None and not none["bmi"]
    with pytest.raises(FrameError):
        bs.decode_feature(b"\x01\x02")
    report = bs.parse(value.to_bytes(4, "little"), "2a9e")
    assert isinstance(report, DeviceReport) and not report.is_error and report.code == "feature_2a9e"


def test_body_composition_feature() -> None:
    value = (1 << 9) | (1 << 10) | (1 << 8) | (7 << 11) | (3 << 15)
    feature = bs.decode_bc_feature(value.to_bytes(4, "little"))
    assert feature["weight"] and feature["height"] and feature["impedance"] and not feature["muscle_mass"]
    assert feature["mass_resolution_kg"] == 0.005 and feature["height_resolution_m"] == 0.001


def test_decoder_cap_releases_a_lost_record() -> None:
    decoder = bs.BleStandardDecoder()
    first, _ = B.bcm_split(B.BcmRecord(234, {"bmr": 7113, "weight": 16000, "height": 1800}, user=1), 2)
    assert decoder.decode(first, "2a9c") == []
    assert decoder.held == 1
    out: list[Reading | DeviceReport] = []
    for _ in range(bs.MAX_HELD_FRAMES + 1):
        out += decoder.decode(B.wsm(9000, user=7), "2a9d")
    released = [r for r in out if isinstance(r, Reading) and r.user_index == 1]
    assert len(released) == 1 and released[0].fields["incomplete"] == "1"
    assert released[0].measurement.weight_kg == 80.0
    assert decoder.held == 1  # user 7's weight (its repeats not held twice), waiting for a composition
    [weight] = flush_decoder(decoder)
    assert isinstance(weight, Reading) and weight.is_weighing and weight.user_index == 7
    assert decoder.held == 0


def test_decoder_holds_at_most_the_cap() -> None:
    decoder = bs.BleStandardDecoder()
    for user in range(10):
        decoder.decode(B.bcm(B.BcmRecord(200 + user, {"impedance": 5000}, user=user)), "2a9c")
        assert decoder.held <= bs.MAX_HELD_RECORDS
    assert len(flush_decoder(decoder)) == bs.MAX_HELD_RECORDS
    assert decoder.held == 0


def test_frame_error_leaves_state_untouched() -> None:
    decoder = bs.BleStandardDecoder()
    decoder.decode(B.bcm(B.BcmRecord(215, {"impedance": 5123}, user=1)), "2a9c")
    with pytest.raises(FrameError):
        decoder.decode(b"\x0e\xe8", "2a9d")
    merged = decoder.decode(B.wsm(16000, user=1), "2a9d")
    assert len(merged) == 1 and isinstance(merged[0], Reading)
    assert merged[0].measurement.weight_kg == 80.0 and merged[0].measurement.impedance_ohm == 512.3


def test_wsm_for_another_user_does_not_merge() -> None:
    decoder = bs.BleStandardDecoder()
    decoder.decode(B.bcm(B.BcmRecord(215, {"impedance": 5123}, user=1)), "2a9c")
    assert decoder.decode(B.wsm(16000, user=2), "2a9d") == []  # held for a composition of user 2
    composition, weight = flush_decoder(decoder)
    assert isinstance(weight, Reading) and weight.is_weighing
    assert weight.measurement.impedance_ohm is None and weight.user_index == 2
    assert isinstance(composition, Reading)
    assert composition.user_index == 1 and composition.measurement.weight_kg is None


def test_new_record_closes_a_pending_one() -> None:
    decoder = bs.BleStandardDecoder()
    rec = B.BcmRecord(234, {"bmr": 7113, "weight": 16000, "height": 1800}, user=1)
    first, _ = B.bcm_split(rec, 2)
    decoder.decode(first, "2a9c")
    out = decoder.decode(first, "2a9c")  # the same first packet again: the old record cannot continue
    assert len(out) == 1 and isinstance(out[0], Reading) and out[0].fields["incomplete"] == "1"
    assert decoder.held == 1


# ----------------------------------------------------------------------------- round trips

times = st.tuples(
    st.integers(0, 0xFFFF),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
)
realistic_times = st.tuples(
    st.integers(1582, 9999),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)


def iso(t: B.Time | None) -> str | None:
    if t is None or t[0] == 0 or t[1] == 0 or t[2] == 0:
        return None
    try:
        return datetime(*t).isoformat()
    except ValueError:
        return None


def mass_kg(raw: int, imperial: bool) -> float:
    return raw * 0.01 * KG_PER_LB if imperial else raw * 0.005


def height_cm(raw: int, imperial: bool) -> float:
    return raw * 0.254 if imperial else raw * 0.1


def near(a: float | None, b: float | None, tol: float = 1e-3) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)


@settings(max_examples=400, deadline=None)
@given(
    weight=st.integers(0, 0xFFFF),
    imperial=st.booleans(),
    time=st.none() | times,
    user=st.none() | st.integers(0, 255),
    bmi_height=st.none() | st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)),
)
def test_weight_measurement_round_trip(
    weight: int, imperial: bool, time: B.Time | None, user: int | None, bmi_height: tuple[int, int] | None
) -> None:
    bmi_raw, height_raw = bmi_height if bmi_height else (None, None)
    frame = B.wsm(weight, imperial=imperial, time=time, user=user, bmi_raw=bmi_raw, height_raw=height_raw)
    result = bs.parse(frame, "2a9d")
    if weight == 0xFFFF:
        assert result is None
        return
    assert isinstance(result, Reading) and result.stable
    m = result.measurement
    assert near(m.weight_kg, mass_kg(weight, imperial))
    assert near(m.bmi, None if bmi_raw in (None, 0xFFFF) else bmi_raw * 0.1)
    assert near(m.height_cm, None if height_raw in (None, 0xFFFF) else height_cm(height_raw, imperial), 0.01)
    assert result.device_time == iso(time)
    assert result.user_index == (None if user in (None, 0xFF) else user)
    assert result.raw == frame.hex()


FAT_AVAILABLE = st.integers(0, 0xFFFE)


def bcm_records(fat: st.SearchStrategy[int] = FAT_AVAILABLE) -> st.SearchStrategy[B.BcmRecord]:
    names = [name for name, _ in B.BCM_ORDER]
    return st.builds(
        B.BcmRecord,
        fat_raw=fat,
        values=st.dictionaries(st.sampled_from(names), st.integers(0, 0xFFFF)),
        imperial=st.booleans(),
        time=st.none() | times,
        user=st.none() | st.integers(0, 255),
    )


def expected_measurement(record: B.BcmRecord) -> dict[str, float | None]:
    v, imp = record.values, record.imperial

    def raw(name: str) -> int | None:
        value = v.get(name)
        return None if value is None or value == 0xFFFF else value

    def scaled(name: str, f: Any) -> float | None:
        r = raw(name)
        return None if r is None else f(r)

    return {
        "fat_percent": None if record.fat_raw == 0xFFFF else record.fat_raw * 0.1,
        "bmr_kcal": scaled("bmr", lambda r: r / 4.1868),
        "muscle_percent": scaled("muscle_percent", lambda r: r * 0.1),
        "muscle_mass_kg": scaled("muscle_mass", lambda r: mass_kg(r, imp)),
        "fat_free_mass_kg": scaled("fat_free_mass", lambda r: mass_kg(r, imp)),
        "soft_lean_mass_kg": scaled("soft_lean_mass", lambda r: mass_kg(r, imp)),
        "total_body_water_kg": scaled("body_water_mass", lambda r: mass_kg(r, imp)),
        "impedance_ohm": scaled("impedance", lambda r: r * 0.1),
        "weight_kg": scaled("weight", lambda r: mass_kg(r, imp)),
        "height_cm": scaled("height", lambda r: height_cm(r, imp)),
    }


def assert_measurement(reading: Reading, record: B.BcmRecord) -> None:
    for attr, want in expected_measurement(record).items():
        tol = 0.06 if attr == "bmr_kcal" else 0.01 if attr == "height_cm" else 1e-3
        assert near(getattr(reading.measurement, attr), want, tol), (attr, getattr(reading.measurement, attr), want)
    assert reading.device_time == iso(record.time)
    assert reading.user_index == (None if record.user in (None, 0xFF) else record.user)
    # never skeletal muscle, never a 0xFFFF value
    assert reading.measurement.skeletal_muscle_mass_kg is None and reading.measurement.skeletal_muscle_percent is None


@settings(max_examples=400, deadline=None)
@given(record=bcm_records(st.integers(0, 0xFFFF)))
def test_body_composition_round_trip(record: B.BcmRecord) -> None:
    frame = B.bcm(record)
    result = bs.parse(frame, "2a9c")
    expected = expected_measurement(record)
    if all(v is None for v in expected.values()) or bs.is_history_stub(frame):
        assert result is None  # nothing in it, or an all-zero history stub
        return
    assert isinstance(result, Reading) and result.stable
    assert_measurement(result, record)


@settings(max_examples=400, deadline=None)
@given(
    # an all-zero single packet is a history stub (not a measurement): not a record to split
    record=bcm_records().filter(lambda r: len(r.values) >= 1 and not bs.is_history_stub(B.bcm(r))),
    data=st.data(),
    last_marked=st.booleans(),
    repeat_user=st.booleans(),
)
def test_multi_packet_merge_equals_the_whole_record(
    record: B.BcmRecord, data: st.DataObject, last_marked: bool, repeat_user: bool
) -> None:
    """Any split of a record into two packets with bit 12 (the last one with or without it) decodes to
    the reading of the whole record sent in one packet."""
    cut = data.draw(st.integers(0, len(record.values) - 1), label="cut")
    first, second = B.bcm_split(record, cut, last_marked=last_marked, repeat_user=repeat_user)
    decoder = SPEC.new_decoder()
    results = decoder.decode(first, "2a9c") + decoder.decode(second, "2a9c") + flush_decoder(decoder)
    whole = bs.parse(B.bcm(record), "2a9c")
    assert isinstance(whole, Reading)
    assert len(results) == 1, results
    merged = results[0]
    assert isinstance(merged, Reading) and merged.stable
    assert merged.measurement == whole.measurement
    assert (merged.device_time, merged.user_index) == (whole.device_time, whole.user_index)
    assert merged.fields["packets"] == "2" and "incomplete" not in merged.fields
    assert_measurement(merged, record)


@settings(max_examples=200, deadline=None)
@given(
    record=bcm_records().filter(lambda r: "weight" not in r.values and not bs.is_history_stub(B.bcm(r))),
    weight=st.integers(1, 0xFFFE),
)
def test_wsm_after_bcm_without_weight_merges(record: B.BcmRecord, weight: int) -> None:
    decoder = SPEC.new_decoder()
    held = decoder.decode(B.bcm(record), "2a9c")
    assert held == []
    out = decoder.decode(B.wsm(weight, user=record.user, imperial=record.imperial), "2a9d") + flush_decoder(decoder)
    assert len(out) == 1 and isinstance(out[0], Reading)
    assert near(out[0].measurement.weight_kg, mass_kg(weight, record.imperial))
    assert near(out[0].measurement.fat_percent, record.fat_raw * 0.1)
    assert out[0].fields["characteristic"] == "2a9c+2a9d"


# ----------------------------------------------------------------------------- random input

channels = st.sampled_from(
    [
        "2a9d",
        "2a9c",
        "2a9e",
        "2a9b",
        "00002a9c-0000-1000-8000-00805f9b34fb",
        "181b",
        "181d",
        "",
        "zz",
        "0000fe95-0000-1000-8000-00805f9b34fb",
    ]
)


def check_random_frame(frame: bytes, channel: str) -> None:
    try:
        result = bs.parse(frame, channel)
    except FrameError:
        return
    assert result is None or isinstance(result, Reading | DeviceReport)
    if isinstance(result, Reading):
        m = result.measurement
        for value in (m.fat_percent, m.muscle_percent, m.impedance_ohm, m.bmi):
            assert value is None or value <= 6553.4  # 0xFFFF never decoded as a value
        assert result.driver == "ble_standard" and result.raw == frame.hex()


@settings(max_examples=1000, deadline=None)
@given(frame=st.binary(max_size=40), channel=channels)
def test_random_frames_only_frame_error(frame: bytes, channel: str) -> None:
    check_random_frame(frame, channel)


@settings(max_examples=1000, deadline=None)
@given(frame=st.binary(min_size=1, max_size=34), flags=st.integers(0, 0xFFFF))
def test_random_bcm_with_flags(frame: bytes, flags: int) -> None:
    check_random_frame(flags.to_bytes(2, "little") + frame, "2a9c")


def check_random_stream(frames: list[tuple[bytes, str]]) -> None:
    decoder = bs.BleStandardDecoder()
    for frame, channel in frames:
        try:
            out = decoder.decode(frame, channel)
        except FrameError:
            continue
        assert all(isinstance(r, Reading | DeviceReport) for r in out)
        assert decoder.held <= bs.MAX_HELD_RECORDS
    flush_decoder(decoder)
    assert decoder.held == 0


stream_frames = st.lists(
    st.tuples(
        st.one_of(
            st.binary(max_size=34),
            st.builds(lambda f, b: f.to_bytes(2, "little") + b, st.integers(0, 0xFFFF), st.binary(max_size=30)),
        ),
        st.sampled_from(CHARACTERISTICS),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(frames=stream_frames)
def test_random_streams_through_the_decoder(frames: list[tuple[bytes, str]]) -> None:
    check_random_stream(frames)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_long_profile(request: pytest.FixtureRequest) -> None:
    """≥ 100k examples: random frames on every channel, and random packet streams."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("long profile: run with -m slow")

    @settings(max_examples=100_000, deadline=None, database=None)
    @given(frame=st.binary(max_size=40), channel=channels)
    def frames(frame: bytes, channel: str) -> None:
        check_random_frame(frame, channel)

    @settings(max_examples=20_000, deadline=None, database=None)
    @given(frames=stream_frames)
    def streams(frames: list[tuple[bytes, str]]) -> None:
        check_random_stream(frames)

    @settings(max_examples=20_000, deadline=None, database=None)
    @given(record=bcm_records().filter(lambda r: len(r.values) >= 1), data=st.data(), last=st.booleans())
    def merge(record: B.BcmRecord, data: st.DataObject, last: bool) -> None:
        test_multi_packet_merge_equals_the_whole_record.hypothesis.inner_test(record, data, last, False)  # type: ignore[attr-defined]

    frames()
    streams()
    merge()


# --------------------------------------------------------------------------- weight first (Beurer order)


def _weighings(results: list[Reading | DeviceReport]) -> list[Reading]:
    return [r for r in results if isinstance(r, Reading) and r.is_weighing]


def test_wsm_then_bcm_is_one_weighing() -> None:
    decoder = bs.BleStandardDecoder()
    assert decoder.decode(B.wsm(16700, user=1), "2a9d") == []  # held, not posted alone
    assert decoder.held == 1
    [one] = decoder.decode(B.bcm(B.BcmRecord(223, {"impedance": 4370}, user=1)), "2a9c")
    assert isinstance(one, Reading) and one.is_weighing
    assert one.measurement.weight_kg == 83.5 and one.measurement.fat_percent == 22.3
    assert one.measurement.impedance_ohm == 437.0 and one.user_index == 1
    assert one.fields["characteristic"] == "2a9d+2a9c"
    assert decoder.held == 0 and flush_decoder(decoder) == []


def test_held_weight_is_never_lost() -> None:
    # the connection ends with no composition: the weight alone is the weighing
    decoder = bs.BleStandardDecoder()
    assert decoder.decode(B.wsm(16700, user=1), "2a9d") == []
    [alone] = flush_decoder(decoder)
    assert isinstance(alone, Reading) and alone.is_weighing and alone.measurement.fat_percent is None
    # the pairing window (8 further frames) passes: released as it stands, once
    decoder = bs.BleStandardDecoder()
    decoder.decode(B.wsm(16700, user=1), "2a9d")
    out: list[Reading | DeviceReport] = []
    for _ in range(bs.MAX_HELD_FRAMES + 1):
        out += decoder.decode(B.bcm(B.BcmRecord(0xFFFF, {}, user=1)), "2a9c")  # unsuccessful: nothing
    assert [w.measurement.weight_kg for w in _weighings(out)] == [83.5]
    assert flush_decoder(decoder) == []


def test_second_weight_of_a_user_releases_the_first() -> None:
    decoder = bs.BleStandardDecoder()
    decoder.decode(B.wsm(16700, user=1), "2a9d")
    assert decoder.decode(B.wsm(16700, user=1), "2a9d") == []  # a repeat: not held twice
    [first] = decoder.decode(B.wsm(16800, user=1), "2a9d")
    assert isinstance(first, Reading) and first.measurement.weight_kg == 83.5
    [second] = decoder.decode(B.bcm(B.BcmRecord(223, {}, user=1)), "2a9c")
    assert isinstance(second, Reading) and second.measurement.weight_kg == 84.0
    assert second.measurement.fat_percent == 22.3


def test_wsm_then_bcm_of_another_user_stay_apart() -> None:
    decoder = bs.BleStandardDecoder()
    decoder.decode(B.wsm(16700, user=1), "2a9d")
    decoder.decode(B.bcm(B.BcmRecord(223, {}, user=2)), "2a9c")
    out = flush_decoder(decoder)
    assert len(out) == 2 and len(_weighings(out)) == 1
    assert {r.user_index for r in out if isinstance(r, Reading)} == {1, 2}
