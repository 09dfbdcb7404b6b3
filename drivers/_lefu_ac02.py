"""The ``AC 02`` dialect of the Lefu / Fitdays 0xFFB0 family: Hutbit 218008 / WL292, the Lefu OEM
stock unit advertising ``SWAN`` (manufacturer data under 0x02AC), the Juniper-branded unit, FitTrack
Dara 2.0. A part of ``drivers/lefu_ffb0.py`` (one registered driver for the whole 0xFFB0 family, see
its docstring for why), kept apart so each module stays small. Pure: no clock, no I/O.

**Frames** (8 bytes, both directions): ``AC 02 <d0> <d1> <d2> <d3> <channel> <check>``, check =
``(d0 + d1 + d2 + d3 + channel) & 0xFF``. VERIFIED on every real frame in our sources (ble-scale-sync
#254/#268 Hutbit capture, #291 log, #322 Juniper log; openScale PR #1430's FitTrack capture states
the same rule). The channel byte says what the frame is:

- ``CE``: live weight, ``d0 d1`` big-endian 0.1 kg -> a reading with ``stable=False``.
- ``CA``: the stable weight, same layout. VERIFIED: ``ac0203490000ca16`` = 84.1 kg, the value the
  Fitdays app showed (#254/#268); ``ac0203460000ca13`` = 83.8 kg (#291); ``ac0204060000cad4`` =
  103.0 kg (#322). Juniper: still 0.1 kg when the display shows another unit (#322, as reported);
  the FitTrack handler reads it in the display unit set by ``FE 06 <unit>`` (openScale #1430), so the
  exchange sets kg (``FE 06 00``, the capture's own bytes) and the kg reading holds either way.
- ``CB`` with ``d0 = FD``: the BIA phase. ``FD 01 <ohm u16 BE>``: the whole-body impedance.
  VERIFIED as bytes and check (``ac02fd010206cbd1`` = 518, ``ac02fd010209cbd4`` = 521, #322): that
  the value is ohm at face value is INFERENCE (plausible adult values that move with the person).
  ``FD 00 ..``: repeated while the scale measures (#322) -> a non-error report.
- ``CC``: a command (the host's, or an echo); other ``CB`` frames (FitTrack's ``FE <index> <value>``
  composition dump, openScale #1430) and other channels: non-error reports, not decoded.

**When the weighing is complete**: on the impedance frame (the stable weight + the impedance, one
weighing, emitted once); the stable weight alone becomes a weight-only weighing at the end of the
session (``flush``, called on the BLE session end as ble_standard and beurer_sanitas do). Why not
on the stable frame: #322 shows the impedance only after the stable weight (4 s later in its log)
and only while the link stays open, and a weighing must not be posted twice. A later stable frame
in the same session replaces the held one (the latest settled weight is the member's).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from ._vendor_frames import check, sum8, u16be
from .model import DeviceReport, Measurement, Reading

HEADER = b"\xac\x02"
FRAME_LEN = 8
CHANNEL_COMMAND = 0xCC
CHANNEL_LIVE = 0xCE
CHANNEL_STABLE = 0xCA
CHANNEL_RESULT = 0xCB
OP_BIA = 0xFD
BIA_VALUE = 0x01
BIA_MEASURING = 0x00


def checksum(frame: bytes) -> int:
    """The check byte of an 8-byte frame: the low byte of the sum of bytes 2..6."""
    return sum8(frame[2:7])


def is_frame(data: bytes) -> bool:
    """An 8-byte ``AC 02`` frame (check not yet verified)."""
    return len(data) == FRAME_LEN and data[:2] == HEADER


def command(op: int, a: int, b: int, c: int) -> bytes:
    """A host command on FFB1: ``AC 02 <op> <a> <b> <c> CC <check>``."""
    body = HEADER + bytes([op, a, b, c, CHANNEL_COMMAND])
    return body + bytes([checksum(body)])


# --------------------------------------------------------------------------- the host's commands


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"


#: FB's sex byte: 1 male, 2 female (openScale #1430, FitTrack Dara capture)
SEX_BYTE: Mapping[Sex, int] = MappingProxyType({Sex.MALE: 1, Sex.FEMALE: 2})

#: The profile of the Fitdays capture (#254: ``ac02fb021fa5cc8d``): female, 31 years, 165 cm, read
#: with openScale's FB layout. The default, because it is the one profile real units are known to
#: have accepted before sending their weight and impedance frames (#254, #322).
DEFAULT_SEX, DEFAULT_AGE_YEARS, DEFAULT_HEIGHT_CM = Sex.FEMALE, 31, 165
AGE_RANGE = (10, 99)
HEIGHT_RANGE_CM = (90, 220)


def profile_command(sex: Sex, age_years: int, height_cm: int) -> bytes:
    """``AC 02 FB <sex> <age> <height cm> CC <check>``: with the defaults, the capture's own bytes."""
    return command(0xFB, SEX_BYTE[sex], age_years, height_cm)


