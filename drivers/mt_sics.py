"""Mettler Toledo MT-SICS balances and scales (command / response; shared/reference/scales.md §A7).

The bridge polls with ``S`` (send stable weight) and reads one response line per command::

    S S     100.00 g      stable weight (value right-aligned and padded: split on whitespace)
    S D     100.12 g      dynamic = not yet stable (answer to SI; also accepted for S)
    S I                   command not executable (busy, or no stability within the balance's timeout)
    S +                   overload
    S -                   underload

``S S`` -> stable ``Reading``; ``S D`` -> ``Reading(stable=False)``; ``S I`` / ``S +`` / ``S -`` ->
``DeviceReport``; the general error replies ``ES`` (syntax), ``ET`` (transmission), ``EL`` (logical) ->
``DeviceReport``. Other well-formed replies (``Z A``, ``T S 0.00 g``, ``I4 A "..."``, ``SI`` / ``S`` echo
variants of other commands) are valid but not weighings -> ``None``. Weights in non-mass units (``PCS``,
``%``) -> ``None``. Compound units (``S S 12:3.5 lb:oz``, shipping scales) are summed, largest unit first.

Polling: ``SPEC.poll_command`` is ``POLL_STABLE`` (``S``): the balance answers only once stable (or with
``S I`` after its own timeout), so every ``S S`` is a weighing candidate. A site that wants live
values can configure ``POLL_IMMEDIATE`` (``SI``: immediate, ``S D`` while moving). ``SIR`` (repeat)
is deliberately not used: a stream of identical stable values would need de-duplication upstream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from .errors import FrameError
from .framing import LineFramer
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import DriverSpec, LinkKind, SerialSettings

NAME = "mt_sics"
MAX_LINE_BYTES = 128
POLL_STABLE = b"S\r\n"
POLL_IMMEDIATE = b"SI\r\n"
POLL_INTERVAL_S = 1.0

MASS_UNITS_KG: Mapping[str, float] = MappingProxyType(
    {
        "kg": 1.0,
        "g": 0.001,
        "mg": 0.000001,
        "t": 1000.0,
        "lb": 0.45359237,
        "oz": 0.028349523125,
        "ozt": 0.0311034768,
        "ct": 0.0002,
    }
)

#: status -> (code, meaning) for responses to S / SI that carry no value
STATUS_REPORTS: Mapping[str, str] = MappingProxyType(
    {
        "I": "command not executable (balance busy or not stable within its timeout)",
        "+": "overload (above the weighing range)",
        "-": "underload (below the weighing range)",
    }
)
GENERAL_ERRORS: Mapping[str, str] = MappingProxyType(
    {
        "ES": "syntax error: command not recognised",
        "ET": "transmission error (parity or line too long)",
        "EL": "logical error: command cannot be executed",
    }
)

_VALUE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_COMMAND = re.compile(r"^[A-Z@][A-Z0-9]{0,5}$")
_STATUS = re.compile(r"^(?:[A-Z+\-]|\d+)$")


_PART = re.compile(r"^[0-9]{1,9}(?:\.[0-9]{0,9})?$")


def _compound_kg(value: str, unit: str, frame: bytes) -> float:
    """``12:3.5 lb:oz``: one figure per unit, largest unit first, every figure after the first smaller
    than one of the unit before it (ble-families.md 6.6; the exact layout is an inference)."""
    units, figures = unit.split(":"), value.lstrip("+-").split(":")
    if len(units) != len(figures) or len(units) > 3:
        raise FrameError(f"compound weight {value[:20]!r} does not match its unit {unit[:12]!r}", frame)
    if any(u not in MASS_UNITS_KG for u in units) or any(not _PART.match(f) for f in figures):
        raise FrameError(f"bad compound weight {value[:20]!r} {unit[:12]!r}", frame)
    total = 0.0
    for i, (fig, u) in enumerate(zip(figures, units, strict=True)):
        part = float(fig)
        if i and part * MASS_UNITS_KG[u] >= MASS_UNITS_KG[units[i - 1]]:
            raise FrameError(f"compound weight {value[:20]!r}: {fig} {u} is not less than one {units[i - 1]}", frame)
        total += part * MASS_UNITS_KG[u]
    return -total if value.startswith("-") else total


def _tokens(frame: bytes) -> tuple[str, list[str]]:
    """The response line as text and its whitespace-separated tokens (at least one)."""
    try:
        text = frame.decode("ascii").strip(" \r\n\t")
    except UnicodeDecodeError:
        raise FrameError("not ASCII", frame) from None
    if len(text) > MAX_LINE_BYTES:
        raise FrameError("line too long for an MT-SICS response", frame)
    tokens = text.split()
    if not tokens:
        raise FrameError("empty response", frame)
    return text, tokens


def _weight_kg(value: str, unit: str, frame: bytes) -> float | None:
    """The weight of ``<value> <unit>`` in kg; None for a valid non-mass unit (a count, a percentage)."""
    if ":" in unit:
        return _compound_kg(value, unit, frame)
    if not _VALUE.match(value) or len(value) > 24:
        raise FrameError(f"weight is not a number: {value[:20]!r}", frame)
    if unit not in MASS_UNITS_KG:
        if unit.isprintable() and len(unit) <= 6:
            return None
        raise FrameError(f"bad unit {unit[:8]!r}", frame)
    return float(value) * MASS_UNITS_KG[unit]


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Decode one MT-SICS response line (without CR LF)."""
    text, tokens = _tokens(frame)
    command = tokens[0]
    if len(tokens) == 1:
        if command in GENERAL_ERRORS:
            return DeviceReport(NAME, command, GENERAL_ERRORS[command], text)
        raise FrameError(f"not an MT-SICS response: {text[:20]!r}", frame)
    status = tokens[1]
    if not _COMMAND.match(command) or not _STATUS.match(status):
        raise FrameError(f"not an MT-SICS response: {text[:20]!r}", frame)
    if command not in ("S", "SI", "SIR", "SR"):
        return None  # a well-formed reply to another command (Z, T, I4, ...)
    if status in STATUS_REPORTS:
        if len(tokens) != 2:
            raise FrameError(f"'S {status}' carries no value", frame)
        return DeviceReport(NAME, f"S {status}", STATUS_REPORTS[status], text)
    if status not in ("S", "D"):
        raise FrameError(f"unknown weight status {status!r}", frame)
    if len(tokens) != 4:
        raise FrameError("weight response needs '<value> <unit>'", frame)
    value, unit = tokens[2], tokens[3]
    weight_kg = _weight_kg(value, unit, frame)
    if weight_kg is None:
        return None  # a count or percentage: valid, not a weighing
    return Reading(
        driver=NAME,
        measurement=Measurement(weight_kg=round(weight_kg, 6)),
        stable=status == "S",
        raw=text,
        fields=MappingProxyType({"command": command, "status": status, "value": value, "unit": unit}),
    )


def _framer() -> LineFramer:
    return LineFramer(max_line_bytes=MAX_LINE_BYTES, cr_terminates=True)


SPEC = DriverSpec(
    name=NAME,
    summary="Mettler Toledo MT-SICS balances and scales, polled with 'S' (S S <value> <unit>)",
    link=LinkKind.SERIAL,
    parse=parse,
    make_framer=_framer,
    models=("MT-SICS level 0/1 balances and scales",),
    serial=SerialSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
    poll_command=POLL_STABLE,
    poll_interval_s=POLL_INTERVAL_S,
    notes={
        "poll": "S (stable weight) every poll_interval_s; use SI (drivers.mt_sics.POLL_IMMEDIATE) for live "
        "values: answers 'S D' while moving. Never send while a reply is pending.",
        "serial": "9600 8N1 is a common factory setting; many balances default to Xon/Xoff handshake. "
        "Check the balance's interface menu and set [scale] accordingly.",
        "unverified": "'S D' comes from MT-SICS references, not from the quoted manual: verify per model.",
    },
)
