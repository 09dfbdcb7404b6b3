"""The consumer BLE vendor families (qn_scale, qn_broadcast, eufy_1byone, eufy_p2, yunmai, medisana_bs44x,
lefu_ffb0, beurer_sanitas): project vectors (real frames where our sources have them, labelled REAL / DERIVED), the
framers fed whole / byte by byte / five joined, round trips through literal-byte builders, random
input, and the exchanges as pure state machines (exact bytes written, in order)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import ble_vectors as V
import family_builders as B
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from props import HEAVY, robust

from drivers import FrameError, Reading, qn_broadcast, qn_scale
from drivers import _qn_jieli as jieli
from drivers import beurer_sanitas as beurer
from drivers import eufy_1byone as eufy
from drivers import lefu_ffb0 as lefu
from drivers import medisana_bs44x as medisana
from drivers import yunmai as ym
from drivers.bleuuid import full_uuid
from drivers.gatt import Disconnect, ExchangeContext, ExchangeError, Subscribe, Write
from drivers.model import DeviceReport
from drivers.registry import BleMode, get

FAMILIES = (
    "qn_scale",
    "qn_broadcast",
    "eufy_1byone",
    "eufy_p2",
    "yunmai",
    "medisana_bs44x",
    "lefu_ffb0",
    "beurer_sanitas",
)
# self-delimiting frames: a real stream framer
FRAMED = ("qn_scale", "eufy_1byone", "eufy_p2", "yunmai", "beurer_sanitas")
FAST = settings(max_examples=150, deadline=None)


def _singles(framed_only: bool = False) -> list[Any]:
    out = []
    for driver in FAMILIES:
        if framed_only and driver not in FRAMED:
            continue
        for doc in V.own(driver):
            if "frames" not in doc:
                out.append(pytest.param(driver, doc, id=f"{driver}:{doc['name']}"))
    return out


def _sequences() -> list[Any]:
    return [
        pytest.param(driver, doc, id=f"{driver}:{doc['name']}")
        for driver in FAMILIES
        for doc in V.own(driver)
        if "frames" in doc
    ]


def test_every_family_is_registered_with_vectors() -> None:
    for driver in FAMILIES:
        spec = get(driver)
        assert spec.ble is not None
        docs = V.own(driver)
        assert len(docs) >= 3, driver
        assert all(d.get("source", "").startswith(("REAL", "DERIVED")) for d in docs), driver


@pytest.mark.parametrize(("driver", "doc"), _singles())
def test_single_vector(driver: str, doc: dict[str, Any]) -> None:
    frame, channel, expect = bytes.fromhex(doc["hex"]), V.channel_of(doc), doc["expect"]
    decoder = get(driver).new_decoder()
    if expect == "FrameError":
        with pytest.raises(FrameError):
            decoder.decode(frame, channel)
        with pytest.raises(FrameError):
            get(driver).parse(frame, channel)
        return
    results = decoder.decode(frame, channel)
    assert len(results) == 1, results
    problem = V.mismatch(results[0], expect, doc["_naming"])
    assert problem is None, f"{doc['name']}: {problem}"


@pytest.mark.parametrize(("driver", "doc"), _sequences())
def test_sequence_vector(driver: str, doc: dict[str, Any]) -> None:
    results = V.run_frames(driver, doc["frames"])
    assert len(results) == len(doc["expect"]), results
    for result, expect in zip(results, doc["expect"], strict=True):
        problem = V.mismatch(result, expect, doc["_naming"])
        assert problem is None, f"{doc['name']}: {problem}"


def _framed(driver: str, data: bytes, mode: str) -> list[bytes]:
    framer = get(driver).make_framer()
    if mode == "whole":
        chunks = [data]
    elif mode == "bytewise":
        chunks = [data[i : i + 1] for i in range(len(data))]
    else:
        chunks = [data * 5]
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


@pytest.mark.parametrize("mode", ["whole", "bytewise", "five_joined"])
@pytest.mark.parametrize(("driver", "doc"), _singles(framed_only=True))
def test_framer_modes(driver: str, doc: dict[str, Any], mode: str) -> None:
    """Each vector as a byte stream: whole, byte by byte, five copies joined. A frame comes out once per
    copy and decodes to the expected object; a rejected one (bad check or length) never comes out."""
    frame = bytes.fromhex(doc["hex"])
    copies = 5 if mode == "five_joined" else 1
    frames = _framed(driver, frame, mode)
    framable = (
        doc["expect"] != "FrameError"
        and full_uuid(V.channel_of(doc)) != qn_scale.AE_NOTIFY
        and "history" not in doc["name"]
    )
    if not framable:
        assert frame not in frames
        return
    assert frames == [frame] * copies
    for one in frames:
        results = get(driver).new_decoder().decode(one, V.channel_of(doc))
        assert V.mismatch(results[0], doc["expect"], doc["_naming"]) is None


def test_framer_resyncs_after_garbage() -> None:
    good = bytes.fromhex("100eff0102263901f501f301349e")
    frames = _framed("qn_scale", b"\x10\x55garbage\x00" + good + b"\xff" + good, "whole")
    assert frames == [good, good]
    real = bytes.fromhex("cf920e9c271d135f0000b9")
    assert _framed("eufy_1byone", b"\xcf\x01\x02" + real + real[:5], "whole") == [real]
    yun = bytes.fromhex("0d1f0b0159c6152f269503")
    assert _framed("yunmai", b"\x0d\x00\x00" + yun, "bytewise") == [yun]
    part1, part2 = bytes.fromhex("e7590301010000000000000065"), bytes.fromhex("e75903026a21f4c6068701b500df02")
    junk = b"\x00\xe7\x00\xe7\x59\x03\x09"  # a start byte, then a 0x59 "part 9 of 3": both skipped
    assert _framed("beurer_sanitas", junk + part1 + b"\x42" + part2, "bytewise") == [part1, part2]


# --------------------------------------------------------------------------- round trips


@FAST
@given(proto=st.integers(0, 255), raw=st.integers(1, 0xFFFF), r1=st.integers(0, 0xFFFF), flag=st.integers(0, 255))
def test_qn_round_trip_14(proto: int, raw: int, r1: int, flag: int) -> None:
    decoder = qn_scale.QnDecoder()
    decoder.decode(B.qn_info(proto, flag), qn_scale.NOTIFY_T1)
    divisor = 100 if flag & 1 else 10
    [reading] = decoder.decode(B.qn_weight14(proto, 2, raw, r1, 7), qn_scale.NOTIFY_T1)
    assert isinstance(reading, Reading) and reading.is_weighing
    assert reading.measurement.weight_kg == raw / divisor
    assert reading.measurement.impedance_ohm == (float(r1) if r1 else None)
    assert reading.fields["r2"] == "7"


@FAST
@given(
    st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535)
)
def test_qn_stored_record_round_trip_is_history(proto: int, seconds: int, raw: int, r1: int, r2: int) -> None:
    decoder = qn_scale.QnDecoder()
    decoder.decode(B.qn_info(proto, 1), qn_scale.NOTIFY_T2)
    [reading] = decoder.decode(B.qn_stored(proto, seconds, raw, r1, r2), qn_scale.NOTIFY_T2)
    assert isinstance(reading, Reading) and not reading.stable and not reading.is_weighing
    assert reading.fields["history"] == "1" and reading.fields["record_s_since_2000"] == str(seconds)
    assert reading.measurement.weight_kg == (raw / 100 if raw else None)
    assert (reading.fields["r1"], reading.fields["r2"]) == (str(r1), str(r2))
    assert (reading.device_time is None) == (seconds == 0)


@FAST
@given(raw=st.integers(0, 0xFFFF), stable=st.integers(0, 3), r1=st.integers(0, 0xFFFF))
def test_qn_round_trip_10(raw: int, stable: int, r1: int) -> None:
    decoder = qn_scale.QnDecoder()
    decoder.decode(B.qn_info(1, 1), "")
    [reading] = decoder.decode(B.qn_weight10(1, raw, stable, r1), "")
    assert isinstance(reading, Reading)
    assert reading.is_weighing is (stable == 1 and raw > 0)
    assert reading.fields["weight_raw"] == str(raw)


@FAST
@given(raw=st.integers(0, 0xFFFF), status=st.integers(0, 255), mac=st.binary(min_size=6, max_size=6))
def test_qn_broadcast_round_trip(raw: int, status: int, mac: bytes) -> None:
    reading = qn_broadcast.parse(B.qn_broadcast(raw, status, mac), "manufacturer:0xffff")
    assert isinstance(reading, Reading)
    assert reading.is_weighing is (bool(status & 0x20) and raw > 0)
    assert reading.fields["weight_raw"] == str(raw)
    assert reading.fields["mac"] == ":".join(f"{b:02X}" for b in mac)


@FAST
@given(raw=st.integers(1, 0xFFFF), imp=st.integers(0, 0xFFFF), status=st.integers(0, 255))
def test_eufy_round_trip(raw: int, imp: int, status: int) -> None:
    decoder = eufy.EufyDecoder()
    frame = B.cf(raw, imp, status)
    first, second = decoder.decode(frame) + decoder.decode(frame)
    assert isinstance(first, Reading) and not first.stable
    assert isinstance(second, Reading) and second.is_weighing
    assert second.measurement.weight_kg == raw / 100
    assert second.measurement.impedance_ohm == (imp / 10 if status == 0 and imp else None)
    assert decoder.decode(frame)[0].stable is False  # a third copy is no second weighing


@FAST
@given(
    version=st.integers(0, 255),
    time_s=st.integers(1, 0xFFFFFFFF),
    user=st.integers(0, 0xFFFFFFFF),
    raw=st.integers(1, 0xFFFF),
    fat=st.integers(0, 0xFFFF),
)
def test_yunmai_round_trip(version: int, time_s: int, user: int, raw: int, fat: int) -> None:
    reading = ym.parse(
        B.yunmai_measured(version, time_s=time_s, user=user, weight_raw=raw, resistance=123, fat_raw=fat),
        ym.MEASUREMENT,
    )
    assert isinstance(reading, Reading) and reading.is_weighing
    assert reading.measurement.weight_kg == raw / 100
    assert reading.fields["user_id"] == str(user)
    expected_fat = fat / 100 if version >= 0x1E and fat else None
    assert reading.measurement.fat_percent == expected_fat


@FAST
@given(raw=st.integers(1, 0xFFFF), unit=st.integers(0, 3), ts=st.integers(0, 0xFFFFFFFF), user=st.integers(0, 255))
def test_medisana_round_trip(raw: int, unit: int, ts: int, user: int) -> None:
    reading = medisana.parse(B.medisana_weight(0x01 | (unit << 5), raw, ts, user), medisana.WEIGHT)
    assert isinstance(reading, Reading)
    assert reading.is_weighing is (unit == 0)
    if unit == 0:
        assert reading.measurement.weight_kg == raw / 100
    assert reading.fields["timestamp_raw"] == str(ts)
    assert reading.user_index == (user if 1 <= user <= 8 else None)


@FAST
@given(fat=st.integers(0, 0xFFFF), water=st.integers(0, 0xFFFF), bone=st.integers(0, 0xFFFF))
def test_medisana_feature_round_trip(fat: int, water: int, bone: int) -> None:
    reading = medisana.parse(B.medisana_feature(fat, water, 0, bone), medisana.FEATURE)
    assert isinstance(reading, Reading) and not reading.is_weighing
    assert reading.measurement.fat_percent == (((fat & 0xFFF) / 10) or None)
    assert reading.measurement.bone_mass_kg == (((bone & 0xFFF) / 10) or None)


@FAST
@given(grams=st.integers(0, 0xFFFFFF), ohm=st.integers(1, 0xFFFF))
def test_lefu_round_trip(grams: int, ohm: int) -> None:
    decoder = get("lefu_ffb0").new_decoder()
    decoder.decode(B.lefu_weight(grams), full_uuid("ffb2"))
    [reading] = decoder.decode(B.lefu_impedance(ohm), full_uuid("ffb2"))
    assert isinstance(reading, Reading)
    masked = grams & 0x03FFFF
    assert reading.is_weighing is (masked > 0)
    if masked:
        assert reading.measurement.weight_kg == masked / 1000
        assert reading.measurement.impedance_ohm == float(ohm)


LEFU_AC02 = [
    d for d in V.own("lefu_ffb0") if "frames" not in d and d["hex"].startswith("ac02") and d["expect"] != "FrameError"
]


@pytest.mark.parametrize("mode", ["whole", "bytewise", "five_joined"])
@pytest.mark.parametrize("doc", LEFU_AC02, ids=[d["name"] for d in LEFU_AC02])
def test_lefu_ac02_framer_modes(doc: dict[str, Any], mode: str) -> None:
    """The 8-byte AC 02 frames as a byte stream: whole, byte by byte, five joined (the AB 2A dialect has
    no length: its notifications pass through whole, as the BLE link delivers them)."""
    frame = bytes.fromhex(doc["hex"])
    frames = _framed("lefu_ffb0", frame, mode)
    assert frames == [frame] * (5 if mode == "five_joined" else 1)
    for one in frames:
        decoded = get("lefu_ffb0").new_decoder().decode(one, V.channel_of(doc))[0]
        assert V.mismatch(decoded, doc["expect"], doc["_naming"]) is None


def test_lefu_framer_passes_other_dialects_whole() -> None:
    for hexes in ("ab2a80013880", "ac27000000000000000000000000000000000000", "ac0203490000ca00"):
        assert _framed("lefu_ffb0", bytes.fromhex(hexes), "whole") == [bytes.fromhex(hexes)]
    framer = get("lefu_ffb0").make_framer()
    assert framer.feed(bytes.fromhex("ac0203")) == []
    assert framer.buffered_bytes == 3  # type: ignore[attr-defined]
    assert framer.feed(bytes.fromhex("490000ca16ac02")) == [bytes.fromhex("ac0203490000ca16")]


@FAST
@given(raw=st.integers(0, 0xFFFF), ohm=st.integers(0, 0xFFFF), live=st.integers(0, 0xFFFF))
def test_lefu_ac02_round_trip(raw: int, ohm: int, live: int) -> None:
    decoder = get("lefu_ffb0").new_decoder()
    [first] = decoder.decode(B.lefu_ac02(live >> 8, live & 0xFF, 0, 0, 0xCE), lefu.NOTIFY)
    assert isinstance(first, Reading) and not first.stable and first.fields["weight_raw"] == str(live)
    [held] = decoder.decode(B.lefu_ac02(raw >> 8, raw & 0xFF, 0, 0, 0xCA), lefu.NOTIFY)
    assert isinstance(held, Reading) and not held.is_weighing
    [measuring] = decoder.decode(B.lefu_ac02(0xFD, 0x00, 0, 1, 0xCB), lefu.NOTIFY)
    assert isinstance(measuring, DeviceReport) and not measuring.is_error
    [done] = decoder.decode(B.lefu_ac02(0xFD, 0x01, ohm >> 8, ohm & 0xFF, 0xCB), lefu.NOTIFY)
    assert isinstance(done, Reading)
    assert done.is_weighing is (raw > 0)
    if raw:
        assert done.measurement.weight_kg == raw / 10
        assert done.measurement.impedance_ohm == (float(ohm) if ohm else None)
    assert decoder.flush() == []  # emitted once: nothing is held after the impedance


@FAST
@given(raw=st.integers(1, 0xFFFF))
def test_lefu_ac02_weight_only_at_flush(raw: int) -> None:
    decoder = get("lefu_ffb0").new_decoder()
    decoder.decode(B.lefu_ac02(raw >> 8, raw & 0xFF, 0, 0, 0xCA), lefu.NOTIFY)
    [w] = decoder.flush()
    assert isinstance(w, Reading) and w.is_weighing and w.measurement.weight_kg == raw / 10
    assert w.measurement.impedance_ohm is None
    assert decoder.flush() == []


@HEAVY
@given(body=st.binary(min_size=6, max_size=6))
def test_lefu_ac02_random_frames_raise_only_frame_error(body: bytes) -> None:
    frame = b"\xac\x02" + body
    with contextlib.suppress(FrameError):
        get("lefu_ffb0").parse(frame, lefu.NOTIFY)
    decoder = get("lefu_ffb0").new_decoder()
    for _ in range(2):
        with contextlib.suppress(FrameError):
            decoder.decode(frame, lefu.NOTIFY)
    decoder.flush()


@FAST
@given(
    start=st.sampled_from([0xE7, 0xF7]),
    user=st.integers(0, 2**64 - 1),
    clock=st.integers(0, 0xFFFFFFFF),
    raw=st.integers(1, 0xFFFF),
    imp=st.integers(1, 0xFFFF),
    fat=st.integers(0, 0xFFFF),
    water=st.integers(0, 0xFFFF),
    muscle=st.integers(0, 0xFFFF),
)
def test_beurer_round_trip(
    *, start: int, user: int, clock: int, raw: int, imp: int, fat: int, water: int, muscle: int
) -> None:
    parts = B.beurer_measurement(
        start, user_id=user, clock_s=clock, weight_raw=raw, impedance=imp, fat=fat, water=water, muscle=muscle
    )
    framed = _framed("beurer_sanitas", b"".join(parts), "whole")
    assert framed == parts  # the framer cuts the parts back out of the joined stream
    decoder = beurer.BeurerDecoder()
    out = [r for p in framed for r in decoder.decode(p, beurer.CHARACTERISTIC)] + decoder.flush()
    weighings = [r for r in out if isinstance(r, Reading) and r.is_weighing]
    [w] = weighings
    assert w.measurement.weight_kg == round(raw * 0.05, 2)
    assert w.measurement.impedance_ohm == float(imp)
    assert w.measurement.fat_percent == (fat / 10 if fat else None)
    assert w.measurement.total_body_water_percent == (water / 10 if water else None)
    assert w.measurement.muscle_percent == (muscle / 10 if muscle else None)
    assert w.fields["scale_user_id"] == str(user)
    assert w.fields["timestamp_raw"] == str(clock)


@FAST
@given(start=st.sampled_from([0xE7, 0xF7]), flag=st.integers(0, 255), raw=st.integers(0, 0xFFFF))
def test_beurer_live_weight_round_trip(start: int, flag: int, raw: int) -> None:
    decoder = beurer.BeurerDecoder()
    [live] = decoder.decode(B.beurer_weight(start, flag, raw), beurer.CHARACTERISTIC)
    assert isinstance(live, Reading) and not live.is_weighing
    assert live.fields["weight_raw"] == str(raw)
    held = decoder.flush()  # a stable 0x58 no 0x59 followed is the weighing at the end of the connection
    if flag == 0 and raw > 0:
        [w] = held
        assert isinstance(w, Reading) and w.is_weighing and w.measurement.weight_kg == round(raw * 0.05, 2)
    else:
        assert held == []
    assert decoder.flush() == []


# --------------------------------------------------------------------------- robustness

CHANNELS = ["", "ffe1", "ae02", "fff2", "fff4", "ffe4", "8a21", "8a22", "8a82", "ffb2", "manufacturer:0xffff", "zz"]


@HEAVY
@given(driver=st.sampled_from(FAMILIES), data=st.binary(max_size=64), channel=st.sampled_from(CHANNELS))
def test_random_bytes_raise_only_frame_error(driver: str, data: bytes, channel: str) -> None:
    spec = get(driver)
    robust(spec, data)
    uuid = full_uuid(channel) if len(channel) == 4 and channel != "zz" else channel
    for ch in (channel, uuid):
        with contextlib.suppress(FrameError):
            spec.parse(data, ch)
        decoder = spec.new_decoder()
        for _ in range(2):
            with contextlib.suppress(FrameError):
                decoder.decode(data, ch)


@HEAVY
@given(driver=st.sampled_from(FRAMED), chunks=st.lists(st.binary(max_size=40), max_size=8))
def test_framers_stay_bounded(driver: str, chunks: list[bytes]) -> None:
    framer = get(driver).make_framer()
    for chunk in chunks:
        for frame in framer.feed(chunk):
            get(driver).new_decoder().decode(frame, "")  # every frame the framer cuts decodes
        assert framer.buffered_bytes <= 64 + 40  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- exchanges

T1 = frozenset({qn_scale.NOTIFY_T1, qn_scale.INDICATE_T1, qn_scale.CONFIG_T1, qn_scale.TIME_T1})
WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_qn_exchange_type1_exact_bytes() -> None:
    ex = qn_scale.make_exchange(ExchangeContext("AA:BB", "QN-Scale", T1, wall_time_s=WALL))
    assert ex.deadline_s is None
    assert ex.start(now_s=0) == [Subscribe(qn_scale.NOTIFY_T1), Subscribe(qn_scale.INDICATE_T1)]
    info = bytes.fromhex("120f153dacc238c1a43801380000ef")  # real ES-CS20M 0x12: protocol 0x15
    assert ex.on_notify(qn_scale.NOTIFY_T1, info, now_s=1) == [
        Write(qn_scale.CONFIG_T1, bytes.fromhex("1309150110000000") + bytes([0x42]))
    ]
    assert ex.on_notify(qn_scale.NOTIFY_T1, info, now_s=1) == []  # configured once
    ready = bytes.fromhex("140bff000001000000001f")
    seconds = int(WALL) - 946_684_800
    body = bytes([0x20, 0x08, 0x15]) + seconds.to_bytes(4, "little")
    assert ex.on_notify(qn_scale.NOTIFY_T1, ready, now_s=2) == [
        Write(qn_scale.TIME_T1, body + bytes([sum(body) % 256]))
    ]
    live = B.qn_weight10(0x15, 7000, 0, 0)
    assert ex.on_notify(qn_scale.NOTIFY_T1, live, now_s=3) == []
    stable = B.qn_weight10(0x15, 7000, 1, 500)
    assert ex.on_notify(qn_scale.NOTIFY_T1, stable, now_s=4) == [Disconnect("weighing received")]
    assert ex.on_notify(qn_scale.NOTIFY_T1, stable, now_s=5) == []


AE_OFFERED = frozenset({qn_scale.NOTIFY_T2, qn_scale.WRITE_T2, qn_scale.AE_NOTIFY, qn_scale.AE_WRITE})
JIELI = json.loads((V.OWN_VECTORS / "qn_scale" / "jieli_auth.json").read_text(encoding="utf-8"))
JIELI_PAIRS = [
    (bytes.fromhex(p["challenge"]), bytes.fromhex(p["response"])) for p in JIELI["jieli_qn_captured"]["pairs"]
]
PASS = b"\x02pass"


def _jieli_exchange(offered: frozenset[str] = AE_OFFERED) -> qn_scale.QnExchange:
    ex = qn_scale.make_exchange(ExchangeContext("AA:BB", None, offered))
    assert ex.start(now_s=0) == [Subscribe(qn_scale.NOTIFY_T2), Subscribe(qn_scale.AE_NOTIFY)]
    return ex


def test_qn_exchange_type2_and_jieli() -> None:
    ex = _jieli_exchange()
    info = bytes.fromhex("1212ff0fac140004ff0f070a0000059f30e9")
    # AE01's init (verbatim, as the hosts that got GE CS 10 G weighings send it), then the 0x13
    assert ex.on_notify(qn_scale.NOTIFY_T2, info, now_s=1) == [
        Write(qn_scale.AE_WRITE, bytes.fromhex("fedcbac00600020101ef"), with_response=False),
        Write(qn_scale.WRITE_T2, bytes.fromhex("1309ff01100000002c")),
    ]
    # no clock: no 0x20, but the host's 02 "pass" on AE01 (as ble-scale-sync sends it at 0x14)
    ready = bytes.fromhex("140bff000001000000001f")
    assert ex.on_notify(qn_scale.NOTIFY_T2, ready, now_s=2) == [
        Write(qn_scale.AE_WRITE, bytes.fromhex("0270617373"), with_response=False)
    ]
    assert ex.on_notify(qn_scale.NOTIFY_T2, ready, now_s=2) == []
    challenge, response = JIELI_PAIRS[0]
    assert ex.deadline_s is None
    assert ex.on_notify(qn_scale.AE_NOTIFY, b"\x00" + challenge, now_s=3) == [
        Write(qn_scale.AE_WRITE, b"\x01" + response, with_response=False)
    ]
    assert ex.deadline_s == 3 + jieli.PASS_WAIT_S and not ex.authenticated
    assert ex.on_notify(qn_scale.AE_NOTIFY, PASS, now_s=4) == []
    assert ex.authenticated and ex.deadline_s is None and ex.on_timeout(now_s=100) == []
    stable = bytes.fromhex("100eff0102025801fd01fb0033a7")
    assert ex.on_notify(qn_scale.NOTIFY_T2, stable, now_s=5) == [Disconnect("weighing received")]


@pytest.mark.parametrize(("challenge", "response"), JIELI_PAIRS, ids=[c.hex()[:8] for c, _ in JIELI_PAIRS])
def test_qn_exchange_answers_every_captured_challenge_exactly(challenge: bytes, response: bytes) -> None:
    ex = _jieli_exchange()
    [answer] = ex.on_notify(qn_scale.AE_NOTIFY, b"\x00" + challenge, now_s=1)
    assert answer == Write(qn_scale.AE_WRITE, b"\x01" + response, with_response=False)


def test_qn_exchange_ends_without_pass_after_the_answer() -> None:
    ex = _jieli_exchange()
    challenge, _ = JIELI_PAIRS[1]
    assert len(ex.on_notify(qn_scale.AE_NOTIFY, b"\x00" + challenge, now_s=10)) == 1
    assert ex.on_timeout(now_s=10 + jieli.PASS_WAIT_S - 0.1) == []
    [stop] = ex.on_timeout(now_s=10 + jieli.PASS_WAIT_S)
    assert isinstance(stop, Disconnect) and 'no "pass"' in stop.reason
    assert ex.done and ex.deadline_s is None


def test_qn_exchange_gives_up_after_three_rejected_answers() -> None:
    ex = _jieli_exchange()
    for n, (challenge, response) in enumerate(JIELI_PAIRS[:3]):
        assert ex.on_notify(qn_scale.AE_NOTIFY, b"\x00" + challenge, now_s=n) == [
            Write(qn_scale.AE_WRITE, b"\x01" + response, with_response=False)
        ]
    [stop] = ex.on_notify(qn_scale.AE_NOTIFY, b"\x00" + JIELI_PAIRS[3][0], now_s=4)
    assert isinstance(stop, Disconnect) and "rejects them" in stop.reason


@pytest.mark.parametrize("size", [1, 16, 18, 20])
def test_qn_exchange_refuses_a_challenge_of_unknown_layout(size: int) -> None:
    ex = _jieli_exchange()
    [stop] = ex.on_notify(qn_scale.AE_NOTIFY, bytes(size), now_s=1)
    assert isinstance(stop, Disconnect) and "unknown layout" in stop.reason and "not supported" in stop.reason


def test_qn_exchange_ignores_other_ae02_frames_and_needs_ae01() -> None:
    ex = _jieli_exchange()
    assert ex.on_notify(qn_scale.AE_NOTIFY, b"\x01" + JIELI_PAIRS[0][1], now_s=1) == []  # an answer, not ours
    assert not ex.done
    no_ae01 = _jieli_exchange(AE_OFFERED - {qn_scale.AE_WRITE})
    assert no_ae01.on_notify(qn_scale.NOTIFY_T2, bytes.fromhex("140bff000001000000001f"), now_s=1) == []
    [stop] = no_ae01.on_notify(qn_scale.AE_NOTIFY, b"\x00" + JIELI_PAIRS[0][0], now_s=2)
    assert isinstance(stop, Disconnect) and "AE01" in stop.reason


def test_qn_decoder_reports_ae02_frames_and_never_weighs() -> None:
    decoder = qn_scale.QnDecoder()
    for frame in (b"\x00" + JIELI_PAIRS[0][0], PASS, b"\x01" + JIELI_PAIRS[0][1]):
        [report] = decoder.decode(frame, qn_scale.AE_NOTIFY)
        assert isinstance(report, DeviceReport) and report.code == "ae02" and not report.is_error
    [challenge, passed] = [decoder.decode(f, qn_scale.AE_NOTIFY)[0] for f in (b"\x00" + JIELI_PAIRS[0][0], PASS)]
    assert "challenge" in challenge.message and "pass" in passed.message


def test_eufy_exchange_exact_bytes() -> None:
    ex = eufy.make_exchange(ExchangeContext("AA:BB", "eufy T9146", wall_time_s=WALL + 3723))
    assert ex.start(now_s=0) == [
        Subscribe(eufy.NOTIFY),
        Write(eufy.WRITE, bytes.fromhex("fd370001" + "00" * 7) + bytes([0xFD ^ 0x37 ^ 0x01]), with_response=False),
        Write(eufy.WRITE, bytes.fromhex("f107ea0101010203"), with_response=False),
    ]
    assert ex.on_notify(eufy.NOTIFY, bytes.fromhex("cf920e9c271d135f0000b9"), now_s=1) == []


def test_eufy_exchange_without_clock() -> None:
    ex = eufy.make_exchange(ExchangeContext("AA:BB"))
    actions = ex.start(now_s=0)
    assert [type(a) for a in actions] == [Subscribe, Write]


@pytest.mark.parametrize(
    ("name", "seconds"),
    [
        ("013197A1B2", int(WALL) - 1_262_304_000),
        ("0202B6FF", int(WALL) - 1_262_304_000),
        ("0203B0123", int(WALL)),
        (None, int(WALL)),
    ],
)
def test_medisana_exchange_epoch_by_model(name: str | None, seconds: int) -> None:
    offered = frozenset({medisana.WEIGHT, medisana.FEATURE, medisana.CUSTOM, medisana.COMMAND})
    ex = medisana.make_exchange(ExchangeContext("E4:54:EB:00:00:01", name, offered, wall_time_s=WALL))
    assert ex.start(now_s=0) == [
        Subscribe(medisana.WEIGHT),
        Subscribe(medisana.FEATURE),
        Subscribe(medisana.CUSTOM),
        Write(medisana.COMMAND, b"\x02" + seconds.to_bytes(4, "little")),
    ]


def test_vendor_drivers_without_exchange_subscribe_only() -> None:
    for driver in ("yunmai",):
        spec = get(driver)
        assert spec.make_exchange is None and spec.ble is not None and spec.ble.characteristics


def test_broadcast_spec_and_dedupe() -> None:
    spec = get("qn_broadcast")
    assert spec.ble is not None and spec.ble.mode is BleMode.BROADCAST and spec.dedupe_key is not None
    a, b = B.qn_broadcast(7250, 0x25), B.qn_broadcast(7260, 0x25)
    assert spec.dedupe_key("aa:bb", a) == spec.dedupe_key("AA:BB", a)
    assert spec.dedupe_key("aa:bb", a) != spec.dedupe_key("aa:bb", b)
    assert spec.dedupe_key("aa:bb", a) != spec.dedupe_key("aa:cc", a)


def test_qn_parse_is_stateless_and_never_weighs() -> None:
    r = qn_scale.parse(bytes.fromhex("100eff0102025801fd01fb0033a7"), "")
    assert isinstance(r, Reading) and not r.is_weighing
    assert isinstance(qn_scale.parse(bytes.fromhex("2105ff0126"), ""), DeviceReport)


# --------------------------------------------------------------------------- Beurer/Sanitas exchange

PART1, PART2, PART3 = (
    bytes.fromhex("e7590301010000000000000065"),
    bytes.fromhex("e75903026a21f4c6068701b500df02"),
    bytes.fromhex("e759030309018d00e907170aa20108"),
)


def test_beurer_exchange_exact_bytes() -> None:
    """INIT, the clock on its answer, one acknowledgement per 0x58/0x59 frame (bytes 1-3 echoed), then
    disconnect after the last part: the writes of the SBF70 snoop (ble-scale-sync#211)."""
    ex = beurer.make_exchange(ExchangeContext("AA:BB", "SANITAS SBF70", wall_time_s=WALL))
    c = beurer.CHARACTERISTIC
    assert ex.start(now_s=0) == [Subscribe(c), Write(c, bytes.fromhex("e601"))]
    assert ex.deadline_s == beurer.INIT_RETRY_S
    assert ex.on_notify(c, bytes.fromhex("e600"), now_s=1) == [Write(c, b"\xe9" + int(WALL).to_bytes(4, "big"))]
    assert ex.deadline_s is None
    assert ex.on_notify(c, bytes.fromhex("e600"), now_s=1) == []  # the clock once
    assert ex.on_notify(c, bytes.fromhex("e758010686"), now_s=2) == [Write(c, bytes.fromhex("e7f1580106"))]
    assert ex.on_notify(c, PART1, now_s=3) == [Write(c, bytes.fromhex("e7f1590301"))]
    assert ex.on_notify(c, PART2, now_s=4) == [Write(c, bytes.fromhex("e7f1590302"))]
    assert ex.on_notify(c, PART3, now_s=5) == [
        Write(c, bytes.fromhex("e7f1590303")),
        Disconnect("measurement received"),
    ]
    assert ex.on_notify(c, PART3, now_s=6) == []


def test_beurer_exchange_start_byte_by_name_and_by_frame() -> None:
    c = beurer.CHARACTERISTIC
    ex = beurer.make_exchange(ExchangeContext("AA:BB", "BEURER BF700"))
    assert ex.start(now_s=0) == [Subscribe(c), Write(c, bytes.fromhex("f601"))]
    assert ex.on_notify(c, bytes.fromhex("f600"), now_s=1) == []  # no host clock: no SET_TIME
    ex = beurer.make_exchange(ExchangeContext("AA:BB", None))  # unknown name: 0xE7, openScale's default
    assert ex.start(now_s=0)[1] == Write(c, bytes.fromhex("e601"))
    # the scale's frames carry its start byte: acknowledgements follow them
    assert ex.on_notify(c, bytes.fromhex("f758010686"), now_s=1) == [Write(c, bytes.fromhex("f7f1580106"))]


def test_beurer_exchange_retries_init_then_waits() -> None:
    c = beurer.CHARACTERISTIC
    ex = beurer.make_exchange(ExchangeContext("AA:BB", "SBF75"))
    ex.start(now_s=0)
    assert ex.on_timeout(now_s=5) == [Write(c, bytes.fromhex("e601"))]
    assert ex.deadline_s == 10
    assert ex.on_timeout(now_s=10) == [Write(c, bytes.fromhex("e601"))]
    assert ex.deadline_s is None  # three INITs in all, then the session waits for frames anyway
    assert ex.on_timeout(now_s=15) == []


def test_beurer_acknowledgements_and_init_answer() -> None:
    assert beurer.acknowledgement(bytes.fromhex("e7f0590000")) is None  # the scale's own acks: none
    assert beurer.acknowledgement(bytes.fromhex("e758")) is None
    [report] = beurer.BeurerDecoder().decode(bytes.fromhex("e600"), beurer.CHARACTERISTIC)
    assert isinstance(report, DeviceReport) and report.code == "init" and not report.is_error
    assert isinstance(beurer.parse(PART3, ""), DeviceReport)  # parse is stateless: a part is no weighing


# --------------------------------------------------------------------------- Lefu AC 02 exchange

LEFU_WRITES = ["ac02fa010000ccc7", "ac02fb021fa5cc8d", "ac02fde20101ccad", "ac02fc010000ccc9", "ac02fe060000ccd0"]
LEFU_CHARS = frozenset({lefu.WRITE, lefu.NOTIFY, lefu.INDICATE})


def test_lefu_exchange_default_is_the_fitdays_capture() -> None:
    """Subscribe, then the five FFB1 writes of the Fitdays snoop (ble-scale-sync #254) byte for byte,
    without response; the default profile (female, 31, 165 cm) is the capture's own FB bytes."""
    ex = lefu.make_exchange(ExchangeContext("03:B3:EC:93:B8:7E", "Hutbit Scale", LEFU_CHARS))
    assert ex.deadline_s is None
    assert ex.start(now_s=0) == [Subscribe(lefu.NOTIFY), Subscribe(lefu.INDICATE)] + [
        Write(lefu.WRITE, bytes.fromhex(h), with_response=False) for h in LEFU_WRITES
    ]


def test_lefu_exchange_profile_from_settings() -> None:
    settings = {"sex": "Male", "age_years": "45", "height_cm": "182"}
    ex = lefu.make_exchange(ExchangeContext("AA", "SWAN", LEFU_CHARS, settings=settings))
    writes = [a for a in ex.start(now_s=0) if isinstance(a, Write)]
    assert writes[1].data == bytes([0xAC, 0x02, 0xFB, 0x01, 45, 182, 0xCC, (0xFB + 1 + 45 + 182 + 0xCC) % 256])
    assert [w.data.hex() for w in writes[:1] + writes[2:]] == LEFU_WRITES[:1] + LEFU_WRITES[2:]


def test_lefu_exchange_waits_for_the_impedance_then_disconnects() -> None:
    ex = lefu.make_exchange(ExchangeContext("AA", "SWAN", LEFU_CHARS))
    ex.start(now_s=0)
    n = lefu.NOTIFY
    assert ex.on_notify(n, bytes.fromhex("ac0204060000cad4"), now_s=10) == []  # #322: stable 103.0 kg
    assert ex.deadline_s == 10 + lefu.IMPEDANCE_WAIT_S
    assert ex.on_notify(n, bytes.fromhex("ac02fd000001cbc9"), now_s=11) == []  # measuring: wait again
    assert ex.deadline_s == 11 + lefu.IMPEDANCE_WAIT_S
    assert ex.on_timeout(now_s=12) == []  # not yet
    assert ex.on_notify(n, bytes.fromhex("ac02fd010209cbd4"), now_s=14) == [Disconnect("weighing received")]
    assert ex.deadline_s is None
    assert ex.on_notify(n, bytes.fromhex("ac02fd010209cbd4"), now_s=15) == []


def test_lefu_exchange_ends_a_weight_only_session() -> None:
    ex = lefu.make_exchange(ExchangeContext("AA", "Hutbit Scale", LEFU_CHARS))
    ex.start(now_s=0)
    assert ex.on_notify(lefu.NOTIFY, bytes.fromhex("ac0203490000ca00"), now_s=1) == []  # bad check: ignored
    assert ex.deadline_s is None
    assert ex.on_notify(lefu.NOTIFY, bytes.fromhex("ac02fd010206cbd1"), now_s=1) == []  # no weight yet
    ex.on_notify(lefu.NOTIFY, bytes.fromhex("ac0203490000ca16"), now_s=2)
    assert ex.on_timeout(now_s=2 + lefu.IMPEDANCE_WAIT_S) == [Disconnect("no impedance after the stable weight")]


def test_lefu_exchange_writes_nothing_to_the_other_dialects() -> None:
    for name in ("1byone scale", "Healthkeep 280"):
        ex = lefu.make_exchange(ExchangeContext("AA", name, LEFU_CHARS))
        assert ex.start(now_s=0) == [Subscribe(lefu.NOTIFY), Subscribe(lefu.INDICATE)]
    no_ffb1 = lefu.make_exchange(ExchangeContext("AA", "SWAN", frozenset({lefu.NOTIFY})))
    assert no_ffb1.start(now_s=0) == [Subscribe(lefu.NOTIFY)]


def test_lefu_settings_one_problem_per_bad_key() -> None:
    check = get("lefu_ffb0").check_settings
    assert check is not None
    assert check({}) == []
    assert check({"sex": "female", "age_years": "31", "height_cm": "165"}) == []
    problems = check({"sex": "other", "age_years": "eight", "height_cm": "300"})
    assert [k for k, _ in problems] == ["sex", "age_years", "height_cm"]
    assert all(text and ":" not in text.split()[0] for _, text in problems)
    with pytest.raises(ExchangeError, match="age_years"):
        lefu.make_exchange(ExchangeContext("AA", "SWAN", settings={"age_years": "200"}))


# --------------------------------------------------------------------------- QN extended dialect (GE CS 10 G)

GE = {  # REAL frames, tests/vectors/qn_scale/sequences.jsonl
    "info": "1214ff4ec70e0007ff140f4200080503e06f2b3d",
    "ready": "140cff01000100000001fd1f",
    "config_request": "2107ff01612cb5",
    "live": "10140100111ebe00000000000000000000000012",
    "b4_old": "b42c0401f01001121b1032361a000000000000000000000000000000000000000000000000000000000000a5",
    "b1_7525": "b12c030101651d030bbb09ac0a4f09790a4f09b3095a081b011601440bea091a0bb509a90a7d09480a090932",
}
GE_OFFERED = AE_OFFERED | {qn_scale.NOTIFY_T1, qn_scale.CONFIG_T1}


def _ge(name: str) -> bytes:
    return bytes.fromhex(GE[name])


def _w(hex_text: str) -> Write:
    return Write(qn_scale.WRITE_T2, bytes.fromhex(hex_text))


def test_qn_extended_exchange_exact_bytes() -> None:
    """The whole GE CS 10 G conversation: each write byte for byte, in the order of #235's working runs."""
    ex = qn_scale.make_exchange(ExchangeContext("AA:BB", "Fit Plus", GE_OFFERED, wall_time_s=WALL))
    # both layouts offered with AE00: 0xFFF0, where ble-scale-sync's writes to this model went
    assert ex.start(now_s=0) == [Subscribe(qn_scale.NOTIFY_T2), Subscribe(qn_scale.AE_NOTIFY)]
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("info"), now_s=1) == [
        Write(qn_scale.AE_WRITE, bytes.fromhex("fedcbac00600020101ef"), with_response=False),
        _w("1309ff01100000002c"),
    ]
    seconds = (int(WALL) - 946_684_800).to_bytes(4, "little")
    time = bytes([0x20, 0x08, 0xFF]) + seconds
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("ready"), now_s=2) == [
        Write(qn_scale.WRITE_T2, time + bytes([sum(time) % 256])),
        _w("a20601321af5"),  # openScale's ready-time A2, age 26 (the default)
        Write(qn_scale.AE_WRITE, PASS, with_response=False),
    ]
    challenge, response = JIELI_PAIRS[0]
    assert ex.on_notify(qn_scale.AE_NOTIFY, b"\x00" + challenge, now_s=3) == [
        Write(qn_scale.AE_WRITE, b"\x01" + response, with_response=False)
    ]
    assert ex.on_notify(qn_scale.AE_NOTIFY, PASS, now_s=3) == []
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("config_request"), now_s=4) == [
        _w("a00d04fc0000000000000000ad"),
        _w("a00d02010008002106b804029d"),
        _w("2206ff00032a"),
        _w("a206011e23ea"),  # the trigger, 77.15 kg (the capture's anchor, the default), twice
        _w("a206011e23ea"),
    ]
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("config_request"), now_s=4) == []  # once
    assert ex.on_notify(qn_scale.NOTIFY_T2, bytes.fromhex("a10704fc0110b9"), now_s=5) == []
    # the vendor app's echo of each live 0x10 (#235: ... 11 1e be -> a2 06 01 1e be 85); not a weighing
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("live"), now_s=6) == [_w("a206011ebe85")]
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("b4_old"), now_s=7) == []  # a stored record: history
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("b1_7525"), now_s=8) == [Disconnect("weighing received")]
    assert ex.done and ex.on_notify(qn_scale.NOTIFY_T2, _ge("b1_7525"), now_s=9) == []


