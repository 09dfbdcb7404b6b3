"""Bluetooth SIG standard scales: Weight Scale Service 0x181D / Weight Measurement 0x2A9D and Body
Composition Service 0x181B / Body Composition Measurement 0x2A9C. Both measurements are *indicated*.
See shared/reference/scales.md §B1 and §B2 (the flag table there, not RonanB96's muscle bit order).

Weight Measurement (2A9D): flags uint8 (bit0 imperial, bit1 time stamp, bit2 user id, bit3 BMI and
height), weight uint16 (x0.005 kg or x0.01 lb; 0xFFFF = measurement unsuccessful -> not a weighing),
[time stamp 7 bytes], [user id uint8, 0xFF = unknown], [BMI uint16 x0.1, height uint16 x0.001 m or x0.1 in].

Body Composition Measurement (2A9C): flags uint16 (bit0 imperial, bit1 time stamp, bit2 user id,
bit3 basal metabolism, bit4 muscle %, bit5 muscle mass, bit6 fat-free mass, bit7 soft lean mass,
bit8 body water mass, bit9 impedance, bit10 weight, bit11 height, bit12 multiple packet), then body
fat % (always; x0.1; 0xFFFF = unsuccessful) and the present fields in that order. Basal metabolism is
in kJ (-> kcal / 4.1868), impedance x0.1 ohm, masses x0.005 kg or x0.01 lb. 0xFFFF in any other
16-bit field means "unavailable": the field is omitted (never 6553.5).

Mapping: BCM "muscle mass" / "muscle percentage" are not skeletal muscle -> ``muscle_mass_kg`` /
``muscle_percent``; soft lean mass -> ``soft_lean_mass_kg``; body water mass -> ``total_body_water_kg``.

**Multi-packet records and merging** (``BleStandardDecoder``, one per connection):

- A record too long for one indication is split; each packet carries the flags (bit 12 set) and the
  body fat %, then the fields it holds, in the fixed order. The largest record is 30 bytes and every
  packet holds 20 at the minimum ATT_MTU (23), so a record never needs more than two packets;
  time stamp and user id usually come only in the first (chip vendors' BCS servers do so).
- Packets are merged per user id; a packet without a user id joins the most recent pending record.
  A packet joins a pending record only if it *continues* it: same units, and every field it holds comes
  after the last field the record holds. Otherwise the pending record is closed and a new one starts.
- A record is **complete** when (a) a packet without bit 12 arrives (a record of its own, or the last
  packet of the pending one), or (b) a second packet with bit 12 arrives, or (c) it holds the height,
  the last field, after which nothing can follow.
- **Cap**: at most 4 records are held, and a held record is released after 8 further frames on the
  link (or on ``flush()`` at disconnect). A released pending record is emitted as it stands, marked
  ``fields["incomplete"] = "1"``: a lost packet never holds state or a weight for long.
- A complete record **with** a weight is emitted at once (a weighing is never held back). A complete
  record **without** weight is held: if a Weight Measurement for the same user (equal user ids, or
  one of them unknown) and the same time stamp (when both carry one) follows on the same connection,
  the weight, BMI and height are merged into it
  and the merged reading is emitted once; otherwise it is emitted without weight (not a weighing) when
  released by the cap or by ``flush()``.
- A Weight Measurement that repeats the weight (within 0.1 kg: its resolution may be coarser) of the
  record just emitted for the same user, within 8 frames, is the same weighing and is not emitted
  again (the platform has no dedupe).
- A Weight Measurement that does not complete a held record is **held** for the body composition
  that may follow it (Beurer sends 0x2A9D, then 0x2A9C without weight): a complete record without
  weight for the same user and time stamp (as above) takes its weight, and the two are emitted once,
  as one weighing. The pairing window is the cap's: the held weight is emitted on its own (a weighing,
  weight only) after 8 further frames, when a new weight of the same user arrives, by the cap, or by
  ``flush()`` at the end of the connection (the BLE link ends every GATT session with a
  ``session_end`` event on which the bridge flushes the decoder; a replay and ``decode`` flush at the
  end of their input). A held weight is never dropped: the only cost is the wait. A repeat (same
  payload) of a held weight is not held twice. Soehnle Shape50 (composition dropped by its quirk):
  emitted at once.

``parse`` is the stateless view of one frame: a packet with bit 12 set is returned with
``stable=False`` (a part of a record). The Weight Scale Feature (2A9E) and Body Composition Feature
(2A9B) characteristics are decoded by ``decode_feature`` / ``decode_bc_feature``; fed to ``parse`` they
give a non-error ``DeviceReport``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from .bleuuid import full_uuid, short_uuid
from .errors import FrameError
from .framing import PassthroughFramer
from .gatt import DEVICE_NAME, Action, ExchangeContext, ExchangeError, Read, Subscribe, Write, int_setting
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind
from .units import CM_PER_INCH, KG_PER_LB, KJ_PER_KCAL_IT

NAME = "ble_standard"
WEIGHT_SCALE_SERVICE = full_uuid("181d")
BODY_COMPOSITION_SERVICE = full_uuid("181b")
WEIGHT_MEASUREMENT = full_uuid("2a9d")
BODY_COMPOSITION_MEASUREMENT = full_uuid("2a9c")
WEIGHT_SCALE_FEATURE = full_uuid("2a9e")
BODY_COMPOSITION_FEATURE = full_uuid("2a9b")
USER_CONTROL_POINT = full_uuid("2a9f")
DATABASE_CHANGE_INCREMENT = full_uuid("2a99")
CURRENT_TIME = full_uuid("2a2b")
#: Xiaomi's vendor characteristic: a device offering it is a Mi scale, never a standard one
MI_VENDOR_CHARACTERISTIC = "00002a2f-0000-3512-2118-0009af100700"
#: Names of broadcast scales that advertise the same service UUIDs (drivers/mi_scale.py)
MI_NAMES = ("MI_SCALE", "MISCA", "MIBCS", "MIBFS", "MI SCALE2")
#: how long the scale may take to answer the consent (s)
CONSENT_TIMEOUT_S = 10.0
UCP_CONSENT = 0x02
UCP_RESPONSE = 0x20
UCP_RESULTS = {
    0x01: "success",
    0x02: "op code not supported",
    0x03: "invalid parameter",
    0x04: "operation failed",
    0x05: "user not authorized (wrong consent_code, or the user slot was wiped, e.g. batteries removed)",
}
HUAMI_COMPANY_ID = 0x0157
UNAVAILABLE = 0xFFFF
MAX_HELD_RECORDS = 4
MAX_HELD_FRAMES = 8
#: a WSM this close to the weight of the BCM just emitted repeats it (covers a coarser WSM resolution)
SAME_WEIGHT_KG = 0.1001

# Body Composition Measurement flags
BCM_IMPERIAL = 1 << 0
BCM_TIME = 1 << 1
BCM_USER = 1 << 2
BCM_MULTI_PACKET = 1 << 12
# (bit, order, attribute, kind): kind "pct" x0.1, "kj" kJ, "mass", "ohm" x0.1, "height"
_BCM_FIELDS: tuple[tuple[int, int, str, str], ...] = (
    (3, 4, "bmr_kcal", "kj"),
    (4, 5, "muscle_percent", "pct"),
    (5, 6, "muscle_mass_kg", "mass"),
    (6, 7, "fat_free_mass_kg", "mass"),
    (7, 8, "soft_lean_mass_kg", "mass"),
    (8, 9, "total_body_water_kg", "mass"),
    (9, 10, "impedance_ohm", "ohm"),
    (10, 11, "weight_kg", "mass"),
    (11, 12, "height_cm", "height"),
)
_HEIGHT_ORDER = 12

# Weight Measurement flags
WSM_IMPERIAL = 1 << 0
WSM_TIME = 1 << 1
WSM_USER = 1 << 2
WSM_BMI_HEIGHT = 1 << 3

_WEIGHT_RESOLUTION_KG = (None, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)
_WEIGHT_RESOLUTION_LB = (None, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
_HEIGHT_RESOLUTION_M = (None, 0.01, 0.005, 0.001)
_HEIGHT_RESOLUTION_IN = (None, 1.0, 0.5, 0.1)


# --------------------------------------------------------------------------- one packet


@dataclass(slots=True)
class Packet:
    """One decoded indication (2A9D or 2A9C), values already in SI units."""

    characteristic: str  # "2a9d" | "2a9c"
    payload: bytes
    flags: int
    imperial: bool
    multi_packet: bool = False
    unsuccessful: bool = False
    user_id: int | None = None
    time: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    #: positions (in the BCM field order, 4..12) of the optional fields this packet holds
    orders: list[int] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


class _Cursor:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.at = 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > len(self.payload):
            raise FrameError(
                f"truncated: {what} needs {n} byte(s) at offset {self.at}, frame has {len(self.payload)}",
                self.payload,
            )
        chunk = self.payload[self.at : self.at + n]
        self.at += n
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")


def date_time(raw: bytes) -> str | None:
    """GATT Date Time (year uint16 LE, month, day, hours, minutes, seconds) -> ISO text, no zone.

    Year, month or day 0 mean "not known"; those and impossible dates give None.
    """
    year = int.from_bytes(raw[0:2], "little")
    month, day, hour, minute, second = raw[2:7]
    if year == 0 or month == 0 or day == 0:
        return None
    try:
        return datetime(year, month, day, hour, minute, second).isoformat()
    except ValueError:
        return None


def _mass_kg(raw: int, imperial: bool, scale: int = 1) -> float:
    """``scale``: 1 for the specification's 0.005 kg / 0.01 lb; 10 for Renpho's 0.05 kg / 0.1 lb."""
    return round(raw * 0.01 * scale * KG_PER_LB, 4) if imperial else round(raw * 0.005 * scale, 4)


def _mass_text(raw: int, imperial: bool, scale: int = 1) -> str:
    return f"{raw * 0.01 * scale:.2f}" if imperial else f"{raw * 0.005 * scale:.3f}"


def _height_cm(raw: int, imperial: bool) -> float:
    return round(raw * 0.1 * CM_PER_INCH, 2) if imperial else round(raw * 0.1, 2)


def _time_and_user(cur: _Cursor, packet: Packet, has_time: bool, has_user: bool) -> None:
    if has_time:
        packet.time = date_time(cur.take(7, "time stamp"))
        packet.fields["time"] = packet.time or "unknown"
    if has_user:
        uid = cur.u8("user id")
        packet.user_id = None if uid == 0xFF else uid
        packet.fields["user_id"] = "unknown" if uid == 0xFF else str(uid)


def _unavailable(packet: Packet, label: str) -> None:
    seen = packet.fields.get("unavailable")
    packet.fields["unavailable"] = label if not seen else f"{seen},{label}"


def decode_weight_measurement(payload: bytes, mass_scale: int = 1) -> Packet:
    cur = _Cursor(payload)
    flags = cur.u8("flags")
    imperial = bool(flags & WSM_IMPERIAL)
    packet = Packet("2a9d", payload, flags, imperial)
    packet.fields.update({"characteristic": "2a9d", "flags": f"0x{flags:02x}", "unit": _unit_name(imperial)})
    weight = cur.u16("weight")
    _time_and_user(cur, packet, bool(flags & WSM_TIME), bool(flags & WSM_USER))
    if weight == UNAVAILABLE:
        packet.unsuccessful = True
        packet.fields["weight"] = "unsuccessful"
        return packet  # the spec leaves out BMI and height in this case; ignore what may follow
    packet.values["weight_kg"] = _mass_kg(weight, imperial, mass_scale)
    packet.fields["weight_lb" if imperial else "weight_kg"] = _mass_text(weight, imperial, mass_scale)
    if flags & 0xF0:
        packet.fields["reserved_flags"] = f"0x{flags & 0xF0:02x}"
    if flags & WSM_BMI_HEIGHT:
        bmi = cur.u16("BMI")
        height = cur.u16("height")
        if bmi == UNAVAILABLE:
            _unavailable(packet, "bmi")
        else:
            packet.values["bmi"] = round(bmi * 0.1, 2)
            packet.fields["bmi"] = f"{bmi * 0.1:.1f}"
        if height == UNAVAILABLE:
            _unavailable(packet, "height")
        else:
            packet.values["height_cm"] = _height_cm(height, imperial)
            packet.fields["height_in" if imperial else "height_m"] = (
                f"{height * 0.1:.1f}" if imperial else f"{height * 0.001:.3f}"
            )
    _trailing(cur, packet)
    return packet


def is_history_stub(payload: bytes) -> bool:
    """An all-zero Body Composition Measurement (flags aside): the history backfill stubs Beurer /
    Sanitas scales interleave (ble-families.md §5.2b, §6.4). Not a measurement. A packet of a
    multi-packet record (bit 12) is never a stub: it is part of a record."""
    flags = int.from_bytes(payload[:2], "little")
    return len(payload) >= 4 and not flags & BCM_MULTI_PACKET and not any(payload[2:])


def decode_body_composition(payload: bytes, mass_scale: int = 1) -> Packet:
    cur = _Cursor(payload)
    flags = cur.u16("flags")
    imperial = bool(flags & BCM_IMPERIAL)
    packet = Packet("2a9c", payload, flags, imperial, multi_packet=bool(flags & BCM_MULTI_PACKET))
    packet.fields.update({"characteristic": "2a9c", "flags": f"0x{flags:04x}", "unit": _unit_name(imperial)})
    if packet.multi_packet:
        packet.fields["multi_packet"] = "1"
    fat = cur.u16("body fat percentage")
    if fat == UNAVAILABLE:
        packet.unsuccessful = True
        packet.fields["fat_percent"] = "unsuccessful"
    else:
        packet.values["fat_percent"] = round(fat * 0.1, 2)
        packet.fields["fat_percent"] = f"{fat * 0.1:.1f}"
    _time_and_user(cur, packet, bool(flags & BCM_TIME), bool(flags & BCM_USER))
    for bit, order, attr, kind in _BCM_FIELDS:
        if not flags & (1 << bit):
            continue
        raw = cur.u16(attr)
        packet.orders.append(order)
        label = _bcm_label(attr, kind, imperial)
        if raw == UNAVAILABLE:
            _unavailable(packet, label)
            continue
        packet.values[attr], packet.fields[label] = _bcm_value(raw, kind, imperial, mass_scale)
    _trailing(cur, packet)
    return packet


def _bcm_label(attr: str, kind: str, imperial: bool) -> str:
    """The ``fields`` name of a Body Composition value, with the unit it was sent in."""
    if kind == "mass":
        return attr.removesuffix("_kg") + ("_lb" if imperial else "_kg")
    if kind == "height":
        return "height_in" if imperial else "height_m"
    if kind == "kj":
        return "bmr_kj"
    return attr


def _bcm_value(raw: int, kind: str, imperial: bool, mass_scale: int) -> tuple[float, str]:
    """A Body Composition value in our units, and its text as sent."""
    if kind in ("pct", "ohm"):
        return round(raw * 0.1, 2), f"{raw * 0.1:.1f}"
    if kind == "kj":
        return round(raw / KJ_PER_KCAL_IT, 1), str(raw)
    if kind == "mass":
        return _mass_kg(raw, imperial, mass_scale), _mass_text(raw, imperial, mass_scale)
    return _height_cm(raw, imperial), (f"{raw * 0.1:.1f}" if imperial else f"{raw * 0.001:.3f}")


def _trailing(cur: _Cursor, packet: Packet) -> None:
    extra = len(cur.payload) - cur.at
    if extra:
        packet.fields["trailing_bytes"] = str(extra)  # vendor extensions: kept in raw, not decoded


def _unit_name(imperial: bool) -> str:
    return "imperial" if imperial else "si"


# --------------------------------------------------------------------------- features


def decode_feature(payload: bytes) -> dict[str, object]:
    """Weight Scale Feature (0x2A9E, uint32 LE) -> what the scale supports and its resolutions.

    Bits: 0 time stamp, 1 multiple users, 2 BMI; 3-6 weight resolution; 7-9 height resolution.
    Resolutions are None when "not specified". Raises FrameError if shorter than 4 bytes.
    """
    if len(payload) < 4:
        raise FrameError(f"Weight Scale Feature is 4 bytes, got {len(payload)}", bytes(payload))
    value = int.from_bytes(payload[:4], "little")
    w = (value >> 3) & 0x0F
    h = (value >> 7) & 0x07
    return {
        "time_stamp": bool(value & 1),
        "multiple_users": bool(value & 2),
        "bmi": bool(value & 4),
        "weight_resolution_kg": _WEIGHT_RESOLUTION_KG[w] if w < len(_WEIGHT_RESOLUTION_KG) else None,
        "weight_resolution_lb": _WEIGHT_RESOLUTION_LB[w] if w < len(_WEIGHT_RESOLUTION_LB) else None,
        "height_resolution_m": _HEIGHT_RESOLUTION_M[h] if h < len(_HEIGHT_RESOLUTION_M) else None,
        "height_resolution_in": _HEIGHT_RESOLUTION_IN[h] if h < len(_HEIGHT_RESOLUTION_IN) else None,
        "raw": value,
    }


_BC_FEATURE_NAMES = (
    "time_stamp",
    "multiple_users",
    "basal_metabolism",
    "muscle_percentage",
    "muscle_mass",
    "fat_free_mass",
    "soft_lean_mass",
    "body_water_mass",
    "impedance",
    "weight",
    "height",
)


def decode_bc_feature(payload: bytes) -> dict[str, object]:
    """Body Composition Feature (0x2A9B, uint32 LE): supported fields (bits 0-10), mass resolution
    (bits 11-14) and height resolution (bits 15-17), same resolution tables as ``decode_feature``."""
    if len(payload) < 4:
        raise FrameError(f"Body Composition Feature is 4 bytes, got {len(payload)}", bytes(payload))
    value = int.from_bytes(payload[:4], "little")
    out: dict[str, object] = {name: bool(value & (1 << i)) for i, name in enumerate(_BC_FEATURE_NAMES)}
    w = (value >> 11) & 0x0F
    h = (value >> 15) & 0x07
    out["mass_resolution_kg"] = _WEIGHT_RESOLUTION_KG[w] if w < len(_WEIGHT_RESOLUTION_KG) else None
    out["mass_resolution_lb"] = _WEIGHT_RESOLUTION_LB[w] if w < len(_WEIGHT_RESOLUTION_LB) else None
    out["height_resolution_m"] = _HEIGHT_RESOLUTION_M[h] if h < len(_HEIGHT_RESOLUTION_M) else None
    out["height_resolution_in"] = _HEIGHT_RESOLUTION_IN[h] if h < len(_HEIGHT_RESOLUTION_IN) else None
    out["raw"] = value
    return out


def _feature_report(short: str, payload: bytes) -> DeviceReport:
    decoded = decode_feature(payload) if short == "2a9e" else decode_bc_feature(payload)
    text = ", ".join(f"{k}={v}" for k, v in decoded.items() if v not in (False, None))
    what = "weight scale feature" if short == "2a9e" else "body composition feature"
    return DeviceReport(NAME, f"feature_{short}", f"{what}: {text}", payload.hex(), is_error=False)


# --------------------------------------------------------------------------- records -> readings


@dataclass(slots=True)
class _Record:
    """A body-composition record being merged (one or more packets), or a merged BCM + WSM."""

    packets: list[Packet]
    user_id: int | None
    time: str | None
    imperial: bool
    values: dict[str, float]
    fields: dict[str, str]
    last_order: int
    born: int = 0  # frame number when it was created (for the cap)
    incomplete: bool = False

    @classmethod
    def start(cls, packet: Packet, frame_no: int) -> _Record:
        return cls(
            packets=[packet],
            user_id=packet.user_id,
            time=packet.time,
            imperial=packet.imperial,
            values=dict(packet.values),
            fields=dict(packet.fields),
            last_order=max(packet.orders, default=0),
            born=frame_no,
        )

    def continued_by(self, packet: Packet) -> bool:
        if packet.characteristic != "2a9c" or packet.imperial != self.imperial:
            return False
        if packet.user_id is not None and self.user_id is not None and packet.user_id != self.user_id:
            return False
        return min(packet.orders, default=_HEIGHT_ORDER + 1) > self.last_order

    def add(self, packet: Packet) -> None:
        self.packets.append(packet)
        if self.user_id is None:
            self.user_id = packet.user_id
        if self.time is None:
            self.time = packet.time
        for key, value in packet.values.items():
            self.values.setdefault(key, value)
        for key, text in packet.fields.items():
            if key == "unavailable" and key in self.fields:
                self.fields[key] = f"{self.fields[key]},{text}"
            else:
                self.fields.setdefault(key, text)
        self.last_order = max([self.last_order, *packet.orders])

    @property
    def has_weight(self) -> bool:
        return "weight_kg" in self.values

    @property
    def has_height(self) -> bool:
        return self.last_order >= _HEIGHT_ORDER


def _merged(weight: _Record, composition: _Record) -> _Record:
    """A Weight Measurement and the body composition that followed it -> one record (weight first)."""
    values = dict(composition.values)
    for key, value in weight.values.items():
        values.setdefault(key, value)
    fields = dict(composition.fields)
    for key, text in weight.fields.items():
        fields.setdefault(f"wsm_{key}" if key in fields else key, text)
    return _Record(
        packets=weight.packets + composition.packets,
        user_id=composition.user_id if composition.user_id is not None else weight.user_id,
        time=composition.time or weight.time,
        imperial=composition.imperial,
        values=values,
        fields=fields,
        last_order=composition.last_order,
        born=weight.born,
        incomplete=composition.incomplete,
    )


def _same_user(a: int | None, b: int | None) -> bool:
    return a is None or b is None or a == b


def _same_time(a: str | None, b: str | None) -> bool:
    """Weight and composition of one weighing carry the same time stamp when both carry one."""
    return a is None or b is None or a == b


def _raw(packets: list[Packet]) -> str:
    if len(packets) == 1:
        return packets[0].payload.hex()
    return "; ".join(f"{p.characteristic} {p.payload.hex()}" for p in packets)


def _reading(record: _Record, *, stable: bool = True) -> Reading:
    values = record.values
    fields = dict(record.fields)
    if len(record.packets) > 1:
        fields["packets"] = str(len(record.packets))
        fields["characteristic"] = "+".join(dict.fromkeys(p.characteristic for p in record.packets))
    if record.incomplete:
        fields["incomplete"] = "1"
    measurement = Measurement(
        weight_kg=values.get("weight_kg"),
        height_cm=values.get("height_cm"),
        fat_percent=values.get("fat_percent"),
        fat_free_mass_kg=values.get("fat_free_mass_kg"),
        muscle_mass_kg=values.get("muscle_mass_kg"),
        muscle_percent=values.get("muscle_percent"),
        soft_lean_mass_kg=values.get("soft_lean_mass_kg"),
        total_body_water_kg=values.get("total_body_water_kg"),
        bmr_kcal=values.get("bmr_kcal"),
        bmi=values.get("bmi"),
        impedance_ohm=values.get("impedance_ohm"),
    )
    return Reading(
        driver=NAME,
        measurement=measurement,
        stable=stable,
        raw=_raw(record.packets),
        device_time=record.time,
        model=None,
        user_index=record.user_id,
        fields=MappingProxyType(fields),
    )


def _has_measurement(values: dict[str, float]) -> bool:
    return bool(values)


def _channel(channel: str, payload: bytes) -> str:
    if channel.lower() == MI_VENDOR_CHARACTERISTIC:
        return "mi"
    if not channel:
        raise FrameError("ble_standard needs the characteristic UUID (2a9d or 2a9c) as channel", payload)
    try:
        short = short_uuid(channel)
    except ValueError:
        raise FrameError(f"channel {channel[:40]!r} is not a UUID", payload) from None
    if short not in _CHANNELS:
        raise FrameError(f"characteristic {short} is not decoded by ble_standard ({', '.join(_CHANNELS)})", payload)
    return short


_CHANNELS = ("2a9d", "2a9c", "2a9e", "2a9b", "2a00", "2a9f")


class Quirk(StrEnum):
    """Vendor deviations, keyed on the device (its name from the Device Name read), never guessed
    from the values."""

    NONE = "none"
    #: Renpho ES-WBE28 ("Renpho-Scale", "Renpho Body Scale"): masses in 0.05 kg / 0.1 lb units
    RENPHO_005 = "renpho_0.05kg"
    #: Xiaomi Mi Scale 2 over GATT: 0x2A9C carries the Mi 13-byte layout (drivers/mi_scale.py)
    MI = "mi_layout"
    #: Soehnle Shape50: its 0x2A9C composition values are implausible for a person; weight only
    SOEHNLE_NO_BCM = "soehnle_no_bcm"


def quirk_for_name(name: str) -> Quirk:
    folded = name.strip().casefold()
    if any(folded.startswith(n.casefold()) for n in MI_NAMES):
        return Quirk.MI
    if "renpho" in folded:
        return Quirk.RENPHO_005
    if folded.startswith("shape50"):
        return Quirk.SOEHNLE_NO_BCM
    return Quirk.NONE


def decode_packet(frame: bytes, channel: str, quirk: Quirk = Quirk.NONE) -> Packet | DeviceReport:
    """One indication (or a feature / name read) -> a decoded packet; raises FrameError."""
    payload = bytes(frame)
    short = _channel(channel, payload)
    if short in ("2a9e", "2a9b"):
        return _feature_report(short, payload)
    if short == "2a00":
        name = payload.decode("utf-8", "replace")
        q = quirk_for_name(name)
        return DeviceReport(NAME, "device_name", f"device name {name!r}, quirk {q.value}", payload.hex(), False)
    if short == "mi":
        return DeviceReport(NAME, "mi_vendor_characteristic", "a Xiaomi Mi scale", payload.hex(), is_error=False)
    if short == "2a9f":
        return _ucp_report(payload)
    scale = 10 if quirk is Quirk.RENPHO_005 else 1
    decode = decode_weight_measurement if short == "2a9d" else decode_body_composition
    packet = decode(payload, scale)
    if quirk is not Quirk.NONE:
        packet.fields["quirk"] = quirk.value
    return packet


def _ucp_report(payload: bytes) -> DeviceReport:
    if len(payload) >= 3 and payload[0] == UCP_RESPONSE:
        result = UCP_RESULTS.get(payload[2], f"result 0x{payload[2]:02x}")
        ok = payload[2] == 0x01
        return DeviceReport(NAME, "user_control_point", f"op 0x{payload[1]:02x}: {result}", payload.hex(), not ok)
    return DeviceReport(NAME, "user_control_point", "user control point value", payload.hex(), is_error=False)


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Stateless: one value of 2A9D/2A9C (or 2A9E/2A9B) -> Reading | DeviceReport | None.

    None: the measurement was unsuccessful (weight or body fat 0xFFFF) and carries nothing else. A
    packet of a multi-packet record gives ``stable=False`` (use the decoder to merge it).
    """
    if _channel(channel, bytes(frame)) == "2a9c" and is_history_stub(bytes(frame)):
        return None
    packet = decode_packet(frame, channel)
    if isinstance(packet, DeviceReport):
        return packet
    if packet.characteristic == "2a9d" and packet.unsuccessful:
        return None
    if not _has_measurement(packet.values):
        return None
    return _reading(_Record.start(packet, 0), stable=not packet.multi_packet)


