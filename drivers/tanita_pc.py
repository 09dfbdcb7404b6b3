"""Tanita PC mode: the host drives the analyser. Pure encoder/decoder and conversation state machine.

This is **not** a driver (no ``SPEC``): it builds the command bytes that pre-set a member's personal
data on a Tanita analyser, classifies the analyser's replies, and sequences the exchange. It does no
I/O and reads no clock. Sources: shared/reference/scales.md §A1b (MC-980MA "Instructions for PC
mode") and §A2 (BC-418 remote-mode sequence as used by the Onyx project).

Wire rules (both families)
    * Each command is ASCII followed by CR LF. Write one whole command with a single ``write()``:
      the unit rejects a command whose characters are ``MAX_CHAR_GAP_S`` (250 ms) or more apart.
    * Leave at least ``MIN_COMMAND_GAP_S`` (100 ms) between commands.
    * Every set command is acknowledged by an echo of its 2-character prefix (``D3175.4`` -> ``D3``).
      ``Dn!`` = parameter error, ``!`` = unknown command, ``E0``..``E9`` = device error (may also arrive
      unsolicited). Nothing may be sent while the unit measures or transmits.

Command sets (``Family``)
    * ``MC980`` (MC-980MA; MC-780 is expected to match, unverified): ``M1`` (enter PC mode), ``D0XX.X``
      tare 00.0-10.0 kg, ``D1X`` gender, ``D2X`` body type, ``D3XXX.X`` height (5 characters), ``D4XX``
      age 05-99, ``D5<10-16 digits>`` result number (comes back as the record's ``ID`` field), optional
      ``D6XX`` target fat %. The document gives no "start measurement" command: after the last echo the
      unit waits for the person to step on.
    * ``BC418``: ``U0`` (units) first, ``D0XXX.X`` tare (Onyx sends ``D0001.0``), ``D1X``, ``D2X``,
      ``D300`` + integer cm (Onyx; zero-padded to 3 digits here), ``D4XX`` age 07-99, then ``G1``
      (start measurement) last. ``RESET`` (0x1F CR LF) resets the unit.

Gender: the platform knows MALE / FEMALE / UNISEX; Tanita only 1 (male) and 2 (female). A profile with
UNISEX (or an unknown gender) cannot be sent: ``build_commands`` raises ``ProfileError`` and the caller
should leave the unit in normal mode (the member keys in the data on the unit).

API for the serial side (to be written against this module)::

    conv = Conversation(Family.BC418)
    step = conv.start(profile, now=clock())           # -> Send
    while True:
        match step:
            case Send(data=data, not_before_s=t, reply_by_s=deadline):
                sleep_until(t); port.write(data)        # one write per command
                line = read_line(until=deadline)        # a line without CR LF, or None on timeout
                step = conv.on_timeout(now=clock()) if line is None else conv.on_line(line, now=clock())
            case Wait():                                 # an ignorable line (noise): keep reading
                line = read_line(until=conv.reply_by_s) ...
            case Done():
                break                                   # the result line then goes to the driver
            case Failed(reason=reason, code=code):
                log(reason); break

Times are the caller's monotonic seconds; the machine only compares and adds them. After ``G1``
(BC-418) the result line arrives later and belongs to the ``tanita_bc418`` driver, not to this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from types import MappingProxyType

#: Minimum pause between two commands (the manual: "at least 100 ms").
MIN_COMMAND_GAP_S = 0.1
#: The characters of one command must follow each other closer than this.
MAX_CHAR_GAP_S = 0.25
#: How long to wait for an echo before ``on_timeout`` (not from the manual: the echo is immediate).
REPLY_TIMEOUT_S = 2.0
#: Attempts per command (first send + retries) before the conversation fails.
MAX_ATTEMPTS = 3
TERMINATOR = b"\r\n"
#: BC-418 reset sequence.
RESET = b"\x1f\r\n"

ERROR_CODES: Mapping[str, str] = MappingProxyType(
    {
        "E0": "internal fault",
        "E1": "overload",
        "E2": "impedance error",
        "E3": "zero-point error",
        "E4": "measure command received with no personal data set",
        "E5": "zero point not set",
        "E6": "incomplete set data",
        "E7": "fat % measurement error",
        "E8": "memory error",
        "E9": "negative overload",
    }
)


class ProfileError(ValueError):
    """The profile cannot be encoded for this unit (value out of range, unsupported gender)."""


class Family(StrEnum):
    MC980 = "mc980"
    BC418 = "bc418"


class Gender(StrEnum):
    MALE = "MALE"
    FEMALE = "FEMALE"
    UNISEX = "UNISEX"


class BodyType(StrEnum):
    STANDARD = "standard"
    ATHLETIC = "athletic"


_GENDER_CODE: Mapping[Gender, str] = MappingProxyType({Gender.MALE: "1", Gender.FEMALE: "2"})
_BODY_TYPE_CODE: Mapping[BodyType, str] = MappingProxyType({BodyType.STANDARD: "0", BodyType.ATHLETIC: "2"})


@dataclass(frozen=True, slots=True)
class Profile:
    gender: Gender
    age_years: int
    height_cm: float
    body_type: BodyType = BodyType.STANDARD
    tare_kg: float = 0.0
    #: MC-980 only (ignored for BC-418, which has no D5): 10-16 digits, returned in the record's ``ID``
    #: field. See ``pad_result_number``.
    result_number: str | None = None
    #: MC-980 only (ignored for BC-418): target fat %, 2 digits.
    target_fat_percent: int | None = None


@dataclass(frozen=True, slots=True)
class Command:
    data: bytes  # including CR LF
    #: the reply that acknowledges it (the 2-character prefix)
    echo: str

    @property
    def text(self) -> str:
        return self.data.decode("ascii").rstrip("\r\n")


@dataclass(frozen=True, slots=True)
class _Limits:
    age: tuple[int, int]
    height_cm: tuple[float, float]


_LIMITS: Mapping[Family, _Limits] = MappingProxyType(
    {
        Family.MC980: _Limits(age=(5, 99), height_cm=(90.0, 249.9)),
        Family.BC418: _Limits(age=(7, 99), height_cm=(90.0, 249.0)),
    }
)


def _command(text: str) -> Command:
    return Command(text.encode("ascii") + TERMINATOR, text[:2])


def _fixed(value: float, width: int) -> str:
    """``value`` with one decimal, zero-padded to ``width`` characters (``1.5``, 4 -> ``01.5``)."""
    q = Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{q:0{width}.1f}"


def pad_result_number(number: str) -> str:
    """Zero-fill a member number to the 10 digits ``D5`` needs at least (``12345`` -> ``0000012345``)."""
    if not number.isdigit() or not number.isascii():
        raise ProfileError("result number must be digits")
    return number.zfill(10)


def build_commands(family: Family, profile: Profile) -> list[Command]:
    """The command list that pre-sets ``profile`` on a unit of ``family``, in sending order."""
    limits = _LIMITS[family]
    gender = _GENDER_CODE.get(profile.gender)
    if gender is None:
        raise ProfileError(f"Tanita units know only male (1) and female (2), not {profile.gender}")
    body = _BODY_TYPE_CODE[profile.body_type]
    lo, hi = limits.age
    if not lo <= profile.age_years <= hi:
        raise ProfileError(f"age {profile.age_years} outside {lo}-{hi}")
    hlo, hhi = limits.height_cm
    if not math.isfinite(profile.height_cm) or not math.isfinite(profile.tare_kg):
        raise ProfileError("height and tare must be finite numbers")
    height_dm = Decimal(str(profile.height_cm)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if not hlo <= float(height_dm) <= hhi:
        raise ProfileError(f"height {profile.height_cm} cm outside {hlo}-{hhi}")
    if not 0.0 <= profile.tare_kg <= 10.0:
        raise ProfileError(f"tare {profile.tare_kg} kg outside 0.0-10.0")
    age = f"{profile.age_years:02d}"
    if family is Family.BC418:
        height = f"{int(Decimal(str(profile.height_cm)).quantize(Decimal(1), rounding=ROUND_HALF_UP)):03d}"
        texts = ["U0", "D0" + _fixed(profile.tare_kg, 5), "D1" + gender, "D2" + body]
        texts += ["D300" + height, "D4" + age, "G1"]
        return [_command(t) for t in texts]
    texts = ["M1", "D0" + _fixed(profile.tare_kg, 4), "D1" + gender, "D2" + body]
    texts += ["D3" + _fixed(profile.height_cm, 5), "D4" + age]
    if profile.result_number is not None:
        n = profile.result_number
        if not (n.isascii() and n.isdigit() and 10 <= len(n) <= 16):
            raise ProfileError("result number must be 10-16 digits (see pad_result_number)")
        texts.append("D5" + n)
    if profile.target_fat_percent is not None:
        if not 0 <= profile.target_fat_percent <= 99:
            raise ProfileError("target fat % outside 0-99")
        texts.append(f"D6{profile.target_fat_percent:02d}")
    return [_command(t) for t in texts]


# ---------------------------------------------------------------------------------------------- replies


class ReplyKind(StrEnum):
    ECHO = "echo"  # acknowledgement of a command (its 2-character prefix)
    PARAMETER_ERROR = "parameter_error"  # Dn!
    UNKNOWN_COMMAND = "unknown_command"  # !
    DEVICE_ERROR = "device_error"  # E0..E9
    QUERY_REPLY = "query_reply"  # answer to D?: D01.5,D11,...
    OTHER = "other"  # not a PC-mode reply


@dataclass(frozen=True, slots=True)
class Reply:
    kind: ReplyKind
    code: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.kind in (ReplyKind.PARAMETER_ERROR, ReplyKind.UNKNOWN_COMMAND, ReplyKind.DEVICE_ERROR)


_ECHO = re.compile(r"^(?:D[0-6]|M[0-9]|U[0-9]|G[0-9])$")
_PARAM_ERROR = re.compile(r"^D[0-9?]!$")
_QUERY = re.compile(r"^D[0-6][^,]*(?:,D[0-6][^,]*)*$")


def classify(line: str | bytes) -> Reply:
    """What a line from the unit is, without knowing what was sent."""
    if isinstance(line, bytes):
        line = line.decode("ascii", "replace")
    text = line.strip(" \r\n\t\x00")
    if text in ERROR_CODES:
        return Reply(ReplyKind.DEVICE_ERROR, text, ERROR_CODES[text])
    if text == "!":
        return Reply(ReplyKind.UNKNOWN_COMMAND, text, "unknown command")
    if _PARAM_ERROR.match(text):
        return Reply(ReplyKind.PARAMETER_ERROR, text, f"parameter error in {text[:2]}")
    if _ECHO.match(text):
        return Reply(ReplyKind.ECHO, text, "command acknowledged")
    if _QUERY.match(text):
        return Reply(ReplyKind.QUERY_REPLY, text, "personal data as set")
    return Reply(ReplyKind.OTHER, text, "not a PC-mode reply")


def classify_reply(line: str | bytes, sent: Command) -> Reply:
    """A reply to ``sent``: an echo of another command counts as OTHER (out of step)."""
    reply = classify(line)
    if reply.kind is ReplyKind.ECHO and reply.code != sent.echo:
        return Reply(ReplyKind.OTHER, reply.code, f"echo {reply.code} while waiting for {sent.echo}")
    return reply


# ----------------------------------------------------------------------------------------- conversation


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes
    #: do not write before this time (keeps >= MIN_COMMAND_GAP_S between commands)
    not_before_s: float
    #: call ``on_timeout`` if no reply line has arrived by then
    reply_by_s: float


@dataclass(frozen=True, slots=True)
class Wait:
    """The line was not for us (noise, an unrelated line): keep waiting until ``reply_by_s``."""

    reply_by_s: float


@dataclass(frozen=True, slots=True)
class Done:
    pass


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    #: the unit's code when it reported one (``D3!``, ``!``, ``E6``), else ""
    code: str = ""


Step = Send | Wait | Done | Failed


class ConversationError(RuntimeError):
    """The caller used the conversation out of order (e.g. on_line before start)."""


class Conversation:
    """Sequences one PC-mode exchange: send each command, wait for its echo, go on or fail."""

    def __init__(
        self,
        family: Family,
        *,
        reply_timeout_s: float = REPLY_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        max_ignored_lines: int = 5,
    ) -> None:
        self.family = family
        self._timeout = reply_timeout_s
        self._max_attempts = max_attempts
        self._max_ignored = max_ignored_lines
        self._commands: Sequence[Command] = ()
        self._index = 0
        self._attempts = 0
        self._ignored = 0
        self._last_send_s: float | None = None
        self._reply_by_s = 0.0
        self._result: Done | Failed | None = None

    @property
    def finished(self) -> bool:
        return self._result is not None

    @property
    def reply_by_s(self) -> float:
        return self._reply_by_s

    @property
    def current(self) -> Command | None:
        if self._result is not None or self._index >= len(self._commands):
            return None
        return self._commands[self._index]

    def start(self, profile: Profile, now: float) -> Step:
        """Begin: returns the first ``Send`` (or ``Failed`` if the profile cannot be encoded)."""
        if self._commands:
            raise ConversationError("conversation already started")
        try:
            self._commands = tuple(build_commands(self.family, profile))
        except ProfileError as exc:
            return self._finish(Failed(f"profile not sendable: {exc}"))
        return self._send(now)

    def on_line(self, line: str | bytes, now: float) -> Step:
        """A line (CR LF stripped or not) arrived from the unit."""
        command = self._require()
        if isinstance(command, Failed | Done):
            return command
        reply = classify_reply(line, command)
        if reply.kind is ReplyKind.ECHO:
            self._index += 1
            self._attempts = 0
            self._ignored = 0
            if self._index >= len(self._commands):
                return self._finish(Done())
            return self._send(now)
        if reply.is_error:
            return self._finish(Failed(f"{command.text}: {reply.message}", reply.code))
        self._ignored += 1
        if self._ignored > self._max_ignored:
            return self._finish(Failed(f"{command.text}: too many unexpected lines (last {reply.code[:20]!r})"))
        return Wait(self._reply_by_s)

    def on_timeout(self, now: float) -> Step:
        """No reply by ``reply_by_s``: resend the same command, or fail after ``max_attempts``."""
        command = self._require()
        if isinstance(command, Failed | Done):
            return command
        if self._attempts >= self._max_attempts:
            return self._finish(Failed(f"{command.text}: no reply after {self._attempts} attempts"))
        return self._send(now)

    def _require(self) -> Command | Done | Failed:
        if self._result is not None:
            return self._result
        if not self._commands:
            raise ConversationError("start() first")
        return self._commands[self._index]

    def _send(self, now: float) -> Send:
        not_before = now if self._last_send_s is None else max(now, self._last_send_s + MIN_COMMAND_GAP_S)
        self._last_send_s = not_before
        self._attempts += 1
        self._ignored = 0
        self._reply_by_s = not_before + self._timeout
        return Send(self._commands[self._index].data, not_before, self._reply_by_s)

    def _finish(self, result: Done | Failed) -> Done | Failed:
        self._result = result
        return result
