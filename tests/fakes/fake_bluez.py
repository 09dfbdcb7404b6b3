"""A fake BlueZ (``org.bluez``) for tests, written with dbus-fast.

Run it as a subprocess on a private bus (``python -m tests.fakes.fake_bluez --control SOCK``) with
``DBUS_SYSTEM_BUS_ADDRESS`` pointing at that bus; bleak's real BlueZ backend then talks to it. It
exports what bleak 3.x reads (see bleak/backends/bluezdbus/manager.py, scanner.py, client.py):

- ``/org/bluez/hci0``: ``org.bluez.Adapter1`` (Address, Name, Alias, Powered, Discovering, Roles —
  "central" can be left out with ``--no-central`` — and StartDiscovery / StopDiscovery /
  SetDiscoveryFilter / RemoveDevice);
- ``/org/bluez/hci0/dev_XX_..``: ``org.bluez.Device1`` appearing via InterfacesAdded (dbus-fast's
  export is an ObjectManager on ``/``), advertisements re-sent as PropertiesChanged on RSSI /
  ServiceData / ManufacturerData, and Connect / Disconnect;
- on Connect, ``.../serviceNNNN`` ``GattService1`` and ``.../serviceNNNN/charNNNN``
  ``GattCharacteristic1`` objects (ReadValue, WriteValue, StartNotify / StopNotify, values pushed as
  PropertiesChanged on ``Value``), removed again on disconnect.

Writes are recorded with their options (``{"char", "hex", "type"}``: ``type`` is bleak's "request"
for write-with-response, "command" without) and can be answered by the device script's responders:
``"respond": [{"char": "2a9f", "hex": "0201a80e", "push": [{"char": "2a9f", "hex": "200101"}],
"disconnect": false}]`` - a write to ``char`` whose value is ``hex`` (or starts with ``prefix``
instead) pushes each ``push`` value (a notification or indication on that characteristic, which must
be notifying) in order and then, with ``"disconnect": true``, drops the connection like a scale going
to sleep. Every matching rule fires, in script order, each time it matches (``"once": true`` for one
shot per connection). A write no rule matches is only recorded. A protocol the rules cannot state
(a handshake with random content) takes a device ``"model": {"factory": "module:Class", "kwargs":
{...}}`` (a module next to this file, which runs as a script): a new instance per connection, whose
``respond(char_uuid, value)`` returns a responder rule (``push``, ``disconnect``) or None for each
write (e.g. tests/fakes/eufy_p2_scale.py).

Like a radio, the fake only delivers advertisements while discovery is on.

Control channel: a Unix socket speaking JSON lines, one reply line per request (see ``Control``).
``tests/fakes/bluez_fixture.py`` wraps it.
"""

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import sys
from collections import Counter
from typing import Annotated, Any

from dbus_fast import BusType, DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusBytes, DBusDict, DBusInt16, DBusObjectPath, DBusSignature, DBusStr
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_method, dbus_property

StrList = Annotated[list[str], DBusSignature("as")]
ServiceData = Annotated[dict[str, Variant], DBusSignature("a{sv}")]
ManufacturerData = Annotated[dict[int, Variant], DBusSignature("a{qv}")]
Mtu = Annotated[int, DBusSignature("q")]

R = PropertyAccess.READ
ERR_FAILED = "org.bluez.Error.Failed"


def full_uuid(uuid: str) -> str:
    uuid = uuid.lower()
    if len(uuid) == 4:
        return f"0000{uuid}-0000-1000-8000-00805f9b34fb"
    return uuid