def test_qn_extended_exchange_uses_the_settings() -> None:
    values = {"weight_anchor_kg": "65", "age_years": "40"}
    ex = qn_scale.make_exchange(ExchangeContext("AA:BB", None, AE_OFFERED, settings=values))
    ex.on_notify(qn_scale.NOTIFY_T2, _ge("info"), now_s=1)
    assert _w("a20601322803") in ex.on_notify(qn_scale.NOTIFY_T2, _ge("ready"), now_s=2)  # age 40
    writes = ex.on_notify(qn_scale.NOTIFY_T2, _ge("config_request"), now_s=3)
    assert writes[-2:] == [_w("a20601196426")] * 2  # 6500 = 0x1964 (ble-scale-sync's own case)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"weight_anchor_kg": "heavy"}, "weight_anchor_kg"),
        ({"weight_anchor_kg": "300"}, "weight_anchor_kg"),
        ({"age_years": "5"}, "age_years"),
    ],
)
def test_qn_settings_are_checked(values: dict[str, str], key: str) -> None:
    [(bad, reason)] = get("qn_scale").check_settings(values)  # type: ignore[misc]
    assert bad == key and "from" in reason
    with pytest.raises(ExchangeError, match=f"qn_scale settings: {key}"):
        qn_scale.make_exchange(ExchangeContext("AA:BB", None, AE_OFFERED, settings=values))
    assert get("qn_scale").check_settings({"weight_anchor_kg": "80.5", "age_years": "33"}) == []  # type: ignore[misc]


