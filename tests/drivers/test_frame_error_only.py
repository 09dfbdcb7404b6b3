"""H2 (issue 14): every framer/parser raises nothing but FrameError, whatever bytes arrive.

The audit found ``ad_indicator`` raising ``ValueError`` on one control byte after the sign, which
killed the daemon's scale link. These cases pin that class of bug for every serial and BLE driver:
control and whitespace bytes in number fields, huge digit runs (``int()`` refuses more than 4300
digits), odd hex, short structs, non-ASCII text. Plus the field-wise A&D / Kern / MT-SICS formats of
shared/reference/ble-families.md section 6.6.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers import FrameError, Reading
from drivers.registry import LinkKind, get, registry

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTROL = [bytes([c]) for c in (*range(0x00, 0x20), 0x7F)]
SERIAL = sorted(n for n, s in registry().items() if s.link is LinkKind.SERIAL)
BLE = sorted(n for n, s in registry().items() if s.link is LinkKind.BLE)

#: well-formed lines of each serial driver with a slot (``@``) where hostile text is injected
TEMPLATES: dict[str, list[bytes]] = {
    "ad_indicator": [
        b"ST,GS,+@075.40kg",
        b"ST,GS,@+0075.40kg",
        b"ST,+@01234.5 g",
        b"ST,GS,+0075.40@kg",
        b"ST,+002.4@kg",
    ],
    "mt_sics": [b"S S @ 100.00 g", b"S S 100.0@ g", b"S S 100.00 lb:@oz"],
    "tanita": [
        b'{0,16,MO,"MC-780",Wk,7@0.5,FW,20.1,',
        b'{0,16,DT,"0@/01/2024",Wk,70.5,',
        b"{0,16,Hf,5@-11,Wk,70.5,",
        b"E@",
        b"D@!",
    ],
    "tanita_bc418": [b'{0,16,~0,1,~1,1,~2,1,MO,"BC-418",DT,"01/0@/2024",Wk,7@0.5,'],
}
INJECT = [*CONTROL, b"\x85", b"\xa0", b"\xff", "\u0663".encode(), b"9" * 5000, b"1e308", b"nan", b"_1"]


def _decode_all(name: str, data: bytes) -> None:
    spec = get(name)
    framer, decoder = spec.make_framer(), spec.new_decoder()
    for frame in framer.feed(data):
        with contextlib.suppress(FrameError):
            decoder.decode(frame, "")
    with contextlib.suppress(FrameError):
        spec.parse(data, "")


@pytest.mark.parametrize("name", SERIAL)
def test_hostile_bytes_in_every_field_raise_only_frame_error(name: str) -> None:
    for template in TEMPLATES.get(name, [b"@"]):
        for bad in INJECT:
            line = template.replace(b"@", bad)
            _decode_all(name, line + b"\r\n")
            _decode_all(name, line)


def test_ad_indicator_control_byte_after_sign_is_a_frame_error() -> None:
    """The exact reproduction of H2: ``ST,GS,+\\t075.40kg`` raised ValueError."""
    spec = get("ad_indicator")
    for c in (b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f"):
        with pytest.raises(FrameError):
            spec.parse(b"ST,GS,+" + c + b"075.40kg", "")


@pytest.mark.parametrize(
    ("line", "kg", "stable"),
    [
        (b"ST,+002.40kg", 2.4, True),  # A&D platform scale "Format 2": no GS/NT field
        (b"US,+002.40kg", 2.4, False),
        (b"ST,GS,+0075.40  kg", 75.4, True),  # Kern: 4-character unit field
        (b"ST,GS,+0075.40 kg ", 75.4, True),
        (b"ST,NT,+0075.40  lb", 75.4 * 0.45359237, True),
        (b"ST,GS,+0075.40kg", 75.4, True),
        (b"ST,+001234.5 g", 1.2345, True),
    ],
)
def test_ad_indicator_parses_by_fields(line: bytes, kg: float, stable: bool) -> None:
    r = get("ad_indicator").parse(line, "")
    assert isinstance(r, Reading)
    assert r.measurement.weight_kg == pytest.approx(kg, abs=1e-6)
    assert r.stable is stable


@pytest.mark.parametrize(
    ("line", "kg"),
    [
        (b"S S     12:03 lb:oz", (12 + 3 / 16) * 0.45359237),
        (b"S S  12:3.5 lb:oz", (12 + 3.5 / 16) * 0.45359237),
        (b"S S  -1:3.5 lb:oz", -(1 + 3.5 / 16) * 0.45359237),
        (b"S S     100.00 g", 0.1),
    ],
)
def test_mt_sics_compound_units(line: bytes, kg: float) -> None:
    r = get("mt_sics").parse(line, "")
    assert isinstance(r, Reading) and r.stable
    assert r.measurement.weight_kg == pytest.approx(kg, abs=1e-6)


BAD_COMPOUND = [
    b"S S 12:99 lb:oz",
    b"S S 12:3:4 lb:oz",
    b"S S 12 lb:oz",
    b"S S 12:3 lb:oz:x",
    b"S S 12:\t3 lb:oz",
    b"S S 12:-3 lb:oz",
    b"S S 12:3 oz:lb",
]


@pytest.mark.parametrize("line", BAD_COMPOUND)
def test_mt_sics_bad_compound_is_a_frame_error(line: bytes) -> None:
    with pytest.raises(FrameError):
        get("mt_sics").parse(line, "")


@pytest.mark.parametrize("name", BLE)
@pytest.mark.parametrize("channel", ["", "2a9d", "2a9c", "181b", "181d", "not a uuid", "\x00", "0" * 5000])
def test_ble_payloads_of_any_length_raise_only_frame_error(name: str, channel: str) -> None:
    spec = get(name)
    for n in range(0, 40):
        for fill in (0x00, 0xFF, 0x7F, 0x80):
            dec = spec.new_decoder()
            with contextlib.suppress(FrameError):
                dec.decode(bytes([fill]) * n, channel)


CONTROL_SOUP = st.binary(max_size=40).map(lambda b: bytes(x % 0x30 for x in b))


@FAST
@given(st.sampled_from([(n, t) for n, ts in TEMPLATES.items() for t in ts]), CONTROL_SOUP)
def test_control_soup_in_templates_raises_only_frame_error(item: tuple[str, bytes], soup: bytes) -> None:
    name, template = item
    _decode_all(name, template.replace(b"@", soup) + b"\r\n")
