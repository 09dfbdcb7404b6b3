"""GATT exchanges: the writes a connected scale expects before (and while) it sends its results.

Many consumer BLE scales do not simply notify once subscribed: they want a configuration command
(unit, user, time), a consent code for a user (SIG User Data Service), an acknowledgement per part of
a multi-part record, or an encrypted handshake. This module is the sans-I/O contract for that: a
driver's ``make_exchange`` returns an :class:`Exchange`, a state machine that never awaits, reads no
clock and does no I/O. The BLE link (``drivers/links/ble.py``) is its only awaiting shell:

    exchange = spec.make_exchange(context)
    actions = exchange.start(now_s=clock())          # after connect and service discovery
    loop:
        perform each action in order:
            Subscribe(uuid)        -> start_notify(uuid); notifications arrive as Notified(...)
            Write(uuid, data, with_response) -> write_gatt_char(...)
            Read(uuid)             -> read_gatt_char(...), the value comes back via exchange.on_read
            Disconnect(reason)     -> end the session (reason logged)
        on each notification: the link hands (uuid, bytes) to the driver's decoder as before AND
            actions = exchange.on_notify(uuid, data, now_s=clock())
        on a read result: actions = exchange.on_read(uuid, data, now_s=clock())
        when exchange.deadline_s is not None and passes: actions = exchange.on_timeout(now_s=clock())

Times are the caller's monotonic seconds; the exchange only compares and adds them. An exchange
raises only :class:`ExchangeError` (the link logs it and ends the session). Results (readings)
never come out of the exchange: they come out of the driver's decoder fed with the same
notifications, so a capture replayed without the exchange decodes the same weighings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from .errors import DriverError

_EMPTY: Mapping[str, str] = MappingProxyType({})


class ExchangeError(DriverError):
    """The scale answered something the exchange cannot continue from (wrong consent code, ...)."""


@dataclass(frozen=True, slots=True)
class ExchangeContext:
    """What an exchange may know about the device and the site's configuration for this scale."""

    address: str
    name: str | None = None
    #: Full lowercase UUIDs of the characteristics the device offers (after service discovery).
    characteristics: frozenset[str] = frozenset()
    #: Per-scale settings from the config (``[scale]`` keys such as ``user_index``, ``consent_code``),
    #: as text; the driver validates and converts them.
    settings: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    #: The host's wall clock at connect, as Unix seconds (for scales that want the time set). The
    #: exchange must not read a clock itself.
    wall_time_s: float | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    uuid: str


@dataclass(frozen=True, slots=True)
class Write:
    uuid: str
    data: bytes
    with_response: bool = True


@dataclass(frozen=True, slots=True)
class Read:
    uuid: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: str = ""


Action = Subscribe | Write | Read | Disconnect


class Exchange(Protocol):
    """One connection's conversation. See the module docstring for the driving loop."""

    #: When the link must call ``on_timeout`` if nothing else happened (monotonic s), or None.
    @property
    def deadline_s(self) -> float | None: ...

    def start(self, *, now_s: float) -> list[Action]: ...

    def on_notify(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]: ...

    def on_read(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]: ...

    def on_timeout(self, *, now_s: float) -> list[Action]: ...


class SubscribeOnly:
    """The exchange of a scale that needs nothing but subscriptions (the default for GATT drivers)."""

    def __init__(self, characteristics: tuple[str, ...], context: ExchangeContext) -> None:
        offered = context.characteristics
        self._uuids = [u for u in characteristics if not offered or u in offered]

    @property
    def deadline_s(self) -> float | None:
        return None

    def start(self, *, now_s: float) -> list[Action]:
        return [Subscribe(u) for u in self._uuids]

    def on_notify(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        return []

    def on_read(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        return []

    def on_timeout(self, *, now_s: float) -> list[Action]:
        return []
