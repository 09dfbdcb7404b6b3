"""Eufy P2 / P2 Pro (drivers/eufy_p2.py): the weight frame round trip through a literal-byte builder,
and the handshake as a pure state machine against a scale-side model (tests/fakes/eufy_p2_scale.py)
using the real ``cryptography`` AES. The vectors, framer modes and random-input checks are the shared
family tests (tests/drivers/test_ble_families.py lists eufy_p2)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import family_builders as B
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import Reading
from drivers import eufy_p2 as p2
from drivers.bleuuid import full_uuid
from drivers.gatt import Action, ExchangeContext, ExchangeError, Subscribe, Write
from drivers.links.crypto import aes_cbc_decrypt, aes_cbc_encrypt
from tests.fakes.eufy_p2_scale import EufyP2Scale, scale_segments

FAST = settings(max_examples=150, deadline=None)
MAC = "CF:E6:03:1D:09:F7"
FINAL_20 = bytes.fromhex("cf0e00cf0000d0070000000000000018")  # ble-scale-sync#289, real, 20.00 kg final


def fixed_random(seed: int = 7) -> Callable[[int], bytes]:
    return lambda n: bytes((seed + i) % 256 for i in range(n))


def context(address: str = MAC, **kw: object) -> ExchangeContext:
    args: dict[str, object] = {
        "aes_cbc_encrypt": aes_cbc_encrypt,
        "aes_cbc_decrypt": aes_cbc_decrypt,
        "random_bytes": fixed_random(),
        **kw,
    }
    return ExchangeContext(address, "eufy T9149", frozenset({p2.WRITE, p2.WEIGHT, p2.AUTH}), **args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- frames


@FAST
@given(
    raw=st.integers(0, 0xFFFF),
    final=st.booleans(),
    b45=st.integers(0, 0xFFFF),
    b810=st.integers(0, 0xFFFFFF),
    extra=st.binary(min_size=3, max_size=3),
)
def test_round_trip(raw: int, final: bool, b45: int, b810: int, extra: bytes) -> None:
    frame = B.eufy_p2(raw, final, b4_5=b45, b8_10=b810, extra=extra)
    assert p2.make_framer().feed(frame) == [frame]
    decoder = p2.EufyP2Decoder()
    [first] = decoder.decode(frame, p2.WEIGHT)
    assert isinstance(first, Reading)
    assert first.is_weighing is (final and raw > 0)
    assert first.fields["weight_raw"] == str(raw)
    assert first.fields["b4_5_raw"] == str(b45) and first.fields["b8_10_raw"] == str(b810)
    assert first.measurement.impedance_ohm is None  # never posted: the bytes' meaning is UNKNOWN
    if first.is_weighing:
        assert first.measurement.weight_kg == raw / 100
    [again] = decoder.decode(frame, p2.WEIGHT)
    assert isinstance(again, Reading) and not again.is_weighing  # one weighing per run


def test_parse_is_stateless_and_ignores_the_handshake_channel() -> None:
    first, second = p2.parse(FINAL_20, p2.WEIGHT), p2.parse(FINAL_20, p2.WEIGHT)
    assert isinstance(first, Reading) and first.is_weighing and first == second
    assert p2.parse(bytes.fromhex("c301000100c3"), p2.AUTH) is None
    assert p2.EufyP2Decoder().decode(FINAL_20, p2.AUTH) == []  # FFF4 is the exchange's


# --------------------------------------------------------------------------- handshake pieces


def test_key_is_md5_of_the_uppercase_mac_without_separators() -> None:
    expected = bytes.fromhex("14ccb0fe3c9b2ea273a88abbe71471f0")  # md5sum of the ASCII "CFE6031D09F7"
    assert p2.key_for("cf:e6:03:1d:09:f7") == expected
    assert p2.key_for("CF-E6-03-1D-09-F7") == expected
    for bad in ("", "CF:E6:03:1D:09", "ZZ:E6:03:1D:09:F7"):
        with pytest.raises(ValueError):
            p2.key_for(bad)


def test_segments_layout() -> None:
    text = b"A" * 44  # the base64 of 32 bytes: three segments of 15, 15, 14
    segs = p2.segments(0xC2, text)
    assert [s[:4] for s in segs] == [bytes([0xC2, 3, i, 44]) for i in range(3)]
    assert [len(s) for s in segs] == [20, 20, 19]
    assert segs[2] == bytes.fromhex("c203022c") + b"A" * 14 + bytes([0xC2 ^ 3 ^ 2 ^ 44])  # 14 x 0x41 XOR to 0
    assert segs == scale_segments(0xC2, text)  # the scale model's independent framing agrees


def test_padding() -> None:
    assert p2.pad(b"x" * 15) == b"x" * 15 + b"\x01"
    assert p2.pad(b"x" * 16) == b"x" * 16 + b"\x10" * 16
    assert p2.unpad(p2.pad(b"abc")) == b"abc"
    for bad in (b"", b"x" * 15 + b"\x00", b"x" * 14 + b"\x01\x02"):
        with pytest.raises(ValueError):
            p2.unpad(bad)


def test_client_id_is_uuid_shaped_and_from_the_injected_source() -> None:
    a = p2.client_id(fixed_random(1)(16))
    assert len(a) == 15 and a[8] == "-" and a[14] == "4"
    assert a != p2.client_id(fixed_random(2)(16))


# --------------------------------------------------------------------------- the exchange


def drive(ex: p2.EufyP2Exchange, scale: EufyP2Scale) -> tuple[list[bytes], list[tuple[str, bytes]]]:
    """Run the exchange against the scale model: the link's loop, time advanced only to the deadline.
    Returns the host's writes and the notifications the scale sent."""
    writes: list[bytes] = []
    sent: list[tuple[str, bytes]] = []
    now = 100.0
    actions: list[Action] = ex.start(now_s=now)
    assert actions[:2] == [Subscribe(p2.AUTH), Subscribe(p2.WEIGHT)]
    actions = actions[2:]
    for _ in range(50):
        answers: list[tuple[str, bytes]] = []
        for action in actions:
            assert isinstance(action, Write) and action.uuid == p2.WRITE and action.with_response
            writes.append(action.data)
            answers += scale.on_write(p2.WRITE, action.data)
        actions = []
        for char, value in answers:
            sent.append((char, value))
            actions += ex.on_notify(full_uuid(char), value, now_s=now)
        if actions:
            continue
        if ex.deadline_s is None:
            break
        assert ex.deadline_s > now
        now = ex.deadline_s
        actions = ex.on_timeout(now_s=now)
    return writes, sent