# --------------------------------------------------------------------------- the decoder


class BleStandardDecoder:
    """Per-connection state: merges multi-packet BCM records and a BCM with the WSM that follows it.

    The rules (completion, cap, merge) are in the module docstring.
    """

    def __init__(self) -> None:
        self._frame_no = 0
        #: records still receiving packets, oldest first
        self._pending: list[_Record] = []
        #: complete records without weight, waiting for a Weight Measurement
        self._awaiting: list[_Record] = []
        #: Weight Measurements waiting for the body composition that follows them (the Beurer order)
        self._weights: list[_Record] = []
        #: (user id, weight kg, frame no) of the last weighing emitted from a BCM
        self._last_bcm_weight: tuple[int | None, float, int] | None = None
        #: the device's quirk, from its Device Name read (or the Mi vendor characteristic)
        self.quirk = Quirk.NONE

    @property
    def held(self) -> int:
        """How many records are held (for tests and health)."""
        return len(self._pending) + len(self._awaiting) + len(self._weights)

    def decode(self, frame: bytes, channel: str = "") -> list[Reading | DeviceReport]:
        short = _channel(channel, bytes(frame))
        if short == "2a9c" and self.quirk is Quirk.MI:
            return _mi_over_gatt(bytes(frame))
        if short == "2a9c" and not self._pending and is_history_stub(bytes(frame)):
            # (with a record pending, an all-zero packet without bit 12 may be its last packet)
            self._frame_no += 1
            return self._release(expired_only=True)  # a history stub: nothing
        packet = decode_packet(frame, channel, self.quirk)  # FrameError leaves the state untouched
        self._frame_no += 1
        out = self._release(expired_only=True)
        if isinstance(packet, DeviceReport):
            if packet.code == "device_name":
                self.quirk = quirk_for_name(bytes.fromhex(packet.raw).decode("utf-8", "replace"))
            elif packet.code == "mi_vendor_characteristic":
                self.quirk = Quirk.MI
            out.append(packet)
        elif packet.characteristic == "2a9c" and self.quirk is Quirk.SOEHNLE_NO_BCM:
            pass  # composition values known to be wrong on this model: the weight comes from 2a9d
        elif packet.characteristic == "2a9d":
            out.extend(self._weight(packet))
        else:
            out.extend(self._body_composition(packet))
        return out

    def flush(self) -> list[Reading | DeviceReport]:
        """End of the connection: release everything held."""
        return self._release(expired_only=False)

    # -- internals

    def _release(self, *, expired_only: bool) -> list[Reading | DeviceReport]:
        out: list[Reading | DeviceReport] = []
        keep_pending: list[_Record] = []
        for record in self._pending:
            if expired_only and self._frame_no - record.born <= MAX_HELD_FRAMES:
                keep_pending.append(record)
                continue
            record.incomplete = True
            out.extend(self._emit_released(record))
        self._pending = keep_pending
        keep_awaiting: list[_Record] = []
        for record in self._awaiting:
            if expired_only and self._frame_no - record.born <= MAX_HELD_FRAMES:
                keep_awaiting.append(record)
                continue
            out.extend(self._emit_released(record))
        self._awaiting = keep_awaiting
        keep_weights: list[_Record] = []
        for record in self._weights:
            if expired_only and self._frame_no - record.born <= MAX_HELD_FRAMES:
                keep_weights.append(record)
                continue
            out.append(_reading(record))  # no composition came: the weighing, weight only
        self._weights = keep_weights
        return out

    def _emit_released(self, record: _Record) -> list[Reading | DeviceReport]:
        if not _has_measurement(record.values):
            return []
        if record.has_weight:
            self._last_bcm_weight = (record.user_id, record.values["weight_kg"], self._frame_no)
        return [_reading(record)]

    def _complete(self, record: _Record) -> list[Reading | DeviceReport]:
        if record.has_weight:
            self._last_bcm_weight = (record.user_id, record.values["weight_kg"], self._frame_no)
            return [_reading(record)]
        if not _has_measurement(record.values):
            return []  # unsuccessful measurement with nothing else in it
        weight = next(
            (
                w
                for w in reversed(self._weights)
                if _same_user(w.user_id, record.user_id) and _same_time(w.time, record.time)
            ),
            None,
        )
        if weight is not None:  # the weight came first (Beurer): one weighing of both
            self._weights.remove(weight)
            return [_reading(_merged(weight, record))]
        out: list[Reading | DeviceReport] = []
        for old in [r for r in self._awaiting if r.user_id == record.user_id]:
            self._awaiting.remove(old)
            out.extend(self._emit_released(old))
        record.born = self._frame_no
        self._awaiting.append(record)
        out.extend(self._cap())
        return out

    def _cap(self) -> list[Reading | DeviceReport]:
        out: list[Reading | DeviceReport] = []
        while self.held > MAX_HELD_RECORDS:
            oldest = min(self._pending + self._awaiting + self._weights, key=lambda r: r.born)
            if oldest in self._weights:
                self._weights.remove(oldest)
                out.append(_reading(oldest))
                continue
            if oldest in self._pending:
                self._pending.remove(oldest)
                oldest.incomplete = True
            else:
                self._awaiting.remove(oldest)
            out.extend(self._emit_released(oldest))
        return out

    def _find_pending(self, packet: Packet) -> _Record | None:
        if packet.user_id is not None:
            for record in reversed(self._pending):
                if record.user_id == packet.user_id:
                    return record
            for record in reversed(self._pending):
                if record.user_id is None:
                    return record
            return None
        return self._pending[-1] if self._pending else None

    def _body_composition(self, packet: Packet) -> list[Reading | DeviceReport]:
        out: list[Reading | DeviceReport] = []
        pending = self._find_pending(packet)
        if pending is not None and not pending.continued_by(packet):
            self._pending.remove(pending)
            pending.incomplete = True
            out.extend(self._complete(pending))
            pending = None
        if pending is not None:
            pending.add(packet)
            self._pending.remove(pending)
            out.extend(self._complete(pending))  # last packet (no bit 12), or the second packet
            return out
        record = _Record.start(packet, self._frame_no)
        if packet.multi_packet and not record.has_height:
            self._pending.append(record)
            out.extend(self._cap())
            return out
        out.extend(self._complete(record))
        return out

    def _weight(self, packet: Packet) -> list[Reading | DeviceReport]:
        out: list[Reading | DeviceReport] = []
        # a pending multi-packet record of this user ends here: the scale has moved on to the weight
        for record in [r for r in self._pending if _same_user(r.user_id, packet.user_id)]:
            self._pending.remove(record)
            record.incomplete = True
            out.extend(self._complete(record))
        if packet.unsuccessful:
            return out
        awaiting = next(
            (
                r
                for r in reversed(self._awaiting)
                if _same_user(r.user_id, packet.user_id) and _same_time(r.time, packet.time)
            ),
            None,
        )
        if awaiting is not None:
            self._awaiting.remove(awaiting)
            awaiting.packets.append(packet)
            if awaiting.user_id is None:
                awaiting.user_id = packet.user_id
            if awaiting.time is None:
                awaiting.time = packet.time
            for key, value in packet.values.items():
                awaiting.values.setdefault(key, value)
            for key, text in packet.fields.items():
                awaiting.fields.setdefault(f"wsm_{key}" if key in awaiting.fields else key, text)
            out.append(_reading(awaiting))
            return out
        last = self._last_bcm_weight
        weight = packet.values["weight_kg"]
        if (
            last is not None
            and _same_user(last[0], packet.user_id)
            and self._frame_no - last[2] <= MAX_HELD_FRAMES
            and abs(last[1] - weight) <= SAME_WEIGHT_KG
        ):
            self._last_bcm_weight = None
            return out  # the same weighing, already emitted with its body composition
        record = _Record.start(packet, self._frame_no)
        if self.quirk is Quirk.SOEHNLE_NO_BCM:
            out.append(_reading(record))  # its composition is dropped: nothing to wait for
            return out
        same_user = [w for w in self._weights if _same_user(w.user_id, packet.user_id)]
        if any(w.packets[0].payload == packet.payload for w in same_user):
            return out  # a repeat of the weight already held
        for older in same_user:  # a new weight of this user: the held one got no composition
            self._weights.remove(older)
            out.append(_reading(older))
        self._weights.append(record)  # held for the composition that may follow (pairing window)
        out.extend(self._cap())
        return out


