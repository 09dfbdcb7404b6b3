"""The BLE link driving a GATT exchange (drivers/gatt.py) against bleak's real BlueZ backend talking
to the fake BlueZ: writes in order with their options, scripted answers, reads, deadlines, and an
``ExchangeError`` ending the session.

The exchanges here are small test conversations (the link is what is under test); the drivers' own
exchanges have their own integration tests. Addresses and payloads are synthetic. Timeouts are
failure guards only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from drivers.events import EventKind
from drivers.framing import PassthroughFramer
from drivers.gatt import (
    DEVICE_NAME,
    Action,
    Disconnect,
    ExchangeContext,
    ExchangeError,
    Read,
    Subscribe,
    Write,
)
from drivers.links.ble import BleLink
from drivers.registry import BleMatcher, BleMode, DriverSpec, LinkKind
from tests.fakes import bluez_fixture
from tests.fakes.bluez_fixture import FakeBluezProcess
from tests.helpers import wait_for_async
from tests.integration.test_ble_link import GUARD_S, Pump, run, uuid16, wait_discovering

private_bus = bluez_fixture.private_bus
fake_bluez = bluez_fixture.fake_bluez

pytestmark = pytest.mark.ble

ADDR = "C8:00:00:00:00:21"
NOTIFY = uuid16("ffe1")
WRITE = uuid16("ffe2")
INFO = uuid16("ffe3")
SERVICES = [
    {
        "uuid": "ffe0",
        "characteristics": [
            {"uuid": "ffe1", "flags": ["notify"]},
            {"uuid": "ffe2", "flags": ["write", "write-without-response"]},
            {"uuid": "ffe3", "flags": ["read"], "value": "0102"},
        ],
    }
]


@dataclass
class Script:
    """What the test exchange does; records what it saw."""

    seen: list[tuple[str, str, bytes]] = field(default_factory=list)
    contexts: list[ExchangeContext] = field(default_factory=list)
    timeout_after_s: float | None = None
    fail_on: bytes | None = None


class TalkingExchange:
    """Subscribe, read, write a hello; ack every notification; disconnect on ``ee``."""

    def __init__(self, script: Script, context: ExchangeContext) -> None:
        self.script = script
        script.contexts.append(context)
        self._deadline: float | None = None

    @property
    def deadline_s(self) -> float | None:
        return self._deadline

    def start(self, *, now_s: float) -> list[Action]:
        if self.script.timeout_after_s is not None:
            self._deadline = now_s + self.script.timeout_after_s
        return [Subscribe(NOTIFY), Read(INFO), Read(DEVICE_NAME), Write(WRITE, b"\x01hello")]

    def on_notify(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        self.script.seen.append(("notify", uuid, data))
        if data == self.script.fail_on:
            raise ExchangeError(f"the scale said {data.hex()}")
        if data == b"\xee":
            return [Disconnect("scale said goodbye")]
        return [Write(WRITE, b"\xa0" + data[:1], with_response=False)]

    def on_read(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        self.script.seen.append(("read", uuid, data))
        return []

    def on_timeout(self, *, now_s: float) -> list[Action]:
        self.script.seen.append(("timeout", "", b""))
        self._deadline = None
        return [Write(WRITE, b"\x7f")]


def spec_for(script: Script) -> DriverSpec:
    return DriverSpec(
        name="exchange_probe",
        summary="test exchange",
        link=LinkKind.BLE,
        parse=lambda frame, channel: None,
        make_framer=PassthroughFramer,
        ble=BleMatcher(mode=BleMode.GATT, service_uuids=frozenset({uuid16("ffe0")}), characteristics=(NOTIFY,)),
        make_exchange=lambda ctx: TalkingExchange(script, ctx),
        settings={"user_index": "test"},
    )


async def connect(fake: FakeBluezProcess) -> None:
    async def connected() -> bool:  # advertises again each round until the link has connected
        if (await fake.acall("stats"))["stats"].get("connects", 0) >= 1:
            return True
        await fake.acall("advertise", address=ADDR, name="PROBE-1", uuids=["ffe0"])
        return False

    await wait_for_async(connected, "the link to connect to the probe", timeout_s=GUARD_S, interval_s=0.1)


def test_writes_answers_reads_and_the_exchange_disconnect(fake_bluez: FakeBluezProcess) -> None:
    script = Script()

    async def main() -> None:
        link = BleLink([spec_for(script)], watchdog_s=30, settings={"user_index": "3"})
        pump = Pump(link)
        await wait_discovering(fake_bluez)
        await fake_bluez.acall(
            "gatt_device",
            address=ADDR,
            services=SERVICES,
            disconnect_after=False,
            respond=[
                {"char": "ffe2", "hex": "0168656c6c6f", "push": [{"char": "ffe1", "hex": "11"}]},
                {"char": "ffe2", "prefix": "a011", "push": [{"char": "ffe1", "hex": "22"}]},
                {"char": "ffe2", "hex": "a022", "push": [{"char": "ffe1", "hex": "ee"}]},
            ],
        )
        await connect(fake_bluez)
        reply = await fake_bluez.acall("wait", key="disconnects", at_least=1, timeout_s=GUARD_S)
        assert reply["reached"]
        writes = (await fake_bluez.acall("writes", address=ADDR))["writes"]
        assert writes == [
            {"char": WRITE, "hex": "0168656c6c6f", "type": "request"},
            {"char": WRITE, "hex": "a011", "type": "command"},
            {"char": WRITE, "hex": "a022", "type": "command"},
        ]
        await pump.until(lambda: len(pump.of(EventKind.NOTIFY)) >= 5, "reads and notifications as events")
        assert [(e.channel, e.payload) for e in pump.of(EventKind.NOTIFY)] == [
            (INFO, b"\x01\x02"),
            (DEVICE_NAME, b"PROBE-1"),
            (NOTIFY, b"\x11"),
            (NOTIFY, b"\x22"),
            (NOTIFY, b"\xee"),
        ]
        assert script.seen == [
            ("read", INFO, b"\x01\x02"),
            ("read", DEVICE_NAME, b"PROBE-1"),
            ("notify", NOTIFY, b"\x11"),
            ("notify", NOTIFY, b"\x22"),
            ("notify", NOTIFY, b"\xee"),
        ]
        [context] = script.contexts
        assert context.address == ADDR
        assert context.name == "PROBE-1"
        assert context.settings == {"user_index": "3"}
        assert {NOTIFY, WRITE, INFO} <= context.characteristics
        assert context.aes_cbc_encrypt is not None and context.wall_time_s is not None
        assert link.stats["gatt_writes"] == 3
        assert reply["stats"]["disconnect_calls"] >= 1  # the link hung up, not the scale
        await pump.close()

    run(main)


def test_deadline_calls_on_timeout_once(fake_bluez: FakeBluezProcess) -> None:
    script = Script(timeout_after_s=0.3)

    async def main() -> None:
        pump = Pump(BleLink([spec_for(script)], watchdog_s=30))
        await wait_discovering(fake_bluez)
        await fake_bluez.acall(
            "gatt_device",
            address=ADDR,
            services=SERVICES,
            disconnect_after=False,
            respond=[{"char": "ffe2", "hex": "7f", "push": [{"char": "ffe1", "hex": "ee"}]}],
        )
        await connect(fake_bluez)
        assert (await fake_bluez.acall("wait", key="disconnects", at_least=1, timeout_s=GUARD_S))["reached"]
        writes = [w["hex"] for w in (await fake_bluez.acall("writes", address=ADDR))["writes"]]
        assert writes == ["0168656c6c6f", "7f"]
        assert [kind for kind, _u, _d in script.seen if kind != "read"] == ["timeout", "notify"]
        await pump.close()

    run(main)


def test_exchange_error_ends_the_session_and_the_link_keeps_scanning(fake_bluez: FakeBluezProcess) -> None:
    script = Script(fail_on=b"\x66")

    async def main() -> None:
        link = BleLink([spec_for(script)], watchdog_s=30)
        pump = Pump(link)
        await wait_discovering(fake_bluez)
        await fake_bluez.acall(
            "gatt_device",
            address=ADDR,
            services=SERVICES,
            disconnect_after=False,
            respond=[{"char": "ffe2", "hex": "0168656c6c6f", "push": [{"char": "ffe1", "hex": "66"}]}],
        )
        await connect(fake_bluez)
        assert (await fake_bluez.acall("wait", key="disconnect_calls", at_least=1, timeout_s=GUARD_S))["reached"]

        await wait_for_async(lambda: link.stats.get("gatt_exchange_errors", 0) >= 1, "the exchange error counted",
                             timeout_s=GUARD_S, interval_s=0.02)
        assert pump.error is None and link.state == "connected"  # scanning goes on
        assert len((await fake_bluez.acall("writes", address=ADDR))["writes"]) == 1
        await pump.close()

    run(main)