class Adapter(ServiceInterface):
    def __init__(self, fake: "FakeBluez", address: str, central: bool) -> None:
        super().__init__("org.bluez.Adapter1")
        self.fake = fake
        self.address = address
        self.roles = ["central", "peripheral"] if central else ["peripheral"]
        #: discovery sessions by D-Bus client, like bluetoothd: one per client, dropped when it leaves the bus
        self.clients: set[str] = set()

    @property
    def sessions(self) -> int:
        return len(self.clients)

    @dbus_property(access=R)
    def Address(self) -> DBusStr:
        return self.address

    @dbus_property(access=R)
    def Name(self) -> DBusStr:
        return "fake-hci0"

    @dbus_property(access=R)
    def Alias(self) -> DBusStr:
        return "fake-hci0"

    @dbus_property(access=R)
    def Powered(self) -> DBusBool:
        return True

    @dbus_property(access=R)
    def Discovering(self) -> DBusBool:
        return self.sessions > 0

    @dbus_property(access=R)
    def Roles(self) -> StrList:
        return list(self.roles)

    @dbus_method()
    def SetDiscoveryFilter(self, filter: DBusDict) -> None:
        self.fake.count("set_discovery_filter")

    @dbus_method()
    def StartDiscovery(self) -> None:
        if self.fake.fail_start > 0:
            self.fake.fail_start -= 1
            self.fake.count("start_discovery_failed")
            raise DBusError("org.bluez.Error.InProgress", "Operation already in progress (fake)")
        client = self.fake.caller
        if client in self.clients:
            raise DBusError("org.bluez.Error.InProgress", "Operation already in progress")
        self.fake.count("start_discovery")
        self.clients.add(client)
        if self.sessions == 1:
            self.emit_properties_changed({"Discovering": True})
            self.fake.changed()

    @dbus_method()
    def StopDiscovery(self) -> None:
        self.fake.count("stop_discovery")
        if self.fake.caller not in self.clients:
            raise DBusError(ERR_FAILED, "No discovery started")
        self.drop_client(self.fake.caller)

    def drop_client(self, client: str) -> None:
        if client in self.clients:
            self.clients.discard(client)
            if not self.clients:
                self.emit_properties_changed({"Discovering": False})
                self.fake.changed()

    @dbus_method()
    def RemoveDevice(self, device: DBusObjectPath) -> None:
        self.fake.remove_device(device)


class Characteristic(ServiceInterface):
    def __init__(
        self, device: "Device", service_path: str, uuid: str, *, flags: list[str], value: bytes, fail: dict[str, str]
    ) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self.fail = fail  # {"read" | "notify" | "write": D-Bus error name}: e.g. a characteristic that needs pairing
        self.device = device
        self.service_path = service_path
        self.uuid = full_uuid(uuid)
        self.flags = flags
        self.value = value
        self.notifying = False

    @dbus_property(access=R)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=R)
    def Service(self) -> DBusObjectPath:
        return self.service_path

    @dbus_property(access=R)
    def Flags(self) -> StrList:
        return list(self.flags)

    @dbus_property(access=R)
    def Value(self) -> DBusBytes:
        return self.value

    @dbus_property(access=R)
    def Notifying(self) -> DBusBool:
        return self.notifying

    @dbus_property(access=R)
    def MTU(self) -> Mtu:
        return 23

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:
        if "read" not in self.flags:
            raise DBusError("org.bluez.Error.NotPermitted", "Read not permitted")
        if "read" in self.fail:
            raise DBusError(self.fail["read"], "Operation not authorized (fake)")
        self.device.fake.count("read_value")
        return self.value

    @dbus_method()
    def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        kind = options.get("type")
        write_type = str(kind.value) if isinstance(kind, Variant) else "request"
        if not ({"write", "write-without-response"} & set(self.flags)):
            raise DBusError("org.bluez.Error.NotPermitted", "Write not permitted")
        if "write" in self.fail:
            raise DBusError(self.fail["write"], "Write refused (fake)")
        self.device.on_write(self, bytes(value), write_type)

    @dbus_method()
    def StartNotify(self) -> None:
        if not ({"notify", "indicate"} & set(self.flags)):
            raise DBusError("org.bluez.Error.NotSupported", "Operation is not supported")
        if "notify" in self.fail:
            raise DBusError(self.fail["notify"], "Not paired (fake)")
        self.notifying = True
        self.emit_properties_changed({"Notifying": True})
        self.device.fake.count("start_notify")
        self.device.on_notify_started()

    @dbus_method()
    def StopNotify(self) -> None:
        self.notifying = False
        self.emit_properties_changed({"Notifying": False})

    def push(self, value: bytes) -> None:
        self.value = value
        self.emit_properties_changed({"Value": value})


