from __future__ import annotations

import contextlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from drivers.cards.numbers import (
    DEFAULT_FALLBACKS,
    ByteOrder,
    CardNumberError,
    CardNumberFormat,
    CardUid,
    PlatformCard,
    ReaderFormat,
    candidate,
    fallbacks,
    from_platform,
    mask,
    parse,
    parse_fallbacks,
    platform_queries,
    render,
    to_platform,
)
from drivers.errors import FrameError

from .conftest import load_vectors

DEC = CardNumberFormat.DECIMAL
MSB = CardNumberFormat.HEX_MSB
LSB = CardNumberFormat.HEX_LSB
VECTORS = load_vectors("numbers.jsonl")


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vectors_render_every_format(vector: dict) -> None:
    uid = CardUid.from_hex(vector["uid"])
    for fmt, expected in vector["expect"].items():
        assert render(uid, fmt) == expected, fmt
        if expected is not None:
            # every rendering parses back to the ID (or the part of it the format carries)
            back = parse(expected, fmt)
            assert back.data in (uid.data, uid.data[-4:], uid.data[-3:], uid.data[:3])


@pytest.mark.parametrize("vector", [v for v in VECTORS if "platform" in v], ids=lambda v: v["name"])
def test_platform_example_round_trips(vector: dict) -> None:
    uid = CardUid.from_hex(vector["uid"])
    numbers = set()
    for fmt, expected in vector["platform"].items():
        got = to_platform(uid, "hex", "msb", platform_format=fmt)
        assert got == (expected, CardNumberFormat(fmt))
        numbers.add(from_platform(*got))
    assert numbers == {1173673668653440}


# ------------------------------------------------------------------------------------- scales.md §C


def test_usb_wedge_little_endian_decimal() -> None:
    uid = parse("3220338716", "decimal_le")
    assert uid.hex == "1c78f2bf"
    assert parse("477688511", "decimal") == uid
    assert parse("0477688511", "decimal10") == uid
    assert parse("1C78F2BF", "hex") == uid
    assert parse("BFF2781C", "hex_reversed") == uid


def test_first_cascade() -> None:
    assert parse("1002701960", "first_cascade").hex == "04c43b"
    assert render(CardUid.from_hex("04c43bc21c2680"), "first_cascade") == "1002701960"
    with pytest.raises(CardNumberError):
        parse("477688511", "first_cascade")  # low byte is not the cascade tag 0x88


def test_em4100_drops_version_byte() -> None:
    assert render(CardUid.from_hex("4500c5d1e9"), "em4100") == "0012964329"
    assert render(CardUid.from_hex("010063e9ae"), "em4100") == "0006547886"
    assert render(CardUid.from_hex("06008e6d5d"), "em4100") == "0009334109"
    assert parse("0009334109", "em4100").hex == "008e6d5d"


@pytest.mark.parametrize("text", ["142,27997", "14227997", " 142,27997\n"])
def test_w26_both_spellings(text: str) -> None:
    assert parse(text, "w26").hex == "8e6d5d"
    assert to_platform(text, "w26") == ("14227997", DEC)


def test_w26_concatenated_small_numbers() -> None:
    assert parse("100123", "w26").hex == "01007b"
    assert candidate(CardUid(bytes([1, 0, 123])), "w26") == ("100123", DEC)
    with pytest.raises(CardNumberError):
        parse("256,1", "w26")
    with pytest.raises(CardNumberError):
        parse("1,65536", "w26")


# ------------------------------------------------------------------------------------------- platform


def test_to_platform_byte_order() -> None:
    assert to_platform("3220338716", "decimal_le", "lsb") == ("3220338716", DEC)
    assert to_platform("3220338716", "decimal_le", "msb") == ("477688511", DEC)
    assert to_platform("1C78F2BF", "hex", "msb", platform_format="HEX_MSB") == ("1c78f2bf", MSB)
    assert to_platform("1C78F2BF", "hex", "lsb", platform_format="HEX_MSB") == ("bff2781c", MSB)
    assert to_platform("1C78F2BF", "hex", "msb", platform_format="HEX_LSB") == ("bff2781c", LSB)


