from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.cards import rdm6300
from drivers.cards.debounce import Debouncer
from drivers.cards.numbers import render
from drivers.errors import ChecksumError, FrameError

from .conftest import load_vectors

VECTORS = load_vectors("rdm6300.jsonl")
GOOD = [v for v in VECTORS if v["expect"] != "FrameError"]
BAD = [v for v in VECTORS if v["expect"] == "FrameError"]
EXAMPLE = bytes.fromhex("02303130303633453941453235 03")


def frame(v: dict) -> bytes:
    return bytes.fromhex(v["hex"])


@pytest.mark.parametrize("vector", GOOD, ids=[v["name"] for v in GOOD])
def test_vector_parses(vector: dict) -> None:
    uid = rdm6300.parse(frame(vector))
    assert {"uid": uid.hex, "text": rdm6300.text(frame(vector)), "em4100": render(uid, "em4100")} == vector["expect"]


@pytest.mark.parametrize("vector", BAD, ids=[v["name"] for v in BAD])
def test_vector_rejected(vector: dict) -> None:
    with pytest.raises(FrameError):
        rdm6300.parse(frame(vector))


def test_checksum_error_carries_both_values() -> None:
    with pytest.raises(ChecksumError) as info:
        rdm6300.parse(EXAMPLE[:11] + b"26" + EXAMPLE[13:])
    assert (info.value.expected, info.value.actual) == ("25", "26")


def test_example_verifies_and_builds() -> None:
    assert rdm6300.build(bytes.fromhex("010063e9ae")) == EXAMPLE
    assert len(EXAMPLE) == rdm6300.FRAME_BYTES


@pytest.mark.parametrize("vector", GOOD, ids=[v["name"] for v in GOOD])
def test_framer_whole_bytewise_and_joined(vector: dict) -> None:
    f = frame(vector)
    assert rdm6300.Rdm6300Framer().feed(f) == [f]
    framer = rdm6300.Rdm6300Framer()
    out = [x for b in f for x in framer.feed(bytes([b]))]
    assert out == [f]
    assert rdm6300.Rdm6300Framer().feed(f * 5) == [f] * 5


def test_framer_resyncs_on_garbage() -> None:
    framer = rdm6300.Rdm6300Framer()
    noise = b"\x00\xff\x02\x0201\x03\x02ABCDEFG" + b"\x02" + b"0" * 12 + b"\x04"
    assert framer.feed(noise + EXAMPLE + b"\r\n" + EXAMPLE) == [EXAMPLE, EXAMPLE]
    assert framer.discarded_bytes == len(noise) + 2
    assert framer.buffered_bytes == 0


@given(st.binary(max_size=200))
def test_framer_bounded_and_parse_raises_only_frame_error(data: bytes) -> None:
    framer = rdm6300.Rdm6300Framer()
    for f in framer.feed(data):
        with contextlib.suppress(FrameError):
            rdm6300.parse(f)
    assert framer.buffered_bytes < rdm6300.FRAME_BYTES


@given(st.binary(max_size=60))
def test_parse_random_bytes_raises_only_frame_error(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        rdm6300.parse(data)


@given(st.binary(min_size=5, max_size=5), st.lists(st.integers(0, 69), max_size=6))
def test_any_split_gives_same_frames(uid: bytes, cuts: list[int]) -> None:
    stream = b"\x00junk" + rdm6300.build(uid) * 4 + b"\x02tail"
    points = sorted({c % (len(stream) + 1) for c in cuts})
    framer = rdm6300.Rdm6300Framer()
    got: list[bytes] = []
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        got += framer.feed(stream[a:b])
    assert got == [rdm6300.build(uid)] * 4
    assert all(rdm6300.parse(f).data == uid for f in got)


def test_debouncer_one_read_per_presentation() -> None:
    d = Debouncer(hold_s=0.5)
    # tag held for 2 s: a frame every 50 ms
    accepted = [d.accept("A", i * 0.05) for i in range(40)]
    assert accepted.count(True) == 1
    assert d.accept("A", 1.95 + 0.6)  # taken away and presented again
    assert d.accept("B", 2.6)  # another card at once
    assert d.accept("A", 2.65)  # and back
    assert not d.accept("A", 2.7)
    d.reset()
    assert d.accept("A", 2.75)


def test_debouncer_clock_going_back_counts_as_new() -> None:
    d = Debouncer(hold_s=1.0)
    assert d.accept("A", 10.0)
    assert d.accept("A", 5.0)
    with pytest.raises(ValueError):
        Debouncer(-1)
