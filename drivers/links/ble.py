"""BLE link: bleak on BlueZ (D-Bus). bleak is imported inside functions only.

Broadcast scales (Xiaomi Mi): a ``BleakScanner`` detection callback turns every advertisement that a
driver's ``BleMatcher`` claims (or that comes from the configured address) into one ``adv`` event
per service-data entry the driver cares about. No dedupe here: the bridge dedupes persistently.

GATT scales: when the scale is seen, connect with ``bleak_retry_connector.establish_connection`` and
drive the driver's exchange (``DriverSpec.make_exchange``, by default ``SubscribeOnly`` over the
matcher's characteristics; see drivers/gatt.py for the rules): subscriptions (BlueZ writes the CCCD),
writes, reads (ble_standard reads the Weight Scale Feature 0x2A9E this way), its deadline. Every
notification/indication value and every read value is one ``notify`` event (the decoder downstream
sees them all) and is handed to the exchange too. An ``ExchangeError`` is logged and ends the session.
Every session that connected ends with one ``session_end`` event for that address (after the
disconnect), on which the bridge flushes that device's decoder.
On disconnect the scanner, which never stopped, sees the scale again
when it wakes and the link reconnects.

BlueZ wedges: a watchdog restarts scanning when no advertisement arrived for ``watchdog_s`` and
right away when the adapter object is re-announced (bluetoothd restarted). Transient BlueZ / D-Bus
errors back off and retry; ``max_scanner_restarts`` consecutive failures (restarts with no
advertisement in between, or failed starts) raise ``LinkError(transient=False)`` so the daemon exits
non-zero and systemd restarts it. A missing adapter or one without the "central" role is a
``LinkError(transient=False)`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from ..errors import LinkError
from ..events import EventKind, LinkEvent
from ..registry import BleMatcher, BleMode, DriverSpec

if TYPE_CHECKING:
    from bleak import BleakScanner
    from bleak.backends.bluezdbus.manager import BlueZManager
    from bleak.backends.characteristic import BleakGATTCharacteristic
    from bleak.backends.device import BLEDevice
    from bleak.backends.scanner import AdvertisementData
    from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError

    from ..gatt import Action, Exchange

__all__ = ["WEIGHT_SCALE_FEATURE", "BleLink", "ScanResult", "manufacturer_channel", "scan_ble"]

log = logging.getLogger(__name__)

WEIGHT_SCALE_FEATURE: Final = "00002a9e-0000-1000-8000-00805f9b34fb"
ADAPTER_IFACE: Final = "org.bluez.Adapter1"

# D-Bus errors seen while bluetoothd restarts, is busy, or the bus reconnects: back off and retry.
TRANSIENT_DBUS_ERRORS: Final = frozenset(
    {
        "org.bluez.Error.InProgress",
        "org.bluez.Error.NotReady",
        "org.bluez.Error.Failed",
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.NoReply",
        "org.freedesktop.DBus.Error.Disconnected",
        "org.freedesktop.DBus.Error.Timeout",
    }
)
PERMISSION_DBUS_ERRORS: Final = frozenset(
    {"org.freedesktop.DBus.Error.AccessDenied", "org.bluez.Error.NotAuthorized", "org.bluez.Error.NotPermitted"}
)
BLUEZ_GONE_ERRORS: Final = frozenset(
    {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"}
)
PERMISSION_HINT: Final = (
    "add the service user to group 'bluetooth' and check the D-Bus policy for org.bluez (see docs/ble.md)"
)
#: no system bus socket (or nobody behind it): a host without D-Bus/BlueZ running, or a container
NO_BUS_HINT: Final = (
    "is the system bus running, with bluetoothd (`systemctl start dbus bluetooth`)? "
    "In a container, the host's /run/dbus must be mounted"
)
MAX_BACKOFF_S: Final = 30.0


def manufacturer_channel(company_id: int) -> str:
    """``channel`` of an ``adv`` event carrying manufacturer data (service data uses the UUID)."""
    return f"manufacturer:0x{company_id:04x}"


def _now() -> datetime:
    return datetime.now(UTC)


def _bus_address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/var/run/dbus/system_bus_socket")


def translate_error(exc: BaseException) -> LinkError:
    """The one place that decides what a bleak / D-Bus failure means: message and retryability."""
    from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError
    from dbus_fast import AuthError

    if isinstance(exc, LinkError):
        return exc
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return _not_available(exc)
    if isinstance(exc, AuthError):
        return LinkError(f"D-Bus refused the connection ({exc}); {PERMISSION_HINT}", transient=False)
    if isinstance(exc, BleakDBusError):
        return _bluez_error(exc)
    if isinstance(exc, PermissionError):
        return LinkError(f"no permission to open the D-Bus system bus at {_bus_address()}", transient=False)
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        reason = exc.strerror or exc
        return LinkError(f"cannot reach the D-Bus system bus at {_bus_address()} ({reason}); {NO_BUS_HINT}")
    if isinstance(exc, EOFError | ConnectionError | BrokenPipeError):
        return LinkError(f"D-Bus connection lost ({type(exc).__name__}: {exc})")
    if isinstance(exc, TimeoutError):
        return LinkError("timed out talking to BlueZ")
    if "passive scanning" in str(exc):  # bleak: BlueZ lacks AdvertisementMonitor (needs --experimental)
        return LinkError(f"{exc}; or use scanning_mode = 'active'", transient=False)
    return LinkError(f"BLE error: {type(exc).__name__}: {exc}")


def _not_available(exc: BleakBluetoothNotAvailableError) -> LinkError:
    """bleak's "no usable adapter", by its reason (part of :func:`translate_error`)."""
    from bleak.exc import BleakBluetoothNotAvailableReason

    reason = exc.reason
    if reason is BleakBluetoothNotAvailableReason.NO_BLUETOOTH:
        return LinkError("no Bluetooth adapter found (check `bluetoothctl list`)", transient=False)
    if reason is BleakBluetoothNotAvailableReason.NO_BLE_CENTRAL_ROLE:
        return LinkError(
            "no Bluetooth adapter with the BLE 'central' role (a Classic-only adapter?); use a Bluetooth 4.0+ "
            "adapter",
            transient=False,
        )
    if reason is BleakBluetoothNotAvailableReason.POWERED_OFF:
        return LinkError("the Bluetooth adapter is powered off (`bluetoothctl power on`, `rfkill unblock bluetooth`)")
    return LinkError(f"Bluetooth access denied: {exc.args[0]}; {PERMISSION_HINT}", transient=False)


