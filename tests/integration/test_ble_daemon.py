"""BLE weighings through the whole daemon: fake BlueZ -> ``scale-bridge run`` (a subprocess) -> the
platform simulator. The member is identified by a card typed into the daemon's card socket.

Addresses and payloads are synthetic and written out literally. Timeouts are failure guards only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.outbox import Outbox
from bridge.simulator import SimulatorThread
from tests.fakes import bluez_fixture
from tests.fakes.bluez_fixture import FakeBluezProcess, PrivateBus
from tests.helpers import REPO, wait_for, write_config

pytestmark = pytest.mark.ble

private_bus = bluez_fixture.private_bus
fake_bluez = bluez_fixture.fake_bluez

GUARD_S = 30.0
CARD = "3220338716"  # seeded member 1001 (studio A), benefit BODY_SCAN
MI_ADDR = "5C:CA:D3:00:00:01"
STD_ADDR = "A4:C1:38:00:00:02"
# Mi v2: stabilised, impedance 503 ohm, 72.45 kg, device time 2022-02-14 16:41:58
MI_A = "0226e607020e10293af7019a38"
# Mi v2: stabilised, impedance 500 ohm, 72.5 kg, device time 2022-02-14 16:42:05
MI_B = "0226e607020e102a05f401a438"
# Body Composition Measurement in two indications (flags bit 12): fat 23.4 %, 2024-05-17 08:30:00,
# user 1 | fat 23.4 %, impedance 512.3 ohm, weight 80.0 kg
BCM_1 = "0610ea00e8070511081e0001"
BCM_2 = "0016ea000314803e"


class DaemonProcess:
    def __init__(
        self,
        tmp: Path,
        bus: PrivateBus,
        sim: SimulatorThread,
        *,
        driver: str,
        address: str,
        scale_settings: dict[str, Any] | None = None,
    ) -> None:
        self.card_socket = tmp / "cards.sock"
        self.state_dir = tmp / "state"
        self.log = tmp / "daemon.log"
        self.config = write_config(
            tmp / "config.toml",
            {
                "platform": {
                    "base_url": sim.url,
                    "api_key": sim.api_key(1),
                    "benefit_key": "BODY_SCAN",
                    "timeout_s": 10,
                },
                "scale": {
                    "name": "ble-scale",
                    "driver": driver,
                    "address": address,
                    "adapter": "hci0",
                    **(scale_settings or {}),
                },
                "cards": {"source": "socket", "device": str(self.card_socket)},
                "pairing": {"window_s": 300},
                "state": {"dir": str(self.state_dir)},
                "log": {"level": "debug", "format": "json"},
            },
        )
        self.env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        self.env["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "--config", str(self.config)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        until(self._card_socket_listens, "the daemon's card socket", self)

    def _card_socket_listens(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(self.card_socket))  # a stale socket file from a killed daemon refuses
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        return True

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(GUARD_S)
        self.proc = None
        return code

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(GUARD_S)
        self.proc = None

    def tap(self, card: str) -> None:
        """Type a card number into the card socket and wait until the daemon has read it (a member taps,
        then steps on the scale: the card must not lose a race against the advertisement)."""
        before = self.log_count("card_read")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.card_socket))
            sock.sendall(card.encode() + b"\n")
        until(lambda: self.log_count("card_read") > before, "the daemon to read the card", self)

    def log_count(self, event: str) -> int:
        if not self.log.exists():
            return 0
        count = 0
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                count += isinstance(doc, dict) and doc.get("event") == event
        return count

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def gone(self) -> str | None:
        """An ``alive`` for ``wait_for``: set once the started daemon has exited."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"the daemon exited ({self.proc.returncode})"


def until(predicate: Callable[[], bool], what: str, daemon: DaemonProcess | None = None) -> None:
    """``wait_for`` with this file's guard, failing at once (with the log's tail) if the daemon exits."""
    if daemon is None:
        wait_for(predicate, what, timeout_s=GUARD_S)
        return
    try:
        wait_for(predicate, what, timeout_s=GUARD_S, alive=daemon.gone)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{daemon.tail()}") from None


def weighings(sim: SimulatorThread) -> list[dict[str, Any]]:
    return list(sim.call(lambda: list(sim.state.weighings)))


@pytest.fixture
def make_daemon(
    tmp_path: Path, private_bus: PrivateBus, simulator: SimulatorThread
) -> Iterator[Callable[..., DaemonProcess]]:
    made: list[DaemonProcess] = []

    def make(driver: str, address: str, **scale_settings: Any) -> DaemonProcess:
        d = DaemonProcess(
            tmp_path, private_bus, simulator, driver=driver, address=address, scale_settings=scale_settings
        )
        made.append(d)
        return d

    yield make
    for d in made:
        d.ensure_stopped()


