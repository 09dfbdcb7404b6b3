"""Runs as ExecStart= of a copy of scale-bridge.service (same sandbox, same user) and reports what the
sandbox lets it do, as JSON in $STATE_DIRECTORY/probe.json. Started by tests/system/test_nspawn.py.

Uses only the stdlib plus what the installed venv has (bridge.sd_notify, dbus_fast from bleak).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import mmap
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path


def attempt(fn: Callable[[], object]) -> str:
    try:
        fn()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "ok"


def write(path: str) -> Callable[[], None]:
    def go() -> None:
        Path(path).write_text("probe\n")

    return go


def open_rw(path: str) -> Callable[[], None]:
    def go() -> None:
        os.close(os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))

    return go


def sock(family: int, kind: int) -> Callable[[], None]:
    def go() -> None:
        socket.socket(family, kind).close()

    return go


def wx_mapping() -> None:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC).close()


def status_field(name: str) -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def dbus_call(destination: str, path: str, interface: str, member: str) -> str:
    """One call on the system bus: "ok", or the D-Bus error name (e.g. ...Error.AccessDenied)."""
    from dbus_fast import BusType, Message, MessageType
    from dbus_fast.aio import MessageBus

    async def go() -> str:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        try:
            reply = await bus.call(Message(destination=destination, path=path, interface=interface, member=member))
        finally:
            bus.disconnect()
        if reply is None:
            return "no reply"
        return "ok" if reply.message_type == MessageType.METHOD_RETURN else str(reply.error_name)

    try:
        return asyncio.run(asyncio.wait_for(go(), 10))
    except Exception as exc:  # noqa: BLE001  # report whatever it is; the test asserts on it
        return f"{type(exc).__name__}: {exc}"


def main() -> int:
    from bridge import sd_notify

    state = os.environ.get("STATE_DIRECTORY", "")
    creds = os.environ.get("CREDENTIALS_DIRECTORY", "")
    cred_file = Path(creds) / "api_key" if creds else None
    report = {
        "uid": os.getuid(),
        "state_directory": state,
        "write_state": attempt(write(f"{state}/probe.txt")),
        "write_etc": attempt(write("/etc/scale-bridge/probe.txt")),
        "write_world_writable": attempt(write("/srv/open/probe.txt")),
        "write_opt": attempt(write("/opt/scale-bridge/probe.txt")),
        "write_usr": attempt(write("/usr/local/probe.txt")),
        "list_home": attempt(lambda: os.listdir("/home")),
        "list_root": attempt(lambda: os.listdir("/root")),
        "host_tmp_marker_visible": Path("/tmp/host-marker").exists(),
        "credential_sha256": hashlib.sha256(cred_file.read_bytes()).hexdigest() if cred_file else None,
        "credential_listing": sorted(os.listdir(creds)) if creds else None,
        "dev_null": attempt(open_rw("/dev/null")),
        "dev_denied": attempt(open_rw(os.environ.get("PROBE_DENIED", "/dev/net/tun"))),
        "dev_serial": attempt(open_rw(os.environ.get("PROBE_SERIAL", "/dev/ttyS31"))),
        "af_inet": attempt(sock(socket.AF_INET, socket.SOCK_STREAM)),
        "af_unix": attempt(sock(socket.AF_UNIX, socket.SOCK_DGRAM)),
        "af_netlink": attempt(sock(socket.AF_NETLINK, socket.SOCK_RAW)),
        "af_packet": attempt(sock(socket.AF_PACKET, socket.SOCK_RAW)),
        "wx_mapping": attempt(wx_mapping),
        "dbus_system_bus": dbus_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId"),
        # what bleak asks BlueZ first; allowed by BlueZ's policy only to root and group bluetooth
        "bluez_get_managed_objects": dbus_call(
            "org.bluez", "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"
        ),
        "cap_eff": status_field("CapEff"),
        "no_new_privs": status_field("NoNewPrivs"),
        "seccomp": status_field("Seccomp"),
    }
    text = json.dumps(report, indent=1, sort_keys=True)
    Path(state, "probe.json").write_text(text)
    print(text, flush=True)
    # Type=notify: `systemctl start` of the probe unit returns only after this (or fails with 'protocol').
    return 0 if sd_notify.ready("probe done") else 1


if __name__ == "__main__":
    sys.exit(main())
