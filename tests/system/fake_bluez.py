"""Owns org.bluez on the container's system bus (as root), so the D-Bus policy BlueZ ships can be tested
without BlueZ or a radio: dbus-fast answers ObjectManager.GetManagedObjects on "/" by itself."""

from __future__ import annotations

import asyncio

from dbus_fast import BusType
from dbus_fast.aio import MessageBus


async def main() -> None:
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    await bus.request_name("org.bluez")
    print("fake org.bluez on the system bus", flush=True)
    await bus.wait_for_disconnect()


if __name__ == "__main__":
    asyncio.run(main())
