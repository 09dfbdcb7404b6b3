"""BleLink against bleak's real BlueZ backend talking to a fake BlueZ on a private D-Bus.

Addresses and payloads are synthetic and written out literally. Timeouts are failure guards only.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC

import pytest
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakDBusError

from drivers.errors import LinkError
from drivers.events import EventKind, LinkEvent
from drivers.gatt import DEVICE_NAME
from drivers.links.ble import WEIGHT_SCALE_FEATURE, BleLink, scan_ble, translate_error
from drivers.registry import get
from tests.fakes import bluez_fixture
from tests.fakes.bluez_fixture import FakeBluezProcess, PrivateBus
from tests.helpers import wait_for_async

private_bus = bluez_fixture.private_bus
fake_bluez = bluez_fixture.fake_bluez

pytestmark = pytest.mark.ble

GUARD_S = 20.0


def uuid16(short: str) -> str:
    return f"0000{short}-0000-1000-8000-00805f9b34fb"


# the registered drivers: their matchers decide what the link claims
MI_SPEC = get("mi_scale")
GATT_SPEC = get("ble_standard")

MI_ADDR = "5C:CA:D3:00:00:01"
STD_ADDR = "A4:C1:38:00:00:02"
OTHER_ADDR = "F0:00:00:00:00:03"
# Mi v2 frame: ctrl 02 26 (stabilised, impedance), 2022-02-14 16:41:58, 503 ohm, 72.45 kg
MI_V2 = bytes.fromhex("02 26 e6 07 02 0e 10 29 3a f7 01 9a 38")
MI_V2_LATER = bytes.fromhex("02 26 e6 07 02 0e 10 2a 05 f4 01 a4 38")
# Body Composition Measurement split over two indications (flags bit 12 = multiple packet):
# 1) flags 0x1006: fat 23.4 %, time stamp 2024-05-17 08:30:00, user 1
# 2) flags 0x1600: fat 23.4 %, impedance 512.3 ohm, weight 80.0 kg
BCM_1 = bytes.fromhex("06 10 ea 00 e8 07 05 11 08 1e 00 01")
BCM_2 = bytes.fromhex("00 16 ea 00 03 14 80 3e")
WEIGHT_2A9D = bytes.fromhex("00 8c 3c")  # 77.5 kg
FEATURE = bytes.fromhex("06 00 00 00")  # multiple users and BMI supported


class Pump:
    """Reads ``link.events()`` in the background; the test awaits conditions on what arrived."""

    def __init__(self, link: BleLink) -> None:
        self.link = link
        self.events: list[LinkEvent] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self.link.events():
                self.events.append(event)
        except Exception as exc:  # noqa: BLE001 - kept for the test to assert on
            self.error = exc

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        await wait_for_async(predicate, what, timeout_s=GUARD_S, interval_s=0.01, alive=self.failed)

    def failed(self) -> str | None:
        """An ``alive`` for ``wait_for_async``: set once the link's event stream raised."""
        return None if self.error is None else f"the link failed: {self.error!r}"

    def of(self, kind: EventKind, address: str | None = None) -> list[LinkEvent]:
        return [e for e in self.events if e.kind is kind and (address is None or e.address == address)]

    async def close(self) -> None:
        await self.link.close()
        await asyncio.wait_for(self.task, GUARD_S)


def values(pump: Pump) -> list[LinkEvent]:
    """The notify events of the scale's characteristics (without ble_standard's Device Name read)."""
    return [e for e in pump.of(EventKind.NOTIFY) if e.channel != DEVICE_NAME]


async def release_bleak() -> None:
    """Close bleak's per-loop BlueZ manager connection, so no D-Bus socket outlives the test's loop."""
    from bleak.backends.bluezdbus import manager

    instance = manager._global_instances.pop(asyncio.get_running_loop(), None)
    bus = getattr(instance, "_bus", None)
    if bus is not None:
        bus.disconnect()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(bus.wait_for_disconnect(), 5)
    task = getattr(instance, "_bus_watcher_task", None)
    if task is not None:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 5)


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        try:
            await asyncio.wait_for(coro_fn(), 60)
        finally:
            await release_bleak()

    asyncio.run(main())


async def wait_discovering(fake: FakeBluezProcess) -> None:
    reply = await fake.acall("wait", key="discovering", at_least=1, timeout_s=GUARD_S)
    assert reply["reached"], f"the link never started discovery: {reply['stats']}"