def wait_discovering(fake: FakeBluezProcess) -> None:
    reply = fake.call("wait", key="discovering", at_least=1, timeout_s=GUARD_S)
    assert reply["reached"], f"the daemon never started discovery: {reply['stats']}"


def test_mi_v2_weighing_reaches_the_platform(
    fake_bluez: FakeBluezProcess, simulator: SimulatorThread, make_daemon: Callable[[str, str], DaemonProcess]
) -> None:
    daemon = make_daemon("mi_scale", MI_ADDR)
    daemon.start()
    wait_discovering(fake_bluez)
    daemon.tap(CARD)
    fake_bluez.call("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_A}, count=5, interval_s=0.02)
    until(lambda: len(weighings(simulator)) >= 1, "the Mi weighing at the simulator", daemon)
    [w] = weighings(simulator)
    assert w["customerId"] == 1001
    assert w["benefitKey"] == "BODY_SCAN"
    assert w["body"]["weight"] == 72.45
    assert MI_A in w["body"]["rawResults"]
    assert daemon.stop() == 0
    log_text = daemon.log.read_text()
    assert simulator.api_key(1) not in log_text
    assert CARD not in log_text


def test_standard_scale_weighing_reaches_the_platform(
    fake_bluez: FakeBluezProcess, simulator: SimulatorThread, make_daemon: Callable[[str, str], DaemonProcess]
) -> None:
    daemon = make_daemon("ble_standard", STD_ADDR)
    daemon.start()
    wait_discovering(fake_bluez)
    fake_bluez.call(
        "gatt_device",
        address=STD_ADDR,
        services=[
            {
                "uuid": "181d",
                "characteristics": [
                    {"uuid": "2a9e", "flags": ["read"], "value": "06000000"},
                    {"uuid": "2a9d", "flags": ["indicate"]},
                ],
            },
            {"uuid": "181b", "characteristics": [{"uuid": "2a9c", "flags": ["indicate"]}]},
        ],
        indicate=[{"char": "2a9c", "hex": BCM_1}, {"char": "2a9c", "hex": BCM_2}],
    )
    daemon.tap(CARD)

    def connected() -> bool:
        if fake_bluez.call("stats")["stats"].get("connects", 0) >= 1:
            return True
        fake_bluez.call("advertise", address=STD_ADDR, name="BF105", uuids=["181d", "181b"])
        return False

    until(connected, "the daemon to connect to the scale", daemon)
    until(lambda: len(weighings(simulator)) >= 1, "the standard-scale weighing at the simulator", daemon)
    [w] = weighings(simulator)
    assert w["customerId"] == 1001
    assert w["body"]["weight"] == 80.0
    assert w["body"]["percentBodyFat"] == 23.4
    assert fake_bluez.call("wait", key="disconnects", at_least=1, timeout_s=GUARD_S)["reached"]
    assert daemon.stop() == 0


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_mi_broadcast_50_times_across_a_daemon_restart_is_one_weighing(
    fake_bluez: FakeBluezProcess,
    simulator: SimulatorThread,
    make_daemon: Callable[[str, str], DaemonProcess],
    stop_signal: signal.Signals,
) -> None:
    daemon = make_daemon("mi_scale", MI_ADDR)
    daemon.start()
    wait_discovering(fake_bluez)
    daemon.tap(CARD)
    fake_bluez.call("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_A}, count=25, interval_s=0.01)
    until(lambda: len(weighings(simulator)) >= 1, "the first weighing", daemon)

    assert daemon.stop(stop_signal) == (0 if stop_signal is signal.SIGTERM else -signal.SIGKILL)
    daemon.start()
    wait_discovering(fake_bluez)
    # the member taps again: if the repeats after the restart were not known duplicates, they would
    # pair with this card and be posted a second time
    daemon.tap(CARD)
    reply = fake_bluez.call(
        "advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_A}, count=25, interval_s=0.01
    )
    assert reply["delivered"] == 25
    # a new weighing after the repeats marks the point where all of them have been processed
    fake_bluez.call("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_B}, count=3)
    until(lambda: len(weighings(simulator)) >= 2, "the sentinel weighing", daemon)
    assert daemon.stop() == 0

    posted = weighings(simulator)
    assert [w["body"]["weight"] for w in posted] == [72.45, 72.5]
    assert sum(MI_A in w["body"]["rawResults"] for w in posted) == 1
    outbox = Outbox(daemon.state_dir / "outbox.db")
    try:
        jobs = outbox.jobs(limit=100)
    finally:
        outbox.close()
    assert len(jobs) == 2  # nothing parked or unidentified either
