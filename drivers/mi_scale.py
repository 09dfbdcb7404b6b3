"""Xiaomi Mi Scale (v1: XMTZC01HM/XMTZC04HM) and Mi Body Composition Scale (v2: XMTZC02HM/XMTZC05HM/
NUN4049CN): readings broadcast in BLE advertisements, no connection. See shared/reference/scales.md §B3.

The payload is the advertisement's service data (AD type 0x16) with the UUID already stripped:

- v1, service 0x181D, 10 bytes: control (bit0 lb, bit4 catty, bit5 stabilised, bit6 "object" mode,
  bit7 load removed), weight uint16 LE, year uint16 LE, month, day, hour, minute, second.
- v2, service 0x181B, 13 bytes: control0 (bit0 lb, bit2 "object" mode), control1 (bit1 impedance
  present, bit5 stabilised, bit6 catty, bit7 load removed), year uint16 LE, month, day, hour, minute,
  second, impedance uint16 LE (ohm), weight uint16 LE.

Weight: kg = raw / 200; lb and catty = raw / 100 (converted here to kg: 1 lb = 0.45359237 kg,
1 catty = 0.5 kg).

**Acceptance rule** (the integrations disagree; this is the reference's proposal):

- a frame with *stabilised* set and a weight above 0 is a weighing (``stable=True``), whatever
  *load removed* says: after the person steps off, the scale keeps advertising the final result with
  that bit set, and rejecting it (as openScale and xiaomi-ble do) can drop a completed reading;
- impedance is taken only from frames with the impedance bit set and a value in 1..0xFFEF Ω: the
  values from 0xFFF0 up are sentinels (0xFFFD: BIA failed, e.g. socks; 0xFFFE: failed too), recorded in
  ``fields["impedance_error"]``, never an impedance (ble-families.md §6.3: Tasmota PR #25049 and real
  frames in public Mi Scale issues);
- weight 0xFFF0 is the scale's *overload* sentinel: a ``DeviceReport`` (``overload``), never a weighing;
- every other well-formed frame is a ``Reading`` with ``stable=False`` and an empty measurement (live
  weight, empty scale; the live weight is in ``fields``): never a weighing, but it shows in
  ``decode`` and logs.

The scale repeats the same advertisement for minutes; the bridge dedupes persistently with
``dedupe_key`` (device + payload content, including the payload's own timestamp).

**Matching** (``SPEC.ble``): this driver claims an advertisement by *service data* under 0x181D/0x181B
(``requires_service_data``), or by a Mi name. ``ble_standard`` claims GATT scales that list those
UUIDs among their services but carry no such service data and no Mi name, so neither shadows the other.
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType

from .bleuuid import full_uuid
from .errors import FrameError
from .framing import PassthroughFramer
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind
from .units import KG_PER_CATTY, KG_PER_LB

NAME = "mi_scale"
UUID_V1 = full_uuid("181d")
UUID_V2 = full_uuid("181b")
LEN_V1 = 10
LEN_V2 = 13
NAMES = ("MI_SCALE", "MISCA", "MIBCS", "MIBFS", "MI SCALE2")
MODEL_V1 = "Mi Scale (v1)"
MODEL_V2 = "Mi Body Composition Scale (v2)"

#: impedance values from here up are failure sentinels (0xFFFD BIA failed, 0xFFFE), not ohms
IMPEDANCE_SENTINELS = 0xFFF0
#: weight sentinel: overload
WEIGHT_OVERLOAD = 0xFFF0

# control bits
_V1_LB = 0x01
_V1_CATTY = 0x10
_STABILISED = 0x20
_V1_OBJECT = 0x40
_LOAD_REMOVED = 0x80
_V2_LB = 0x01
_V2_OBJECT = 0x04
_V2_IMPEDANCE = 0x02
_V2_CATTY = 0x40


def _version(payload: bytes, channel: str) -> int:
    if channel:
        try:
            uuid = full_uuid(channel)
        except ValueError:
            raise FrameError(f"channel {channel[:40]!r} is not a UUID", payload) from None
        if uuid == UUID_V1:
            expected, version = LEN_V1, 1
        elif uuid == UUID_V2:
            expected, version = LEN_V2, 2
        else:
            raise FrameError(f"service {channel[:40]} is not a Mi scale service (181d, 181b)", payload)
        if len(payload) != expected:
            raise FrameError(f"Mi scale v{version} payload must be {expected} bytes, got {len(payload)}", payload)
        return version
    if len(payload) == LEN_V1:
        return 1
    if len(payload) == LEN_V2:
        return 2
    raise FrameError(f"Mi scale payload must be {LEN_V1} (v1) or {LEN_V2} (v2) bytes, got {len(payload)}", payload)


def device_time(payload: bytes, offset: int) -> str | None:
    """The scale's clock (year uint16 LE, month, day, hour, minute, second) as ISO text; None if invalid."""
    year = int.from_bytes(payload[offset : offset + 2], "little")
    month, day, hour, minute, second = payload[offset + 2 : offset + 7]
    try:
        return datetime(year, month, day, hour, minute, second).isoformat()
    except ValueError:
        return None


