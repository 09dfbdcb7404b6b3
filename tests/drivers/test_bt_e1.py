"""drivers/bt_e1.py: the Bluetooth E1 function against the specification's sample data, and the
Jieli RCSP answer against every challenge/response pair captured from a QN scale (ble-scale-sync#235).
Vectors: tests/vectors/qn_scale/jieli_auth.json (each group cites its source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drivers import bt_e1

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "qn_scale" / "jieli_auth.json").read_text(encoding="utf-8")
)
SPEC = VECTORS["e1_spec"]["vectors"]
PAIRS = VECTORS["jieli_qn_captured"]["pairs"]


def test_the_vector_file_cites_real_sources() -> None:
    for group in ("e1_spec", "jieli_qn_captured", "ge_cs10g_challenge_frame"):
        assert VECTORS[group]["source"].startswith("REAL: "), group
    assert len(SPEC) == 4 and len(PAIRS) == 10


@pytest.mark.parametrize("vec", SPEC, ids=[v["key"][:8] for v in SPEC])
def test_e1_matches_the_specification_sample_data(vec: dict[str, str]) -> None:
    out = bt_e1.e1(bytes.fromhex(vec["key"]), bytes.fromhex(vec["rand"]), bytes.fromhex(vec["address"]))
    assert out[:4].hex() == vec["sres"]
    assert out[4:].hex() == vec["aco"]


@pytest.mark.parametrize("pair", PAIRS, ids=[p["challenge"][:8] for p in PAIRS])
def test_jieli_answer_reproduces_every_captured_pair(pair: dict[str, str]) -> None:
    assert bt_e1.jieli_answer(bytes.fromhex(pair["challenge"])).hex() == pair["response"]


def test_jieli_answer_is_e1_with_the_vendor_constants() -> None:
    challenge = bytes.fromhex(PAIRS[0]["challenge"])
    assert bt_e1.jieli_answer(challenge) == bt_e1.e1(bt_e1.JIELI_LINK_KEY, challenge, bt_e1.JIELI_ADDRESS)
    # the whole 16-byte E1 output is the answer, not SRES alone: a one-bit change of the key changes it
    other_key = bytes([bt_e1.JIELI_LINK_KEY[0] ^ 1]) + bt_e1.JIELI_LINK_KEY[1:]
    assert bt_e1.e1(other_key, challenge, bt_e1.JIELI_ADDRESS).hex() != PAIRS[0]["response"]


def test_round_keys_start_with_the_key_and_differ_after() -> None:
    key = bytes(range(16))
    keys = bt_e1.round_keys(key)
    assert len(keys) == 17 and keys[0] == key
    assert len(set(keys)) == 17 and all(len(k) == 16 for k in keys)


def test_ar_prime_differs_from_ar_by_the_round_3_feedback() -> None:
    zero, block = bytes(16), bytes(range(1, 17))
    assert bt_e1.ar(zero, zero) == bt_e1.ar_prime(zero, zero)  # feeding back a zero input adds nothing
    assert bt_e1.ar(zero, block) != bt_e1.ar_prime(zero, block)
    assert bt_e1.offset_key(zero) == bytes([233, 229, 223, 193, 179, 167, 149, 131] * 2)


@pytest.mark.parametrize(
    ("key", "rand", "address", "what"),
    [(15, 16, 6, "key"), (16, 17, 6, "rand"), (16, 16, 5, "address")],
)
def test_wrong_sizes_are_refused(key: int, rand: int, address: int, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        bt_e1.e1(bytes(key), bytes(rand), bytes(address))
    with pytest.raises(ValueError, match="challenge"):
        bt_e1.jieli_answer(bytes(17))
