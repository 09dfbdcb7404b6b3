"""Lefu / Icomon / Fitdays scales on service 0xFFB0 (MGB/Swan, Hutbit, Robi S9, 1byone new,
FitTrack Dara, Healthkeep, Afu). See shared/reference/ble-families.md §5.6.

Service 0xFFB0: 0xFFB1 write, 0xFFB2 notify (live weight), 0xFFB3 indicate (final result 0xA3).
Only the **1byone-new dialect** is decoded, frames starting ``AB 2A``:

- type (byte 2) 0x80: weight, 24-bit big-endian at bytes 3-5, masked with 0x03FFFF, / 1000 kg. A
  live value (whether it is final is UNKNOWN): a reading with ``stable=False``.
- type 0x01: impedance, big-endian at bytes 4-5 (ohm). The weighing is the last 0x80 weight together
  with this impedance, emitted once (ble-scale-sync completes a reading on weight + impedance:
  INFERENCE that the impedance frame ends the measurement).
- type 0x00: a stored history record: not decoded, not a weighing.

Every other frame of the family (``AC ..`` dialects, the 0xA3 final result of the Healthkeep/MGB
dialect) is a valid notification that is not decoded: a non-error ``DeviceReport`` (their layouts
are not in our sources: UNKNOWN). No check byte is known for ``AB 2A`` frames, and no length byte,
so the framer passes each notification through whole.

**Not done**: the profile command ``AC 02 FB <sex> <age> <height> CC <sum>`` that unlocks the impedance
on some members needs a member's profile before the weighing (and the sum's range is UNKNOWN): the
exchange only subscribes, so those members deliver weight only, or nothing.
"""

from __future__ import annotations

from types import MappingProxyType

from ._vendor_frames import require, u16be
from .bleuuid import full_uuid
from .framing import PassthroughFramer
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind

NAME = "lefu_ffb0"
SERVICE = full_uuid("ffb0")
WRITE = full_uuid("ffb1")
NOTIFY = full_uuid("ffb2")
INDICATE = full_uuid("ffb3")
HEADER = b"\xab\x2a"
TYPE_WEIGHT = 0x80
TYPE_IMPEDANCE = 0x01
TYPE_HISTORY = 0x00
WEIGHT_MASK = 0x03FFFF
NAMES = ("1byone scale", "Hutbit", "Healthkeep", "Swan")


def _live(data: bytes) -> Reading:
    require(len(data) >= 6, f"AB 2A weight frame too short ({len(data)} bytes)", data)
    raw = int.from_bytes(data[3:6], "big") & WEIGHT_MASK
    fields = {"type": "0x80", "weight_raw": str(raw), "weight_kg": f"{raw / 1000:.3f}"}
    return Reading(NAME, Measurement(), False, data.hex(), fields=MappingProxyType(fields))


def _classify(data: bytes) -> int | None:
    """The AB 2A frame type, or None for a frame of another dialect."""
    require(len(data) >= 3, f"FFB0 notification too short ({len(data)} bytes)", data)
    return data[2] if data[:2] == HEADER else None


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Stateless view: a weight frame is live; an impedance frame alone is not a weighing."""
    results = LefuDecoder().decode(frame, channel)
    return results[0] if results else None


class LefuDecoder:
    def __init__(self) -> None:
        self._weight_raw: int | None = None

    def decode(self, frame: bytes, channel: str = "") -> list[Reading | DeviceReport]:
        data = bytes(frame)
        kind = _classify(data)
        if kind is None:
            code = f"frame_0x{data[0]:02x}"
            return [DeviceReport(NAME, code, f"FFB0 frame {data[:2].hex()} not decoded", data.hex(), is_error=False)]
        if kind == TYPE_WEIGHT:
            reading = _live(data)
            self._weight_raw = int(reading.fields["weight_raw"])
            return [reading]
        if kind == TYPE_IMPEDANCE:
            require(len(data) >= 6, f"AB 2A impedance frame too short ({len(data)} bytes)", data)
            impedance = u16be(data, 4)
            fields = {"type": "0x01", "impedance_raw": str(impedance)}
            weight_raw, self._weight_raw = self._weight_raw, None
            if weight_raw is None or weight_raw == 0 or impedance == 0:
                return [Reading(NAME, Measurement(), False, data.hex(), fields=MappingProxyType(fields))]
            fields.update(weight_raw=str(weight_raw), weight_kg=f"{weight_raw / 1000:.3f}")
            measurement = Measurement(weight_kg=weight_raw / 1000, impedance_ohm=float(impedance))
            return [Reading(NAME, measurement, True, data.hex(), fields=MappingProxyType(fields))]
        label = "history record" if kind == TYPE_HISTORY else f"type 0x{kind:02x}"
        return [DeviceReport(NAME, f"type_0x{kind:02x}", f"AB 2A {label}, not decoded", data.hex(), is_error=False)]


SPEC = DriverSpec(
    name=NAME,
    summary="Lefu / Icomon / Fitdays 0xFFB0 family: the 1byone-new AB 2A weight + impedance frames",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=PassthroughFramer,
    make_decoder=LefuDecoder,
    models=("1byone (new)", "MGB / Swan", "Hutbit", "Healthkeep 280 (frames not decoded)"),
    ble=BleMatcher(
        mode=BleMode.GATT,
        service_uuids=frozenset({SERVICE}),
        name_prefixes=NAMES,
        characteristics=(NOTIFY, INDICATE),
        requires_connectable=True,
    ),
    notes={
        "frames": "AB 2A 80: weight u24 BE & 0x3FFFF / 1000; AB 2A 01: impedance BE 4-5; others not decoded",
        "weighing": "the last weight together with the impedance frame",
        "matching": "service 0xFFB0 (this family's own) or a member's name",
    },
)
