"""Eufy Smart Scale C1 / P1 / A1 (T9146, T9147, T9120, T9140) and the 1byone "Health Scale"
(CF398BLE): service 0xFFF0, notify 0xFFF4, write 0xFFF1. See shared/reference/ble-families.md §5.3(a).
The Eufy P2 / P2 Pro (T9148/T9149, AES handshake) are another protocol: drivers/eufy_p2.py.

**Frames**: 11 bytes ``CF <impedance lo> <impedance hi> <weight u16 LE> ... <status> <check>``, the
check being the XOR of the ten bytes before it (verified on the real frame of openScale PR #1468,
``CF 92 0E 9C 27 1D 13 5F 00 00 B9``). Weight = bytes 3-4 / 100 kg. Impedance = bytes 1-2 (LE) x 0.1,
taken only when byte 9 (status) is 0: 1 means "weight only, impedance invalid" (openScale#580 and the
ble-scale-sync tests; the reference's "valid when neither 0 nor 1" contradicts both and is not used;
other status values: UNKNOWN, no impedance). The 0.1 factor is the reference's (INFERENCE: the real
frame gives 373.0 ohm, plausible). 18-byte notifications are a frame with the date and time appended:
stored history, never a weighing. A notification may hold a frame followed by the start of its
duplicate (openScale PR #1468): the first 11 bytes are decoded, and a tail that is a prefix of the
frame counts as its duplicate (anything else there is a ``FrameError``). Short notifications (1-2
bytes) are ignored (not frames).

**Stability**: the frames stream with no lock flag. The final result is sent twice: a frame equal
(weight, impedance, status) to the previous one on the connection is the weighing (ble-scale-sync's
"two equal consecutive weights", INFERENCE), emitted once per run of equal frames; every other frame
is a live reading (``stable=False``).

**Exchange**: subscribe to 0xFFF4, then write ``FD 37 <unit 00 = kg> <group 01> 00 x7 <XOR>`` (12
bytes) and, when the host clock is known, the clock ``F1 <year BE> <month> <day> <hour> <min> <sec>``
(UTC; the scale shows it, nothing is computed from it), both without response.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

from ._vendor_frames import VendorFramer, check, require, u16le, xor8
from .bleuuid import full_uuid
from .gatt import Action, ExchangeContext, StartOnly, Subscribe, Write
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind

NAME = "eufy_1byone"
SERVICE = full_uuid("fff0")
NOTIFY = full_uuid("fff4")
WRITE = full_uuid("fff1")
START = 0xCF
FRAME_SIZE = 11
HISTORY_SIZE = 18
NAMES = (
    "eufy T9140",
    "eufy T9146",
    "eufy T9147",
    "eufy T9120",
    "T9140",
    "T9146",
    "T9147",
    "T9120",
    "Health Scale",
)
STATUS_FULL = 0x00
STATUS_WEIGHT_ONLY = 0x01


def _valid(frame: bytes) -> bool:
    return len(frame) == FRAME_SIZE and frame[0] == START and xor8(frame[:-1]) == frame[-1]


def make_framer() -> VendorFramer:
    return VendorFramer(starts=bytes([START]), valid=_valid, size=FRAME_SIZE)


def _frame_of(data: bytes) -> tuple[bytes, bool]:
    """The 11-byte frame of one notification and whether it is history (18 bytes)."""
    require(len(data) >= FRAME_SIZE, f"CF frame too short ({len(data)} bytes)", data)
    require(data[0] == START, f"CF frame must start with 0xcf, got 0x{data[0]:02x}", data)
    frame = data[:FRAME_SIZE]
    check(xor8(frame[:-1]), frame[-1], data)
    tail = data[FRAME_SIZE:]
    history = len(data) == HISTORY_SIZE
    if tail and not history:
        require(frame.startswith(tail), f"CF notification of {len(data)} bytes: tail is no duplicate", data)
    return frame, history


def _values(frame: bytes) -> tuple[int, int, int]:
    return u16le(frame, 3), u16le(frame, 1), frame[9]


def _reading(frame: bytes, *, stable: bool, extra: dict[str, str]) -> Reading:
    raw, impedance_raw, status = _values(frame)
    weight_kg = raw / 100
    fields = {
        "weight_raw": str(raw),
        "weight_kg": f"{weight_kg:.2f}",
        "impedance_raw": str(impedance_raw),
        "status": f"0x{status:02x}",
        **extra,
    }
    impedance = impedance_raw / 10 if status == STATUS_FULL and impedance_raw else None
    measurement = Measurement(weight_kg=weight_kg, impedance_ohm=impedance) if stable else Measurement()
    return Reading(NAME, measurement, stable, frame.hex(), fields=MappingProxyType(fields))


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Stateless view of one notification: never a weighing (stability needs the previous frame)."""
    data = bytes(frame)
    if len(data) < 3:
        return None
    cf, history = _frame_of(data)
    return _reading(cf, stable=False, extra={"history": "1"} if history else {})


