"""A User Data Service scale (Beurer BF720 family / Sanitas SBF72 / Renpho ES-WBE28 pattern) through
the whole daemon: fake BlueZ plays the scale's side of the consent exchange (it answers the consent
write on 0x2A9F and only then sends its measurement), bleak's real BlueZ backend, ``scale-bridge run``,
the platform simulator.

The consent bytes are the reference's (ble-families.md §5.2b: PIN 3752 for user 1 -> ``02 01 a8 0e``);
the measurement frames are the project's synthetic ones. Timeouts are failure guards only.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.simulator import SimulatorThread
from tests.fakes import bluez_fixture
from tests.fakes.bluez_fixture import FakeBluezProcess
from tests.integration.test_ble_daemon import (
    BCM_1,
    BCM_2,
    CARD,
    GUARD_S,
    DaemonProcess,
    make_daemon,
    until,
    wait_discovering,
    weighings,
)

pytestmark = pytest.mark.ble

private_bus = bluez_fixture.private_bus
fake_bluez = bluez_fixture.fake_bluez
__all__ = ["make_daemon"]

ADDR = "C4:00:00:00:00:72"
CONSENT = "0201a80e"  # op 0x02, user 1, PIN 3752 LE
SERVICES = [
    {
        "uuid": "181d",
        "characteristics": [
            {"uuid": "2a9e", "flags": ["read"], "value": "06000000"},
            {"uuid": "2a9d", "flags": ["indicate"]},
        ],
    },
    {"uuid": "181b", "characteristics": [{"uuid": "2a9c", "flags": ["indicate"]}]},
    {
        "uuid": "181c",
        "characteristics": [
            {"uuid": "2a99", "flags": ["read", "write"], "value": "07000000"},
            {"uuid": "2a9f", "flags": ["write", "indicate"]},
        ],
    },
    {"uuid": "1805", "characteristics": [{"uuid": "2a2b", "flags": ["read", "write", "notify"]}]},
]


def connect(fake: FakeBluezProcess, daemon: DaemonProcess) -> None:
    def connected() -> bool:
        if fake.call("stats")["stats"].get("connects", 0) >= 1:
            return True
        fake.call("advertise", address=ADDR, name="BF720", uuids=["181d", "181b", "181c"])
        return False

    until(connected, "the daemon to connect to the scale", daemon)


def test_consent_then_the_measurement_reaches_the_platform(
    fake_bluez: FakeBluezProcess, simulator: SimulatorThread, make_daemon: Callable[..., DaemonProcess]
) -> None:
    daemon = make_daemon("ble_standard", ADDR, user_index=1, consent_code=3752)
    daemon.start()
    wait_discovering(fake_bluez)
    fake_bluez.call(
        "gatt_device",
        address=ADDR,
        services=SERVICES,
        # the scale stays silent until the consent; then: success, the measurement, goodbye
        respond=[
            {
                "char": "2a9f",
                "hex": CONSENT,
                "push": [{"char": "2a9f", "hex": "200201"}],
            },
            {
                "char": "2a99",
                "hex": "08000000",
                "push": [{"char": "2a9c", "hex": BCM_1}, {"char": "2a9c", "hex": BCM_2}],
                "disconnect": True,
            },
        ],
    )
    daemon.tap(CARD)
    connect(fake_bluez, daemon)
    until(lambda: len(weighings(simulator)) >= 1, "the weighing at the simulator", daemon)
    [w] = weighings(simulator)
    assert w["customerId"] == 1001
    assert w["body"]["weight"] == 80.0
    assert w["body"]["percentBodyFat"] == 23.4
    writes = fake_bluez.call("writes", address=ADDR)["writes"]
    chars = [(x["char"][4:8], x["type"]) for x in writes]
    # Current Time, the consent, then the Database Change Increment bumped from 7 to 8
    assert chars == [("2a2b", "request"), ("2a9f", "request"), ("2a99", "request")]
    assert writes[1]["hex"] == CONSENT
    assert writes[2]["hex"] == "08000000"
    assert len(bytes.fromhex(writes[0]["hex"])) == 10
    assert daemon.stop() == 0


def test_refused_consent_is_logged_and_nothing_is_posted(
    fake_bluez: FakeBluezProcess, simulator: SimulatorThread, make_daemon: Callable[..., DaemonProcess]
) -> None:
    daemon = make_daemon("ble_standard", ADDR, user_index=1, consent_code=1234)
    daemon.start()
    wait_discovering(fake_bluez)
    fake_bluez.call(
        "gatt_device",
        address=ADDR,
        services=SERVICES,
        disconnect_after=False,
        respond=[{"char": "2a9f", "prefix": "02", "push": [{"char": "2a9f", "hex": "200205"}]}],
    )
    connect(fake_bluez, daemon)
    assert fake_bluez.call("wait", key="disconnect_calls", at_least=1, timeout_s=GUARD_S)["reached"]
    until(lambda: "ble_gatt_exchange_failed" in daemon.log.read_text(), "the exchange failure in the log", daemon)
    text = daemon.log.read_text()
    assert "user not authorized" in text
    assert weighings(simulator) == []
    # the measurement characteristics were never subscribed: the scale was not unlocked
    writes = fake_bluez.call("writes", address=ADDR)["writes"]
    assert [x["hex"] for x in writes if x["char"][4:8] == "2a9f"] == ["0201d204"]
    assert daemon.stop() == 0


# the Beurer order: the weight (0x2A9D), then its composition (0x2A9C, no weight), same user and time
WSM_FIRST = "06803ee8070511081e0001"  # 80.00 kg, 2024-05-17 08:30:00, user 1
BCM_AFTER = "0600ea00e8070511081e0001"  # fat 23.4 %, same time and user, no weight
PLAIN_SERVICES = [
    {"uuid": "181d", "characteristics": [{"uuid": "2a9d", "flags": ["indicate"]}]},
    {"uuid": "181b", "characteristics": [{"uuid": "2a9c", "flags": ["indicate"]}]},
]


@pytest.mark.parametrize(
    ("frames", "fat"),
    [
        pytest.param([("2a9d", WSM_FIRST), ("2a9c", BCM_AFTER)], 23.4, id="weight_then_composition"),
        pytest.param([("2a9d", WSM_FIRST)], None, id="weight_alone_released_at_session_end"),
    ],
)
def test_weight_then_composition_is_one_weighing(
    frames: list[tuple[str, str]],
    fat: float | None,
    fake_bluez: FakeBluezProcess,
    simulator: SimulatorThread,
    make_daemon: Callable[..., DaemonProcess],
) -> None:
    """A weight held for its composition is posted once with it; a weight no composition follows is
    posted when the scale disconnects (the link's session_end event flushes the decoder)."""
    daemon = make_daemon("ble_standard", ADDR)
    daemon.start()
    wait_discovering(fake_bluez)
    fake_bluez.call(
        "gatt_device",
        address=ADDR,
        services=PLAIN_SERVICES,
        indicate=[{"char": c, "hex": h} for c, h in frames],
    )
    daemon.tap(CARD)
    connect(fake_bluez, daemon)
    until(lambda: len(weighings(simulator)) >= 1, "the weighing at the simulator", daemon)
    assert fake_bluez.call("wait", key="disconnects", at_least=1, timeout_s=GUARD_S)["reached"]
    assert daemon.stop() == 0  # a clean stop: everything the daemon holds is committed by now
    [w] = weighings(simulator)
    assert w["customerId"] == 1001
    assert w["body"]["weight"] == 80.0
    assert w["body"].get("percentBodyFat") == fat
