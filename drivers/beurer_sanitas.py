"""Beurer BF700 / BF710 / BF800, Sanitas SBF70 / SBF75, Runtastic Libra: the Beurer/Sanitas vendor
protocol on service 0xFFE0, one characteristic 0xFFE1 (notify + write). See
shared/reference/ble-families.md §5.2(a). The SIG-profile Beurer/Sanitas models (BF720 family,
SBF72/73) are ``ble_standard``'s.

**Frames** ``<start> <command> ...``, no length byte and no check byte. ``start`` is 0xF7 (BF700/800,
Runtastic Libra) or 0xE7 (BF710, SBF70/75); the "alternative start" with the low nibble replaced
(6 INIT, 9 SET_TIME, 0xA DISCONNECT) marks those three, so the scale's INIT answer starts 0xF6/0xE6.

- ``0x58`` live weight, 5 bytes: ``<start> 58 <flag> <weight u16 BE x 50 g>``. Real: ``E7 58 01 08 5E``
  = 107.10 kg (ble-scale-sync#112). Every real 0x58 we have carries flag 0x01, the drifting first
  frame (14.95 kg) included; openScale reads flag 0 as "stable" (INFERENCE: no real flag-0 frame here).
  A 0x58 is never a weighing by itself, see below.
- ``0x59`` measurement, ``<start> 59 <count> <part> <payload>``, ``part`` 1..``count``. Part 1 names the
  scale's user: a 64-bit id at bytes 5-12 (openScale; real: ``E7 59 03 01 01 00..00 65`` = user 101).
  The payloads (from byte 4) of parts 2..count joined are one big-endian block: 0-3 the scale's clock
  (Unix s), 4-5 weight x 50 g, 6-7 impedance (ohm), 8-9 fat %, 10-11 water %, 12-13 muscle % (each
  x 0.1), 14-15 "bone" and 16.. more values. Verified on the real three frames of ble-scale-sync#211:
  83.55 kg, 437 ohm, fat 22.3 %, water 52.1 %, muscle 39.7 %. **Bone is UNKNOWN**: read as x 50 g (the
  peers) the real frame gives 11.65 kg, impossible for an 83.55 kg person, so it is kept raw
  (``fields["bone_raw"]``) and not decoded; so are bytes 16.. (``fields["extra_hex"]``; openScale
  calls them BMR/AMR/BMI without a layout). An all-zero composition means the scale did not know the
  person (not registered on the scale, or no bare feet).

**Frame sizes** (for a byte-stream framer only; a BLE link hands each notification whole): 0x58 is 5
bytes, a 0x59 part 1 is 13 and the other parts 15, as in every real frame (INFERENCE that every model
keeps these sizes). Other frames (INIT answer, 0xF0 scale acknowledgements, user lists) have no known
size and are not cut from a stream; a notification of one is decoded as a device report.

**Decoder** (one per connection): the weighing is the complete 0x59 (weight and composition from one
block, once). A complete 0x59 whose composition is all zero still gives the weighing when its weight
is non-zero; when the block carries no weight either, the last stable (flag 0) 0x58 weight of the
connection is the weighing. A stable 0x58 with no 0x59 after it (the scale never sent one) is emitted
by ``flush()`` at the end of the connection, weight only: the held weight is never lost, and never
emitted beside a 0x59 weighing.

**Exchange**: subscribe to 0xFFE1, write INIT ``<alt 6> 01``; on the INIT answer write the clock
``<alt 9> <Unix s u32 BE>`` (when the host clock is known); acknowledge every 0x58 / 0x59 / 0x34 / 0x42
frame with ``<start> F1 <bytes 1-3 of the frame>`` (without the acknowledgement the scale stops after
0x59 part 1: ble-scale-sync#211's snoop of the vendor app, which acknowledges 0x58 too); after the last
0x59 part's acknowledgement, disconnect. INIT is re-sent every ``INIT_RETRY_S`` while unanswered (at
most ``INIT_TRIES`` times). The start byte comes from the name (BF700/BF800/Libra: 0xF7, else 0xE7,
openScale's default) and switches to the one the scale's frames use. Not done: user management (list,
add, details), stored measurements, unit setting: the person must already be registered on the scale
with the vendor app to get a composition.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from ._vendor_frames import require, u16be, u32be
from .bleuuid import full_uuid
from .framing import BufferedFramer
from .gatt import Action, Disconnect, ExchangeContext, Subscribe, Write
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind

NAME = "beurer_sanitas"
SERVICE = full_uuid("ffe0")
CHARACTERISTIC = full_uuid("ffe1")

START_BF700 = 0xF7
START_BF710 = 0xE7
STARTS = (START_BF710, START_BF700)
NIBBLE_INIT = 0x6
NIBBLE_SET_TIME = 0x9
NIBBLE_DISCONNECT = 0xA

CMD_USER_INFO = 0x34
CMD_SAVED_MEASUREMENT = 0x42
CMD_WEIGHT = 0x58
CMD_MEASUREMENT = 0x59
CMD_SCALE_ACK = 0xF0
CMD_APP_ACK = 0xF1
#: frames the app acknowledges (openScale; the vendor app's snoop in ble-scale-sync#211)
ACKNOWLEDGED = frozenset({CMD_USER_INFO, CMD_SAVED_MEASUREMENT, CMD_WEIGHT, CMD_MEASUREMENT})

WEIGHT_SIZE = 5
PART1_SIZE = 13
PART_SIZE = 15
MAX_PARTS = 8
BLOCK_SIZE = 16
KG_PER_STEP = 0.05
INIT_RETRY_S = 5.0
INIT_TRIES = 3

NAMES = (
    "BEURER BF700",
    "BEURER BF710",
    "BEURER BF800",
    "Beurer BF700",
    "Beurer BF710",
    "Beurer BF800",
    "BF700",
    "BF710",
    "BF800",
    "BF-700",
    "BF-800",
    "bf700",
    "bf-700",
    "RT-Libra",
    "RT-LIBRA",
    "rt-libra",
    "Runtastic Libra",
    "SANITAS SBF70",
    "SANITAS SBF75",
    "Sanitas SBF70",
    "Sanitas SBF75",
    "SBF70",
    "SBF75",
    "AICDSCALE1",
    "aicdscale1",
)
#: names of the 0xF7 models (the rest speak 0xE7)
_F7_MARKERS = ("bf700", "bf-700", "bf 700", "bf800", "bf-800", "bf 800", "libra")


def start_for_name(name: str | None) -> int:
    folded = (name or "").casefold()
    return START_BF700 if any(m in folded for m in _F7_MARKERS) else START_BF710


def alternative(start: int, nibble: int) -> int:
    return (start & 0xF0) | nibble


def is_start(byte: int) -> bool:
    return byte in STARTS


def is_init_answer(data: bytes) -> bool:
    return len(data) >= 1 and data[0] in (alternative(s, NIBBLE_INIT) for s in STARTS)


def acknowledgement(frame: bytes) -> bytes | None:
    """``<start> F1 <frame[1:4]>`` for a frame the app must acknowledge, else None."""
    if len(frame) >= 4 and is_start(frame[0]) and frame[1] in ACKNOWLEDGED:
        return bytes([frame[0], CMD_APP_ACK]) + bytes(frame[1:4])
    return None


def init_command(start: int) -> bytes:
    return bytes([alternative(start, NIBBLE_INIT), 0x01])


def time_command(start: int, wall_time_s: float) -> bytes:
    return bytes([alternative(start, NIBBLE_SET_TIME)]) + (int(wall_time_s) & 0xFFFFFFFF).to_bytes(4, "big")


# --------------------------------------------------------------------------- framer


def frame_size(head: bytes) -> int | None:
    """The size of the frame starting ``head`` (at least 4 bytes for a 0x59), 0 when ``head`` is no
    frame start we can size, None when more bytes are needed to tell."""
    if not head:
        return None
    if not is_start(head[0]):
        return 0
    if len(head) < 2:
        return None
    if head[1] == CMD_WEIGHT:
        return WEIGHT_SIZE
    if head[1] != CMD_MEASUREMENT:
        return 0
    if len(head) < 4:
        return None
    count, part = head[2], head[3]
    if not 1 <= part <= count <= MAX_PARTS:
        return 0
    return PART1_SIZE if part == 1 else PART_SIZE


class BeurerFramer(BufferedFramer):
    """Cuts 0x58 and 0x59 frames out of a byte stream by their known sizes (module docstring);
    anything else is skipped a byte at a time up to the next start byte."""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while self._buf:
            size = frame_size(bytes(self._buf[:4]))
            if size is None:
                break
            if size == 0:
                self._skip(1)
                while self._buf and not is_start(self._buf[0]):
                    self._skip(1)
                continue
            if len(self._buf) < size:
                break
            out.append(bytes(self._buf[:size]))
            del self._buf[:size]
        return out


# --------------------------------------------------------------------------- frames


def _kg(raw: int) -> float:
    return round(raw * KG_PER_STEP, 2)


def _report(data: bytes, code: str, message: str, *, is_error: bool = False) -> DeviceReport:
    return DeviceReport(NAME, code, message, data.hex(), is_error=is_error)


def _checked(frame: bytes) -> bytes:
    data = bytes(frame)
    require(len(data) >= 2, f"Beurer/Sanitas frame too short ({len(data)} bytes)", data)
    require(
        is_start(data[0]) or is_init_answer(data),
        f"Beurer/Sanitas frame must start with 0xe7/0xf7 (or 0xe6/0xf6), got 0x{data[0]:02x}",
        data,
    )
    if is_start(data[0]) and data[1] == CMD_WEIGHT:
        require(len(data) >= WEIGHT_SIZE, f"0x58 weight frame too short ({len(data)} bytes)", data)
    if is_start(data[0]) and data[1] == CMD_MEASUREMENT:
        require(len(data) >= 4, f"0x59 measurement frame too short ({len(data)} bytes)", data)
        count, part = data[2], data[3]
        require(1 <= part <= count, f"0x59 part {part} of {count}", data)
    return data


def live_weight(data: bytes) -> Reading:
    """A checked 0x58 frame -> a live reading (never a weighing on its own)."""
    raw, flag = u16be(data, 3), data[2]
    fields = {"weight_raw": str(raw), "weight_kg": f"{_kg(raw):.2f}", "flag": f"0x{flag:02x}", "command": "0x58"}
    return Reading(NAME, Measurement(), False, data.hex(), fields=MappingProxyType(fields))


def user_id_of(part1: bytes) -> int | None:
    return int.from_bytes(part1[5:13], "big") if len(part1) >= PART1_SIZE else None


def _device_time(seconds: int) -> str | None:
    if seconds == 0:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat()


def composition_reading(block: bytes, *, raw: str, user_id: int | None, fallback_weight_raw: int | None) -> Reading:
    """The joined payload of parts 2..n (at least 16 bytes) -> the weighing (module docstring)."""
    require(len(block) >= BLOCK_SIZE, f"0x59 composition block is {len(block)} bytes, needs {BLOCK_SIZE}", block)
    clock, weight_raw, impedance = u32be(block, 0), u16be(block, 4), u16be(block, 6)
    fat, water, muscle, bone = u16be(block, 8), u16be(block, 10), u16be(block, 12), u16be(block, 14)
    fields = {
        "timestamp_raw": str(clock),
        "weight_raw": str(weight_raw),
        "impedance_raw": str(impedance),
        "fat_raw": str(fat),
        "water_raw": str(water),
        "muscle_raw": str(muscle),
        "bone_raw": str(bone),
        "command": "0x59",
    }
    if len(block) > BLOCK_SIZE:
        fields["extra_hex"] = block[BLOCK_SIZE:].hex()
    if user_id is not None:
        fields["scale_user_id"] = str(user_id)
    unknown_person = impedance == 0 and fat == 0 and water == 0 and muscle == 0
    if unknown_person:
        fields["composition"] = "none (person not registered on the scale)"
    if weight_raw == 0 and fallback_weight_raw is not None:
        weight_raw = fallback_weight_raw
        fields["weight_from"] = "0x58"
    if weight_raw == 0:
        return Reading(
            NAME, Measurement(), False, raw, device_time=_device_time(clock), fields=MappingProxyType(fields)
        )
    fields["weight_kg"] = f"{_kg(weight_raw):.2f}"
    measurement = Measurement(
        weight_kg=_kg(weight_raw),
        impedance_ohm=float(impedance) if impedance and not unknown_person else None,
        fat_percent=fat / 10 if fat else None,
        total_body_water_percent=water / 10 if water else None,
        muscle_percent=muscle / 10 if muscle else None,
    )
    return Reading(NAME, measurement, True, raw, device_time=_device_time(clock), fields=MappingProxyType(fields))


def _weight_only(data: bytes, raw: int) -> Reading:
    fields = {"weight_raw": str(raw), "weight_kg": f"{_kg(raw):.2f}", "weight_from": "0x58", "command": "0x58"}
    return Reading(NAME, Measurement(weight_kg=_kg(raw)), True, data.hex(), fields=MappingProxyType(fields))


class BeurerDecoder:
    """Per-connection state: the 0x59 parts, the scale's user, the last stable 0x58 weight."""

    def __init__(self) -> None:
        self._parts: dict[int, bytes] = {}
        #: every 0x59 frame of the measurement being received, for ``Reading.raw``
        self._frames: list[bytes] = []
        self._count = 0
        self._user_id: int | None = None
        #: (frame, weight raw) of the last stable 0x58 not yet covered by a weighing
        self._held: tuple[bytes, int] | None = None
        self._weighed = False

    @property
    def held(self) -> bool:
        return self._held is not None

    def decode(self, frame: bytes, channel: str = "") -> list[Reading | DeviceReport]:
        data = _checked(frame)
        if is_init_answer(data):
            return [_report(data, "init", "answer to INIT")]
        command = data[1]
        if command == CMD_WEIGHT:
            reading = live_weight(data)
            raw = int(reading.fields["weight_raw"])
            if data[2] == 0x00 and raw > 0:
                self._held = (data, raw)
            return [reading]
        if command == CMD_MEASUREMENT:
            return self._part(data)
        if command == CMD_SCALE_ACK and len(data) >= 3:
            return [_report(data, "scale_ack", f"scale acknowledges command 0x{data[2]:02x}")]
        return [_report(data, f"cmd_0x{command:02x}", f"Beurer/Sanitas frame 0x{command:02x} ({len(data)} bytes)")]

    def _part(self, data: bytes) -> list[Reading | DeviceReport]:
        count, part = data[2], data[3]
        if part == 1:
            self._parts, self._count, self._user_id = {}, count, user_id_of(data)
            self._frames = [data]
            who = "unknown" if self._user_id is None else str(self._user_id)
            return [_report(data, "measurement_user", f"measurement 1/{count}: scale user {who}")]
        if count != self._count:
            self._parts, self._count, self._frames = {}, count, []
        self._parts[part] = data[4:]
        self._frames.append(data)
        if part < count:
            return [_report(data, "measurement_part", f"measurement part {part}/{count}")]
        missing = [p for p in range(2, count + 1) if p not in self._parts]
        block = b"".join(self._parts.get(p, b"") for p in range(2, count + 1))
        user_id, raw = self._user_id, " ".join(f.hex() for f in self._frames)
        self._parts, self._count, self._user_id, self._frames = {}, 0, None, []
        if missing:
            return [_report(data, "measurement_incomplete", f"0x59 parts {missing} missing", is_error=True)]
        fallback = self._held[1] if self._held is not None else None
        reading = composition_reading(block, raw=raw, user_id=user_id, fallback_weight_raw=fallback)
        if reading.is_weighing:
            self._held = None
            self._weighed = True
        return [reading]

    def flush(self) -> list[Reading | DeviceReport]:
        """End of the connection: a stable 0x58 weight no 0x59 covered becomes the weighing."""
        held, self._held = self._held, None
        self._parts, self._count, self._user_id, self._frames = {}, 0, None, []
        if held is None:
            return []
        return [_weight_only(*held)]


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Stateless view of one frame: a 0x59 part alone is never a weighing."""
    data = _checked(frame)
    if len(data) >= 4 and is_start(data[0]) and data[1] == CMD_MEASUREMENT and data[3] > 1:
        return _report(data, "measurement_part", f"measurement part {data[3]}/{data[2]}")
    results = BeurerDecoder().decode(data, channel)
    return results[0] if results else None


# --------------------------------------------------------------------------- exchange


class BeurerExchange:
    """INIT, clock, an acknowledgement per frame, disconnect after the last 0x59 part (docstring)."""

    def __init__(self, context: ExchangeContext) -> None:
        self._start = start_for_name(context.name)
        self._wall_time_s = context.wall_time_s
        self._inits = 0
        self._deadline: float | None = None
        self._answered = False
        self.done = False

    @property
    def deadline_s(self) -> float | None:
        return self._deadline

    def _init(self, now_s: float) -> list[Action]:
        self._inits += 1
        self._deadline = now_s + INIT_RETRY_S if self._inits < INIT_TRIES else None
        return [Write(CHARACTERISTIC, init_command(self._start))]

    def start(self, *, now_s: float) -> list[Action]:
        return [Subscribe(CHARACTERISTIC), *self._init(now_s)]

    def on_notify(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        if self.done or uuid != CHARACTERISTIC or not data:
            return []
        frame = bytes(data)
        out: list[Action] = []
        if is_init_answer(frame):
            self._deadline = None
            if not self._answered:
                self._answered = True
                if self._wall_time_s is not None:
                    out.append(Write(CHARACTERISTIC, time_command(self._start, self._wall_time_s)))
            return out
        if not is_start(frame[0]):
            return []
        self._start = frame[0]  # the scale's own start byte wins over the name's guess
        self._deadline = None
        ack = acknowledgement(frame)
        if ack is not None:
            out.append(Write(CHARACTERISTIC, ack))
        if len(frame) >= 4 and frame[1] == CMD_MEASUREMENT and frame[3] == frame[2] and frame[3] > 1:
            self.done = True
            out.append(Disconnect("measurement received"))
        return out

    def on_read(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        return []

    def on_timeout(self, *, now_s: float) -> list[Action]:
        if self.done or self._answered or self._inits >= INIT_TRIES:
            self._deadline = None
            return []
        return self._init(now_s)


def make_exchange(context: ExchangeContext) -> BeurerExchange:
    return BeurerExchange(context)


_NOTES: Mapping[str, str] = {
    "frames": "<E7|F7> 58 <flag> <weight BE x50 g>; <E7|F7> 59 <count> <part> ...: parts 2..n joined = "
    "clock, weight x50 g, impedance, fat/water/muscle x0.1 %; bone UNKNOWN (kept raw)",
    "weighing": "the complete 0x59 (once); a stable (flag 0) 0x58 only when no 0x59 weight comes, at flush",
    "exchange": "INIT <alt 6> 01, clock <alt 9> <u32 BE> on its answer, <start> F1 <b1..b3> per 0x58/0x59 "
    "frame, disconnect after the last part",
    "matching": "by name only: 0xFFE0 is shared with QN and Yunmai",
    "not_done": "user management (the person must be registered on the scale with the vendor app)",
}

SPEC = DriverSpec(
    name=NAME,
    summary="Beurer BF700/BF710/BF800, Sanitas SBF70/SBF75, Runtastic Libra: vendor frames on 0xFFE0/0xFFE1",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=BeurerFramer,
    make_decoder=BeurerDecoder,
    make_exchange=make_exchange,
    models=(
        "Beurer BF700",
        "Beurer BF710",
        "Beurer BF800",
        "Sanitas SBF70",
        "Sanitas SBF75",
        "Runtastic Libra",
    ),
    ble=BleMatcher(
        mode=BleMode.GATT, name_prefixes=NAMES, characteristics=(CHARACTERISTIC,), requires_connectable=True
    ),
    notes=_NOTES,
)
