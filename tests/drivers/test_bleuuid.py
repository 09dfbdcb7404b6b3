"""bleuuid: UUID forms and the decode CLI's hex lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import FrameError
from drivers.bleuuid import full_uuid, is_uuid, parse_hex, parse_hex_line, short_uuid

FULL_2A9C = "00002a9c-0000-1000-8000-00805f9b34fb"


@pytest.mark.parametrize(
    "text", ["2a9c", "2A9C", "0x2a9c", "0X2A9C", "00002a9c", " 2a9c ", FULL_2A9C, FULL_2A9C.upper()]
)
def test_full_uuid_forms(text: str) -> None:
    assert full_uuid(text) == FULL_2A9C
    assert short_uuid(text) == "2a9c"


def test_non_base_uuids_stay_long() -> None:
    mi_history = "00002a2f-0000-3512-2118-0009af100700"
    assert full_uuid(mi_history.upper()) == mi_history
    assert short_uuid(mi_history) == mi_history
    assert short_uuid("12345678") == "12345678"  # 32-bit on the base UUID


@pytest.mark.parametrize("bad", ["", "2a9", "2a9cz", "xyz", "0x", "00002a9c-0000-1000-8000", "2a9c 181b"])
def test_not_uuids(bad: str) -> None:
    assert not is_uuid(bad)
    with pytest.raises(ValueError):
        full_uuid(bad)


@settings(max_examples=300, deadline=None)
@given(value=st.integers(0, 0xFFFF))
def test_short_full_round_trip(value: int) -> None:
    short = f"{value:04x}"
    assert short_uuid(full_uuid(short)) == short
    assert full_uuid(short_uuid(full_uuid(short))) == full_uuid(short)


@pytest.mark.parametrize(
    ("line", "channel", "payload"),
    [
        ("181b 0226b20705040f0201ac018642", "181b", "0226b20705040f0201ac018642"),
        ("2a9c 1e 06 ea 00", "2a9c", "1e06ea00"),
        ("2A9D 00:8c:3c", "2a9d", "008c3c"),
        ("00002a9d-0000-1000-8000-00805f9b34fb 008c3c", "2a9d", "008c3c"),
        ("0x2a9d 0x008c3c", "2a9d", "008c3c"),
        ("229e43e507040b101301", "", "229e43e507040b101301"),
        ("22 9e 43 e5 07 04 0b 10 13 01", "", "229e43e507040b101301"),
        ("0226 b207 0504 0f02 01ac 0186 42", "", "0226b20705040f0201ac018642"),
        ("  2a9d\t008c3c   # a comment", "2a9d", "008c3c"),
        ("fe95 00", "fe95", "00"),
    ],
)
def test_parse_hex_line(line: str, channel: str, payload: str) -> None:
    got_channel, got_payload = parse_hex_line(line)
    assert got_channel == (full_uuid(channel) if channel else "")
    assert got_payload.hex() == payload


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty line"),
        ("   # only a comment", "empty line"),
        ("2a9c 1e0", "odd number"),
        ("2a9c zz", "not hexadecimal"),
        ("hello", "not hexadecimal"),
        ("1e0", "odd number"),
    ],
)
def test_parse_hex_line_errors(line: str, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        parse_hex_line(line)
    assert reason in info.value.reason


def test_a_lone_token_is_payload() -> None:
    """With nothing after it, even a UUID-looking token is the payload (two bytes)."""
    assert parse_hex_line("2a9c") == ("", b"\x2a\x9c")


def test_parse_hex_errors_name_the_problem() -> None:
    with pytest.raises(FrameError, match="column 3"):
        parse_hex("12g4")
    with pytest.raises(FrameError, match="no payload"):
        parse_hex(" : ")
    with pytest.raises(FrameError, match="payload after UUID 2a9c"):
        parse_hex_line("2a9c 1g")


@settings(max_examples=500, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=32),
    sep=st.sampled_from(["", " ", ":", "  "]),
    channel=st.sampled_from(["", "181b", "181d", "2a9c", "2a9d", "00002a9c-0000-1000-8000-00805f9b34fb"]),
)
def test_hex_line_round_trip(payload: bytes, sep: str, channel: str) -> None:
    text = sep.join(f"{b:02x}" for b in payload)
    line = f"{channel} {text}" if channel else text
    got_channel, got_payload = parse_hex_line(line)
    assert got_payload == payload
    assert got_channel == (full_uuid(channel) if channel else "")


@settings(max_examples=500, deadline=None)
@given(line=st.text(max_size=60))
def test_random_lines_only_frame_error(line: str) -> None:
    try:
        channel, payload = parse_hex_line(line)
    except FrameError:
        return
    assert payload and (channel == "" or is_uuid(channel))
