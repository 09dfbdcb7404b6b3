"""QN / Renpho / FITINDEX / Sencor / Elis / Arboleaf GATT scales (the "QN" vendor protocol). See
shared/reference/ble-families.md §5.1; the broadcast-only variant is ``drivers/qn_broadcast.py``.

Two GATT layouts: type 1, service 0xFFE0 (FFE1 notify, FFE2 indicate, FFE3 write configuration,
FFE4 write time); type 2, service 0xFFF0 (FFF1 notify, FFF2 write). Newer firmware adds service AE00
(AE01 write, AE02 notify) and gates its results behind a "Jieli" challenge on AE02.

**Frames** ``<opcode> <length> ... <check>``: ``length`` is the whole frame's size and ``check`` the
low byte of the sum of all bytes before it. Verified on every real frame we have (0x10 from an Elis 1
and an ES-26M, 0x12 from an ES-26M and a GE CS 10 G, 0x14, 0x21, 0xA1, 0xA3); the classic 10-byte
0x10 layout has no real frame here and is assumed to follow the same rule (INFERENCE), so its last
two bytes are not a second resistance: only R1 (bytes 6-7) is decoded from it.

- ``0x12`` scale info: byte 2 is the protocol type (echoed in every command), byte 10 the weight
  scale flag: bit 0 set -> weight / 100, else / 10. The bit test (not ``== 1``) is the vendor SDK's,
  per openScale PR #1502; on the ES-26M's real 18-byte 0x12 (byte 10 = 0x07) it gives 97.85 kg for
  its real barefoot frame, the capture's weight.
- ``0x10`` weight, 10-byte form: weight 3-4 big-endian, byte 5 = 1 stable, R1 6-7.
  14-byte (ES-30M) form: byte 4 state (0 measuring, 1 stabilising, 2 stable), weight 5-6, R1 7-8,
  R2 9-10 (big-endian).
- ``0x23`` stored record (17 bytes or more): a history reading, never a weighing (the scale's memory;
  ble-families.md §5.1: records older than about 90 s are stale, and the decoder has no clock to tell
  a fresh one): record time 6-9 (u32 LE, 2000 epoch, as ``device_time``), weight 10-11 (u16 BE / 100),
  R1 13-14 and R2 15-16 (u16 LE), per openScale's QNHandler (no real 0x23 in our sources: INFERENCE).
- ``0x14`` ready, ``0x21`` configuration request, a shorter ``0x23``, ``0xA1``/``0xA3``
  acknowledgements, ``0xB1``/``0xB4`` extended results: valid frames, not weighings (``DeviceReport``,
  not errors). The extended 0xB1/0xB4 results are not decoded (not yet done).

**Decoder** (one per connection): the weight divisor is the one the connection's 0x12 gave. A 0x10
before any 0x12 has an UNKNOWN divisor: it is a reading with the raw weight in ``fields`` and no
measurement, never a weighing (no guessing between / 10 and / 100). The first stable 0x10 of a
weight is the weighing (impedance = R1 when above 0); the scale repeats it: repeats of the same raw
weight on the connection are readings with ``stable=False`` and ``fields["repeat"] = "1"``. An
ES-30M whose first stable frame has no resistance yet loses that later resistance (known limit).

**Exchange**: subscribe to the notify/indicate characteristics (and AE02 when offered); on 0x12 write
the 0x13 configuration ``13 09 <protocol> 01 10 00 00 00 <sum>`` (kg; bytes 5-7 zero: INFERENCE); on
0x14 write the 0x20 time ``20 08 <protocol> <seconds since 2000-01-01, u32 LE> <sum>`` (layout
INFERENCE from the 0x23 records' time field) when the host clock is known; after the weighing,
disconnect. A device offering both layouts and AE00 is driven on 0xFFF0 (where the writes that got a
GE CS 10 G to a weighing went). The extended dialect's further writes: below.

**AE00 "Jieli" authentication** (Jieli's RCSP check; facts from KristianP26/ble-scale-sync#235, a GE
CS 10 G captured with its vendor app): the scale sends ``00 <challenge, 16 bytes>`` on AE02 and sends no
weighing until the host writes ``01 <answer, 16 bytes>`` to AE01 (write without response), the answer
being the Bluetooth E1 function of the challenge under two fixed constants (``drivers/bt_e1.py``:
verified against the spec's E1 sample data and all ten challenge/response pairs of that capture).
The scale then sends ``02 "pass"`` on AE02. The vendor app first challenges the scale itself and
writes ``02 "pass"`` to AE01 when the scale's answer checks out; we do not challenge the scale (the
exchange has no random source; ble-scale-sync ships without it too) but write that ``02 "pass"`` to
AE01 at 0x14, as ble-scale-sync does on the units that authenticate with it (that the scale needs it
before it challenges: INFERENCE from the captured order). The exchange answers up to 3 challenges; a
4th, an AE02 frame starting 00 that is not 17 bytes long, or no "pass" within 5 s of an answer ends
the session with the reason. The decoder only reports AE02 frames, never weighings.

**Extended dialect** (a 20-byte 0x12: the GE CS 10 G / "Fit Plus"; bytes, facts and sources in
``drivers/_qn_ae00.py``): AE01 init before the 0x13 (on every AE00 unit), a ready-time A2, on 0x21
two A0 replies, the 0x22 start and the A2 trigger (``weight_anchor_kg``) twice, an A2 echo per 0x10.
The weighing is the 0xB1 03 01 result (weight only), once; 0x10 frames are live, 0xB4 history. The
scale only finishes weigh-ins near the anchor. Other AE00 dialects get none of these writes (no
source shows what gets their weighings to a host); the 0x1F acknowledgement is never sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from . import _qn_ae00 as ae
from . import _qn_jieli as jieli
from ._vendor_frames import VendorFramer, channel_uuid, check, require, sum8, u16be
from .bleuuid import full_uuid
from .gatt import Action, Disconnect, ExchangeContext, ExchangeError, Subscribe, Write
from .gatt import offered as gatt_offered
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind

NAME = ae.NAME
SERVICE_T1 = full_uuid("ffe0")
NOTIFY_T1 = full_uuid("ffe1")
INDICATE_T1 = full_uuid("ffe2")
CONFIG_T1 = full_uuid("ffe3")
TIME_T1 = full_uuid("ffe4")
SERVICE_T2 = full_uuid("fff0")
NOTIFY_T2 = full_uuid("fff1")
WRITE_T2 = full_uuid("fff2")
SERVICE_AE = full_uuid("ae00")
AE_WRITE = full_uuid("ae01")
AE_NOTIFY = full_uuid("ae02")

OP_WEIGHT = 0x10
OP_INFO = 0x12
OP_CONFIG = 0x13
OP_READY = 0x14
OP_TIME = 0x20
OP_CONFIG_REQUEST = 0x21
OP_STORED = 0x23
OPCODES = frozenset({0x10, 0x12, 0x14, 0x21, 0x23, 0xA1, 0xA3, 0xB1, 0xB4})
#: "Fit Plus": the GE CS 10 G (openScale PR #1502: its advertisement carries only FFE0, so the name claims it)
NAMES = ("QN-Scale", "Renpho", "RENPHO", "FITINDEX", "Sencor", "SENCOR", "Fit Plus")
#: the Renpho ES-WBE28 speaks the SIG profiles (drivers/ble_standard.py), not QN
ES_WBE28_NAMES = ("Renpho-Scale", "RENPHO-SCALE", "renpho-scale")
#: the broadcast-only variant's manufacturer data company id (drivers/qn_broadcast.py)
BROADCAST_COMPANY_ID = 0xFFFF
#: 2000-01-01T00:00:00Z as Unix seconds (the QN clock's epoch)
EPOCH_2000_S = 946_684_800
#: the smallest 0x23 stored record that holds the fields decoded from it (up to R2, bytes 15-16)
STORED_MIN_SIZE = 17


def _valid(frame: bytes) -> bool:
    return len(frame) >= 3 and frame[1] == len(frame) and sum8(frame[:-1]) == frame[-1]


def make_framer() -> VendorFramer:
    return VendorFramer(starts=bytes(sorted(OPCODES)), valid=_valid, length_index=1, min_size=3, max_size=64)


def _checked(frame: bytes) -> bytes:
    data = bytes(frame)
    require(len(data) >= 3, f"QN frame too short ({len(data)} bytes)", data)
    require(data[1] == len(data), f"QN length byte says {data[1]}, frame has {len(data)} bytes", data)
    check(sum8(data[:-1]), data[-1], data)
    return data


def divisor_of_info(info: bytes) -> int:
    """The weight divisor a 0x12 scale-info frame announces (100 or 10)."""
    require(len(info) >= 12, f"QN 0x12 scale info too short ({len(info)} bytes)", info)
    return 100 if info[10] & 0x01 else 10


def _report(data: bytes, code: str, message: str) -> DeviceReport:
    return DeviceReport(NAME, code, message, data.hex(), is_error=False)


class QnDecoder:
    """Per-connection state: the divisor from 0x12 and the raw weights already emitted."""

    def __init__(self) -> None:
        self.divisor: int | None = None
        #: the connection's 0x12 was the 20-byte extended dialect (drivers/_qn_ae00.py)
        self.extended = False
        self._emitted: set[int] = set()
        self._result_emitted = False

    def decode(self, frame: bytes, channel: str = "") -> list[Reading | DeviceReport]:
        if channel_uuid(channel) == AE_NOTIFY:
            data = bytes(frame)
            return [_report(data, "ae02", f"AE02 notification ({len(data)} bytes): {jieli.kind(data)}")]
        data = _checked(frame)
        op = data[0]
        if op == OP_INFO:
            self.divisor = divisor_of_info(data)
            self.extended = ae.is_extended_info(data)
            dialect = ", extended dialect" if self.extended else ""
            message = f"scale info: protocol 0x{data[2]:02x}, weight / {self.divisor}{dialect}"
            return [_report(data, "scale_info", message)]
        if op == OP_STORED and len(data) >= STORED_MIN_SIZE:
            return [stored_reading(data)]
        if op in (ae.OP_RESULT, ae.OP_RECORD):
            return [self._result(data)]
        if op != OP_WEIGHT:
            return [_report(data, f"op_0x{op:02x}", f"QN frame 0x{op:02x} ({len(data)} bytes)")]
        reading = weight_reading(data, self.divisor)
        if self.extended:  # its stable flag is UNKNOWN: live only, the weighing is the 0xB1 result
            fields = dict(reading.fields, dialect="extended", live="1")
            return [Reading(NAME, Measurement(), False, reading.raw, fields=MappingProxyType(fields))]
        if not reading.stable:
            return [reading]
        raw = int(reading.fields["weight_raw"])
        if raw in self._emitted:
            fields = dict(reading.fields, repeat="1")
            return [Reading(NAME, Measurement(), False, reading.raw, fields=MappingProxyType(fields))]
        self._emitted.add(raw)
        return [reading]

    def _result(self, data: bytes) -> Reading | DeviceReport:
        result = ae.result(data, self.extended)
        if not isinstance(result, Reading) or not result.is_weighing:
            return result
        if self._result_emitted:  # the burst repeats the weigh-in: one weighing per connection
            fields = dict(result.fields, repeat="1")
            return Reading(NAME, Measurement(), False, result.raw, fields=MappingProxyType(fields))
        self._result_emitted = True
        return result


def weight_reading(data: bytes, divisor: int | None) -> Reading:
    """A checked 0x10 frame -> its reading under ``divisor`` (None: unknown, never a weighing)."""
    if len(data) >= 14:
        state = data[4]
        raw, r1, r2 = u16be(data, 5), u16be(data, 7), u16be(data, 9)
        settled = state == 2
        fields = {"form": "14", "state": str(state), "r1": str(r1), "r2": str(r2)}
    else:
        require(len(data) >= 9, f"QN 0x10 weight frame too short ({len(data)} bytes)", data)
        raw, r1 = u16be(data, 3), u16be(data, 6)
        settled = data[5] == 1
        fields = {"form": str(len(data)), "state": str(data[5]), "r1": str(r1)}
    fields["protocol"] = f"0x{data[2]:02x}"
    fields["weight_raw"] = str(raw)
    if divisor is None:
        fields["divisor"] = "unknown"
        return Reading(NAME, Measurement(), False, data.hex(), fields=MappingProxyType(fields))
    weight_kg = raw / divisor
    fields["weight_kg"] = f"{weight_kg:g}"
    stable = settled and raw > 0
    measurement = Measurement(weight_kg=weight_kg, impedance_ohm=float(r1) if r1 else None) if stable else Measurement()
    return Reading(NAME, measurement, stable, data.hex(), fields=MappingProxyType(fields))


def stored_reading(data: bytes) -> Reading:
    """A checked 0x23 stored record (at least 17 bytes) -> a history reading, never a weighing: record
    time bytes 6-9 (u32 LE, seconds since 2000-01-01), weight 10-11 (u16 BE / 100 kg), R1 13-14 and
    R2 15-16 (u16 LE); layout per openScale's QNHandler as ble-scale-sync reads it (no real frame here)."""
    seconds = int.from_bytes(data[6:10], "little")
    raw, r1, r2 = u16be(data, 10), int.from_bytes(data[13:15], "little"), int.from_bytes(data[15:17], "little")
    weight_kg = raw / 100
    fields = {
        "history": "1",
        "protocol": f"0x{data[2]:02x}",
        "weight_raw": str(raw),
        "weight_kg": f"{weight_kg:g}",
        "record_s_since_2000": str(seconds),
        "r1": str(r1),
        "r2": str(r2),
    }
    impedance = float(r1 or r2) if (r1 or r2) else None
    measurement = Measurement(weight_kg=weight_kg, impedance_ohm=impedance) if raw else Measurement()
    when = datetime.fromtimestamp(EPOCH_2000_S + seconds, UTC).replace(tzinfo=None).isoformat() if seconds else None
    return Reading(NAME, measurement, False, data.hex(), device_time=when, fields=MappingProxyType(fields))


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Stateless view of one frame: a 0x10 has no divisor here, so it is never a weighing."""
    results = QnDecoder().decode(frame, channel)
    return results[0] if results else None


# --------------------------------------------------------------------------- exchange


class QnExchange:
    """The QN handshake as a sans-I/O state machine (see the module docstring)."""

    def __init__(self, context: ExchangeContext) -> None:
        problems = ae.check_settings(context.settings)
        if problems:
            raise ExchangeError("qn_scale settings: " + "; ".join(f"{key}: {why}" for key, why in problems))
        self._anchor_kg = ae.anchor_kg(context.settings)
        self._age_years = ae.age_years(context.settings)
        offered = context.characteristics
        # AE00 units offering both layouts take 0xFFF0: ble-scale-sync's writes that got a GE CS 10 G
        # to a weighing went to FFF2 (INFERENCE that FFE3 would not do)
        ae_t2 = AE_NOTIFY in offered and WRITE_T2 in offered
        self._type2 = NOTIFY_T2 in offered and (NOTIFY_T1 not in offered or ae_t2)
        if self._type2:
            self._subscribe = [NOTIFY_T2]
            self._config_char = self._time_char = WRITE_T2
        else:
            self._subscribe = gatt_offered(context, (NOTIFY_T1, INDICATE_T1))
            self._config_char, self._time_char = CONFIG_T1, TIME_T1
        if AE_NOTIFY in offered:
            self._subscribe.append(AE_NOTIFY)
        #: AE01, where the Jieli answers go (None: the device has no AE00 service)
        self._ae_write = AE_WRITE if AE_NOTIFY in offered and AE_WRITE in offered else None
        self._gate = jieli.JieliGate(self._ae_write)
        self._wall_time_s = context.wall_time_s
        self._decoder = QnDecoder()
        self._protocol = 0x00
        self._config_sent = False
        self._time_sent = False
        self._started = False
        self.done = False

    @property
    def deadline_s(self) -> float | None:
        return None if self.done else self._gate.deadline_s

    def start(self, *, now_s: float) -> list[Action]:
        return [Subscribe(u) for u in self._subscribe]

    @property
    def authenticated(self) -> bool:
        return self._gate.authenticated

    def _ended(self, actions: list[Action]) -> list[Action]:
        self.done = any(isinstance(a, Disconnect) for a in actions)
        return actions

    def on_notify(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        if self.done:
            return []
        if channel_uuid(uuid) == AE_NOTIFY:
            return self._ended(self._gate.on_ae02(bytes(data), now_s))
        data = bytes(data)
        if not _valid(data):
            return []
        op = data[0]
        if op == OP_INFO and len(data) >= 12:
            return self._on_info(data, uuid)
        if op == OP_READY and not self._time_sent:
            return self._on_ready()
        if op == OP_CONFIG_REQUEST and self._decoder.extended and not self._started:
            self._started = True
            commands = [*ae.CONFIG_REPLIES, ae.start_command(self._protocol)]
            commands += [ae.trigger_command(self._anchor_kg)] * ae.TRIGGER_REPEATS
            return [Write(self._config_char, c) for c in commands]
        if op in (OP_WEIGHT, ae.OP_RESULT, ae.OP_RECORD):
            return self._on_weight(op, data, uuid)
        return []

    def _on_info(self, data: bytes, uuid: str) -> list[Action]:
        self._protocol = data[2]
        self._decoder.decode(data, uuid)
        if self._config_sent:
            return []
        self._config_sent = True
        init = [] if self._ae_write is None else [Write(self._ae_write, ae.AE01_INIT, with_response=False)]
        return [*init, Write(self._config_char, config_command(self._protocol))]

    def _on_ready(self) -> list[Action]:
        self._time_sent = True
        out: list[Action] = []
        if self._wall_time_s is not None:
            out.append(Write(self._time_char, time_command(self._protocol, self._wall_time_s)))
        if self._decoder.extended:
            out.append(Write(self._config_char, ae.ready_profile_command(self._age_years)))
        if self._ae_write is not None:
            out.append(Write(self._ae_write, jieli.PASS, with_response=False))
        return out

    def _on_weight(self, op: int, data: bytes, uuid: str) -> list[Action]:
        out: list[Action] = []
        if op == OP_WEIGHT and self._decoder.extended and len(data) >= 7:
            out.append(Write(self._config_char, ae.weight_a2(u16be(data, 5))))  # the app's echo
        for result in self._decoder.decode(data, uuid):
            if isinstance(result, Reading) and result.is_weighing:
                self.done = True
                out.append(Disconnect("weighing received"))
        return out

    def on_read(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        return []

    def on_timeout(self, *, now_s: float) -> list[Action]:
        return [] if self.done else self._ended(self._gate.on_timeout(now_s))


def config_command(protocol: int) -> bytes:
    """0x13 configuration: protocol type, unit kg (0x01), 0x10, three zero bytes."""
    return ae.frame(OP_CONFIG, bytes([protocol, 0x01, 0x10, 0x00, 0x00, 0x00]))


def time_command(protocol: int, wall_time_s: float) -> bytes:
    """0x20 time sync: protocol type, seconds since 2000-01-01 UTC as u32 LE."""
    seconds = max(0, int(wall_time_s) - EPOCH_2000_S) & 0xFFFFFFFF
    return ae.frame(OP_TIME, bytes([protocol]) + seconds.to_bytes(4, "little"))


def make_exchange(context: ExchangeContext) -> QnExchange:
    return QnExchange(context)


_NOTES: Mapping[str, str] = {
    "frames": "<op> <len> ... <sum8>; 0x12 byte 10 bit 0: weight / 100, else / 10; no 0x12: weight unknown",
    "weighing": "first stable 0x10 per weight and connection (10-byte: byte 5 = 1; 14-byte: state 2)",
    "exchange": '0x13 config on 0x12 (AE01 init first when offered), 0x20 time (+ AE01 02 "pass") on 0x14, '
    "disconnect after the weighing; AE00 Jieli auth: yes (AE02 00+challenge -> AE01 01+E1 answer, then the "
    'scale\'s 02 "pass"); extended dialect (20-byte 0x12): ready A2, 0x21 -> two A0 replies, 0x22 start, '
    "A2 trigger x2 carrying weight_anchor_kg, an A2 echo per 0x10; the weighing is the 0xB1 03 01 result",
    "anchor": "the GE CS 10 G only finishes weigh-ins near weight_anchor_kg (one value per scale: members "
    "far from it get no weighing)",
    "matching": "by name only (0xFFE0/0xFFF0 are shared with Yunmai, Beurer, Eufy); never 'Renpho-Scale' "
    "(ES-WBE28, ble_standard's) nor 0xFFFF manufacturer data (qn_broadcast's)",
}

SPEC = DriverSpec(
    name=NAME,
    summary="QN / Renpho / FITINDEX vendor protocol over GATT (0xFFE0 or 0xFFF0; AE00 Jieli auth; GE CS 10 G)",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=make_framer,
    make_decoder=QnDecoder,
    make_exchange=make_exchange,
    models=(
        "Renpho ES-26M",
        "Renpho ES-30M",
        "Renpho Elis 1 (no AE00)",
        "FITINDEX",
        "Sencor",
        "QN-Scale",
        "GE CS 10 G / Fit Plus (AE00; weight only, near weight_anchor_kg)",
    ),
    ble=BleMatcher(
        mode=BleMode.GATT,
        name_prefixes=NAMES,
        characteristics=(NOTIFY_T1, INDICATE_T1, NOTIFY_T2, AE_NOTIFY),
        excludes_name_prefixes=ES_WBE28_NAMES,
        excludes_manufacturer_ids=frozenset({BROADCAST_COMPANY_ID}),
        requires_connectable=True,
    ),
    notes=_NOTES,
    settings=ae.SETTINGS,
    check_settings=ae.check_settings,
)
