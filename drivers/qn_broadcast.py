"""QN / Renpho broadcast-only scales ("Variant 3" of the ES-CS20M family): the weight is in the
advertisement, no connection. See shared/reference/ble-families.md §5.1.

The payload is the manufacturer data of company id 0xFFFF (the id already stripped, as bleak gives
it): ``AA BB`` magic, the MAC (bytes 2-7, big-endian), byte 15 bit 5 = stable, bytes 17-18 = weight,
little-endian, 0.01 kg. Weight only. No real frame of this variant is in our sources: the layout is
the reference's (openScale QNHandlerBroadcast, ble-scale-sync renpho-broadcast), bytes 8-14 and 16
are UNKNOWN and kept in ``raw`` only.

A stable frame with a weight above 0 is a weighing; every other well-formed frame is a reading with
``stable=False`` and the live weight in ``fields``. The scale repeats its advertisement: the bridge
dedupes persistently on ``dedupe_key`` (device + payload). The payload carries no timestamp that we
know of, so two weighings with the same weight and the same unknown bytes get the same key (and the
second is taken as a repeat): a known limit, shared with every broadcast scale without a clock.

Company id 0xFFFF is the Bluetooth SIG's "reserved for testing" value, so other devices may use it:
a payload without the ``AA BB`` magic is a ``FrameError`` (counted as a rejected frame).
"""

from __future__ import annotations

from types import MappingProxyType

from ._vendor_frames import require, u16le
from .framing import PassthroughFramer
from .model import Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind

NAME = "qn_broadcast"
COMPANY_ID = 0xFFFF
MAGIC = b"\xaa\xbb"
MIN_SIZE = 19
STABLE_BIT = 0x20


def parse(frame: bytes, channel: str = "") -> ParseResult:
    data = bytes(frame)
    require(len(data) >= MIN_SIZE, f"QN broadcast payload too short ({len(data)} bytes, need {MIN_SIZE})", data)
    require(data[:2] == MAGIC, f"QN broadcast payload must start with AA BB, got {data[:2].hex()}", data)
    raw = u16le(data, 17)
    stable = bool(data[15] & STABLE_BIT) and raw > 0
    weight_kg = raw / 100
    fields = {
        "mac": ":".join(f"{b:02X}" for b in data[2:8]),
        "status": f"0x{data[15]:02x}",
        "weight_raw": str(raw),
        "weight_kg": f"{weight_kg:.2f}",
    }
    measurement = Measurement(weight_kg=weight_kg) if stable else Measurement()
    return Reading(NAME, measurement, stable, data.hex(), fields=MappingProxyType(fields))


def dedupe_key(address: str, payload: bytes) -> str:
    """Device + payload content (see the module docstring for the limit this has)."""
    return f"{NAME}:{address.strip().upper()}:{bytes(payload).hex()}"


SPEC = DriverSpec(
    name=NAME,
    summary="QN / Renpho broadcast-only scales (manufacturer data 0xFFFF, AA BB magic), weight only",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=PassthroughFramer,
    models=("Renpho / ES-CS20M broadcast variant",),
    dedupe_key=dedupe_key,
    ble=BleMatcher(mode=BleMode.BROADCAST, manufacturer_ids=frozenset({COMPANY_ID})),
    notes={
        "payload": "AA BB, MAC (2-7), byte 15 bit 5 stable, weight 17-18 LE / 100 kg",
        "dedupe": "dedupe_key(address, payload): device + payload (no timestamp in the payload)",
        "matching": "manufacturer data of company 0xFFFF (the SIG test id: others may use it)",
    },
)
