from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.cards import binary_frame
from drivers.cards.binary_frame import BinaryFrameFramer, CardType
from drivers.cards.numbers import render
from drivers.errors import ChecksumError, FrameError

from .conftest import load_vectors

VECTORS = load_vectors("binary_frame.jsonl")
GOOD = [v for v in VECTORS if v["expect"] != "FrameError"]
BAD = [v for v in VECTORS if v["expect"] == "FrameError"]


@pytest.mark.parametrize("vector", GOOD, ids=[v["name"] for v in GOOD])
def test_vector_parses(vector: dict) -> None:
    read = binary_frame.parse(bytes.fromhex(vector["hex"]))
    got = {"card_type": int(read.card_type), "uid": read.uid.hex}
    for fmt in ("em4100", "w26"):
        if fmt in vector["expect"]:
            got[fmt] = render(read.uid, fmt)
    assert got == vector["expect"]


def test_example_is_an_em_card() -> None:
    read = binary_frame.parse(bytes.fromhex("020A0206008E6D5DB003"))
    assert read.card_type is CardType.EM4100
    assert render(read.uid, "em4100") == "0009334109"


@pytest.mark.parametrize("vector", BAD, ids=[v["name"] for v in BAD])
def test_vector_rejected(vector: dict) -> None:
    with pytest.raises(FrameError):
        binary_frame.parse(bytes.fromhex(vector["hex"]))


def test_bad_bcc_is_checksum_error() -> None:
    with pytest.raises(ChecksumError):
        binary_frame.parse(bytes.fromhex("020A0206008E6D5DB103"))


def test_unknown_card_type_is_kept() -> None:
    assert binary_frame.parse(binary_frame.build(7, b"\x01\x02\x03\x04\x05")).card_type == 7


@pytest.mark.parametrize("vector", GOOD, ids=[v["name"] for v in GOOD])
def test_framer_whole_bytewise_and_joined(vector: dict) -> None:
    f = bytes.fromhex(vector["hex"])
    assert BinaryFrameFramer().feed(f) == [f]
    framer = BinaryFrameFramer()
    assert [x for b in f for x in framer.feed(bytes([b]))] == [f]
    assert BinaryFrameFramer().feed(f * 5) == [f] * 5


def test_framer_drops_corrupt_frames_and_resyncs() -> None:
    good = bytes.fromhex("020A0206008E6D5DB003")
    bad = bytes.fromhex("020A0206008E6D5DB103")
    framer = BinaryFrameFramer()
    assert framer.feed(b"\x02\xff" + bad + good + b"\x00" + good) == [good, good]
    assert framer.discarded_bytes == 2 + len(bad) + 1


@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    framer = BinaryFrameFramer()
    for f in framer.feed(data):
        binary_frame.parse(f)  # the framer only emits frames that verify
    assert framer.buffered_bytes < binary_frame.MAX_FRAME
    with contextlib.suppress(FrameError):
        binary_frame.parse(data)


@given(st.sampled_from([1, 2]), st.binary(min_size=1, max_size=10), st.lists(st.integers(0, 80), max_size=6))
def test_build_parse_round_trip_any_split(kind: int, snr: bytes, cuts: list[int]) -> None:
    f = binary_frame.build(kind, snr)
    read = binary_frame.parse(f)
    assert (int(read.card_type), read.uid.data) == (kind, snr)
    stream = b"\x03\x02" + f * 3
    points = sorted({c % (len(stream) + 1) for c in cuts})
    framer = BinaryFrameFramer()
    got: list[bytes] = []
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        got += framer.feed(stream[a:b])
    assert got[-3:] == [f] * 3