def test_qn_other_dialects_get_no_extended_writes() -> None:
    """An 18-byte 0x12 (ES-26M) is not the extended dialect: no A2, no 0x21 replies, no echo."""
    ex = _jieli_exchange()
    ex.on_notify(qn_scale.NOTIFY_T2, bytes.fromhex("1212ff0fac140004ff0f070a0000059f30e9"), now_s=1)
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("config_request"), now_s=2) == []
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("live"), now_s=3) == []
    assert ex.on_notify(qn_scale.NOTIFY_T2, _ge("b1_7525"), now_s=4) == []  # a 0xB1 outside the dialect


@settings(max_examples=60, deadline=None)
@given(raw=st.integers(1, 0xFFFF), tail=st.binary(min_size=36, max_size=36))
def test_qn_extended_result_round_trip(raw: int, tail: bytes) -> None:
    decoder = qn_scale.QnDecoder()
    decoder.decode(B.qn_extended_info(0xFF, 1), qn_scale.NOTIFY_T2)
    assert decoder.extended
    frame = B.qn_result(raw, tail)
    [reading] = decoder.decode(frame, qn_scale.NOTIFY_T2)
    assert isinstance(reading, Reading) and reading.is_weighing
    assert reading.measurement.weight_kg == pytest.approx(raw / 100) and reading.measurement.impedance_ohm is None
    [again] = decoder.decode(frame, qn_scale.NOTIFY_T2)  # the burst repeats it: one weighing
    assert isinstance(again, Reading) and not again.stable and again.fields["repeat"] == "1"
    [live] = decoder.decode(B.qn_weight14(0xFF, 2, raw, 500, 500), qn_scale.NOTIFY_T2)
    assert isinstance(live, Reading) and not live.stable  # 0x10 on this dialect: live only