class Service(ServiceInterface):
    def __init__(self, device_path: str, uuid: str) -> None:
        super().__init__("org.bluez.GattService1")
        self.device_path = device_path
        self.uuid = full_uuid(uuid)

    @dbus_property(access=R)
    def UUID(self) -> DBusStr:
        return self.uuid

    @dbus_property(access=R)
    def Device(self) -> DBusObjectPath:
        return self.device_path

    @dbus_property(access=R)
    def Primary(self) -> DBusBool:
        return True


class Device(ServiceInterface):
    def __init__(self, fake: "FakeBluez", address: str) -> None:
        super().__init__("org.bluez.Device1")
        self.fake = fake
        self.address = address.upper()
        self.path = f"{fake.adapter_path}/dev_{self.address.replace(':', '_')}"
        self.dev_name = ""
        self.rssi = -60
        self.uuids: list[str] = []
        self.service_data: dict[str, bytes] = {}
        self.manufacturer_data: dict[int, bytes] = {}
        self.connected = False
        self.resolved = False
        self.exported = False
        # GATT script: {"services": [...], "indicate": [...], "disconnect_after": bool}
        self.script: dict[str, Any] | None = None
        self.connectable = False
        self.gatt: list[tuple[str, ServiceInterface]] = []
        self.chars: dict[str, Characteristic] = {}
        self.indicating = False
        #: every write on every connection, in order: {"char", "hex", "type"}
        self.writes: list[dict[str, str]] = []
        self.fired: set[int] = set()  # "once" responders that fired on this connection
        self.model: Any = None  # the script's device model, one per connection

    @dbus_property(access=R)
    def Address(self) -> DBusStr:
        return self.address

    @dbus_property(access=R)
    def AddressType(self) -> DBusStr:
        return "public"

    @dbus_property(access=R)
    def Alias(self) -> DBusStr:
        return self.dev_name or self.address.replace(":", "-")

    @dbus_property(access=R)
    def Adapter(self) -> DBusObjectPath:
        return self.fake.adapter_path

    @dbus_property(access=R)
    def RSSI(self) -> DBusInt16:
        return self.rssi

    @dbus_property(access=R)
    def UUIDs(self) -> StrList:
        return list(self.uuids)

    @dbus_property(access=R)
    def ServiceData(self) -> ServiceData:
        return {k: Variant("ay", v) for k, v in self.service_data.items()}

    @dbus_property(access=R)
    def ManufacturerData(self) -> ManufacturerData:
        return {k: Variant("ay", v) for k, v in self.manufacturer_data.items()}

    @dbus_property(access=R)
    def Connected(self) -> DBusBool:
        return self.connected

    @dbus_property(access=R)
    def ServicesResolved(self) -> DBusBool:
        return self.resolved

    @dbus_property(access=R)
    def Paired(self) -> DBusBool:
        return False

    @dbus_method()
    async def Connect(self) -> None:
        self.fake.count("connect_calls")
        if self.connected:
            return
        if not self.connectable or self.script is None:
            await asyncio.sleep(0.1)
            raise DBusError(ERR_FAILED, "Page Timeout")
        self.connected = True
        if (model := self.script.get("model")) is not None:
            module, _, cls = model["factory"].partition(":")
            self.model = getattr(importlib.import_module(module), cls)(**model.get("kwargs", {}))
        self.emit_properties_changed({"Connected": True})
        handle = 0x000A
        for service in self.script.get("services", []):
            service_path = f"{self.path}/service{handle:04x}"
            svc = Service(self.path, service["uuid"])
            self.fake.bus.export(service_path, svc)
            self.gatt.append((service_path, svc))
            handle += 1
            for char in service.get("characteristics", []):
                char_path = f"{service_path}/char{handle:04x}"
                flags = list(char.get("flags", ["read"]))
                value = bytes.fromhex(char.get("value", ""))
                ch = Characteristic(
                    self, service_path, char["uuid"], flags=flags, value=value, fail=dict(char.get("fail", {}))
                )
                self.fake.bus.export(char_path, ch)
                self.gatt.append((char_path, ch))
                self.chars[ch.uuid] = ch
                handle += 2  # declaration + value, as on a real GATT server
        self.resolved = True
        self.emit_properties_changed({"ServicesResolved": True})
        self.fake.count("connects")

    @dbus_method()
    def Disconnect(self) -> None:
        self.fake.count("disconnect_calls")
        self.drop_connection()

    def on_write(self, char: Characteristic, value: bytes, write_type: str) -> None:
        self.writes.append({"char": char.uuid, "hex": value.hex(), "type": write_type})
        self.fake.count("writes")
        if self.script is None:
            return
        if self.model is not None and (answer := self.model.respond(char.uuid, value)) is not None:
            asyncio.get_running_loop().create_task(self.respond(answer))
        for i, rule in enumerate(self.script.get("respond", [])):
            if full_uuid(rule["char"]) != char.uuid or (rule.get("once") and i in self.fired):
                continue
            if "hex" in rule and value != bytes.fromhex(rule["hex"]):
                continue
            if "prefix" in rule and not value.startswith(bytes.fromhex(rule["prefix"])):
                continue
            if rule.get("once"):
                self.fired.add(i)
            asyncio.get_running_loop().create_task(self.respond(rule))

    async def respond(self, rule: dict[str, Any]) -> None:
        await asyncio.sleep(0.02)  # the WriteValue reply goes out first
        for item in rule.get("push", []):
            if not self.connected:
                return
            char = self.chars[full_uuid(item["char"])]
            if not char.notifying:
                self.fake.count("pushes_not_notifying")
                continue
            char.push(bytes.fromhex(item["hex"]))
            self.fake.count("responses")
            await asyncio.sleep(0.02)
        if rule.get("disconnect"):
            await asyncio.sleep(0.1)
            self.connectable = False
            self.drop_connection()

    def on_notify_started(self) -> None:
        if self.script is None or self.indicating:
            return
        wanted = {full_uuid(i["char"]) for i in self.script.get("indicate", [])}
        if not wanted:
            return  # the script answers writes only (responders)
        if all(self.chars[u].notifying for u in wanted if u in self.chars):
            self.indicating = True
            asyncio.get_running_loop().create_task(self.run_indications())

    async def run_indications(self) -> None:
        assert self.script is not None
        await asyncio.sleep(0.05)  # the StartNotify reply goes out first
        for item in self.script.get("indicate", []):
            if not self.connected:
                return
            self.chars[full_uuid(item["char"])].push(bytes.fromhex(item["hex"]))
            self.fake.count("indications")
            await asyncio.sleep(0.02)
        if self.script.get("disconnect_after", True):
            await asyncio.sleep(0.1)
            self.connectable = False  # the scale sleeps until it is re-armed
            self.drop_connection()

    def drop_connection(self) -> None:
        if not self.connected:
            return
        self.resolved = False
        self.connected = False
        self.indicating = False
        self.fired.clear()
        self.model = None
        self.emit_properties_changed({"ServicesResolved": False, "Connected": False})
        for path, _iface in reversed(self.gatt):
            self.fake.bus.unexport(path)
        self.gatt.clear()
        self.chars.clear()
        self.fake.count("disconnects")


