"""The QN "extended" dialect after the AE00 (Jieli) authentication: the GE CS 10 G ("Fit Plus"), whose
0x12 scale info is 20 bytes long (``12 14 ...``). Frames, builders and settings only; the
conversation is ``drivers/qn_scale.py``'s ``QnExchange``. Stdlib-only, pure.

Facts (KristianP26/ble-scale-sync #235 and PR #332: hedoric's vendor-app HCI capture and his logs of
ble-scale-sync runs on the same unit that delivered weighings; the frames below are the real ones,
in tests/vectors/qn_scale/ae00_extended.json):

- The host's writes that took a GE CS 10 G to a weighing, in order: on 0x12, AE01 ``fe dc ba c0 06
  00 02 01 01 ef`` (a constant, not derived from the address: the same bytes for every unit; its
  fields are UNKNOWN) then the 0x13 configuration with the scale's protocol byte (0xff); on 0x14,
  the 0x20 time, ``a2 06 01 32 <age> <sum>`` (openScale's "user profile") and AE01 ``02 "pass"``;
  on 0x21, ``a0 0d 04 fc 00 x8 ad`` (the vendor app's, five times in its capture; the scale echoes
  ``a1 07 04 fc 01 10 b9``), ``a0 0d 02 01 00 08 00 21 06 b8 04 02 9d`` (openScale's constant; the
  vendor app sends its user's age and height there instead), the start ``22 06 ff 00 03 2a`` (byte
  for byte the vendor app's) and the measurement trigger ``a2 06 01 <weight kg x 100, u16 BE> <sum>``
  twice (the vendor app's, twice).
- The trigger's weight is the scale's anchor: on one unit and session, 76 kg against the capture's
  77.15 kg completed every time, 65 kg against it was a clean handshake and then silence every time,
  and the same 65 kg person completed with her own weight sent (hedoric's A/B). How far from the
  anchor a weigh-in may be is UNKNOWN (between 1.15 and 12.15 kg in that test).
- After a completed weigh-in the scale sends a ``23 ...`` frame and a burst of 44-byte result
  frames: ``b1 2c 03 01 ...`` carries the live weight (u16 LE at bytes 5-6, / 100 kg; 75.20 kg as the
  scale's display showed, BMI cross-checked), ``b4 2c 04 01 ...`` is a stored record (time u32 LE at
  7-10, seconds since 2000; weight u16 LE at 11-12, / 100): the real ones are six days and one
  session old, so a history reading, never a weighing. ``b1 03 02`` / ``03 03`` are not decoded.
- The vendor app answers each live 0x10 with ``a2 06 01 <that frame's bytes 5-6> <sum>`` (``10 14 01
  00 11 1e be 00 .. 12`` -> ``a2 06 01 1e be 85``); ble-scale-sync does the same on this dialect.

Inference / unknown: the meaning of the ready-time A2 (``32 <age>``; sent because the working runs
sent it), of the second A0 frame, and of AE01's init; the 20-byte 0x10's stable flag (the only real
frame has byte 4 = 0x11; openScale PR #1502 reads state 2 as stable on a Fit Plus, not seen here),
so on this dialect a 0x10 is a live reading and the weighing is the b1 03 01; the b1 bytes 7.. (an
impedance sweep in raw units, not ohm: not decoded, the weighing is weight-only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from ._vendor_frames import sum8, u16le, u32le
from .gatt import int_setting
from .model import DeviceReport, Measurement, Reading

NAME = "qn_scale"
#: a 0x12 this long (its length byte = its size) is the extended dialect
EXTENDED_INFO_SIZE = 20
#: AE01 init the hosts that got weighings write on 0x12 (verbatim; fields UNKNOWN)
AE01_INIT = bytes.fromhex("fedcbac00600020101ef")
OP_START = 0x22
OP_REPLY = 0xA0
OP_A2 = 0xA2
OP_RESULT = 0xB1
OP_RECORD = 0xB4
RESULT_SIZE = 44
#: b1 sub-record 03 01: the live result; b4 04 01: a stored record
RESULT_LIVE = (0x03, 0x01)
RESULT_STORED = (0x04, 0x01)
EPOCH_2000_S = 946_684_800
TRIGGER_REPEATS = 2
#: the vendor app's own anchor in the #235 capture (a person of about 78 kg): the default
DEFAULT_ANCHOR_KG = 77.15
ANCHOR_RANGE_KG = (10.0, 250.0)
#: the capture subject's age (the GE app's A0 02 profile frame, ``... 00 1a 07 8a ...``): the default
DEFAULT_AGE_YEARS = 26
AGE_RANGE = (10, 99)

SETTINGS: Mapping[str, str] = {
    "weight_anchor_kg": "QN extended dialect (GE CS 10 G): the weight sent in the measurement trigger; "
    "the scale only finishes weigh-ins near it (default 77.15, the capture's)",
    "age_years": "QN extended dialect: the age in the ready-time A2 frame, 10-99 (default 26, the capture's)",
}


def frame(opcode: int, body: bytes) -> bytes:
    """``<opcode> <length> body <sum>`` (length = whole frame), the QN framing (every command
    ``drivers/qn_scale.py`` writes too)."""
    data = bytes([opcode, len(body) + 3]) + body
    return data + bytes([sum8(data)])


def is_extended_info(info: bytes) -> bool:
    return len(info) >= EXTENDED_INFO_SIZE and info[1] == len(info)


#: the 0x21 replies: report byte 0xFC (vendor app), then openScale's constant 02 frame
CONFIG_REPLIES = (
    frame(OP_REPLY, bytes([0x04, 0xFC]) + bytes(8)),
    frame(OP_REPLY, bytes.fromhex("0201000800 2106b80402".replace(" ", ""))),
)


def start_command(protocol: int) -> bytes:
    """0x22 start: ``22 06 <protocol> 00 03 <sum>``."""
    return frame(OP_START, bytes([protocol, 0x00, 0x03]))


def weight_a2(raw: int) -> bytes:
    """``a2 06 01 <raw u16 BE> <sum>``: the trigger (raw = anchor kg x 100) and the per-frame echo."""
    value = min(0xFFFF, max(0, raw))
    return frame(OP_A2, bytes([0x01, value >> 8, value & 0xFF]))


def trigger_command(anchor_kg: float) -> bytes:
    return weight_a2(round(anchor_kg * 100))


def ready_profile_command(age_years: int) -> bytes:
    """The ready-time A2 ``a2 06 01 32 <age> <sum>`` (openScale's layout; meaning UNKNOWN)."""
    return frame(OP_A2, bytes([0x01, 0x32, age_years]))


def anchor_kg(settings: Mapping[str, str]) -> float:
    """``weight_anchor_kg`` (default :data:`DEFAULT_ANCHOR_KG`); ValueError with the reason."""
    text = settings.get("weight_anchor_kg", "").strip()
    if not text:
        return DEFAULT_ANCHOR_KG
    low, high = ANCHOR_RANGE_KG
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a weight in kg from {low:g} to {high:g}, not {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"must be a weight in kg from {low:g} to {high:g}, not {text!r}")
    return value


def age_years(settings: Mapping[str, str]) -> int:
    value = int_setting(settings, "age_years", low=AGE_RANGE[0], high=AGE_RANGE[1])
    return DEFAULT_AGE_YEARS if value is None else value


def check_settings(settings: Mapping[str, str]) -> list[tuple[str, str]]:
    """Config-time validation of ``weight_anchor_kg`` / ``age_years``: one problem per bad key."""
    problems: list[tuple[str, str]] = []
    for key, check in (("weight_anchor_kg", anchor_kg), ("age_years", age_years)):
        try:
            check(settings)
        except ValueError as exc:
            problems.append((key, str(exc)))
    return problems


def result(data: bytes, extended: bool) -> Reading | DeviceReport:
    """A checked 0xB1 / 0xB4 frame. ``b1 .. 03 01`` on the extended dialect: the weighing (weight
    only); ``b4 .. 04 01``: a history reading; anything else (or no extended 0x12 yet): a report."""
    kind = (data[2], data[3]) if len(data) >= 4 else ()
    fields = {"dialect": "extended" if extended else "unknown", "record": f"{data[0]:02x} {data[2:4].hex(' ')}"}
    if data[0] == OP_RESULT and kind == RESULT_LIVE and len(data) >= 7 and extended:
        raw = u16le(data, 5)
        fields |= {"weight_raw": str(raw), "weight_kg": f"{raw / 100:g}"}
        measurement = Measurement(weight_kg=raw / 100) if raw else Measurement()
        return Reading(NAME, measurement, raw > 0, data.hex(), fields=MappingProxyType(fields))
    if data[0] == OP_RECORD and kind == RESULT_STORED and len(data) >= 13:
        seconds, raw = u32le(data, 7), u16le(data, 11)
        fields |= {"history": "1", "weight_raw": str(raw), "weight_kg": f"{raw / 100:g}"}
        fields["record_s_since_2000"] = str(seconds)
        when = datetime.fromtimestamp(EPOCH_2000_S + seconds, UTC).replace(tzinfo=None).isoformat()
        measurement = Measurement(weight_kg=raw / 100) if raw else Measurement()
        return Reading(NAME, measurement, False, data.hex(), device_time=when, fields=MappingProxyType(fields))
    what = "result record not decoded" if extended else "result before an extended 0x12 (not decoded)"
    return DeviceReport(NAME, f"op_0x{data[0]:02x}", f"QN 0x{data[0]:02x} {what}", data.hex(), is_error=False)
