"""Lefu / Icomon / Fitdays scales on service 0xFFB0 (MGB/Swan, Hutbit, Juniper, Robi S9, 1byone new,
FitTrack Dara, Healthkeep, Afu). See shared/reference/ble-families.md §5.6.

Service 0xFFB0: 0xFFB1 write, 0xFFB2 notify, 0xFFB3 indicate (final result 0xA3). Two dialects are
decoded, told apart by each notification's first bytes:

- **``AC 02``, 8-byte frames** (Hutbit 218008 / WL292, Lefu OEM ``SWAN``, Juniper, FitTrack Dara):
  ``drivers/_lefu_ac02.py`` (live and stable weight, the impedance of the BIA phase, the check byte;
  REAL frames, ble-scale-sync #254/#291/#322).
- **``AB 2A``** (1byone new): type (byte 2) 0x80: weight, 24-bit big-endian at bytes 3-5, masked with
  0x03FFFF, / 1000 kg, a live value (``stable=False``); type 0x01: impedance, big-endian at bytes
  4-5 (ohm): the weighing is the last 0x80 weight together with this impedance, emitted once
  (INFERENCE that the impedance frame ends the measurement; no real frame in our sources); type
  0x00: a stored history record, not decoded.

Every other frame of the family (``AC 02``/``AC 03`` frames of other lengths, ``AC 27``, the 0xA3
final result of the Healthkeep/MGB dialects) is a valid notification that is not decoded: a non-error
``DeviceReport`` (layouts not in our sources: UNKNOWN).

**One driver, not two**: both dialects advertise 0xFFB0, and the name does not tell them apart
(``SWAN`` is the Lefu OEM stock name of the ``AC 02`` Hutbit and of openScale's MGB units), so two
matchers would shadow each other; the frame itself says which dialect it is.

**The exchange** subscribes, then writes the Fitdays app's five ``AC 02`` commands to FFB1 (write
without response, as the Hutbit offers it), the member profile ``FB <sex> <age> <height>`` second:
per-scale settings ``sex``, ``age_years``, ``height_cm``, default the capture's own female / 31 /
165 cm (``_lefu_ac02.session_commands``). Not to the ``AB 2A`` and Healthkeep members (by name):
no write of theirs is known. After the stable weight it waits ``IMPEDANCE_WAIT_S`` for the
impedance (each ``FD 00`` frame restarts the wait), then ends the session; after the impedance it
ends it at once. A gym scale weighs many members with one fixed profile: the profile only feeds the
scale's own body-fat estimate, which is not decoded; what is posted is the weight and the raw
impedance, the same for any profile (whether the impedance needs the profile at all is UNKNOWN).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from . import _lefu_ac02 as ac02
from ._vendor_frames import require, u16be
from .bleuuid import full_uuid
from .gatt import Action, Disconnect, ExchangeContext, ExchangeError, Subscribe, Write, int_setting, offered
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
NAMES = ("1byone scale", "Hutbit", "Healthkeep", "Swan", "SWAN", "FitTrack")
#: members whose frames are not ``AC 02`` and for which no write is known: the exchange only subscribes
NO_WRITES = ("1byone scale", "Healthkeep")
#: how long after the stable weight (or the last ``FD 00``) the exchange waits for the impedance
IMPEDANCE_WAIT_S = 15.0


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
        self._ac02 = ac02.Ac02Decoder(NAME)

    def decode(self, frame: bytes, channel: str = "") -> list[Reading | DeviceReport]:
        data = bytes(frame)
        if ac02.is_frame(data):
            return self._ac02.decode(data)
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

    def flush(self) -> list[Reading | DeviceReport]:
        """End of the session: an ``AC 02`` stable weight no impedance followed (weight only)."""
        self._weight_raw = None
        return self._ac02.flush()


class LefuFramer:
    """A notification is a frame (the BLE link delivers them whole); in a byte stream (a replay, a
    capture joined) 8-byte ``AC 02`` frames with a good check are cut out of it, byte by byte or
    several joined. Anything else passes through as it came (the ``AB 2A`` frames carry no length)."""

    def __init__(self) -> None:
        self._buf = b""

    @property
    def discarded_bytes(self) -> int:
        return 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        buf, self._buf = self._buf + bytes(data), b""
        if not buf:
            return []
        whole = len(buf) // ac02.FRAME_LEN * ac02.FRAME_LEN
        blocks = [buf[i : i + ac02.FRAME_LEN] for i in range(0, whole, ac02.FRAME_LEN)]
        tail = buf[whole:]
        if all(ac02.is_frame(b) and ac02.checksum(b) == b[7] for b in blocks) and (
            not tail or ac02.HEADER.startswith(tail[:2])
        ):
            self._buf = tail  # fewer than 8 bytes of the next frame: wait for the rest
            return blocks
        return [buf]  # not a run of checked 8-byte frames: one notification, for the decoder to judge


# --------------------------------------------------------------------------- settings and exchange

SETTINGS: Mapping[str, str] = {
    "sex": "the profile sent to the scale (AC 02 FB): male or female (default female, the capture's)",
    "age_years": "the profile's age, 10-99 (default 31, the capture's)",
    "height_cm": "the profile's height in cm, 90-220 (default 165, the capture's)",
}


def _profile(settings: Mapping[str, str]) -> bytes:
    """The FB command of these settings; ValueError naming the bad key and why."""
    text = settings.get("sex", "").strip().lower()
    if text and text not in {s.value for s in ac02.Sex}:
        raise ValueError(f"sex: must be male or female, not {settings['sex']!r}")
    sex = ac02.Sex(text) if text else ac02.DEFAULT_SEX
    values = []
    for key, (low, high), default in (
        ("age_years", ac02.AGE_RANGE, ac02.DEFAULT_AGE_YEARS),
        ("height_cm", ac02.HEIGHT_RANGE_CM, ac02.DEFAULT_HEIGHT_CM),
    ):
        try:
            value = int_setting(settings, key, low=low, high=high)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        values.append(default if value is None else value)
    return ac02.profile_command(sex, values[0], values[1])


def check_settings(settings: Mapping[str, str]) -> list[tuple[str, str]]:
    """Config-time validation of ``sex`` / ``age_years`` / ``height_cm``: one problem per bad key."""
    problems: list[tuple[str, str]] = []
    for key in SETTINGS:
        try:
            _profile({key: settings[key]} if key in settings else {})
        except ValueError as exc:
            problems.append((key, str(exc).split(": ", 1)[1]))
    return problems


class LefuExchange:
    """Subscribe, the five commands (module docstring), wait for the impedance, end the session."""

    def __init__(self, context: ExchangeContext) -> None:
        try:
            profile = _profile(context.settings)
        except ValueError as exc:
            raise ExchangeError(f"lefu_ffb0 settings: {exc}") from None
        name = context.name or ""
        writes = not name.startswith(NO_WRITES) and bool(offered(context, (WRITE,)))
        self._commands = ac02.session_commands(profile) if writes else []
        self._subscribe = offered(context, (NOTIFY, INDICATE))
        self._deadline: float | None = None
        self.done = False

    @property
    def deadline_s(self) -> float | None:
        return self._deadline

    def start(self, *, now_s: float) -> list[Action]:
        subscribe: list[Action] = [Subscribe(u) for u in self._subscribe]
        return subscribe + [Write(WRITE, c, with_response=False) for c in self._commands]

    def on_notify(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        frame = bytes(data)
        if self.done or not ac02.is_frame(frame) or ac02.checksum(frame) != frame[7]:
            return []
        channel, op, sub = frame[6], frame[2], frame[3]
        if channel == ac02.CHANNEL_STABLE and u16be(frame, 2) > 0:
            self._deadline = now_s + IMPEDANCE_WAIT_S
        elif channel == ac02.CHANNEL_RESULT and op == ac02.OP_BIA and self._deadline is not None:
            if sub != ac02.BIA_VALUE:
                self._deadline = now_s + IMPEDANCE_WAIT_S  # still measuring
                return []
            return self._end("weighing received")
        return []

    def on_read(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        return []

    def on_timeout(self, *, now_s: float) -> list[Action]:
        if self.done or self._deadline is None or now_s < self._deadline:
            return []
        return self._end("no impedance after the stable weight")

    def _end(self, reason: str) -> list[Action]:
        self.done, self._deadline = True, None
        return [Disconnect(reason)]


def make_exchange(context: ExchangeContext) -> LefuExchange:
    return LefuExchange(context)


SPEC = DriverSpec(
    name=NAME,
    summary="Lefu / Icomon / Fitdays 0xFFB0 family: AC 02 weight + impedance (Hutbit, Juniper), 1byone-new AB 2A",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=LefuFramer,
    make_decoder=LefuDecoder,
    make_exchange=make_exchange,
    models=(
        "Hutbit 218008 / WL292",
        "Lefu OEM SWAN",
        "Juniper",
        "FitTrack Dara 2.0 (weight only)",
        "1byone (new)",
        "MGB / Swan, Healthkeep 280 (frames not decoded)",
    ),
    ble=BleMatcher(
        mode=BleMode.GATT,
        service_uuids=frozenset({SERVICE}),
        name_prefixes=NAMES,
        characteristics=(NOTIFY, INDICATE),
        requires_connectable=True,
    ),
    notes={
        "frames": "AC 02 <d0..d3> <channel> <sum of bytes 2-6>: CE live / CA stable weight BE 0.1 kg, CB FD 01 "
        "impedance BE; AB 2A 80: weight u24 BE & 0x3FFFF / 1000; AB 2A 01: impedance BE 4-5; others not decoded",
        "weighing": "AC 02: stable weight + impedance on the FD 01 frame, else the stable weight at session end; "
        "AB 2A: the last weight with the impedance frame",
        "exchange": "FA 01, FB <sex> <age> <height>, FD E2 01 01, FC 01, FE 06 00 (kg) to FFB1 without response; "
        "disconnect on the impedance or 15 s after the stable weight",
        "matching": "service 0xFFB0 (this family's own) or a member's name",
    },
    settings=SETTINGS,
    check_settings=check_settings,
)