def _unit(lb: bool, catty: bool, payload: bytes) -> tuple[str, float]:
    if lb and catty:
        raise FrameError("unit bits say both lb and catty", payload)
    if lb:
        return "lb", KG_PER_LB
    if catty:
        return "catty", KG_PER_CATTY
    return "kg", 1.0


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Decode one Mi scale service-data payload (UUID stripped). ``channel``: 181d / 181b (any form) or ""."""
    payload = bytes(frame)
    version = _version(payload, channel)
    fields: dict[str, str] = {"version": f"v{version}"}
    impedance: float | None = None
    if version == 1:
        control = payload[0]
        fields["control"] = f"0x{control:02x}"
        unit, kg_per_unit = _unit(bool(control & _V1_LB), bool(control & _V1_CATTY), payload)
        stabilised = bool(control & _STABILISED)
        removed = bool(control & _LOAD_REMOVED)
        object_mode = bool(control & _V1_OBJECT)
        raw_weight = int.from_bytes(payload[1:3], "little")
        when = device_time(payload, 3)
        model = MODEL_V1
    else:
        control0, control1 = payload[0], payload[1]
        fields["control"] = f"0x{control0:02x}{control1:02x}"
        unit, kg_per_unit = _unit(bool(control0 & _V2_LB), bool(control1 & _V2_CATTY), payload)
        stabilised = bool(control1 & _STABILISED)
        removed = bool(control1 & _LOAD_REMOVED)
        object_mode = bool(control0 & _V2_OBJECT)
        has_impedance = bool(control1 & _V2_IMPEDANCE)
        raw_impedance = int.from_bytes(payload[9:11], "little")
        fields["impedance_present"] = "1" if has_impedance else "0"
        if has_impedance and 0 < raw_impedance < IMPEDANCE_SENTINELS:
            impedance = float(raw_impedance)
            fields["impedance_ohm"] = str(raw_impedance)
        elif has_impedance and raw_impedance >= IMPEDANCE_SENTINELS:
            fields["impedance_error"] = f"0x{raw_impedance:04x}"
        raw_weight = int.from_bytes(payload[11:13], "little")
        when = device_time(payload, 2)
        model = MODEL_V2
    if raw_weight == WEIGHT_OVERLOAD:
        return DeviceReport(NAME, "overload", "the scale reports overload (weight 0xFFF0)", payload.hex())
    in_unit = raw_weight / (200 if unit == "kg" else 100)
    weight_kg = in_unit * kg_per_unit
    fields.update(
        {
            "unit": unit,
            "weight_raw": str(raw_weight),
            "weight": f"{in_unit:g}",
            "stabilised": "1" if stabilised else "0",
            "load_removed": "1" if removed else "0",
            "object_mode": "1" if object_mode else "0",
        }
    )
    fields["weight_kg"] = f"{weight_kg:.3f}"
    stable = stabilised and raw_weight > 0
    # Only a weighing carries a measurement: a live (non-stabilised) weight or an empty scale stays in
    # ``fields``, so a frame's weighing body is empty unless it is a weighing (never an invented zero).
    measurement = Measurement(weight_kg=round(weight_kg, 4), impedance_ohm=impedance) if stable else Measurement()
    return Reading(
        driver=NAME,
        measurement=measurement,
        stable=stable,
        raw=payload.hex(),
        device_time=when,
        model=model,
        fields=MappingProxyType(fields),
    )


def dedupe_key(address: str, payload: bytes) -> str:
    """Persistent dedupe key of one broadcast: device address + payload content.

    The content includes the payload's own timestamp, weight, unit and impedance, so a later weighing
    with the same weight still gets a new key. The *load removed* bit is masked out: the scale goes on
    advertising the final result with it set after the person steps off, and that is the same weighing.
    Payloads of any other length are keyed on their full content.
    """
    data = bytearray(payload)
    if len(data) == LEN_V1:
        data[0] &= ~_LOAD_REMOVED & 0xFF
    elif len(data) == LEN_V2:
        data[1] &= ~_LOAD_REMOVED & 0xFF
    return f"{NAME}:{address.strip().upper()}:{data.hex()}"


SPEC = DriverSpec(
    name=NAME,
    summary="Xiaomi Mi Scale v1 (181D) and Mi Body Composition Scale v2 (181B) advertisements",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=PassthroughFramer,
    models=("XMTZC01HM", "XMTZC04HM", "XMTZC02HM", "XMTZC05HM", "NUN4049CN"),
    dedupe_key=dedupe_key,
    ble=BleMatcher(
        mode=BleMode.BROADCAST,
        service_uuids=frozenset({UUID_V1, UUID_V2}),
        name_prefixes=NAMES,
        requires_service_data=True,
    ),
    notes={
        "acceptance": "stabilised and weight > 0 is a weighing, whatever load-removed says; "
        "impedance only with its bit set",
        "dedupe": "dedupe_key(address, payload): device + payload content without the load-removed bit",
        "matching": "service data under 181d/181b, or a Mi name",
    },
)