SETTINGS = {
    "user_index": "User Data Service user slot (1-254) to consent as; the scale's own user number",
    "consent_code": "that user's consent code (0-9999), the PIN set when the user was registered",
}


def check_settings(settings: Mapping[str, str]) -> list[tuple[str, str]]:
    """Config-time validation of ``user_index`` / ``consent_code`` (both or neither)."""
    problems: list[tuple[str, str]] = []
    for key, low, high in (("user_index", 1, 254), ("consent_code", 0, 9999)):
        try:
            int_setting(settings, key, low=low, high=high)
        except ValueError as exc:
            problems.append((key, str(exc)))
    given = [k for k in ("user_index", "consent_code") if settings.get(k, "") != ""]
    if len(given) == 1:
        missing = "consent_code" if given == ["user_index"] else "user_index"
        problems.append((given[0], f"needs {missing} too (User Data Service consent takes both)"))
    return problems


def _mi_over_gatt(payload: bytes) -> list[Reading | DeviceReport]:
    """A Mi Scale 2 notifying its own 13-byte layout on 0x2A9C (openScale#392): decoded by mi_scale."""
    from . import mi_scale

    result = mi_scale.parse(payload, mi_scale.UUID_V2)
    return [] if result is None else [result]


def consent_command(user_index: int, consent_code: int) -> bytes:
    """User Control Point "consent": op 0x02, user index, consent code uint16 LE (PIN 3752, user 1 ->
    ``02 01 a8 0e``, ble-families.md §5.2b)."""
    return bytes([UCP_CONSENT, user_index]) + consent_code.to_bytes(2, "little")