def _bluez_error(exc: BleakDBusError) -> LinkError:
    """A D-Bus error from BlueZ, by its name (part of :func:`translate_error`)."""
    name = exc.dbus_error
    if name in PERMISSION_DBUS_ERRORS:
        return LinkError(f"BlueZ refused access ({exc}); {PERMISSION_HINT}", transient=False)
    if name in BLUEZ_GONE_ERRORS:
        return LinkError("BlueZ (org.bluez) is not on the system bus: is bluetooth.service running?")
    return LinkError(f"BlueZ error {exc}", transient=name in TRANSIENT_DBUS_ERRORS or not name.startswith("org."))


def _adapter_props(manager: BlueZManager, adapter_path: str) -> dict[str, Any] | None:
    # bleak keeps BlueZ's object tree in BlueZManager._properties (bleak-retry-connector reads it too)
    properties: dict[str, dict[str, dict[str, Any]]] = getattr(manager, "_properties", {})
    return properties.get(adapter_path, {}).get(ADAPTER_IFACE)


def _known_adapters(manager: BlueZManager) -> list[str]:
    properties: dict[str, dict[str, dict[str, Any]]] = getattr(manager, "_properties", {})
    return sorted(p.rsplit("/", 1)[-1] for p, ifaces in properties.items() if ADAPTER_IFACE in ifaces)


