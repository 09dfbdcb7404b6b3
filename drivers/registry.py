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
from .gatt import Exchange, ExchangeContext
from .model import DeviceReport, ParseResult, Reading


class LinkKind(StrEnum):
    SERIAL = "serial"
    BLE = "ble"
    CLOUD = "cloud"  # a vendor's cloud API polled over HTTPS (InBody via LookinBody Web)


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
    """What a BLE advertisement must show for this driver to claim it.

    Any one positive criterion suffices (service UUID, manufacturer id, name prefix), unless one of
    the exclusions applies. The exclusions keep a broadcast driver and a GATT driver that share
    service UUIDs apart (Xiaomi Mi scales put their reading in service data under 0x181D/0x181B,
    standard GATT scales advertise the same UUIDs in their service list): see ``find_ble_drivers``.
    """

    mode: BleMode
    #: full 128-bit lowercase UUID strings found in service data or advertised service UUIDs
    service_uuids: frozenset[str] = frozenset()
    name_prefixes: tuple[str, ...] = ()
    manufacturer_ids: frozenset[int] = frozenset()
    #: GATT mode: characteristics to subscribe to (full UUIDs)
    characteristics: tuple[str, ...] = ()
    #: ``service_uuids`` match only keys of the advertisement's service data (broadcast scales)
    requires_service_data: bool = False
    #: never claim an advertisement carrying service data under one of these UUIDs
    excludes_service_data: frozenset[str] = frozenset()
    #: never claim a device whose name starts with one of these
    excludes_name_prefixes: tuple[str, ...] = ()
    #: never claim an advertisement carrying manufacturer data of one of these companies
    excludes_manufacturer_ids: frozenset[int] = frozenset()
    #: never claim an advertisement known to be non-connectable (GATT drivers)
    requires_connectable: bool = False

    def matches(
        self,
        *,
        name: str | None,
        service_uuids: frozenset[str],
        manufacturer_ids: frozenset[int],
        service_data_uuids: frozenset[str] = frozenset(),
        connectable: bool | None = None,
    ) -> bool:
        """``service_uuids``: the advertised service UUID list; ``service_data_uuids``: the keys of
        the service data. Callers that cannot tell them apart may pass the union as both."""
        if self.excludes_service_data & service_data_uuids:
            return False
        if name and any(name.startswith(p) for p in self.excludes_name_prefixes):
            return False
        if self.excludes_manufacturer_ids & manufacturer_ids:
            return False
        if self.requires_connectable and connectable is False:
            return False
        wanted = service_data_uuids if self.requires_service_data else service_uuids | service_data_uuids
        if self.service_uuids & wanted:
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


def flush_decoder(decoder: Decoder) -> list[Reading | DeviceReport]:
    """End of a connection (BLE disconnect, end of a replay): what the decoder still holds.

    Decoders may offer ``flush() -> list[Reading | DeviceReport]``; those without it hold nothing.
    A held result may be a weighing not yet emitted (ble_standard holds a weight for the composition
    that follows it; beurer_sanitas a stable weight no composition followed), so every consumer of a
    decoder flushes it: the bridge on each BLE ``session_end`` event and at the end of a replay, the
    ``decode`` command at the end of its input and on ``session_end``.
    """
    flush = getattr(decoder, "flush", None)
    return list(flush()) if callable(flush) else []


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
    #: Broadcast scales: ``(address, payload) -> key`` that is equal for repeats of one weighing (the
    #: bridge stores it persistently). None: the bridge keys on the reading's raw payload.
    dedupe_key: Callable[[str, bytes], str] | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    #: GATT scales that want writes (configuration, consent, acknowledgements, a handshake): a new
    #: sans-I/O exchange per connection (drivers/gatt.py). None: subscribe to ``ble.characteristics``.
    make_exchange: Callable[[ExchangeContext], Exchange] | None = None
    #: Tanita-style PC mode (the host pre-sets the member's profile): the command family of
    #: ``drivers/tanita_pc.py`` this driver speaks ("mc980", "bc418"), or None
    pc_mode: str | None = None
    #: For ``record --redact`` / the flight recorder: ``(frame, pseudonym) -> frame`` with every member
    #: or card number replaced by ``pseudonym(value)`` (checksums recomputed); None: nothing to redact
    redact: Callable[[bytes, Callable[[str], str]], bytes] | None = None
    #: ``[scale]`` settings this driver understands beyond the common ones (e.g. ``user_index``,
    #: ``consent_code``), name -> one-line meaning; the config passes them to the exchange as text.
    settings: Mapping[str, str] = field(default_factory=dict)
    #: Validates ``settings`` values (text) at config load: ``[(key, problem), ...]``, empty when fine.
    check_settings: Callable[[Mapping[str, str]], list[tuple[str, str]]] | None = None

    def new_decoder(self) -> Decoder:
        if self.make_decoder is not None:
            return self.make_decoder()
        return StatelessDecoder(self.parse)


_NOT_DRIVERS = frozenset({"errors", "model", "framing", "registry", "capture", "events", "units", "bleuuid", "gatt"})


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


def find_ble_drivers(
    *,
    name: str | None,
    service_uuids: frozenset[str] = frozenset(),
    service_data_uuids: frozenset[str] = frozenset(),
    manufacturer_ids: frozenset[int] = frozenset(),
    connectable: bool | None = None,
) -> list[str]:
    """Names of the drivers whose BLE matcher claims this advertisement (at most one, by the guard
    test "no BLE matcher shadows another"). UUIDs are full lowercase 128-bit strings."""
    return [
        spec.name
        for spec in registry().values()
        if spec.ble is not None
        and spec.ble.matches(
            name=name,
            service_uuids=service_uuids,
            manufacturer_ids=manufacturer_ids,
            service_data_uuids=service_data_uuids,
            connectable=connectable,
        )
    ]


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
