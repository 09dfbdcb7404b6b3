"""The vendor-family GATT exchanges through the whole daemon: fake BlueZ (scripted responders) ->
``scale-bridge run`` -> the platform simulator. The scale answers only the writes its protocol wants,
so a weighing at the simulator shows the exchange wrote them; the writes are then checked in order.
Frames are literal; timeouts are failure guards only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bridge.simulator import SimulatorThread
from tests.fakes.bluez_fixture import FakeBluezProcess
from tests.integration.test_ble_daemon import (
    CARD,
    GUARD_S,
    DaemonProcess,
    fake_bluez,  # noqa: F401 - fixture
    make_daemon,  # noqa: F401 - fixture
    private_bus,  # noqa: F401 - fixture
    until,
    wait_discovering,
    weighings,
)

pytestmark = pytest.mark.ble

EUFY_REAL = "cf920e9c271d135f0000b9"  # openScale PR #1468: 101.40 kg, sent twice
QN_INFO = "120f153dacc238c1a43801380000ef"  # ES-CS20M 0x12 (openScale#291): protocol 0x15, weight / 100
QN_STABLE = "100a151b580101f40098"  # 0x10, 10-byte form: 70.00 kg, stable, R1 500 ohm (plausible)

# ble-scale-sync#289 (eufy T9149): 20.00 kg live, then final
P2_LIVE, P2_FINAL = "cf0e00cf0000d0070000000001000019", "cf0e00cf0000d0070000000000000018"
P2_ADDRESS = "CF:E6:03:00:00:07"

BEURER_PARTS = (  # ble-scale-sync#211 (Sanitas SBF70): 83.55 kg, 437 ohm, fat 22.3 %
    "e7590301010000000000000065",
    "e75903026a21f4c6068701b500df02",
    "e759030309018d00e907170aa20108",
)

CASES: dict[str, dict[str, Any]] = {
    "beurer_sanitas": {
        # the scale streams each 0x59 part only after the acknowledgement of the one before
        "address": "D0:B5:C2:00:00:06",
        "name": "SANITAS SBF70",
        "services": [{"uuid": "ffe0", "characteristics": [{"uuid": "ffe1", "flags": ["notify", "write"]}]}],
        "respond": [
            {"char": "ffe1", "hex": "e601", "once": True, "push": [{"char": "ffe1", "hex": "e600"}]},
            {
                "char": "ffe1",
                "prefix": "e9",
                "once": True,
                "push": [
                    {"char": "ffe1", "hex": "e75801012b"},
                    {"char": "ffe1", "hex": "e75801085e"},
                    {"char": "ffe1", "hex": BEURER_PARTS[0]},
                ],
            },
            {"char": "ffe1", "hex": "e7f1590301", "once": True, "push": [{"char": "ffe1", "hex": BEURER_PARTS[1]}]},
            {"char": "ffe1", "hex": "e7f1590302", "once": True, "push": [{"char": "ffe1", "hex": BEURER_PARTS[2]}]},
        ],
        "weight": 83.55,
        "first_write": "e601",
        "writes_in_order": ["e601", "e9*", "e7f1580101", "e7f1580108", "e7f1590301", "e7f1590302", "e7f1590303"],
    },
    "eufy_1byone": {
        "address": "C8:B2:1E:00:00:03",
        "name": "eufy T9146",
        "services": [
            {
                "uuid": "fff0",
                "characteristics": [
                    {"uuid": "fff4", "flags": ["notify"]},
                    {"uuid": "fff1", "flags": ["write-without-response", "write"]},
                ],
            }
        ],
        "respond": [
            {
                "char": "fff1",
                "prefix": "fd37",
                "once": True,
                "push": [{"char": "fff4", "hex": EUFY_REAL}, {"char": "fff4", "hex": EUFY_REAL}],
                "disconnect": True,
            }
        ],
        "weight": 101.4,
        "first_write": "fd37000100000000000000cb",
    },
    "eufy_p2": {
        # the scale model (tests/fakes/eufy_p2_scale.py) decrypts C0, answers C1, checks C2, answers
        # C3 and only then sends the weight on FFF2, then sleeps
        "address": P2_ADDRESS,
        "name": "eufy T9149",
        "services": [
            {
                "uuid": "fff0",
                "characteristics": [
                    {"uuid": "fff1", "flags": ["write", "write-without-response"]},
                    {"uuid": "fff2", "flags": ["notify"]},
                    {"uuid": "fff4", "flags": ["notify"]},
                ],
            }
        ],
        "model": {
            "factory": "eufy_p2_scale:EufyP2Scale",
            "kwargs": {
                "address": P2_ADDRESS,
                "weights": [P2_LIVE, P2_LIVE, P2_FINAL, P2_FINAL],
                "sleep_after": True,
            },
        },
        "weight": 20.0,
        "first_write": None,  # the client id is random
        "writes_in_order": ["c0*", "c0*", "c2*", "c2*", "c2*"],
        "write_type": "request",
    },
    "medisana_bs44x": {
        "address": "E4:54:EB:00:00:04",
        "name": "0203B123",
        "services": [
            {
                "uuid": "78b2",
                "characteristics": [
                    {"uuid": "8a21", "flags": ["indicate"]},
                    {"uuid": "8a22", "flags": ["indicate"]},
                    {"uuid": "8a82", "flags": ["indicate"]},
                    {"uuid": "8a81", "flags": ["write"]},
                ],
            }
        ],
        "respond": [
            {
                "char": "8a81",
                "prefix": "02",
                "once": True,
                "push": [{"char": "8a21", "hex": "1d8025"}],
                "disconnect": True,
            }
        ],
        "weight": 96.0,
        "first_write": None,
    },
    "qn_scale": {
        "address": "ED:67:37:00:00:05",
        "name": "QN-Scale",
        "services": [
            {
                "uuid": "ffe0",
                "characteristics": [
                    {"uuid": "ffe1", "flags": ["notify"]},
                    {"uuid": "ffe2", "flags": ["indicate"]},
                    {"uuid": "ffe3", "flags": ["write"]},
                    {"uuid": "ffe4", "flags": ["write"]},
                ],
            }
        ],
        "indicate": [{"char": "ffe1", "hex": QN_INFO}],
        "disconnect_after": False,
        "respond": [{"char": "ffe3", "prefix": "1309", "once": True, "push": [{"char": "ffe1", "hex": QN_STABLE}]}],
        "weight": 70.0,
        "first_write": "130915011000000042",
    },
}


@pytest.mark.parametrize("driver", sorted(CASES))
def test_vendor_exchange_delivers_one_weighing(
    driver: str,
    fake_bluez: FakeBluezProcess,  # noqa: F811
    simulator: SimulatorThread,
    make_daemon: Callable[[str, str], DaemonProcess],  # noqa: F811
) -> None:
    case = CASES[driver]
    address = case["address"]
    daemon = make_daemon(driver, address)
    daemon.start()
    wait_discovering(fake_bluez)
    script = {k: case[k] for k in ("services", "respond", "indicate", "disconnect_after", "model") if k in case}
    fake_bluez.call("gatt_device", address=address, **script)
    daemon.tap(CARD)

    def connected() -> bool:
        if fake_bluez.call("stats")["stats"].get("connects", 0) >= 1:
            return True
        fake_bluez.call("advertise", address=address, name=case["name"])
        return False

    until(connected, f"the daemon to connect to the {driver} scale", daemon)
    until(lambda: len(weighings(simulator)) >= 1, f"the {driver} weighing at the simulator", daemon)
    [w] = weighings(simulator)
    assert w["customerId"] == 1001
    assert w["body"]["weight"] == case["weight"]
    writes = fake_bluez.call("writes", address=address)["writes"]
    assert writes, "the exchange wrote nothing"
    if case["first_write"] is not None:
        assert writes[0]["hex"] == case["first_write"]
    if "writes_in_order" in case:
        got = [
            w["hex"][:2] + "*" if want.endswith("*") else w["hex"]
            for w, want in zip(writes, case["writes_in_order"], strict=True)
        ]
        assert got == case["writes_in_order"], writes
    if "write_type" in case:
        assert {w["type"] for w in writes} == {case["write_type"]}, writes
    assert fake_bluez.call("wait", key="disconnects", at_least=1, timeout_s=GUARD_S)["reached"]
    assert daemon.stop() == 0
