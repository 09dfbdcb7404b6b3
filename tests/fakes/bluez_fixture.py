"""Private D-Bus + fake BlueZ for tests.

``private_bus`` starts ``dbus-daemon --session`` on a socket in a temp dir and points
``DBUS_SYSTEM_BUS_ADDRESS`` at it (bleak's BlueZ backend uses the system bus). ``fake_bluez`` runs
``fake_bluez.py`` as a subprocess on that bus, so a test can kill and restart "bluetoothd".
Both skip the test, with the reason, when ``dbus-daemon`` is not installed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FAKE = Path(__file__).with_name("fake_bluez.py")
START_TIMEOUT_S = 10.0


class PrivateBus:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.socket = tmp / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={self.address}", "--print-address"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # printed once the socket listens
        if not line.startswith(b"unix:"):
            raise RuntimeError(f"dbus-daemon did not start (printed {line!r})")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        _close_pipes(self.proc)
        self.proc = None


class FakeBluezProcess:
    """One fake bluetoothd. ``call`` (sync) / ``acall`` (async) send a control request."""

    def __init__(self, bus: PrivateBus, *, central: bool = True) -> None:
        self.bus = bus
        self.central = central
        self.control = bus.dir / "fake_bluez.ctl"
        self.log = bus.dir / "fake_bluez.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [sys.executable, str(FAKE), "--control", str(self.control)]
        if not self.central:
            args.append("--no-central")
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus.address}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"READY":
            raise RuntimeError(f"fake BlueZ did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no InterfacesRemoved, no goodbye — like a crashed bluetoothd."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        _close_pipes(self.proc)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        _close_pipes(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        guard = float(kw.get("timeout_s", 10.0)) + 5.0
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(guard)
            sock.connect(str(self.control))
            sock.sendall(json.dumps({"op": op, **kw}).encode() + b"\n")
            reply = _check(sock.makefile("rb").readline())
        return reply

    async def acall(self, op: str, **kw: Any) -> dict[str, Any]:
        guard = float(kw.get("timeout_s", 10.0)) + 5.0
        reader, writer = await asyncio.open_unix_connection(str(self.control))
        try:
            writer.write(json.dumps({"op": op, **kw}).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), guard)
        finally:
            writer.close()
        return _check(line)


def _check(line: bytes) -> dict[str, Any]:
    if not line:
        raise ConnectionError("fake BlueZ closed the control connection")
    reply: dict[str, Any] = json.loads(line)
    if not reply.get("ok"):
        raise RuntimeError(f"fake BlueZ refused: {reply.get('error')}")
    return reply


def require_dbus_daemon() -> None:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed (apt-get install dbus-daemon); the BLE tests need a private bus")


@pytest.fixture
def private_bus(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateBus]:
    require_dbus_daemon()
    # unix socket paths are limited to 108 bytes: keep the directory short
    tmp = Path(tmp_path_factory.mktemp("bz", numbered=True))
    bus = PrivateBus(tmp)
    bus.start()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
    try:
        yield bus
    finally:
        # bleak keeps one BlueZ manager (and its D-Bus connection) per event loop, never closed: the
        # test's loop is gone, so its futures are finalised now, not during a later test (tests/conftest.py)
        gc.collect()
        bus.stop()


@pytest.fixture
def fake_bluez(private_bus: PrivateBus) -> Iterator[FakeBluezProcess]:
    fake = FakeBluezProcess(private_bus)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def _close_pipes(proc: subprocess.Popen[bytes] | None) -> None:
    """The parent's ends of a stopped child's pipes (no unclosed file when warnings are errors)."""
    if proc is None:
        return
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