def test_handshake_against_the_scale_model() -> None:
    ex = p2.make_exchange(context())
    scale = EufyP2Scale(MAC, weights=[FINAL_20.hex()])
    writes, sent = drive(ex, scale)
    assert scale.authenticated and ex.phase is p2.Phase.DONE and ex.deadline_s is None
    assert scale.client_id == p2.client_id(fixed_random()(16))
    assert ex.scale_id == scale.scale_id
    assert scale.c2_text == f"{scale.client_id}_{scale.scale_id}"
    assert [w[0] for w in writes] == [0xC0, 0xC0, 0xC2, 0xC2, 0xC2]  # 24 + 44 base64 bytes
    assert (full_uuid("fff2"), FINAL_20) in [(full_uuid(c), v) for c, v in sent]


def test_segments_are_paced_one_second_apart() -> None:
    ex = p2.make_exchange(context())
    ex.start(now_s=10.0)
    assert ex.deadline_s == 11.0
    assert ex.on_timeout(now_s=10.5) == []  # early: nothing
    [second] = ex.on_timeout(now_s=11.0)
    assert isinstance(second, Write) and second.data[:3] == bytes([0xC0, 2, 1])
    assert ex.phase is p2.Phase.C1 and ex.deadline_s == 11.0 + p2.ANSWER_TIMEOUT_S
    with pytest.raises(ExchangeError, match="no C1 answer"):
        ex.on_timeout(now_s=11.0 + p2.ANSWER_TIMEOUT_S)


def test_wrong_c3_status_ends_the_session() -> None:
    scale = EufyP2Scale(MAC, weights=[FINAL_20.hex()], refuse=True, reject_status=0x07)
    with pytest.raises(ExchangeError, match="C3 status 0x07"):
        drive(p2.make_exchange(context()), scale)
    assert scale.c2_text is not None  # it got as far as C2 ...
    assert not scale.authenticated  # ... and no weight was sent