def test_to_platform_keeps_the_readers_digits() -> None:
    # leading zeros are what the reader typed at enrolment; whether the platform ignores them is unknown
    assert to_platform("0477688511", "decimal10") == ("0477688511", DEC)
    assert to_platform("0009334109", "em4100") == ("0009334109", DEC)
    # but not when the number changes with the byte order
    assert to_platform("0477688511", "decimal10", "lsb") == ("3220338716", DEC)


def test_to_platform_partial_formats_ignore_byte_order() -> None:
    for order in ByteOrder:
        assert to_platform("1002701960", "first_cascade", order) == ("1002701960", DEC)
    assert to_platform("0009334109", "em4100", platform_format="HEX_MSB") == ("008e6d5d", MSB)


def test_to_platform_from_uid_bytes() -> None:
    em = CardUid.from_hex("06008e6d5d")
    assert to_platform(em, "em4100") == ("0009334109", DEC)
    assert to_platform(em, "w26") == ("14227997", DEC)
    assert to_platform(em, "hex", platform_format="HEX_MSB") == ("06008e6d5d", MSB)
    with pytest.raises(CardNumberError):
        to_platform(CardUid.from_hex("1c78f2bf"), "w26")


def test_fallbacks_default_order_without_duplicates() -> None:
    got = fallbacks("3220338716", "decimal_le", "lsb")
    assert got == [
        ("477688511", DEC),
        ("0477688511", DEC),
        ("1c78f2bf", MSB),
        ("bff2781c", MSB),
    ]
    assert ("3220338716", DEC) not in got  # the primary query is not repeated
    assert len(set(got)) == len(got)


def test_fallbacks_configured() -> None:
    em = "06008E6D5D"
    alts = parse_fallbacks(["em4100", "w26", "em4100", "first_cascade"])
    assert alts == (ReaderFormat.EM4100, ReaderFormat.W26, ReaderFormat.FIRST_CASCADE)
    assert fallbacks(em, "hex", alternatives=alts) == [("0009334109", DEC), ("14227997", DEC)]
    assert fallbacks(em, "hex", alternatives=()) == []


def test_parse_fallbacks_config_values() -> None:
    assert parse_fallbacks([]) == DEFAULT_FALLBACKS
    assert parse_fallbacks(["none"]) == ()
    with pytest.raises(ValueError, match="'octal'"):
        parse_fallbacks(["decimal", "octal"])


def test_fallbacks_are_stable() -> None:
    a = fallbacks("04C43BC21C2680", "hex", alternatives=list(ReaderFormat))
    b = fallbacks("04C43BC21C2680", "hex", alternatives=list(ReaderFormat))
    assert a == b
    assert ("1002701960", DEC) in a


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("", "decimal"),
        ("12a4", "decimal"),
        ("٣٢٢", "decimal"),  # non-ASCII digits
        ("12G4", "hex"),
        ("00" * 11, "hex"),
        ("9" * 26, "decimal"),
        ("99999999999", "em4100"),
        ("4294967296", "em4100"),
        ("1,2,3", "w26"),
    ],
)
def test_bad_texts_raise_card_number_error(text: str, fmt: str) -> None:
    with pytest.raises(CardNumberError) as info:
        parse(text, fmt)
    assert isinstance(info.value, FrameError)
    if len(text) > 4:
        assert text not in str(info.value)  # never a card number in a message


def test_unknown_format_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse("1", "octal")


def test_hex_separators_and_prefix() -> None:
    assert parse("1c:78:f2:bf", "hex").hex == "1c78f2bf"
    assert parse("0x1C78F2BF", "hex").hex == "1c78f2bf"
    assert parse("c78f2bf", "hex").hex == "0c78f2bf"


def test_mask() -> None:
    assert mask("3220338716") == "******8716"
    assert mask("8716") == "****"
    assert mask("") == ""
    assert "1c78f2bf" not in repr(CardUid.from_hex("1c78f2bf"))


# ------------------------------------------------------------------------------------------ properties

uids = st.sampled_from([3, 4, 5, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n)).map(CardUid)
full_id = [ReaderFormat.DECIMAL, ReaderFormat.DECIMAL_LE, ReaderFormat.HEX, ReaderFormat.HEX_REVERSED]


