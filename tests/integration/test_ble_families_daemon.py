"""The vendor-family GATT exchanges through the whole daemon: fake BlueZ (scripted responders) ->
``scale-bridge run`` -> the platform simulator. The scale answers only the writes its protocol wants,
so a weighing at the simulator shows the exchange wrote them; the writes are then checked in order.
Frames are literal; timeouts are failure guards only."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.simulator import SimulatorThread
from drivers import bt_e1
from drivers.bleuuid import full_uuid
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

LEFU_WRITES = ["ac02fa010000ccc7", "ac02fb021fa5cc8d", "ac02fde20101ccad", "ac02fc010000ccc9", "ac02fe060000ccd0"]
LEFU_JUNIPER = ("ac0204060000cad4", "ac02fd000001cbc9", "ac02fd010209cbd4")  # #322: 103.0 kg, then 521 ohm

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
    "lefu_ffb0": {
        # the Juniper's frames (ble-scale-sync #322) after the Fitdays app's five writes (#254); the
        # exchange ends the session on the impedance frame
        "address": "01:B6:EC:D5:B4:C3",
        "name": "SWAN",
        "services": [
            {
                "uuid": "ffb0",
                "characteristics": [
                    {"uuid": "ffb2", "flags": ["notify"]},
                    {"uuid": "ffb1", "flags": ["write-without-response"]},
                    {"uuid": "ffb3", "flags": ["indicate"]},
                ],
            }
        ],
        "respond": [
            {
                "char": "ffb1",
                "hex": LEFU_WRITES[-1],
                "once": True,
                "push": [{"char": "ffb2", "hex": h} for h in LEFU_JUNIPER],
            }
        ],
        "disconnect_after": False,
        "weight": 103.0,
        "first_write": LEFU_WRITES[0],
        "writes_in_order": LEFU_WRITES,
        "write_type": "command",
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


# ---- QN with the AE00 "Jieli" gate: the fake scale challenges on AE02 and weighs only for the answer

JIELI = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "qn_scale" / "jieli_auth.json").read_text())
JIELI_CHALLENGE, JIELI_RESPONSE = (
    bytes.fromhex(JIELI["jieli_qn_captured"]["pairs"][0][k]) for k in ("challenge", "response")
)
QN_READY = "140bff000001000000001f"  # REAL 0x14 (ble-scale-sync tests/scales/qn-scale.test.ts)
PASS_HEX = b"\x02pass".hex()


#: REAL GE CS 10 G frames (KristianP26/ble-scale-sync #235 and tests/scales/qn-scale.test.ts; see
#: tests/vectors/qn_scale/sequences.jsonl): its 20-byte 0x12, 0x14, 0x21, the A1 echo of our A0 04 fc,
#: a live 0x10, then connect 1's result burst (a six-day-old 0xB4 record, the live 0xB1 75.25 kg, a
#: further 0xB1 of the same weigh-in)
GE_INFO = "1214ff4ec70e0007ff140f4200080503e06f2b3d"
GE_READY = "140cff01000100000001fd1f"
GE_CONFIG_REQUEST = "2107ff01612cb5"
GE_REPORT_ACK = "a10704fc0110b9"
GE_LIVE = "10140100111ebe00000000000000000000000012"
GE_BURST = [
    "b42c0401f01001121b1032361a000000000000000000000000000000000000000000000000000000000000a5",
    "b12c030101651d030bbb09ac0a4f09790a4f09b3095a081b011601440bea091a0bb509a90a7d09480a090932",
    "b12c030101601dd20b7c0ab50b560a0c0ad608bd099f0828015a01530bfa092a0bc6099a0a6d093a0afe0890",
]
AE01_INIT = "fedcbac00600020101ef"
#: what the exchange must write to FFF2 after the 0x13, in order: the 0x20 time (prefix), the ready A2
#: (age 26), the two 0x21 replies, the 0x22 start and the trigger twice (77.15 kg, the default anchor)
GE_WRITES = [
    "1309ff01100000002c",
    "2008ff*",
    "a206013 21af5".replace(" ", ""),
    "a00d04fc0000000000000000ad",
    "a00d02010008002106b804029d",
    "2206ff00032a",
    "a206011e23ea",
    "a206011e23ea",
]


def _jieli_scale(expected_answer: bytes) -> dict[str, Any]:
    """A GE CS 10 G (QN extended dialect, type 2 with AE00): its 0x12 on subscribe, its 0x14 after the
    0x13, the challenge after the host's "pass", "pass" and the 0x21 only when AE01 receives
    ``expected_answer``, the A1 echo for the A0 04 fc reply, and its live 0x10 and result burst only
    after the measurement trigger; the order of the host's writes is checked by the test."""
    return {
        "services": [
            {
                "uuid": "fff0",
                "characteristics": [
                    {"uuid": "fff1", "flags": ["notify"]},
                    {"uuid": "fff2", "flags": ["write-without-response", "write"]},
                ],
            },
            {
                "uuid": "ae00",
                "characteristics": [
                    {"uuid": "ae01", "flags": ["write-without-response"]},
                    {"uuid": "ae02", "flags": ["notify"]},
                ],
            },
        ],
        "indicate": [{"char": "fff1", "hex": GE_INFO}],
        "disconnect_after": False,
        "respond": [
            {"char": "fff2", "prefix": "1309ff", "once": True, "push": [{"char": "fff1", "hex": GE_READY}]},
            {
                "char": "ae01",
                "hex": PASS_HEX,
                "once": True,
                "push": [{"char": "ae02", "hex": "00" + JIELI_CHALLENGE.hex()}],
            },
            {
                "char": "ae01",
                "hex": expected_answer.hex(),
                "once": True,
                "push": [{"char": "ae02", "hex": PASS_HEX}, {"char": "fff1", "hex": GE_CONFIG_REQUEST}],
            },
            {"char": "fff2", "hex": GE_WRITES[3], "once": True, "push": [{"char": "fff1", "hex": GE_REPORT_ACK}]},
            {
                "char": "fff2",
                "hex": GE_WRITES[-1],
                "once": True,
                "push": [{"char": "fff1", "hex": h} for h in [GE_LIVE, *GE_BURST]],
            },
        ],
    }


