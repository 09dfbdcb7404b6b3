"""Yunmai Signal / Mini / SE (M1301, M1302, M1303): vendor frames on service 0xFFE0, characteristic
0xFFE4 (notify). See shared/reference/ble-families.md §5.4.

Frame: ``0D <protocol version> <length> <type> ... <check>``; ``length`` is the whole frame's size and
the check is the XOR of every byte after ``0D`` (both verified on the real frame of openScale#71).

- type 0x01, *measuring*: the live weight at bytes 8-9, big-endian, 0.01 kg. Never a weighing.
- type 0x02, *measured*: Unix time (5-8, big-endian), user id (9-12), weight (13-14, big-endian,
  0.01 kg), resistance (15-16, big-endian; Mini/SE; some SE units always send 0), body fat x100
  (17-18, big-endian; protocol version >= 0x1E). A measured frame with a weight above 0 is a weighing.
- other types: a valid frame, not a measurement (``DeviceReport``, not an error).

Not taken as measured values: the resistance is in ``fields`` only (its unit is UNKNOWN, and the
standard model's bytes 15-16 are not known to be a resistance at all); the device clock goes to
``device_time`` as UTC. Commands (service 0xFFE5 / 0xFFE9: SET_USER 0x10, SET_TIME 0x11,
GET_PROTOCOL_VERSION 0x13) are not needed to receive a weighing: the exchange only subscribes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

from ._vendor_frames import VendorFramer, check, require, u16be, u32be, xor8
from .bleuuid import full_uuid
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind

NAME = "yunmai"
SERVICE = full_uuid("ffe0")
MEASUREMENT = full_uuid("ffe4")
COMMAND_SERVICE = full_uuid("ffe5")
START = 0x0D
TYPE_MEASURING = 0x01
TYPE_MEASURED = 0x02
#: protocol versions from this one on carry the scale's body fat at bytes 17-18
FAT_FROM_PROTOCOL = 0x1E
NAMES = ("YUNMAI", "Yunmai", "yunmai")
MIN_MEASURING = 10
MIN_MEASURED = 16


def _valid(frame: bytes) -> bool:
    return len(frame) >= 5 and xor8(frame[1:-1]) == frame[-1]


def make_framer() -> VendorFramer:
    return VendorFramer(starts=bytes([START]), valid=_valid, length_index=2, min_size=5, max_size=32)


def parse(frame: bytes, channel: str = "") -> ParseResult:
    data = bytes(frame)
    require(len(data) >= 5, f"Yunmai frame too short ({len(data)} bytes)", data)
    require(data[0] == START, f"Yunmai frame must start with 0x0d, got 0x{data[0]:02x}", data)
    require(data[2] == len(data), f"Yunmai length byte says {data[2]}, frame has {len(data)} bytes", data)
    check(xor8(data[1:-1]), data[-1], data)
    version, kind = data[1], data[3]
    fields = {"protocol": f"0x{version:02x}", "type": f"0x{kind:02x}"}
    if kind == TYPE_MEASURING:
        require(len(data) >= MIN_MEASURING, "Yunmai measuring frame too short", data)
        raw = u16be(data, 8)
        fields.update(weight_raw=str(raw), weight_kg=f"{raw / 100:.2f}", phase="measuring")
        return Reading(NAME, Measurement(), stable=False, raw=data.hex(), fields=MappingProxyType(fields))
    if kind != TYPE_MEASURED:
        return DeviceReport(NAME, f"type_0x{kind:02x}", f"Yunmai frame type 0x{kind:02x}", data.hex(), is_error=False)
    require(len(data) >= MIN_MEASURED, f"Yunmai measured frame too short ({len(data)} bytes)", data)
    when_s = u32be(data, 5)
    user = u32be(data, 9)
    raw = u16be(data, 13)
    fields.update(weight_raw=str(raw), weight_kg=f"{raw / 100:.2f}", user_id=str(user), phase="measured")
    fields["time_s"] = str(when_s)
    fat: float | None = None
    if len(data) >= 18:
        fields["resistance_raw"] = str(u16be(data, 15))
    if len(data) >= 20 and version >= FAT_FROM_PROTOCOL:
        fat_raw = u16be(data, 17)
        fields["fat_raw"] = str(fat_raw)
        fat = fat_raw / 100 if fat_raw else None
    stable = raw > 0
    device_time = datetime.fromtimestamp(when_s, UTC).replace(tzinfo=None).isoformat() if when_s else None
    measurement = Measurement(weight_kg=raw / 100, fat_percent=fat) if stable else Measurement()
    return Reading(
        NAME, measurement, stable=stable, raw=data.hex(), device_time=device_time, fields=MappingProxyType(fields)
    )


SPEC = DriverSpec(
    name=NAME,
    summary="Yunmai Signal / Mini / SE vendor frames (0xFFE0 / 0xFFE4, XOR-checked 0x0D frames)",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=make_framer,
    models=("M1301 Signal", "M1302 Mini", "M1303 SE"),
    ble=BleMatcher(
        mode=BleMode.GATT,
        name_prefixes=NAMES,
        characteristics=(MEASUREMENT,),
        requires_connectable=True,
    ),
    notes={
        "frames": "0D <ver> <len> <type> ... XOR(bytes after 0D); type 2 with weight > 0 is a weighing",
        "resistance": "bytes 15-16 kept in fields only (unit unknown)",
        "matching": "by name (YUNMAI*): its services 0xFFE0/0xFFE5 are shared with other vendors",
    },
)