def test_c3_status_is_read_from_byte_4() -> None:
    ex = p2.make_exchange(context())
    scale = EufyP2Scale(MAC)
    answers: list[tuple[str, bytes]] = []
    for action in ex.start(now_s=0)[2:] + ex.on_timeout(now_s=1.0):
        assert isinstance(action, Write)
        answers += scale.on_write(p2.WRITE, action.data)
    assert len(answers) == 2  # the 15-character scale id: 16 bytes, 24 base64 bytes, two C1 segments
    assert ex.on_notify(p2.AUTH, answers[0][1], now_s=1.1) == []
    [c2_first] = ex.on_notify(p2.AUTH, answers[1][1], now_s=1.1)
    assert isinstance(c2_first, Write) and c2_first.data[0] == 0xC2 and ex.phase is p2.Phase.C2
    with pytest.raises(ExchangeError, match="C3 status 0x07"):
        ex.on_notify(p2.AUTH, bytes.fromhex("c301000107c4"), now_s=1.2)


def test_a_scale_keyed_by_another_mac_never_answers_and_the_session_ends() -> None:
    scale = EufyP2Scale("CF:EA:03:26:40:E6")
    with pytest.raises(ExchangeError, match="no C1 answer"):
        drive(p2.make_exchange(context()), scale)
    assert scale.client_id is None and scale.undecryptable == 1


def test_a_c1_under_another_key_ends_the_session() -> None:
    other = EufyP2Scale("CF:EA:03:26:40:E6")
    ex = p2.make_exchange(context())
    ex.start(now_s=0)
    ex.on_timeout(now_s=1.0)
    c1 = scale_segments(0xC1, base64.b64encode(other._crypt(b"T9149A0B1C2D3E4", encrypt=True)))
    with pytest.raises(ExchangeError, match=r"padding|UTF-8"):
        for seg in c1:
            ex.on_notify(p2.AUTH, seg, now_s=1.5)


def test_missing_cipher_ends_it_with_the_reason() -> None:
    for kw in ({"aes_cbc_encrypt": None}, {"aes_cbc_decrypt": None}):
        with pytest.raises(ExchangeError, match="cryptography package"):
            p2.make_exchange(context(**kw)).start(now_s=0)
    with pytest.raises(ExchangeError, match="random source"):
        p2.make_exchange(context(random_bytes=None)).start(now_s=0)
    with pytest.raises(ExchangeError, match="MAC address"):
        p2.make_exchange(context(address="not-a-mac")).start(now_s=0)


def test_bad_c1_segments_end_the_session() -> None:
    key = hashlib.md5(b"CFE6031D09F7").digest()
    assert key == p2.key_for(MAC)
    good = scale_segments(0xC1, b"A" * 24)
    for bad, reason in (
        (good[0][:-1] + bytes([good[0][-1] ^ 1]), "segment check"),
        (good[1], "out of order"),
        (bytes([0xC1, 1, 0, 5]) + b"abcd" + bytes([0xC1 ^ 1 ^ 5 ^ 0x61 ^ 0x62 ^ 0x63 ^ 0x64]), "header says 5"),
        (scale_segments(0xC1, b"!!!!")[0], "not base64"),
        (scale_segments(0xC1, b"QUJD")[0], "whole number of AES blocks"),
    ):
        ex = p2.make_exchange(context())
        ex.start(now_s=0)
        ex.on_timeout(now_s=1.0)
        with pytest.raises(ExchangeError, match=reason):
            ex.on_notify(p2.AUTH, bad, now_s=1.5)


def test_weight_and_foreign_notifications_do_not_move_the_handshake() -> None:
    ex = p2.make_exchange(context())
    ex.start(now_s=0)
    assert ex.on_notify(p2.WEIGHT, FINAL_20, now_s=0.5) == []
    assert ex.on_notify(p2.AUTH, bytes.fromhex("c301000100c3"), now_s=0.5) == []  # no C3 before C2
    assert ex.phase is p2.Phase.C0