class NamedDevice(Device):
    """BlueZ has ``Name`` only for devices that sent one; ``Alias`` falls back to the address."""

    @dbus_property(access=R)
    def Name(self) -> DBusStr:
        return self.dev_name


class FakeBluez:
    def __init__(self, bus: MessageBus, *, central: bool, adapter: str = "hci0") -> None:
        self.bus = bus
        self.adapter_path = f"/org/bluez/{adapter}"
        self.adapter = Adapter(self, "00:00:5E:00:53:00", central)
        self.devices: dict[str, Device] = {}
        self.scripts: dict[str, dict[str, Any]] = {}  # GATT scripts of devices not seen yet
        self.stats: Counter[str] = Counter()
        self.fail_start = 0
        self.caller = ""  # sender of the method call being dispatched
        self._changed = asyncio.Condition()
        bus.add_message_handler(self._observe)

    def _observe(self, msg: Message) -> None:
        """Runs before dbus-fast dispatches a call: remember who calls; forget clients that left."""
        if msg.message_type is MessageType.METHOD_CALL:
            self.caller = msg.sender or ""
        elif msg.message_type is MessageType.SIGNAL and msg.member == "NameOwnerChanged":
            name, _old, new = msg.body
            if not new:
                self.adapter.drop_client(name)

    def count(self, key: str) -> None:
        self.stats[key] += 1
        self.changed()

    def changed(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    async def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        async def waiter() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(waiter(), timeout_s)
        except TimeoutError:
            return False
        return True

    def device(self, address: str, name: str = "") -> Device:
        key = address.upper()
        if key not in self.devices:
            dev = NamedDevice(self, key) if name else Device(self, key)
            dev.dev_name = name
            if key in self.scripts:
                dev.script = self.scripts.pop(key)
                dev.connectable = True
            self.devices[key] = dev
        return self.devices[key]

    def remove_device(self, path: str) -> None:
        for key, dev in list(self.devices.items()):
            if dev.path == path:
                dev.drop_connection()
                if dev.exported:
                    self.bus.unexport(path)
                del self.devices[key]
                return
        raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")

    def snapshot(self) -> dict[str, Any]:
        return {**self.stats, "discovering": self.adapter.sessions > 0}

    async def advertise(self, req: dict[str, Any]) -> dict[str, Any]:
        dev = self.device(req["address"], str(req.get("name", "")))
        if req.get("wait_discovering", True):
            await self.wait_for(lambda: self.adapter.sessions > 0, float(req.get("timeout_s", 10.0)))
        new_sd = {full_uuid(k): bytes.fromhex(v) for k, v in req.get("service_data", {}).items()}
        new_md = {int(k): bytes.fromhex(v) for k, v in req.get("manufacturer_data", {}).items()}
        new_uuids = [full_uuid(u) for u in req.get("uuids", [])]
        delivered = 0
        for i in range(int(req.get("count", 1))):
            if self.adapter.sessions == 0:  # nobody is listening: the advert is lost, as on air
                await asyncio.sleep(float(req.get("interval_s", 0.0)))
                continue
            rssi = int(req.get("rssi", -60)) - (i % 2)  # RSSI changes, so BlueZ would signal it
            if not dev.exported:
                dev.rssi, dev.service_data, dev.manufacturer_data, dev.uuids = rssi, new_sd, new_md, new_uuids
                self.bus.export(dev.path, dev)  # InterfacesAdded with everything
                dev.exported = True
            else:
                # like BlueZ: only what changed is signalled
                changed: dict[str, Any] = {"RSSI": rssi}
                dev.rssi = rssi
                if new_sd and new_sd != dev.service_data:
                    dev.service_data = {**dev.service_data, **new_sd}
                    changed["ServiceData"] = dev.ServiceData
                if new_md and new_md != dev.manufacturer_data:
                    dev.manufacturer_data = {**dev.manufacturer_data, **new_md}
                    changed["ManufacturerData"] = dev.ManufacturerData
                if new_uuids and new_uuids != dev.uuids:
                    dev.uuids = new_uuids
                    changed["UUIDs"] = new_uuids
                dev.emit_properties_changed(changed)
            delivered += 1
            self.count("adverts")
            await asyncio.sleep(float(req.get("interval_s", 0.0)))
        return {"delivered": delivered}

    def gatt_device(self, req: dict[str, Any]) -> dict[str, Any]:
        script = {
            "services": req.get("services", []),
            "indicate": req.get("indicate", []),
            "disconnect_after": req.get("disconnect_after", True),
            "respond": req.get("respond", []),
            "model": req.get("model"),
        }
        dev = self.devices.get(req["address"].upper())
        if dev is None:
            self.scripts[req["address"].upper()] = script
        else:
            dev.script = script
            dev.connectable = True
        return {}


class Control:
    """JSON-lines requests; every reply has ``ok`` and the current ``stats``.

    ``{"op": "stats"}``; ``{"op": "advertise", "address", "name", "service_data": {uuid: hex},
    "manufacturer_data": {id: hex}, "uuids": [...], "rssi", "count", "interval_s"}`` (waits for
    discovery first unless ``"wait_discovering": false``); ``{"op": "gatt_device", "address",
    "services": [{"uuid", "characteristics": [{"uuid", "flags", "value": hex, "fail": {"read"|"notify"|"write":
    error}}]}], "indicate":
    [{"char", "hex"}], "disconnect_after": true}`` (arms the device: the next Connect succeeds);
    ``"respond": [{"char", "hex" | "prefix", "push": [{"char", "hex"}], "disconnect", "once"}]`` (see the
    module docstring); ``{"op": "writes", "address"}`` -> ``{"writes": [{"char", "hex", "type"}]}``;
    ``{"op": "wait", "key", "at_least", "timeout_s"}`` (a stats counter); ``{"op": "fail_start", "n"}``
    (the next n StartDiscovery calls fail with InProgress); ``{"op": "disconnect", "address"}``.
    """

    def __init__(self, fake: FakeBluez) -> None:
        self.fake = fake

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                try:
                    reply = {"ok": True, **await self.dispatch(json.loads(line))}
                except Exception as exc:  # noqa: BLE001 - report to the test rather than die
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                reply["stats"] = self.fake.snapshot()
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        writer.close()

    async def dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        fake = self.fake
        if op == "stats":
            return {}
        if op == "advertise":
            return await fake.advertise(req)
        if op == "gatt_device":
            return fake.gatt_device(req)
        if op == "wait":
            key, at_least = str(req["key"]), int(req.get("at_least", 1))

            def reached() -> bool:
                value = fake.snapshot().get(key, 0)
                return bool(value >= at_least) if not isinstance(value, bool) else value == bool(at_least)

            return {"reached": await fake.wait_for(reached, float(req.get("timeout_s", 10.0)))}
        if op == "writes":
            dev = fake.devices.get(req["address"].upper())
            return {"writes": list(dev.writes) if dev is not None else []}
        if op == "fail_start":
            fake.fail_start = int(req.get("n", 1))
            return {}
        if op == "disconnect":
            if (dev := fake.devices.get(req["address"].upper())) is not None:
                dev.drop_connection()
            return {}
        raise ValueError(f"unknown op {op!r}")


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--control", required=True, help="path of the JSON-lines control socket")
    parser.add_argument("--no-central", action="store_true", help="adapter Roles without 'central'")
    parser.add_argument("--adapter", default="hci0")
    args = parser.parse_args(argv)

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    await bus.request_name("org.bluez")
    match = "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"
    await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=[match],
        )
    )
    fake = FakeBluez(bus, central=not args.no_central, adapter=args.adapter)
    # after the name, like bluetoothd: clients see InterfacesAdded for the adapter on a restart
    bus.export(fake.adapter_path, fake.adapter)

    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.control)
    server = await asyncio.start_unix_server(Control(fake).handle, path=args.control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    bus_gone = asyncio.ensure_future(bus.wait_for_disconnect())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({bus_gone, stopped}, return_when=asyncio.FIRST_COMPLETED)
    server.close()
    bus.disconnect()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