def session_commands(profile: bytes) -> list[bytes]:
    """The Fitdays app's writes after it subscribes (#254), in its order, the profile second:
    ``FA 01 00 00``, the profile, ``FD E2 01 01``, ``FC 01 00 00``, ``FE 06 00 00`` (kg). Which of
    them the scale needs for its impedance is UNKNOWN; every real impedance frame in our sources came
    after this whole sequence (#322), so it is sent whole and verbatim but for the profile."""
    return [
        command(0xFA, 0x01, 0, 0),
        profile,
        command(0xFD, 0xE2, 0x01, 0x01),
        command(0xFC, 0x01, 0, 0),
        command(0xFE, 0x06, 0, 0),
    ]


# --------------------------------------------------------------------------- decoding


def _fields(data: bytes, **extra: str) -> Mapping[str, str]:
    return MappingProxyType({"channel": f"0x{data[6]:02x}", **extra})


def weight_reading(driver: str, data: bytes) -> Reading:
    """A ``CE`` or ``CA`` frame as a reading that is never a weighing by itself."""
    raw = u16be(data, 2)
    fields = _fields(data, weight_raw=str(raw), weight_kg=f"{raw / 10:.1f}")
    return Reading(driver, Measurement(), False, data.hex(), fields=fields)


def _report(driver: str, data: bytes, code: str, message: str) -> DeviceReport:
    return DeviceReport(driver, code, message, data.hex(), is_error=False)


class Ac02Decoder:
    """One connection's ``AC 02`` frames: the held stable weight and the impedance that completes it."""

    def __init__(self, driver: str) -> None:
        self._driver = driver
        self._held: tuple[bytes, int] | None = None  # the stable frame and its weight in 0.1 kg

    def decode(self, data: bytes) -> list[Reading | DeviceReport]:
        check(checksum(data), data[7], data)
        channel, op = data[6], data[2]
        if channel in (CHANNEL_LIVE, CHANNEL_STABLE):
            reading = weight_reading(self._driver, data)
            raw = int(reading.fields["weight_raw"])
            if channel == CHANNEL_STABLE and raw > 0:
                self._held = (data, raw)
            return [reading]
        if channel == CHANNEL_RESULT and op == OP_BIA:
            return self._bia(data)
        if channel == CHANNEL_COMMAND:
            return [_report(self._driver, data, f"command_0x{op:02x}", f"AC 02 command 0x{op:02x} (echo)")]
        return [_report(self._driver, data, f"ac02_0x{channel:02x}", f"AC 02 channel 0x{channel:02x}, not decoded")]

    def _bia(self, data: bytes) -> list[Reading | DeviceReport]:
        sub = data[3]
        if sub != BIA_VALUE:
            label = "impedance measurement in progress" if sub == BIA_MEASURING else "not decoded"
            return [_report(self._driver, data, f"bia_0x{sub:02x}", f"AC 02 FD {sub:02x}: {label}")]
        impedance = u16be(data, 4)
        held, self._held = self._held, None
        fields = _fields(data, impedance_raw=str(impedance))
        if held is None:
            return [Reading(self._driver, Measurement(), False, data.hex(), fields=fields)]
        frame, raw = held
        fields = _fields(data, impedance_raw=str(impedance), weight_raw=str(raw), weight_kg=f"{raw / 10:.1f}")
        measurement = Measurement(weight_kg=raw / 10, impedance_ohm=float(impedance) if impedance else None)
        return [Reading(self._driver, measurement, True, f"{frame.hex()} {data.hex()}", fields=fields)]

    def flush(self) -> list[Reading | DeviceReport]:
        """End of the session: a stable weight no impedance followed is the weighing, weight only."""
        held, self._held = self._held, None
        if held is None:
            return []
        frame, raw = held
        fields = _fields(frame, weight_raw=str(raw), weight_kg=f"{raw / 10:.1f}")
        return [Reading(self._driver, Measurement(weight_kg=raw / 10), True, frame.hex(), fields=fields)]