class EufyDecoder:
    def __init__(self) -> None:
        self._previous: tuple[int, int, int] | None = None
        self._emitted = False

    def decode(self, frame: bytes, channel: str = "") -> list[Reading | DeviceReport]:
        data = bytes(frame)
        if len(data) < 3:
            return []
        cf, history = _frame_of(data)
        if history:
            return [_reading(cf, stable=False, extra={"history": "1"})]
        out = self._one(cf)
        if len(data) > FRAME_SIZE:  # a frame and the start of its duplicate, coalesced by the stack
            out.extend(self._one(cf))
        return out

    def _one(self, cf: bytes) -> list[Reading | DeviceReport]:
        values = _values(cf)
        repeat = values == self._previous
        self._previous = values
        if not repeat:
            self._emitted = False
            return [_reading(cf, stable=False, extra={})]
        if self._emitted or values[0] == 0:
            return [_reading(cf, stable=False, extra={"repeat": "1"})]
        self._emitted = True
        return [_reading(cf, stable=True, extra={})]


def mode_command(*, unit: int = 0x00, group: int = 0x01) -> bytes:
    body = bytes([0xFD, 0x37, unit, group]) + bytes(7)
    return body + bytes([xor8(body)])


def clock_command(wall_time_s: float) -> bytes:
    t = datetime.fromtimestamp(int(wall_time_s), UTC)
    return bytes([0xF1, t.year >> 8, t.year & 0xFF, t.month, t.day, t.hour, t.minute, t.second])


class EufyExchange(StartOnly):
    def __init__(self, context: ExchangeContext) -> None:
        self._wall_time_s = context.wall_time_s

    def start(self, *, now_s: float) -> list[Action]:
        actions: list[Action] = [Subscribe(NOTIFY), Write(WRITE, mode_command(), with_response=False)]
        if self._wall_time_s is not None:
            actions.append(Write(WRITE, clock_command(self._wall_time_s), with_response=False))
        return actions


def make_exchange(context: ExchangeContext) -> EufyExchange:
    return EufyExchange(context)


SPEC = DriverSpec(
    name=NAME,
    summary="Eufy C1/P1/A1 (T9146/T9147/T9120) and 1byone Health Scale: CF frames on 0xFFF0/0xFFF4",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=make_framer,
    make_decoder=EufyDecoder,
    make_exchange=make_exchange,
    models=("Eufy C1 T9146", "Eufy P1 T9147", "Eufy A1 T9120", "Eufy T9140", "1byone CF398BLE Health Scale"),
    ble=BleMatcher(mode=BleMode.GATT, name_prefixes=NAMES, characteristics=(NOTIFY,), requires_connectable=True),
    notes={
        "frames": "CF imp(LE) weight(LE /100) ... status check(XOR); impedance x0.1 only with status 0",
        "weighing": "two equal consecutive frames (no lock flag), once per run",
        "exchange": "FD 37 00 01 ... XOR, then F1 clock (UTC), without response",
        "matching": "by name only: 0xFFF0 is shared with QN and the Eufy P2",
    },
)
