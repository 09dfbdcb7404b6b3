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

How the link (drivers/links/ble.py) performs the actions - the rules an exchange may rely on:

- Actions are performed strictly in order; the exchange is never called concurrently (notifications
  arriving while a batch is being performed are queued and handed over one by one afterwards).
- ``Subscribe`` of a characteristic the device lacks, or one BlueZ refuses, is skipped and logged
  (take what the others give). After the actions of ``start`` at least one subscription must have
  succeeded, else the session ends with a LinkError naming the wanted characteristics.
- ``Write`` of a missing characteristic, or a failed write, ends the session (LinkError).
- ``Read``: the value is handed to ``on_read`` **and** emitted as a ``notify`` event on that
  characteristic's channel, so the decoder sees it and a capture keeps it (ble_standard reads the
  Weight Scale Feature 0x2A9E this way). A read of a missing or unreadable characteristic is skipped
  and logged, and ``on_read`` is not called: do not wait for an optional read. ``Read(DEVICE_NAME)``
  (0x2A00) is answered from the name BlueZ knows when the device does not expose it (BlueZ keeps
  the GAP service to itself): decoders that key a quirk on the model get the name this way.
- ``Disconnect`` ends the session at once (the link disconnects; the reason is logged).
- ``deadline_s`` is re-read after every call; when it passes with nothing else happening the link
  calls ``on_timeout``. A session also ends when the scale disconnects or after the link's
  ``max_session_s``.
- ``ExchangeError`` from any call: logged (``ble_gatt_exchange_failed``), the session ends, and the
  link backs off before reconnecting to that device.

Per-scale settings: ``DriverSpec.settings`` names the ``[scale]`` keys a driver understands (e.g.
``user_index``, ``consent_code``); bridge/config.py passes them as text in
``ExchangeContext.settings`` and validates them with ``DriverSpec.check_settings`` at load time (one
problem line per bad key). Helpers: :func:`int_setting`.

Ciphers: ``drivers/`` is stdlib-only, so an exchange that needs AES gets it injected:
``ExchangeContext.aes_cbc_encrypt`` / ``aes_cbc_decrypt`` (``(key, iv, data) -> data``, 16-byte
blocks, no padding) are filled in by the BLE link from ``drivers/links/crypto.py`` (the
``cryptography`` package). Tests may pass any implementation. Randomness likewise:
``ExchangeContext.random_bytes`` (``os.urandom`` in the link; tests pass a deterministic one).

Changes to the first version of this contract (for driver authors): the rules above; ``Write``
gained nothing; ``Read`` values are emitted as events; ``ExchangeContext`` gained the two cipher
callables and ``utc_offset_s``; ``DriverSpec`` gained ``check_settings``; :data:`DEVICE_NAME`, :func:`int_setting`.
Later: ``ExchangeContext.random_bytes`` (additive, default None; for the Eufy P2 handshake).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from .errors import DriverError

_EMPTY: Mapping[str, str] = MappingProxyType({})

#: GAP Device Name: ``Read(DEVICE_NAME)`` is answered with the advertised name (see above)
DEVICE_NAME = "00002a00-0000-1000-8000-00805f9b34fb"

#: ``(key, iv, data) -> data``: AES-128-CBC over whole 16-byte blocks, no padding
BlockCipher = Callable[[bytes, bytes, bytes], bytes]


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
    #: the host's offset from UTC at connect (s), for scales that want local time
    utc_offset_s: int = 0
    #: AES-128-CBC, injected by the link (drivers/links/crypto.py); None where unavailable
    aes_cbc_encrypt: BlockCipher | None = None
    aes_cbc_decrypt: BlockCipher | None = None
    #: ``n -> n random bytes``, injected by the link (``os.urandom``); None where unavailable. An
    #: exchange that needs randomness (a handshake's client id) takes it from here, never itself.
    random_bytes: Callable[[int], bytes] | None = None


def int_setting(settings: Mapping[str, str], key: str, *, low: int, high: int) -> int | None:
    """A whole-number setting in ``[low, high]``, None when absent; ValueError with a one-line reason
    (config validation turns it into a problem line, an exchange into an ExchangeError)."""
    text = settings.get(key)
    if text is None or text == "":
        return None
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f"must be a whole number from {low} to {high}, not {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"must be from {low} to {high}, not {value}")
    return value


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


def offered(context: ExchangeContext, uuids: tuple[str, ...]) -> list[str]:
    """The ``uuids`` the device offers (all of them when service discovery listed none)."""
    have = context.characteristics
    return [u for u in uuids if not have or u in have]


class StartOnly:
    """An exchange whose every action is made at ``start``: it answers nothing afterwards and has no
    deadline. Subclasses give ``start``."""

    @property
    def deadline_s(self) -> float | None:
        return None

    def start(self, *, now_s: float) -> list[Action]:
        raise NotImplementedError

    def on_notify(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        return []

    def on_read(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        return []

    def on_timeout(self, *, now_s: float) -> list[Action]:
        return []


class SubscribeOnly(StartOnly):
    """The exchange of a scale that needs nothing but subscriptions (the default for GATT drivers)."""

    def __init__(self, characteristics: tuple[str, ...], context: ExchangeContext) -> None:
        self._uuids = offered(context, characteristics)

    def start(self, *, now_s: float) -> list[Action]:
        return [Subscribe(u) for u in self._uuids]
