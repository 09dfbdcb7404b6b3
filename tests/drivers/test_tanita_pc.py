"""Tanita PC mode: exact command bytes per family, reply classification, the conversation machine."""

from __future__ import annotations

import itertools

import pytest
from builders import pc_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import registry
from drivers.tanita_pc import (
    ERROR_CODES,
    MAX_ATTEMPTS,
    MAX_CHAR_GAP_S,
    MIN_COMMAND_GAP_S,
    RESET,
    BodyType,
    Conversation,
    ConversationError,
    Done,
    Failed,
    Family,
    Gender,
    Profile,
    ProfileError,
    ReplyKind,
    Send,
    Wait,
    build_commands,
    classify,
    classify_reply,
    pad_result_number,
)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MALE_175 = Profile(Gender.MALE, 30, 175.4, BodyType.STANDARD, 1.5, "0000012345", 20)


def wire(family: Family, profile: Profile) -> list[bytes]:
    return [c.data for c in build_commands(family, profile)]


def test_not_a_driver() -> None:
    assert "tanita_pc" not in registry()


def test_timing_constants() -> None:
    assert MIN_COMMAND_GAP_S == 0.1
    assert MAX_CHAR_GAP_S == 0.25
    assert RESET == b"\x1f\r\n"


def test_mc980_sequence_exact_bytes() -> None:
    assert wire(Family.MC980, MALE_175) == [
        pc_command("M1"),
        pc_command("D001.5"),
        pc_command("D11"),
        pc_command("D20"),
        pc_command("D3175.4"),
        pc_command("D430"),
        pc_command("D50000012345"),
        pc_command("D620"),
    ]


def test_mc980_field_widths() -> None:
    p = Profile(Gender.FEMALE, 5, 95.0, BodyType.ATHLETIC, 10.0)
    assert wire(Family.MC980, p) == [
        pc_command("M1"),
        pc_command("D010.0"),
        pc_command("D12"),
        pc_command("D22"),
        pc_command("D3095.0"),
        pc_command("D405"),
    ]


def test_bc418_sequence_exact_bytes_onyx_style() -> None:
    p = Profile(Gender.MALE, 30, 175.4, BodyType.STANDARD, 1.0, result_number="0000012345")
    assert wire(Family.BC418, p) == [
        pc_command("U0"),
        pc_command("D0001.0"),
        pc_command("D11"),
        pc_command("D20"),
        pc_command("D300175"),
        pc_command("D430"),
        pc_command("G1"),
    ]