@given(uids, st.sampled_from(list(ReaderFormat)))
def test_render_parse_round_trip(uid: CardUid, fmt: ReaderFormat) -> None:
    text = render(uid, fmt)
    if text is None:
        return
    back = parse(text, fmt)
    if fmt in (ReaderFormat.HEX, ReaderFormat.HEX_REVERSED):
        assert back == uid
    elif fmt.partial:
        assert render(back, fmt) == text
    else:  # decimal forms lose leading zero bytes, never the value
        order = ByteOrder.LSB if fmt is ReaderFormat.DECIMAL_LE else ByteOrder.MSB
        assert back.as_int(order) == uid.as_int(order)


@given(uids, st.sampled_from(list(ByteOrder)), st.sampled_from(list(CardNumberFormat)))
def test_platform_formats_denote_one_number(uid: CardUid, order: ByteOrder, pfmt: CardNumberFormat) -> None:
    got = to_platform(uid, "hex", order, platform_format=pfmt)
    assert isinstance(got, PlatformCard)
    assert from_platform(*got) == uid.as_int(order)
    if pfmt is not DEC:
        assert len(got.card_number) == 2 * len(uid)  # hex keeps the UID's width


@given(uids, st.sampled_from(full_id), st.sampled_from(list(ByteOrder)))
def test_reader_text_and_bytes_agree(uid: CardUid, fmt: ReaderFormat, order: ByteOrder) -> None:
    text = render(uid, fmt)
    assert text is not None
    # decimal text does not carry the ID's width (leading zero bytes); hex does
    assume(len(parse(text, fmt)) == len(uid))
    assert from_platform(*to_platform(text, fmt, order)) == from_platform(*to_platform(uid, fmt, order))


@given(uids, st.lists(st.sampled_from(list(ReaderFormat))), st.sampled_from(list(ByteOrder)))
def test_fallbacks_never_duplicate(uid: CardUid, alts: list[ReaderFormat], order: ByteOrder) -> None:
    got = fallbacks(uid, "hex", order, alternatives=alts)
    assert len(got) == len(set(got))
    assert to_platform(uid, "hex", order) not in got


@given(st.text(max_size=30), st.sampled_from(list(ReaderFormat)))
def test_any_text_parses_or_raises_card_number_error(text: str, fmt: ReaderFormat) -> None:
    with contextlib.suppress(CardNumberError):
        parse(text, fmt)


# ---------------------------------------------------------------------- platform_queries (uploader API)


def test_platform_queries_primary_then_fallbacks() -> None:
    assert platform_queries("3220338716\n", "decimal_le", "lsb", "DECIMAL", []) == [
        ("3220338716", "DECIMAL"),
        ("477688511", "DECIMAL"),
        ("0477688511", "DECIMAL"),
        ("1c78f2bf", "HEX_MSB"),
        ("bff2781c", "HEX_MSB"),
    ]


def test_platform_format_names_as_fallbacks() -> None:
    # same number, other encodings: for a platform that stores hex strings
    got = platform_queries("042B73321A3180", "hex", "msb", "DECIMAL", ["HEX_MSB", "HEX_LSB", "DECIMAL"])
    assert got == [("1173673668653440", "DECIMAL"), ("042b73321a3180", "HEX_MSB"), ("80311a32732b04", "HEX_LSB")]


def test_platform_queries_em_fob_on_serial_reader() -> None:
    assert platform_queries("06008E6D5D", "hex", "msb", "DECIMAL", ["em4100", "w26"]) == [
        ("25779137885", "DECIMAL"),
        ("0009334109", "DECIMAL"),
        ("14227997", "DECIMAL"),
    ]


def test_platform_queries_never_raise_for_card_text() -> None:
    assert platform_queries(" 12AB ", "decimal", "msb", "DECIMAL", ["none"]) == [("12AB", "DECIMAL")]
    assert platform_queries("", "decimal") == []


@pytest.mark.parametrize(
    "args",
    [
        ("1", "octal", "msb", "DECIMAL", []),
        ("1", "decimal", "middle", "DECIMAL", []),
        ("1", "decimal", "msb", "BCD", []),
    ],
)
def test_platform_queries_reject_bad_config(args: tuple) -> None:
    with pytest.raises(ValueError):
        platform_queries(*args)