def _select_adapter(manager: BlueZManager, adapter: str | None) -> str:
    """D-Bus path of the adapter to scan with; LinkError if it is missing, has no central role, is off."""
    if adapter is None:
        try:
            return manager.get_default_adapter()
        except Exception as exc:
            raise translate_error(exc) from exc
    path = adapter if adapter.startswith("/") else f"/org/bluez/{adapter}"
    props = _adapter_props(manager, path)
    if props is None:
        known = ", ".join(_known_adapters(manager)) or "none"
        raise LinkError(f"Bluetooth adapter {adapter!r} not found (BlueZ has: {known})", transient=False)
    roles = props.get("Roles")
    if roles is not None and "central" not in roles:
        raise LinkError(
            f"Bluetooth adapter {adapter!r} has no BLE 'central' role (Roles={list(roles)}): it cannot scan for "
            "or connect to scales; use a Bluetooth 4.0+ adapter",
            transient=False,
        )
    if props.get("Powered") is False:
        raise LinkError(f"Bluetooth adapter {adapter!r} is powered off (`bluetoothctl power on`, `rfkill list`)")
    return path


def _claims(matcher: BleMatcher, name: str | None, adv: AdvertisementData) -> bool:
    # the matcher tells service-data keys (broadcast scales) from the advertised service list (GATT scales)
    return matcher.matches(
        name=name,
        service_uuids=frozenset(u.lower() for u in adv.service_uuids),
        manufacturer_ids=frozenset(adv.manufacturer_data),
        service_data_uuids=frozenset(u.lower() for u in adv.service_data),
    )


def claiming_spec(specs: Sequence[DriverSpec], name: str | None, adv: AdvertisementData) -> DriverSpec | None:
    for spec in specs:
        if spec.ble is not None and _claims(spec.ble, name, adv):
            return spec
    return None


@dataclass(frozen=True, slots=True)
class ScanResult:
    name: str | None
    address: str
    rssi: int | None
    service_uuids: tuple[str, ...]
    #: the registered driver that claims this device, or None
    driver: str | None
    manufacturer_ids: tuple[int, ...] = ()


async def scan_ble(duration_s: float, adapter: str | None = None) -> list[ScanResult]:
    """Scan for ``duration_s`` and list every device heard, strongest first. LinkError if BLE is unusable."""
    from bleak import BleakScanner
    from bleak.backends.bluezdbus.manager import get_global_bluez_manager

    from ..registry import registry

    specs = [s for s in registry().values() if s.ble is not None]
    seen: dict[str, ScanResult] = {}

    def on_advert(device: BLEDevice, adv: AdvertisementData) -> None:
        name = adv.local_name or device.name
        spec = claiming_spec(specs, name, adv)
        uuids = {u.lower() for u in adv.service_uuids} | {u.lower() for u in adv.service_data}
        seen[device.address] = ScanResult(
            name=name,
            address=device.address,
            rssi=adv.rssi,
            service_uuids=tuple(sorted(uuids)),
            driver=spec.name if spec else None,
            manufacturer_ids=tuple(sorted(adv.manufacturer_data)),
        )

    try:
        manager = await get_global_bluez_manager()
        path = _select_adapter(manager, adapter)
        scanner = BleakScanner(on_advert, bluez={"adapter": path.rsplit("/", 1)[-1]})
        await scanner.start()
        try:
            await asyncio.sleep(duration_s)
        finally:
            await scanner.stop()
    except Exception as exc:
        raise translate_error(exc) from exc
    return sorted(seen.values(), key=lambda r: (r.rssi is None, -(r.rssi or 0), r.address))


class _Closed:
    pass


_CLOSED: Final = _Closed()


