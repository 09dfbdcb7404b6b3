from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.cards.keymap import KEY_DOWN, KEY_ENTER, KEY_KPENTER, KEY_REPEAT, KEY_UP, KEYMAP, KeyAccumulator

CODE = {v: k for k, v in KEYMAP.items() if not 71 <= k <= 82}  # char -> top-row / letter code
KEYPAD = {"7": 71, "8": 72, "9": 73, "4": 75, "5": 76, "6": 77, "1": 79, "2": 80, "3": 81, "0": 82}
LEFTSHIFT = 42


def type_text(acc: KeyAccumulator, text: str, t0: float = 0.0, enter: int = KEY_ENTER) -> list[str]:
    """Down and up for every key, 10 ms apart, like a reader."""
    out: list[str] = []
    t = t0
    for code in [CODE[c] for c in text] + [enter]:
        for value in (KEY_DOWN, KEY_UP):
            got = acc.feed(code, value, t)
            if got is not None:
                out.append(got)
        t += 0.01
    return out


def test_scancodes_not_layout() -> None:
    # KEY_1..KEY_9 = 2..10, KEY_0 = 11 whatever the keyboard layout says
    assert [KEYMAP[c] for c in range(2, 12)] == list("1234567890")
    assert [KEYMAP[c] for c in (30, 48, 46, 32, 18, 33)] == list("ABCDEF")


def test_usb_wedge_types_le_decimal_then_enter() -> None:
    assert type_text(KeyAccumulator(), "3220338716") == ["3220338716"]


def test_keypad_digits_and_kp_enter() -> None:
    acc = KeyAccumulator()
    for i, c in enumerate("0477688511"):
        assert acc.feed(KEYPAD[c], KEY_DOWN, i * 0.01) is None
    assert acc.feed(KEY_KPENTER, KEY_DOWN, 0.2) == "0477688511"


def test_hex_reader_with_shift() -> None:
    acc = KeyAccumulator()
    out = []
    for i, c in enumerate("1C78F2BF"):
        if c.isalpha():
            acc.feed(LEFTSHIFT, KEY_DOWN, i * 0.01)
        out.append(acc.feed(CODE[c], KEY_DOWN, i * 0.01))
    out.append(acc.feed(KEY_ENTER, KEY_DOWN, 0.1))
    assert [x for x in out if x] == ["1C78F2BF"]
    assert acc.ignored_keys == 0


def test_w26_comma() -> None:
    assert type_text(KeyAccumulator(), "142,27997") == ["142,27997"]


def test_repeat_and_up_are_ignored() -> None:
    acc = KeyAccumulator()
    acc.feed(CODE["5"], KEY_DOWN, 0.0)
    acc.feed(CODE["5"], KEY_REPEAT, 0.01)
    acc.feed(CODE["5"], KEY_UP, 0.02)
    assert acc.feed(KEY_ENTER, KEY_DOWN, 0.03) == "5"


def test_partial_input_times_out() -> None:
    acc = KeyAccumulator(timeout_s=0.5)
    type_text(acc, "", 0.0)
    for i, c in enumerate("32203"):
        acc.feed(CODE[c], KEY_DOWN, i * 0.01)
    assert acc.pending == 5
    # the reader stalls; 2 s later a full card arrives: the half card must not glue onto it
    assert type_text(acc, "3220338716", 2.0) == ["3220338716"]
    assert acc.dropped_partials == 1


def test_expire_by_tick() -> None:
    acc = KeyAccumulator(timeout_s=0.5)
    acc.feed(CODE["1"], KEY_DOWN, 0.0)
    assert not acc.expire(0.4)
    assert acc.expire(0.6)
    assert acc.pending == 0
    assert not acc.expire(5.0)


def test_too_long_input_is_dropped_up_to_enter() -> None:
    acc = KeyAccumulator(max_len=12)
    assert type_text(acc, "1" * 20) == []
    assert acc.dropped_partials == 1
    assert type_text(acc, "123", 1.0) == ["123"]


def test_bare_enter_and_unknown_keys() -> None:
    acc = KeyAccumulator()
    assert acc.feed(KEY_ENTER, KEY_DOWN, 0.0) is None
    acc.feed(57, KEY_DOWN, 0.01)  # space: noise, counted
    assert acc.ignored_keys == 1
    with pytest.raises(ValueError):
        KeyAccumulator(timeout_s=0)


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2), st.floats(0, 1)), max_size=100))
def test_random_events_never_exceed_max_len(events: list[tuple[int, int, float]]) -> None:
    acc = KeyAccumulator(max_len=16)
    t = 0.0
    for code, value, dt in events:
        t += dt
        got = acc.feed(code, value, t)
        assert got is None or 0 < len(got) <= 16
        assert acc.pending <= 16