def test_mi_broadcast_advertised_50_times_arrives_as_adv_events(fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        pump = Pump(BleLink([MI_SPEC], scale="front-desk", watchdog_s=30))
        await wait_discovering(fake_bluez)
        # a neighbour with service data nobody claims: must not show up
        await fake_bluez.acall("advertise", address=OTHER_ADDR, name="LYWSD03", service_data={"fe95": "3058"}, count=3)
        reply = await fake_bluez.acall(
            "advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2.hex()}, count=50, rssi=-58
        )
        assert reply["delivered"] == 50
        await pump.until(lambda: len(pump.of(EventKind.ADV)) >= 50, "50 adv events")
        adv = pump.of(EventKind.ADV)
        assert len(adv) == 50  # one per advertisement, no dedupe in the link
        assert {e.address for e in adv} == {MI_ADDR}
        for e in adv:
            assert e.payload == MI_V2
            assert e.channel == uuid16("181b")
            assert e.name == "MIBFS"
            assert e.scale == "front-desk"
            assert e.rssi in (-58, -59)
            assert e.received_at.tzinfo is UTC
        assert pump.link.state == "connected"
        assert pump.link.stats["adverts"] >= 53
        await pump.close()
        assert pump.link.state == "closed"

    run(main)


def test_configured_address_only_takes_that_device(fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        pump = Pump(BleLink([MI_SPEC], address=MI_ADDR.lower(), watchdog_s=30))
        await wait_discovering(fake_bluez)
        other_mi = "5C:CA:D3:00:00:09"
        await fake_bluez.acall("advertise", address=other_mi, name="MIBFS", service_data={"181b": MI_V2.hex()})
        # the configured scale is taken even without a name
        await fake_bluez.acall("advertise", address=MI_ADDR, service_data={"181b": MI_V2_LATER.hex()}, count=2)
        await pump.until(lambda: len(pump.of(EventKind.ADV)) >= 2, "2 adv events")
        assert {(e.address, e.payload) for e in pump.events} == {(MI_ADDR, MI_V2_LATER)}
        await pump.close()

    run(main)


def test_standard_scale_indications_then_disconnect_then_reconnect(fake_bluez: FakeBluezProcess) -> None:
    services = STD_SERVICES

    async def main() -> None:
        link = BleLink([GATT_SPEC], watchdog_s=30, reconnect_cooldown_s=0.2)
        pump = Pump(link)
        await wait_discovering(fake_bluez)
        await fake_bluez.acall(
            "gatt_device",
            address=STD_ADDR,
            services=services,
            indicate=[{"char": "2a9c", "hex": BCM_1.hex()}, {"char": "2a9c", "hex": BCM_2.hex()}],
        )
        # a Mi scale nearby (service data under 181B) is not a GATT scale: no connection to it
        await fake_bluez.acall("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2.hex()}, count=5)
        await fake_bluez.acall("advertise", address=STD_ADDR, name="BF105", uuids=["181d", "181b"])
        await pump.until(lambda: len(pump.of(EventKind.NOTIFY)) >= 4, "name + feature + 2 indications")
        reply = await fake_bluez.acall("wait", key="disconnects", at_least=1, timeout_s=GUARD_S)
        assert reply["reached"]
        notify = pump.of(EventKind.NOTIFY)
        assert [(e.channel, e.payload) for e in notify] == [
            (DEVICE_NAME, b"BF105"),  # the exchange's Device Name read, answered from BlueZ's name
            (WEIGHT_SCALE_FEATURE, FEATURE),
            (uuid16("2a9c"), BCM_1),
            (uuid16("2a9c"), BCM_2),
        ]
        assert all(e.address == STD_ADDR and e.name == "BF105" for e in notify)
        assert reply["stats"]["connects"] == 1

        # the scale wakes up again with a plain weight; the link reconnects by itself
        await fake_bluez.acall(
            "gatt_device", address=STD_ADDR, services=services, indicate=[{"char": "2a9d", "hex": WEIGHT_2A9D.hex()}]
        )

        await advertise_until_connected(fake_bluez, 2)
        await pump.until(lambda: len(pump.of(EventKind.NOTIFY)) >= 7, "second session")
        assert [(e.channel, e.payload) for e in pump.of(EventKind.NOTIFY)[4:]] == [
            (DEVICE_NAME, b"BF105"),
            (WEIGHT_SCALE_FEATURE, FEATURE),
            (uuid16("2a9d"), WEIGHT_2A9D),
        ]
        assert pump.of(EventKind.ADV) == []  # a GATT scale's adverts are not readings
        assert link.stats["gatt_connects"] == 2
        assert (await fake_bluez.acall("stats"))["stats"]["connect_calls"] == 2  # never the Mi scale
        await pump.close()

    run(main)


def test_link_recovers_when_bluez_is_killed_and_restarted(fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        # the watchdog is long: recovery must come from noticing the restarted bluetoothd
        link = BleLink([MI_SPEC], watchdog_s=60, backoff_s=0.05)
        pump = Pump(link)
        await wait_discovering(fake_bluez)
        await fake_bluez.acall("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2.hex()}, count=3)
        await pump.until(lambda: len(pump.events) >= 3, "adverts before the crash")

        await asyncio.to_thread(fake_bluez.kill)
        await asyncio.to_thread(fake_bluez.start)  # a fresh bluetoothd: no discovery session, no devices
        await wait_discovering(fake_bluez)
        await fake_bluez.acall(
            "advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2_LATER.hex()}, count=3
        )
        await pump.until(lambda: any(e.payload == MI_V2_LATER for e in pump.events), "adverts after the restart")
        assert link.stats["scanner_restarts"] >= 1
        assert pump.error is None
        await pump.close()

    run(main)


STD_SERVICES = [
    {
        "uuid": "181d",
        "characteristics": [
            {"uuid": "2a9e", "flags": ["read"], "value": FEATURE.hex()},
            {"uuid": "2a9d", "flags": ["indicate"]},
        ],
    },
    {"uuid": "181b", "characteristics": [{"uuid": "2a9c", "flags": ["indicate"]}]},
]


async def advertise_until_connected(fake: FakeBluezProcess, connects: int) -> None:
    async def connected() -> bool:  # advertises again each round until the link has connected
        if (await fake.acall("stats"))["stats"].get("connects", 0) >= connects:
            return True
        await fake.acall("advertise", address=STD_ADDR, name="BF105", uuids=["181d", "181b"])
        return False

    await wait_for_async(connected, f"connect {connects} to the standard scale", timeout_s=GUARD_S, interval_s=0.1)


def test_gatt_session_survives_a_bluez_crash_while_connected(fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        link = BleLink([GATT_SPEC], watchdog_s=60, backoff_s=0.05, reconnect_cooldown_s=0.2)
        pump = Pump(link)
        await wait_discovering(fake_bluez)
        # the scale stays connected after its indication
        await fake_bluez.acall(
            "gatt_device",
            address=STD_ADDR,
            services=STD_SERVICES,
            indicate=[{"char": "2a9d", "hex": WEIGHT_2A9D.hex()}],
            disconnect_after=False,
        )
        await advertise_until_connected(fake_bluez, 1)
        await pump.until(lambda: len(values(pump)) >= 2, "the first session's values")
        assert link.gatt_connected

        # bluetoothd dies with the connection up: nobody will say "Connected": false
        await asyncio.to_thread(fake_bluez.kill)
        await asyncio.to_thread(fake_bluez.start)
        await wait_discovering(fake_bluez)
        await fake_bluez.acall(
            "gatt_device",
            address=STD_ADDR,
            services=STD_SERVICES,
            indicate=[{"char": "2a9c", "hex": BCM_1.hex()}, {"char": "2a9c", "hex": BCM_2.hex()}],
        )
        await advertise_until_connected(fake_bluez, 1)  # the restarted fake counts from zero
        await pump.until(lambda: len(values(pump)) >= 5, "the session after the crash")
        assert [e.payload for e in values(pump)] == [FEATURE, WEIGHT_2A9D, FEATURE, BCM_1, BCM_2]
        await pump.close()

    run(main)


def test_gatt_refused_feature_and_characteristic_do_not_stop_the_rest(fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        link = BleLink([GATT_SPEC], watchdog_s=60)
        pump = Pump(link)
        await wait_discovering(fake_bluez)
        services = [
            {
                "uuid": "181d",
                "characteristics": [
                    {
                        "uuid": "2a9e",
                        "flags": ["read"],
                        "value": FEATURE.hex(),
                        "fail": {"read": "org.bluez.Error.NotAuthorized"},
                    },
                    {"uuid": "2a9d", "flags": ["indicate"], "fail": {"notify": "org.bluez.Error.NotPermitted"}},
                ],
            },
            {"uuid": "181b", "characteristics": [{"uuid": "2a9c", "flags": ["indicate"]}]},
        ]
        await fake_bluez.acall(
            "gatt_device",
            address=STD_ADDR,
            services=services,
            indicate=[{"char": "2a9c", "hex": BCM_1.hex()}, {"char": "2a9c", "hex": BCM_2.hex()}],
        )
        await advertise_until_connected(fake_bluez, 1)
        await pump.until(lambda: len(values(pump)) >= 2, "the body composition packets")
        assert [(e.channel, e.payload) for e in values(pump)] == [
            (uuid16("2a9c"), BCM_1),
            (uuid16("2a9c"), BCM_2),
        ]
        assert "gatt_failures" not in link.stats
        await pump.close()

    run(main)


def test_link_recovers_when_the_system_bus_restarts(private_bus: PrivateBus, fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        link = BleLink([MI_SPEC], watchdog_s=60, backoff_s=0.05, max_scanner_restarts=50)
        pump = Pump(link)
        await wait_discovering(fake_bluez)
        await fake_bluez.acall("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2.hex()})
        await pump.until(lambda: len(pump.events) >= 1, "an advert before the bus restart")

        await asyncio.to_thread(fake_bluez.kill)
        await asyncio.to_thread(private_bus.stop)  # the link's D-Bus connection drops
        await asyncio.to_thread(private_bus.start)
        await asyncio.to_thread(fake_bluez.start)
        await wait_discovering(fake_bluez)
        await fake_bluez.acall("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2_LATER.hex()})
        await pump.until(lambda: any(e.payload == MI_V2_LATER for e in pump.events), "an advert after the restart")
        assert pump.error is None
        await pump.close()

    run(main)


def test_watchdog_restarts_silent_scanner_and_keeps_delivering(fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        link = BleLink([MI_SPEC], watchdog_s=0.3, max_scanner_restarts=1000)
        pump = Pump(link)
        reply = await fake_bluez.acall("wait", key="start_discovery", at_least=3, timeout_s=GUARD_S)
        assert reply["reached"], reply["stats"]
        assert reply["stats"]["stop_discovery"] >= 2  # stopped before each restart
        await wait_discovering(fake_bluez)
        await fake_bluez.acall("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2.hex()})
        await pump.until(lambda: len(pump.events) >= 1, "an advert after restarts")
        assert link.stats["scanner_restarts"] >= 2
        await pump.close()

    run(main)


def test_watchdog_gives_up_after_max_restarts(fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        link = BleLink([MI_SPEC], watchdog_s=0.2, max_scanner_restarts=2)
        pump = Pump(link)
        await asyncio.wait_for(pump.task, GUARD_S)
        assert isinstance(pump.error, LinkError)
        assert pump.error.transient is False
        assert "no BLE advertisement" in str(pump.error)
        stats = (await fake_bluez.acall("stats"))["stats"]
        assert stats["start_discovery"] == 3  # the first start and 2 restarts
        await link.close()

    run(main)


def test_transient_bluez_errors_back_off_and_retry(fake_bluez: FakeBluezProcess) -> None:
    fake_bluez.call("fail_start", n=2)  # StartDiscovery answers org.bluez.Error.InProgress twice

    async def main() -> None:
        link = BleLink([MI_SPEC], watchdog_s=30, backoff_s=0.05)
        pump = Pump(link)
        await wait_discovering(fake_bluez)
        await fake_bluez.acall("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2.hex()})
        await pump.until(lambda: len(pump.events) >= 1, "an advert")
        stats = (await fake_bluez.acall("stats"))["stats"]
        assert stats["start_discovery_failed"] == 2
        assert link.stats["scanner_start_failures"] == 2
        await pump.close()

    run(main)


@pytest.mark.parametrize("adapter", [None, "hci0"])
def test_adapter_without_central_role_is_a_clear_permanent_error(private_bus: PrivateBus, adapter: str | None) -> None:
    fake = FakeBluezProcess(private_bus, central=False)
    fake.start()
    try:

        async def main() -> None:
            pump = Pump(BleLink([MI_SPEC], adapter=adapter))
            await asyncio.wait_for(pump.task, GUARD_S)
            assert isinstance(pump.error, LinkError)
            assert pump.error.transient is False
            message = str(pump.error)
            assert "'central' role" in message
            assert "\n" not in message

        run(main)
    finally:
        fake.stop()


def test_missing_adapter_is_a_clear_permanent_error(fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        pump = Pump(BleLink([MI_SPEC], adapter="hci7"))
        await asyncio.wait_for(pump.task, GUARD_S)
        assert isinstance(pump.error, LinkError)
        assert pump.error.transient is False
        assert str(pump.error) == "Bluetooth adapter 'hci7' not found (BlueZ has: hci0)"

    run(main)


def test_passive_scanning_without_bluez_support_is_a_clear_permanent_error(fake_bluez: FakeBluezProcess) -> None:
    # the fake, like BlueZ without --experimental, has no AdvertisementMonitorManager1
    async def main() -> None:
        pump = Pump(BleLink([MI_SPEC], scanning_mode="passive"))
        await asyncio.wait_for(pump.task, GUARD_S)
        assert isinstance(pump.error, LinkError)
        assert pump.error.transient is False
        assert "passive scanning" in str(pump.error)

    run(main)


def test_send_is_not_supported() -> None:
    async def main() -> None:
        link = BleLink([MI_SPEC])
        with pytest.raises(LinkError, match="receive-only"):
            await link.send(b"\x01")
        await link.close()

    run(main)


def test_scan_ble_lists_devices(fake_bluez: FakeBluezProcess) -> None:
    async def main() -> None:
        async def advertise() -> None:
            await fake_bluez.acall("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2.hex()})
            await fake_bluez.acall("advertise", address=OTHER_ADDR, rssi=-80, manufacturer_data={"89": "0102"})

        adv_task = asyncio.create_task(advertise())
        results = await scan_ble(1.0, "hci0")
        await adv_task
        by_addr = {r.address: r for r in results}
        assert set(by_addr) == {MI_ADDR, OTHER_ADDR}
        assert results[0].address == MI_ADDR  # strongest first
        mi = by_addr[MI_ADDR]
        assert (mi.name, mi.rssi, mi.service_uuids) == ("MIBFS", -60, (uuid16("181b"),))
        other = by_addr[OTHER_ADDR]
        assert mi.driver == "mi_scale"
        assert (other.name, other.rssi, other.manufacturer_ids, other.driver) == (None, -80, (89,), None)

    run(main)


def test_importing_the_link_loads_neither_bleak_nor_dbus() -> None:
    code = (
        "import sys, drivers.links.ble; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bleak', 'dbus_fast', 'bleak_retry_connector')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


_NA = BleakBluetoothNotAvailableReason


@pytest.mark.parametrize(
    ("exc", "transient", "says"),
    [
        (BleakDBusError("org.bluez.Error.InProgress", ["Operation already in progress"]), True, "InProgress"),
        (BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"]), True, "NotReady"),
        (BleakDBusError("org.freedesktop.DBus.Error.UnknownObject", []), True, "UnknownObject"),
        (BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", []), True, "is bluetooth.service running"),
        (BleakDBusError("org.freedesktop.DBus.Error.AccessDenied", ["Rejected"]), False, "group 'bluetooth'"),
        (EOFError(), True, "D-Bus connection lost"),
        (FileNotFoundError(2, "No such file or directory"), True, "cannot reach the D-Bus system bus"),
        (PermissionError(13, "Permission denied"), False, "no permission"),
        (BleakBluetoothNotAvailableError("x", _NA.NO_BLE_CENTRAL_ROLE), False, "'central' role"),
        (BleakBluetoothNotAvailableError("x", _NA.NO_BLUETOOTH), False, "no Bluetooth adapter"),
        (BleakBluetoothNotAvailableError("x", _NA.POWERED_OFF), True, "powered off"),
    ],
)
def test_translate_error_decides_retry_in_one_place(exc: BaseException, transient: bool, says: str) -> None:
    error = translate_error(exc)
    assert isinstance(error, LinkError)
    assert error.transient is transient
    assert says in str(error)
    assert "\n" not in str(error)