def _exchange_reasons(daemon: DaemonProcess) -> list[str]:
    out = []
    for line in (daemon.log.read_text(errors="replace") if daemon.log.exists() else "").splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict) and doc.get("event") == "ble_gatt_exchange_done":
                out.append(str(doc.get("reason")))
    return out


def _run_jieli(fake: FakeBluezProcess, daemon: DaemonProcess, address: str, script: dict[str, Any]) -> None:
    daemon.start()
    wait_discovering(fake)
    fake.call("gatt_device", address=address, **script)
    daemon.tap(CARD)

    def connected() -> bool:
        if fake.call("stats")["stats"].get("connects", 0) >= 1:
            return True
        fake.call("advertise", address=address, name="QN-Scale")
        return False

    until(connected, "the daemon to connect to the AE00 QN scale", daemon)


@pytest.mark.parametrize("right", [True, False], ids=["right_answer", "wrong_key"])
def test_qn_jieli_gate(
    right: bool,
    fake_bluez: FakeBluezProcess,  # noqa: F811
    simulator: SimulatorThread,
    make_daemon: Callable[[str, str], DaemonProcess],  # noqa: F811
) -> None:
    # the fake checks the answer with its own E1: the vendor constants (= the captured response), or
    # a firmware keyed differently, which then stays silent
    ours = b"\x01" + bt_e1.jieli_answer(JIELI_CHALLENGE)
    assert ours == b"\x01" + JIELI_RESPONSE
    wrong_key = bytes(16)
    expected = ours if right else b"\x01" + bt_e1.e1(wrong_key, JIELI_CHALLENGE, bt_e1.JIELI_ADDRESS)
    address = "ED:67:37:00:00:0A" if right else "ED:67:37:00:00:0B"
    daemon = make_daemon("qn_scale", address)
    _run_jieli(fake_bluez, daemon, address, _jieli_scale(expected))
    until(lambda: bool(_exchange_reasons(daemon)), "the AE00 QN session to end", daemon)
    writes = fake_bluez.call("writes", address=address)["writes"]
    ae01 = [(w["hex"], w["type"]) for w in writes if w["char"] == full_uuid("ae01")]
    assert ae01 == [(AE01_INIT, "command"), (PASS_HEX, "command"), (ours.hex(), "command")], writes
    fff2 = [w["hex"] for w in writes if w["char"] == full_uuid("fff2")]
    got = [h[:6] + "*" if want.endswith("*") else h for h, want in zip(fff2, GE_WRITES, strict=False)]
    [reason] = _exchange_reasons(daemon)
    if right:
        assert reason == "weighing received"
        assert got == GE_WRITES, fff2
        assert fff2[len(GE_WRITES) :] in ([], ["a206011ebe85"]), fff2  # the A2 echo of the live 0x10
        until(lambda: len(weighings(simulator)) >= 1, "the AE00 QN weighing at the simulator", daemon)
        [w] = weighings(simulator)  # the 0xB1 75.25 kg: the stale 0xB4 and the second 0xB1 are not posted
        assert w["customerId"] == 1001 and w["body"]["weight"] == 75.25
    else:
        assert 'no "pass"' in reason, reason
        assert got == GE_WRITES[:3], fff2  # no 0x21 came, so no replies, no start, no trigger
        assert weighings(simulator) == []
    assert daemon.stop() == 0