class BleLink:
    """The ``Link`` for BLE scales. See the module docstring.

    ``state``: ``connecting`` while the scanner starts (or backs off after a failure: ``on_state`` gets
    the reason), ``connected`` while scanning works (and while a GATT scale is connected),
    ``disconnected`` after a failure, ``closed`` after ``close()``. ``stats`` counts adverts, events,
    dropped events, scanner starts/restarts/start failures, GATT connects and failures.
    """

    def __init__(
        self,
        specs: Sequence[DriverSpec],
        *,
        adapter: str | None = None,
        address: str | None = None,
        scale: str = "",
        watchdog_s: float = 90.0,
        max_scanner_restarts: int = 5,
        scanning_mode: str = "active",
        backoff_s: float = 1.0,
        reconnect_cooldown_s: float = 2.0,
        max_session_s: float = 300.0,
        connect_attempts: int = 3,
        queue_size: int = 4096,
        on_state: Callable[[str, str], None] | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self._specs = [s for s in specs if s.ble is not None]
        if not self._specs:
            names = ", ".join(s.name for s in specs) or "none"
            raise LinkError(
                f"no BLE driver among {names}: a BLE link needs a driver with a BLE matcher", transient=False
            )
        if scanning_mode not in ("active", "passive"):
            raise LinkError(f"scanning_mode must be 'active' or 'passive', not {scanning_mode!r}", transient=False)
        self._adapter = adapter
        self._address = address.upper() if address else None
        self._scale = scale
        self._watchdog_s = watchdog_s
        self._max_restarts = max_scanner_restarts
        self._scanning_mode = scanning_mode
        self._backoff_s = backoff_s
        self._cooldown_s = reconnect_cooldown_s
        self._max_session_s = max_session_s
        self._connect_attempts = connect_attempts
        self._on_state = on_state
        #: the ``[scale]`` settings the driver lists (drivers/gatt.py ExchangeContext.settings)
        self._settings: Mapping[str, str] = dict(settings or {})
        self.name = f"ble:{address or adapter or 'any'}"

        self._queue: asyncio.Queue[LinkEvent | BaseException | _Closed] = asyncio.Queue(maxsize=queue_size)
        self._runner: asyncio.Task[None] | None = None
        self._state = "disconnected"
        self._closed = False
        self._last_adv = 0.0  # monotonic time of the last advertisement heard (any device)
        self._gatt_tasks: dict[str, asyncio.Task[None]] = {}
        self._gatt_connected: set[str] = set()
        self._cooldown_until: dict[str, float] = {}
        self._gatt_failures: dict[str, int] = {}
        #: counters for health/metrics: adverts, events, dropped, scanner_starts, scanner_restarts, ...
        self.stats: dict[str, int] = {}

    # -- Link protocol -------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self._closed:
            return "closed"
        if self._gatt_connected:
            return "connected"
        return self._state

    def _set_state(self, state: str, detail: str = "") -> None:
        if state != self._state:
            self._state = state
            if self._on_state is not None:
                self._on_state(state, detail)

    @property
    def gatt_connected(self) -> bool:
        return bool(self._gatt_connected)

    async def send(self, data: bytes) -> None:
        raise LinkError("a BLE scale link is receive-only: send() is not supported", transient=False)

    async def events(self) -> AsyncIterator[LinkEvent]:
        if self._closed:
            return
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"{self.name} supervisor")
        while True:
            item = await self._queue.get()
            if isinstance(item, _Closed):
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._on_state is not None:
            self._on_state("closed", "")
        tasks = [*self._gatt_tasks.values(), *([self._runner] if self._runner else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._put_control(_CLOSED)

    # -- queue -----------------------------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def _put(self, event: LinkEvent) -> None:
        if self._queue.full():  # the consumer stalled: keep the newest (a Mi scale repeats itself anyway)
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self._count("dropped")
        self._queue.put_nowait(event)
        self._count("events")

    def _put_control(self, item: BaseException | _Closed) -> None:
        while self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(item)

    # -- scanner supervision ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._supervise()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: translated and handed to the consumer
            error = translate_error(exc)
            log.error("ble_link_failed", extra={"error": str(error)})
            self._set_state("disconnected", str(error))
            self._put_control(LinkError(str(error), transient=False) if error.transient else error)

    async def _supervise(self) -> None:
        failures = 0  # consecutive: failed starts and restarts without an advertisement in between
        started_once = False
        last_error: LinkError | None = None
        reason = "start"
        while not self._closed:
            self._set_state("connecting", reason)
            try:
                scanner, manager, adapter_path = await self._start_scanner()
            except Exception as exc:
                error = translate_error(exc)
                if not error.transient and not started_once:
                    raise error from exc
                failures += 1
                last_error = error
                self._count("scanner_start_failures")
                self._set_state("disconnected", str(error))
                if failures > self._max_restarts:
                    raise LinkError(
                        f"BLE scanning failed {failures} times in a row, giving up: {error}", transient=False
                    ) from exc
                delay = self._backoff(failures)
                # the first failure of a run is a warning; its retries are debug (the link state says the rest)
                (log.warning if failures == 1 else log.debug)(
                    "ble_scanner_start_failed", extra={"error": str(error), "retry_in_s": round(delay, 2)}
                )
                reason = f"retrying after: {error}"
                await asyncio.sleep(delay)
                continue

            started_once = True
            self._set_state("connected", f"scanning on {adapter_path.rsplit('/', 1)[-1]}")
            self._count("scanner_starts")
            try:
                reason, heard = await self._watch(manager, adapter_path)
            finally:
                await self._stop_scanner(scanner)
            if reason in ("adapter_gone", "adapter_reappeared"):
                # bluetoothd restarted (or the adapter went away): its connections are gone, but bleak may
                # never report them closed. End the GATT sessions so the scales are reconnected.
                await self._end_gatt_sessions()
            if heard:
                failures = 0
            if reason == "silence":
                failures += 1
                if failures > self._max_restarts:
                    detail = f" (last error: {last_error})" if last_error else ""
                    raise LinkError(
                        f"no BLE advertisement for {self._watchdog_s:g} s after {self._max_restarts} scanner "
                        f"restarts: BlueZ or the adapter is wedged{detail}",
                        transient=False,
                    )
            self._count("scanner_restarts")
            log.warning("ble_scanner_restart", extra={"reason": reason, "consecutive_failures": failures})
            reason = f"scanner restart ({reason})"

    async def _end_gatt_sessions(self) -> None:
        tasks = list(self._gatt_tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._gatt_connected.clear()
        self._cooldown_until.clear()

    def _backoff(self, failures: int) -> float:
        cap = min(MAX_BACKOFF_S, self._backoff_s * 2 ** (failures - 1))
        return random.uniform(cap / 2, cap)

    async def _start_scanner(self) -> tuple[BleakScanner, BlueZManager, str]:
        from bleak import BleakScanner
        from bleak.backends.bluezdbus.manager import get_global_bluez_manager

        manager = await get_global_bluez_manager()
        adapter_path = _select_adapter(manager, self._adapter)
        bluez: dict[str, Any] = {"adapter": adapter_path.rsplit("/", 1)[-1]}
        if self._scanning_mode == "passive":
            bluez["or_patterns"] = self._or_patterns()
        mode = "passive" if self._scanning_mode == "passive" else "active"
        scanner = BleakScanner(self._on_advert, scanning_mode=mode, bluez=bluez)  # type: ignore[arg-type]
        await scanner.start()
        log.info("ble_scanning", extra={"adapter": adapter_path, "mode": mode})
        return scanner, manager, adapter_path

    async def _stop_scanner(self, scanner: BleakScanner) -> None:
        try:
            await asyncio.wait_for(scanner.stop(), 10.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - bluetoothd gone or restarted: its discovery session went with it
            log.info("ble_scanner_stop_failed", extra={"error": str(translate_error(exc))})

    async def _watch(self, manager: BlueZManager, adapter_path: str) -> tuple[str, bool]:
        """Sleep while scanning is healthy; return why it needs a restart and whether anything was heard."""
        started = time.monotonic()
        adapter = _adapter_props(manager, adapter_path)
        tick = max(0.05, min(1.0, self._watchdog_s / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            heard = self._last_adv > started
            current = _adapter_props(manager, adapter_path)
            if current is None:
                return "adapter_gone", heard
            if current is not adapter:
                # bleak replaced the adapter's properties: InterfacesAdded again, i.e. bluetoothd restarted
                # (or the adapter was re-plugged). Its discovery sessions died with it.
                return "adapter_reappeared", heard
            if self._gatt_connected:
                continue  # a connected GATT scale does not advertise; that is not a wedge
            if now - max(self._last_adv, started) >= self._watchdog_s:
                return "silence", heard

    def _or_patterns(self) -> list[Any]:
        """BlueZ advertisement-monitor patterns for passive scanning, from the matchers."""
        from bleak.args.bluez import OrPattern
        from bleak.assigned_numbers import AdvertisementDataType

        patterns: list[Any] = []
        for spec in self._specs:
            matcher = spec.ble
            assert matcher is not None
            for uuid in sorted(matcher.service_uuids):
                if uuid.endswith("-0000-1000-8000-00805f9b34fb") and uuid.startswith("0000"):
                    short = int(uuid[4:8], 16).to_bytes(2, "little")
                    patterns.append(OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, short))
            for prefix in matcher.name_prefixes:
                patterns.append(OrPattern(0, AdvertisementDataType.COMPLETE_LOCAL_NAME, prefix.encode()))
            for company in sorted(matcher.manufacturer_ids):
                patterns.append(
                    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, company.to_bytes(2, "little"))
                )
        if not patterns:
            raise LinkError(
                "passive scanning needs a driver with 16-bit service UUIDs or name prefixes", transient=False
            )
        return patterns

    # -- advertisements ------------------------------------------------------------------------------

    def _spec_for(self, name: str | None, adv: AdvertisementData, address: str) -> DriverSpec | None:
        if self._address is not None:
            if address.upper() != self._address:
                return None
            # the configured scale: its driver claims it even if the advertisement lacks a name or UUID
            return claiming_spec(self._specs, name, adv) or self._specs[0]
        return claiming_spec(self._specs, name, adv)

    def _on_advert(self, device: BLEDevice, adv: AdvertisementData) -> None:
        self._last_adv = time.monotonic()
        self._count("adverts")
        if self._closed:
            return
        name = adv.local_name or device.name
        spec = self._spec_for(name, adv, device.address)
        if spec is None:
            return
        matcher = spec.ble
        assert matcher is not None
        if matcher.mode is BleMode.GATT:
            self._maybe_connect(device, name, spec)
            return
        received_at = _now()
        for uuid, data in adv.service_data.items():
            channel = uuid.lower()
            if matcher.service_uuids and channel not in matcher.service_uuids:
                continue
            self._put(self._adv(bytes(data), channel, device, adv, name=name, at=received_at))
        for company, data in adv.manufacturer_data.items():
            if company in matcher.manufacturer_ids:
                channel = manufacturer_channel(company)
                self._put(self._adv(bytes(data), channel, device, adv, name=name, at=received_at))

    def _adv(
        self, payload: bytes, channel: str, device: BLEDevice, adv: AdvertisementData, *, name: str | None, at: datetime
    ) -> LinkEvent:
        return self._event(
            EventKind.ADV, payload, channel=channel, address=device.address, name=name, rssi=adv.rssi, received_at=at
        )

    def _event(
        self,
        kind: EventKind,
        payload: bytes,
        *,
        channel: str,
        address: str,
        name: str | None,
        rssi: int | None = None,
        received_at: datetime | None = None,
    ) -> LinkEvent:
        return LinkEvent(
            kind=kind,
            payload=payload,
            received_at=received_at or _now(),
            channel=channel,
            address=address,
            rssi=rssi,
            name=name,
            scale=self._scale,
        )

    # -- GATT sessions ---------------------------------------------------------------------------------

    def _maybe_connect(self, device: BLEDevice, name: str | None, spec: DriverSpec) -> None:
        address = device.address.upper()
        if address in self._gatt_tasks or time.monotonic() < self._cooldown_until.get(address, 0.0):
            return
        task = asyncio.get_running_loop().create_task(self._gatt_session(device, name, spec), name=f"gatt {address}")
        self._gatt_tasks[address] = task
        task.add_done_callback(lambda _t, a=address: self._gatt_tasks.pop(a, None))  # type: ignore[misc]

    async def _gatt_session(self, device: BLEDevice, name: str | None, spec: DriverSpec) -> None:
        address = device.address.upper()
        ok = False
        try:
            ok = await self._gatt_exchange(device, name, spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed session must not stop the scanner
            error = translate_error(exc)
            log.warning("ble_gatt_failed", extra={"address": address, "error": str(error)})
            self._count("gatt_failures")
        finally:
            self._gatt_connected.discard(address)
            failures = 0 if ok else self._gatt_failures.get(address, 0) + 1
            self._gatt_failures[address] = failures
            delay = self._cooldown_s if ok else max(self._cooldown_s, self._backoff(failures))
            # BlueZ signals Connected=False as a property change, which bleak reports as an advertisement;
            # the cooldown keeps that echo from triggering a reconnect to a scale that went to sleep.
            self._cooldown_until[address] = time.monotonic() + delay

    async def _gatt_exchange(self, device: BLEDevice, name: str | None, spec: DriverSpec) -> bool:
        """One connection: drive the driver's exchange (drivers/gatt.py) until the scale disconnects,
        the exchange says ``Disconnect``, or ``max_session_s`` passes. True = a normal end."""
        from bleak_retry_connector import BleakClientWithServiceCache, establish_connection

        from ..gatt import ExchangeError

        matcher = spec.ble
        assert matcher is not None
        address = device.address
        disconnected = asyncio.Event()

        def on_disconnect(_client: Any) -> None:
            disconnected.set()

        log.info("ble_gatt_connecting", extra={"address": address, "driver": spec.name})
        client = await establish_connection(
            BleakClientWithServiceCache,
            device,
            name or address,
            disconnected_callback=on_disconnect,
            max_attempts=self._connect_attempts,
        )
        self._gatt_connected.add(address.upper())
        self._count("gatt_connects")
        try:
            session = _GattSession(self, client, spec=spec, address=address, name=name, disconnected=disconnected)
            try:
                return await session.run()
            except ExchangeError as exc:
                log.warning(
                    "ble_gatt_exchange_failed", extra={"address": address, "driver": spec.name, "error": str(exc)}
                )
                self._count("gatt_exchange_errors")
                return False
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 10.0)
            # end of the session: the decoder downstream releases what it holds (drivers/events.py)
            self._put(self._event(EventKind.SESSION_END, b"", channel="", address=address, name=name))


class _GattSession:
    """Performs one connection's exchange actions with bleak (see drivers/gatt.py for the rules)."""

    def __init__(
        self,
        link: BleLink,
        client: Any,
        *,
        spec: DriverSpec,
        address: str,
        name: str | None,
        disconnected: asyncio.Event,
    ) -> None:
        self.link = link
        self.client = client
        self.spec = spec
        self.address = address
        self.name = name
        self.disconnected = disconnected
        #: (kind, uuid, value) handed to the exchange one at a time: "notify" | "read"
        self.inbox: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
        self.subscribed: list[str] = []
        self.refused: list[str] = []

    def _exchange(self) -> Exchange:
        from ..gatt import ExchangeContext, SubscribeOnly

        services = self.client.services
        chars = frozenset(c.uuid.lower() for service in services for c in service.characteristics)
        encrypt = decrypt = None
        try:
            import cryptography  # noqa: F401 - only offered when the package is installed

            from .crypto import aes_cbc_decrypt, aes_cbc_encrypt
        except ImportError:
            pass
        else:
            encrypt, decrypt = aes_cbc_encrypt, aes_cbc_decrypt
        context = ExchangeContext(
            address=self.address.upper(),
            name=self.name,
            characteristics=chars,
            settings=self.link._settings,
            wall_time_s=time.time(),
            utc_offset_s=-(time.altzone if time.localtime().tm_isdst > 0 else time.timezone),
            aes_cbc_encrypt=encrypt,
            aes_cbc_decrypt=decrypt,
            random_bytes=os.urandom,
        )
        if self.spec.make_exchange is not None:
            return self.spec.make_exchange(context)
        matcher = self.spec.ble
        assert matcher is not None
        return SubscribeOnly(matcher.characteristics, context)

    def _on_value(self, char: BleakGATTCharacteristic, data: bytearray) -> None:
        uuid, value = char.uuid.lower(), bytes(data)
        self.link._put(self._notify_event(uuid, value))
        self.inbox.put_nowait(("notify", uuid, value))

    def _notify_event(self, uuid: str, value: bytes) -> LinkEvent:
        return self.link._event(EventKind.NOTIFY, value, channel=uuid, address=self.address, name=self.name)

    async def run(self) -> bool:
        link, address = self.link, self.address
        exchange = self._exchange()
        started = time.monotonic()
        reason = await self._perform(exchange.start(now_s=started))
        if not self.subscribed and reason is None:
            matcher = self.spec.ble
            assert matcher is not None
            wanted = ", ".join(matcher.characteristics) or "none"
            why = f" (refused: {'; '.join(self.refused)})" if self.refused else ""
            raise LinkError(f"{address} offers none of the characteristics {self.spec.name} reads ({wanted}){why}")
        if self.refused:
            log.warning("ble_gatt_subscribe_refused", extra={"address": address, "refused": "; ".join(self.refused)})
        log.info("ble_gatt_subscribed", extra={"address": address, "characteristics": ",".join(self.subscribed)})
        session_end = started + link._max_session_s
        while reason is None:
            now = time.monotonic()
            deadline = exchange.deadline_s
            until = session_end if deadline is None else min(session_end, deadline)
            item = await self._next(max(0.0, until - now))
            now = time.monotonic()
            if item is None:
                if self.disconnected.is_set():
                    log.info("ble_gatt_disconnected", extra={"address": address})
                    return True
                if now >= session_end:
                    # a scale stays connected for seconds; a session this long is a lost disconnect signal
                    log.warning("ble_gatt_session_too_long", extra={"address": address, "limit_s": link._max_session_s})
                    return True
                if deadline is None or now < deadline:
                    continue
                actions = exchange.on_timeout(now_s=now)
            else:
                kind, uuid, value = item
                if kind == "read":
                    actions = exchange.on_read(uuid, value, now_s=now)
                else:
                    actions = exchange.on_notify(uuid, value, now_s=now)
            reason = await self._perform(actions)
        log.info("ble_gatt_exchange_done", extra={"address": address, "reason": reason})
        return True

    async def _next(self, timeout_s: float) -> tuple[str, str, bytes] | None:
        """The next notification or read result; None on disconnect or when ``timeout_s`` passed."""
        if not self.inbox.empty():
            return self.inbox.get_nowait()
        if self.disconnected.is_set():
            return None
        get = asyncio.ensure_future(self.inbox.get())
        gone = asyncio.ensure_future(self.disconnected.wait())
        try:
            done, _pending = await asyncio.wait({get, gone}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (get, gone):
                if not fut.done():
                    fut.cancel()
        if get in done:
            return get.result()
        if not get.cancelled() and get.done():  # both finished at once
            return get.result()
        return None

    async def _perform(self, actions: Sequence[Action]) -> str | None:
        """Perform the actions in order; the reason of a ``Disconnect``, else None."""
        from bleak.exc import BleakError

        from ..gatt import DEVICE_NAME, Disconnect, Read, Subscribe, Write

        services = self.client.services
        for action in actions:
            if isinstance(action, Disconnect):
                return action.reason or "exchange finished"
            char = services.get_characteristic(action.uuid)
            if isinstance(action, Subscribe):
                if char is None:
                    log.debug("ble_gatt_no_characteristic", extra={"address": self.address, "uuid": action.uuid})
                    continue
                try:
                    await self.client.start_notify(char, self._on_value)
                except BleakError as exc:  # e.g. one characteristic needs pairing: take what the others give
                    self.refused.append(f"{char.uuid}: {exc}")
                    continue
                self.subscribed.append(char.uuid)
            elif isinstance(action, Write):
                if char is None:
                    raise LinkError(f"{self.address} has no characteristic {action.uuid} to write")
                log.debug(
                    "ble_gatt_write", extra={"address": self.address, "uuid": action.uuid, "bytes": len(action.data)}
                )
                await self.client.write_gatt_char(char, action.data, response=action.with_response)
                self.link._count("gatt_writes")
            elif isinstance(action, Read):
                value: bytes | None = None
                if char is None and action.uuid == DEVICE_NAME:
                    value = (self.name or "").encode()
                elif char is None or "read" not in char.properties:
                    log.info("ble_gatt_unreadable", extra={"address": self.address, "uuid": action.uuid})
                    continue
                else:
                    try:
                        value = bytes(await self.client.read_gatt_char(char))
                    except (BleakError, TimeoutError) as exc:  # informative reads: the session goes on
                        log.info(
                            "ble_gatt_read_failed",
                            extra={"address": self.address, "uuid": action.uuid, "error": str(exc)},
                        )
                        continue
                self.link._put(self._notify_event(action.uuid, value))
                self.inbox.put_nowait(("read", action.uuid, value))
        return None