@pytest.mark.parametrize(
    ("family", "profile", "match"),
    [
        (Family.MC980, Profile(Gender.UNISEX, 30, 175.0), "male"),
        (Family.MC980, Profile(Gender.MALE, 4, 175.0), "age"),
        (Family.BC418, Profile(Gender.MALE, 6, 175.0), "age"),
        (Family.MC980, Profile(Gender.MALE, 100, 175.0), "age"),
        (Family.MC980, Profile(Gender.MALE, 30, 250.0), "height"),
        (Family.MC980, Profile(Gender.MALE, 30, float("nan")), "finite"),
        (Family.MC980, Profile(Gender.MALE, 30, 175.0, tare_kg=10.5), "tare"),
        (Family.MC980, Profile(Gender.MALE, 30, 175.0, result_number="12345"), "10-16"),
        (Family.MC980, Profile(Gender.MALE, 30, 175.0, result_number="1" * 17), "10-16"),
        (Family.MC980, Profile(Gender.MALE, 30, 175.0, result_number="12345678x0"), "10-16"),
    ],
)
def test_unencodable_profiles(family: Family, profile: Profile, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        build_commands(family, profile)


def test_pad_result_number() -> None:
    assert pad_result_number("12345") == "0000012345"
    assert pad_result_number("1234567890123") == "1234567890123"
    with pytest.raises(ProfileError):
        pad_result_number("12a")


@st.composite
def profiles(draw: st.DrawFn, family: Family) -> Profile:
    lo = 5 if family is Family.MC980 else 7
    return Profile(
        gender=draw(st.sampled_from([Gender.MALE, Gender.FEMALE])),
        age_years=draw(st.integers(lo, 99)),
        height_cm=draw(st.integers(900, 2490)) / 10,
        body_type=draw(st.sampled_from(list(BodyType))),
        tare_kg=draw(st.integers(0, 100)) / 10,
        result_number=draw(st.one_of(st.none(), st.text("0123456789", min_size=10, max_size=16))),
    )


@FAST
@given(profiles(Family.MC980))
def test_mc980_widths_hold_for_every_profile(p: Profile) -> None:
    by_prefix = {c.text[:2]: c.text[2:] for c in build_commands(Family.MC980, p)}
    assert len(by_prefix["D0"]) == 4 and by_prefix["D0"][2] == "."
    assert len(by_prefix["D3"]) == 5 and by_prefix["D3"][3] == "."
    assert float(by_prefix["D3"]) == pytest.approx(p.height_cm, abs=0.05)
    assert len(by_prefix["D4"]) == 2 and int(by_prefix["D4"]) == p.age_years
    assert by_prefix["D1"] in ("1", "2") and by_prefix["D2"] in ("0", "2")
    assert ("D5" in by_prefix) == (p.result_number is not None)


@FAST
@given(profiles(Family.BC418))
def test_bc418_order_and_widths_for_every_profile(p: Profile) -> None:
    texts = [c.text for c in build_commands(Family.BC418, p)]
    assert texts[0] == "U0" and texts[-1] == "G1"
    assert [t[:2] for t in texts] == ["U0", "D0", "D1", "D2", "D3", "D4", "G1"]
    assert len(texts[1]) == 7 and texts[4].startswith("D300") and len(texts[4]) == 7 and len(texts[5]) == 4
    assert all(c.data.endswith(b"\r\n") and c.data.isascii() for c in build_commands(Family.BC418, p))


# ------------------------------------------------------------------------------------------ replies


def test_classify() -> None:
    assert classify(b"D3\r\n").kind is ReplyKind.ECHO
    assert classify("D3!").kind is ReplyKind.PARAMETER_ERROR
    assert classify("!").kind is ReplyKind.UNKNOWN_COMMAND
    assert classify("D01.5,D11,D20,D3175.4,D430,D50000012345,D620").kind is ReplyKind.QUERY_REPLY
    assert classify("{0,16,...").kind is ReplyKind.OTHER
    for code, meaning in ERROR_CODES.items():
        reply = classify(code)
        assert reply.kind is ReplyKind.DEVICE_ERROR and reply.message == meaning and reply.is_error


def test_classify_reply_wants_the_right_echo() -> None:
    d3 = build_commands(Family.MC980, MALE_175)[4]
    assert classify_reply("D3", d3).kind is ReplyKind.ECHO
    assert classify_reply("D4", d3).kind is ReplyKind.OTHER


@FAST
@given(st.binary(max_size=64))
def test_classify_never_raises(data: bytes) -> None:
    classify(data)


# ------------------------------------------------------------------------------------- conversation


def run_happy(family: Family, profile: Profile) -> list[Send]:
    conv = Conversation(family)
    sends: list[Send] = []
    now = 100.0
    step = conv.start(profile, now)
    while isinstance(step, Send):
        sends.append(step)
        now = step.not_before_s + 0.02  # the echo comes 20 ms after sending
        step = conv.on_line(step.data[:2] + b"\r\n", now)
    assert isinstance(step, Done) and conv.finished
    return sends


def test_conversation_sends_every_command_in_order() -> None:
    sends = run_happy(Family.BC418, Profile(Gender.FEMALE, 40, 160.0))
    assert [s.data[:2] for s in sends] == [b"U0", b"D0", b"D1", b"D2", b"D3", b"D4", b"G1"]


def test_conversation_keeps_the_minimum_gap() -> None:
    sends = run_happy(Family.MC980, MALE_175)
    gaps = [b.not_before_s - a.not_before_s for a, b in itertools.pairwise(sends)]
    assert all(g >= MIN_COMMAND_GAP_S - 1e-9 for g in gaps)
    assert all(s.reply_by_s > s.not_before_s for s in sends)


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [("D3!", "D3!", "parameter error"), ("!", "!", "unknown command"), ("E6", "E6", "incomplete set data")],
)
def test_conversation_fails_on_error_replies(reply: str, code: str, words: str) -> None:
    conv = Conversation(Family.MC980)
    step = conv.start(MALE_175, 0.0)
    for echo in ("M1", "D0", "D1", "D2"):
        assert isinstance(step, Send)
        step = conv.on_line(echo, 1.0)
    assert isinstance(step, Send) and step.data.startswith(b"D3")
    failed = conv.on_line(reply, 2.0)
    assert isinstance(failed, Failed) and failed.code == code and words in failed.reason
    assert conv.on_line("D3", 3.0) == failed  # finished stays finished
    assert conv.on_timeout(3.0) == failed


def test_conversation_ignores_noise_then_gives_up() -> None:
    conv = Conversation(Family.BC418, max_ignored_lines=2)
    step = conv.start(MALE_175.__class__(Gender.MALE, 30, 175.0), 0.0)
    assert isinstance(step, Send)
    assert isinstance(conv.on_line(b"\x00\x7f", 0.1), Wait)
    assert isinstance(conv.on_line("D4", 0.2), Wait)  # an echo out of step is not ours
    failed = conv.on_line("zz", 0.3)
    assert isinstance(failed, Failed) and "unexpected" in failed.reason


def test_conversation_retries_on_timeout_then_fails() -> None:
    conv = Conversation(Family.BC418)
    first = conv.start(Profile(Gender.MALE, 30, 175.0), 0.0)
    assert isinstance(first, Send)
    now = first.reply_by_s
    for _ in range(MAX_ATTEMPTS - 1):
        again = conv.on_timeout(now)
        assert isinstance(again, Send) and again.data == first.data
        now = again.reply_by_s
    failed = conv.on_timeout(now)
    assert isinstance(failed, Failed) and "no reply" in failed.reason and "U0" in failed.reason


def test_conversation_unsendable_profile_fails_at_start() -> None:
    step = Conversation(Family.MC980).start(Profile(Gender.UNISEX, 30, 175.0), 0.0)
    assert isinstance(step, Failed) and "male" in step.reason


def test_conversation_misuse() -> None:
    conv = Conversation(Family.MC980)
    with pytest.raises(ConversationError):
        conv.on_line("M1", 0.0)
    conv.start(MALE_175, 0.0)
    with pytest.raises(ConversationError):
        conv.start(MALE_175, 0.0)


@FAST
@given(st.lists(st.one_of(st.binary(max_size=20), st.sampled_from([b"U0", b"D0", b"D1", b"D2", b"D3", b"D4", b"G1"]))))
def test_conversation_survives_any_line_sequence(lines: list[bytes]) -> None:
    conv = Conversation(Family.BC418)
    step = conv.start(Profile(Gender.MALE, 30, 175.0), 0.0)
    for i, line in enumerate(lines):
        step = conv.on_line(line, float(i)) if i % 5 else conv.on_timeout(float(i))
        assert isinstance(step, Send | Wait | Done | Failed)
