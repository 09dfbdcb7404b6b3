"""Driver registry: driver name -> spec. Driver name = module name = config value = vectors folder.

Every module of the ``drivers`` package that defines a module-level ``SPEC: DriverSpec`` is a driver.
Discovery imports only the pure driver modules (stdlib only), never the links.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Protocol

from .errors import FrameError
from .framing import Framer
from .model import DeviceReport, ParseResult, Reading


class LinkKind(StrEnum):
    SERIAL = "serial"
    BLE = "ble"


class BleMode(StrEnum):
    BROADCAST = "broadcast"  # readings are in advertisements (no connection)
    GATT = "gatt"  # connect and subscribe to indications/notifications


@dataclass(frozen=True, slots=True)
class SerialSettings:
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"  # N, E, O
    stopbits: float = 1
    xonxoff: bool = False
    rtscts: bool = False


@dataclass(frozen=True, slots=True)
class BleMatcher:
    """What a BLE advertisement must show for this driver to claim it. Any one criterion suffices."""

    mode: BleMode
    #: full 128-bit lowercase UUID strings found in service data or advertised service UUIDs
    service_uuids: frozenset[str] = frozenset()
    name_prefixes: tuple[str, ...] = ()
    manufacturer_ids: frozenset[int] = frozenset()
    #: GATT mode: characteristics to subscribe to (full UUIDs)
    characteristics: tuple[str, ...] = ()

    def matches(self, *, name: str | None, service_uuids: frozenset[str], manufacturer_ids: frozenset[int]) -> bool:
        if self.service_uuids & service_uuids:
            return True
        if self.manufacturer_ids & manufacturer_ids:
            return True
        return bool(name) and any(name.startswith(p) for p in self.name_prefixes)  # type: ignore[union-attr]


class Decoder(Protocol):
    """Per-link decoding state (e.g. merging multi-packet BLE records).

    ``decode`` takes one frame and its channel (BLE service/characteristic UUID, "" for serial) and
    returns what became complete: readings and device reports. Raises only FrameError.
    """

    def decode(self, frame: bytes, channel: str = "") -> list[Reading | DeviceReport]: ...


class StatelessDecoder:
    """Adapter for drivers whose frames are self-contained."""

    def __init__(self, parse: Callable[[bytes, str], ParseResult]) -> None:
        self._parse = parse

    def decode(self, frame: bytes, channel: str = "") -> list[Reading | DeviceReport]:
        result = self._parse(frame, channel)
        return [] if result is None else [result]


@dataclass(frozen=True, slots=True)
class DriverSpec:
    name: str
    summary: str
    link: LinkKind
    #: Pure: one frame (+ channel) -> Reading | DeviceReport | None. Raises only FrameError.
    parse: Callable[[bytes, str], ParseResult]
    make_framer: Callable[[], Framer]
    models: tuple[str, ...] = ()
    serial: SerialSettings | None = None
    ble: BleMatcher | None = None
    #: Command/response scales: bytes to send to ask for a result, and how often.
    poll_command: bytes | None = None
    poll_interval_s: float = 1.0
    make_decoder: Callable[[], Decoder] | None = None
    notes: Mapping[str, str] = field(default_factory=dict)

    def new_decoder(self) -> Decoder:
        if self.make_decoder is not None:
            return self.make_decoder()
        return StatelessDecoder(self.parse)


_NOT_DRIVERS = frozenset({"errors", "model", "framing", "registry", "capture", "events", "units"})


@cache
def registry() -> Mapping[str, DriverSpec]:
    from . import __path__ as pkg_path

    found: dict[str, DriverSpec] = {}
    for info in sorted(pkgutil.iter_modules(pkg_path), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _NOT_DRIVERS or info.ispkg:
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, DriverSpec):
            if spec.name != info.name:
                raise RuntimeError(f"driver module {info.name} declares name {spec.name!r}")
            found[spec.name] = spec
    return found


def get(name: str) -> DriverSpec:
    try:
        return registry()[name]
    except KeyError:
        known = ", ".join(sorted(registry()))
        raise KeyError(f"unknown driver {name!r} (known: {known})") from None


def decode_all(spec: DriverSpec, data: bytes) -> tuple[list[Reading | DeviceReport], list[FrameError]]:
    """Frame and decode a whole byte string (serial drivers). For tests and the decode CLI."""
    decoder = spec.new_decoder()
    results: list[Reading | DeviceReport] = []
    errors: list[FrameError] = []
    for frame in spec.make_framer().feed(data + b"\n"):
        try:
            results.extend(decoder.decode(frame, ""))
        except FrameError as exc:
            errors.append(exc)
    return results, errors
