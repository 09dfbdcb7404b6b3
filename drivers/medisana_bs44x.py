"""Medisana BS430 / BS440 / BS444 (Transtek): service 0x78B2. See shared/reference/ble-families.md §5.5.

Characteristics: 0x8A21 weight (indicate), 0x8A22 feature / composition (indicate), 0x8A82
(indicate), 0x8A81 command (write), 0x8A20 (read). The scale sends its stored results once it is
unlocked with ``02 <timestamp u32 LE>`` on 0x8A81; the timestamp's epoch depends on the model:
2010-01-01 on the BS444/BS440 (names ``013197``, ``013198``, ``0202B6``), Unix on the BS430 (``0203B``
...). A name that says neither gets Unix seconds (as ble-scale-sync does; INFERENCE).

- Weight frame (0x8A21): byte 0 flags, bits 5-6 the unit (00 kg, 01 lb, 10 st:lb); bytes 1-2 the
  weight, little-endian, 0.01 in kg; bytes 5-8 the scale's timestamp (little-endian, epoch by model);
  byte 13 the user (1-8; 0xFF none). Verified: the wiki's ``1d 80 25`` prefix gives 96.00 kg. The
  divisor for lb and st:lb is UNKNOWN: such a frame is a reading with the raw value in ``fields``,
  never a weighing.
- Feature frame (0x8A22, 16 bytes or more): fat % at 8, water % at 10, muscle % at 12, bone (kg) at 14,
  each ``(u16 LE & 0x0FFF) / 10``. It carries no weight: a reading that is never a weighing (the
  weighing is the weight frame, emitted as it comes, never held back for its composition).
- Other characteristics: a non-error ``DeviceReport``.

The scale's timestamp is kept raw in ``fields`` (the decoder does not know the model, so not its epoch).
"""

from __future__ import annotations

from types import MappingProxyType

from ._vendor_frames import require, u16le, u32le
from .bleuuid import full_uuid
from .errors import FrameError
from .framing import PassthroughFramer
from .gatt import Action, ExchangeContext, StartOnly, Subscribe, Write, offered
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind

NAME = "medisana_bs44x"
SERVICE = full_uuid("78b2")
WEIGHT = full_uuid("8a21")
FEATURE = full_uuid("8a22")
COMMAND = full_uuid("8a81")
CUSTOM = full_uuid("8a82")
#: 2010-01-01T00:00:00Z as Unix seconds
EPOCH_2010_S = 1_262_304_000
NAMES_2010_EPOCH = ("013197", "013198", "0202B6", "0202b6")
NAMES_UNIX_EPOCH = ("0203B", "0203b")
UNITS = {0: "kg", 1: "lb", 2: "st:lb", 3: "unknown"}
UNLOCK = 0x02


def _weight(data: bytes) -> Reading:
    require(len(data) >= 3, f"Medisana weight frame too short ({len(data)} bytes)", data)
    flags = data[0]
    unit = UNITS[(flags >> 5) & 0x03]
    raw = u16le(data, 1)
    fields = {"flags": f"0x{flags:02x}", "unit": unit, "weight_raw": str(raw)}
    if len(data) >= 9:
        fields["timestamp_raw"] = str(u32le(data, 5))
    user: int | None = None
    if len(data) >= 14:
        fields["user"] = str(data[13])
        user = data[13] if 1 <= data[13] <= 8 else None
    if unit != "kg":
        fields["divisor"] = "unknown"
        return Reading(NAME, Measurement(), False, data.hex(), user_index=user, fields=MappingProxyType(fields))
    weight_kg = raw / 100
    fields["weight_kg"] = f"{weight_kg:.2f}"
    stable = raw > 0
    measurement = Measurement(weight_kg=weight_kg) if stable else Measurement()
    return Reading(NAME, measurement, stable, data.hex(), user_index=user, fields=MappingProxyType(fields))


def _feature(data: bytes) -> Reading:
    require(len(data) >= 16, f"Medisana feature frame too short ({len(data)} bytes, need 16)", data)

    def tenth(offset: int) -> float:
        return (u16le(data, offset) & 0x0FFF) / 10

    fat, water, muscle, bone = tenth(8), tenth(10), tenth(12), tenth(14)
    fields = {"fat_percent": f"{fat:.1f}", "water_percent": f"{water:.1f}", "muscle_percent": f"{muscle:.1f}"}
    fields["bone_kg"] = f"{bone:.1f}"
    measurement = Measurement(
        fat_percent=fat or None,
        total_body_water_percent=water or None,
        muscle_percent=muscle or None,
        bone_mass_kg=bone or None,
    )
    return Reading(NAME, measurement, False, data.hex(), fields=MappingProxyType(fields))


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """One indication. ``channel``: 8a21 (weight), 8a22 (feature), or "" (by length: 16+ is a feature)."""
    data = bytes(frame)
    try:
        uuid = full_uuid(channel) if channel else ""
    except ValueError:
        raise FrameError(f"channel {channel[:40]!r} is not a UUID", data) from None
    if uuid == WEIGHT or (not uuid and len(data) < 16):
        return _weight(data)
    if uuid == FEATURE or not uuid:
        return _feature(data)
    return DeviceReport(NAME, "other", f"Medisana indication on {channel[:40]}", data.hex(), is_error=False)


def epoch_for(name: str | None) -> int:
    """Unix seconds of the epoch the named model counts from (2010 for BS444/BS440, else Unix)."""
    if name and name.startswith(NAMES_2010_EPOCH):
        return EPOCH_2010_S
    return 0


def unlock_command(name: str | None, wall_time_s: float) -> bytes:
    seconds = max(0, int(wall_time_s) - epoch_for(name)) & 0xFFFFFFFF
    return bytes([UNLOCK]) + seconds.to_bytes(4, "little")


class MedisanaExchange(StartOnly):
    """Subscribe to the three indications, then write the unlock (time) command."""

    def __init__(self, context: ExchangeContext) -> None:
        self._subscribe = offered(context, (WEIGHT, FEATURE, CUSTOM))
        self._name = context.name
        self._wall_time_s = context.wall_time_s

    def start(self, *, now_s: float) -> list[Action]:
        actions: list[Action] = [Subscribe(u) for u in self._subscribe]
        if self._wall_time_s is not None:
            actions.append(Write(COMMAND, unlock_command(self._name, self._wall_time_s)))
        return actions


def make_exchange(context: ExchangeContext) -> MedisanaExchange:
    return MedisanaExchange(context)


SPEC = DriverSpec(
    name=NAME,
    summary="Medisana BS430/BS440/BS444 (Transtek 0x78B2): weight and composition indications",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=PassthroughFramer,
    make_exchange=make_exchange,
    models=("BS430", "BS440", "BS444"),
    ble=BleMatcher(
        mode=BleMode.GATT,
        service_uuids=frozenset({SERVICE}),
        name_prefixes=NAMES_2010_EPOCH + NAMES_UNIX_EPOCH,
        characteristics=(WEIGHT, FEATURE, CUSTOM),
        requires_connectable=True,
    ),
    notes={
        "unlock": "02 <u32 LE seconds> to 8a81; epoch 2010 for 013197/013198/0202B6, else Unix",
        "weight": "8a21: bytes 1-2 LE / 100 kg (lb, st:lb: divisor unknown, not a weighing)",
        "feature": "8a22: fat/water/muscle/bone (u16 LE & 0x0FFF) / 10, never a weighing",
        "matching": "service 0x78B2 or a Medisana serial-number name",
    },
)