def current_time_value(wall_time_s: float, utc_offset_s: int = 0) -> bytes:
    """Current Time (0x2A2B): Date Time, day of week (1 = Monday), fractions256 0, adjust reason 1
    (manual time update)."""
    from datetime import UTC, timedelta

    t = datetime.fromtimestamp(int(wall_time_s), UTC) + timedelta(seconds=utc_offset_s)
    return t.year.to_bytes(2, "little") + bytes([t.month, t.day, t.hour, t.minute, t.second, t.isoweekday(), 0, 0x01])


class StandardExchange:
    """The GATT conversation of a standard scale.

    Always: read the Device Name (the decoder keys vendor quirks on it), the Mi vendor characteristic
    when offered (a Mi Scale 2 on GATT) and the Weight Scale Feature. Without ``user_index`` /
    ``consent_code``: subscribe to 2A9D and 2A9C. With them (User Data Service scales: Beurer BF720
    family, Sanitas SBF72/73, Renpho ES-WBE28): write the Current Time when offered, subscribe to the
    User Control Point, write the consent, and only after the scale answered *success* read the
    Database Change Increment (when offered), write it back incremented, and subscribe to the
    measurements. A refused consent or no answer in ``CONSENT_TIMEOUT_S`` is an ``ExchangeError``.
    """

    def __init__(self, context: ExchangeContext) -> None:
        self._context = context
        settings = context.settings
        try:
            self._user = int_setting(settings, "user_index", low=1, high=254)
            self._code = int_setting(settings, "consent_code", low=0, high=9999)
        except ValueError as exc:
            raise ExchangeError(f"bad ble_standard setting: {exc}") from None
        self._deadline: float | None = None
        self._state = "idle"

    @property
    def deadline_s(self) -> float | None:
        return self._deadline

    @property
    def consenting(self) -> bool:
        return self._user is not None and self._code is not None

    def _offers(self, uuid: str) -> bool:
        offered = self._context.characteristics
        return not offered or uuid in offered

    def _measurements(self) -> list[Action]:
        self._state = "measuring"
        self._deadline = None
        return [Subscribe(WEIGHT_MEASUREMENT), Subscribe(BODY_COMPOSITION_MEASUREMENT)]

    def start(self, *, now_s: float) -> list[Action]:
        actions: list[Action] = [Read(DEVICE_NAME)]
        if MI_VENDOR_CHARACTERISTIC in self._context.characteristics:
            actions.append(Read(MI_VENDOR_CHARACTERISTIC))
        actions.append(Read(WEIGHT_SCALE_FEATURE))
        if not self.consenting:
            return actions + self._measurements()
        assert self._user is not None and self._code is not None
        if not self._offers(USER_CONTROL_POINT):
            raise ExchangeError(
                f"user_index/consent_code are set but {self._context.address} has no User Control Point "
                "(0x2A9F): not a User Data Service scale; remove the two settings"
            )
        wall = self._context.wall_time_s
        if wall is not None and CURRENT_TIME in self._context.characteristics:
            actions.append(Write(CURRENT_TIME, current_time_value(wall, self._context.utc_offset_s)))
        actions += [Subscribe(USER_CONTROL_POINT), Write(USER_CONTROL_POINT, consent_command(self._user, self._code))]
        self._state = "consenting"
        self._deadline = now_s + CONSENT_TIMEOUT_S
        return actions

    def on_notify(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        if uuid != USER_CONTROL_POINT or self._state != "consenting":
            return []
        if len(data) < 3 or data[0] != UCP_RESPONSE or data[1] != UCP_CONSENT:
            return []  # not the answer to our request
        if data[2] != 0x01:
            why = UCP_RESULTS.get(data[2], f"result 0x{data[2]:02x}")
            raise ExchangeError(f"the scale refused consent for user {self._user}: {why}")
        if DATABASE_CHANGE_INCREMENT in self._context.characteristics:
            self._state = "increment"
            return [Read(DATABASE_CHANGE_INCREMENT)]
        return self._measurements()

    def on_read(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        if uuid != DATABASE_CHANGE_INCREMENT or self._state != "increment":
            return []
        value = int.from_bytes(data[:4].ljust(4, b"\0"), "little")
        bumped = ((value + 1) & 0xFFFFFFFF).to_bytes(4, "little")
        return [Write(DATABASE_CHANGE_INCREMENT, bumped), *self._measurements()]

    def on_timeout(self, *, now_s: float) -> list[Action]:
        if self._state == "consenting":
            raise ExchangeError(
                f"no answer to the consent for user {self._user} within {CONSENT_TIMEOUT_S:g} s "
                "(is the scale bonded? see docs/ble.md)"
            )
        if self._state == "increment":  # the increment read failed or never came: measure anyway
            return self._measurements()
        self._deadline = None
        return []


SPEC = DriverSpec(
    name=NAME,
    summary="Bluetooth standard Weight Scale (181D/2A9D) and Body Composition (181B/2A9C) scales over GATT",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=PassthroughFramer,
    models=(
        "Beurer BF720/BF105/BF500/BF600/BF788/BF850/BF915/BF950",
        "Sanitas SBF72/SBF73",
        "Renpho ES-WBE28",
        "other SIG Weight Scale / Body Composition scales",
    ),
    make_decoder=BleStandardDecoder,
    make_exchange=StandardExchange,
    settings=SETTINGS,
    check_settings=check_settings,
    ble=BleMatcher(
        mode=BleMode.GATT,
        service_uuids=frozenset({WEIGHT_SCALE_SERVICE, BODY_COMPOSITION_SERVICE}),
        characteristics=(WEIGHT_MEASUREMENT, BODY_COMPOSITION_MEASUREMENT),
        excludes_service_data=frozenset({WEIGHT_SCALE_SERVICE, BODY_COMPOSITION_SERVICE}),
        excludes_name_prefixes=MI_NAMES,
        excludes_manufacturer_ids=frozenset({HUAMI_COMPANY_ID}),
        requires_connectable=True,
    ),
    notes={
        "indications": "2a9d and 2a9c are indicated, not notified",
        "multi_packet": "BCM bit 12 records merged per user: complete on a packet without bit 12, "
        "a second packet, or height; cap 4 records / 8 frames",
        "merge": "a BCM without weight takes the weight of the WSM that follows for the same user",
        "matching": "connectable devices listing 181d/181b without Mi service data, name or Huami data",
        "consent": "user_index + consent_code: User Data Service consent on 2a9f before subscribing",
        "quirks": "keyed on the Device Name: Renpho 0.05 kg; Mi names decode 2a9c as Mi; Shape50 no BCM",
    },
)
