"""Tanita PC mode, the I/O half (bridge/pc_mode.py).

In process: ``PcMode`` against a fake analyser (a link whose ``send`` is answered like the unit would)
and a fake platform client: the exact command bytes and order per family, the 100 ms pacing measured
on the real writes, each failure kind named in ``pc_mode_failed`` with the unit's code, a hanging
profile fetch bounded by its timeout.

End to end: the daemon as a subprocess with a pty scale and a UNIX-socket card reader, the platform
simulator, and a fake MC-780 on the pty master that echoes commands: the card triggers the exchange,
the weighing is delivered to the card's member; with the profile endpoint hanging the weighing is
still captured, paired and delivered, and the failure is logged.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from bridge.config import CardsConfig
from bridge.errors import NotFound, PlatformUnavailable
from bridge.pc_mode import PcMode
from bridge.platform import CustomerProfile
from drivers.model import DeviceReport
from drivers.tanita import parse
from drivers.tanita_pc import MIN_COMMAND_GAP_S, Family
from tests.fakes.serial_fakes import PtyDevice, tanita_line
from tests.helpers import wait_for, wait_for_async, write_config
from tests.integration.test_e2e_serial import start_daemon, stop


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    """The ``name`` events among those ``structlog.testing.capture_logs`` caught."""
    return [e for e in logs if e["event"] == name]


@dataclass
class FakeUnit:
    """A link to a fake analyser: each command is answered (or not) as scripted, through ``feed``."""

    answer: dict[str, str] = field(default_factory=dict)  # command prefix -> reply ("" = silence)
    sent: list[tuple[float, bytes]] = field(default_factory=list)
    pc: PcMode | None = None
    last_rx_at: datetime | None = None

    async def send(self, data: bytes) -> None:
        self.sent.append((time.monotonic(), data))
        text = data.decode().strip()
        reply = self.answer.get(text[:2], text[:2])  # default: echo the prefix
        if reply:
            asyncio.get_running_loop().call_later(0.01, self._reply, reply)

    def _reply(self, text: str) -> None:
        self.last_rx_at = datetime.now(UTC)
        result = parse(text.encode())
        assert isinstance(result, DeviceReport), text
        assert self.pc is not None
        assert self.pc.feed(result), "an active conversation takes the reply"


class FakeClient:
    def __init__(self, profiles: dict[str, CustomerProfile], hang_s: float = 0.0) -> None:
        self.profiles = profiles
        self.hang_s = hang_s
        self.calls: list[tuple[str, str]] = []

    async def customer_by_card(self, number: str, fmt: str = "DECIMAL") -> CustomerProfile:
        self.calls.append((number, fmt))
        if self.hang_s:
            await asyncio.sleep(self.hang_s)
        if number not in self.profiles:
            raise NotFound("no customer with that card", status=404)
        return self.profiles[number]


MALE_181 = CustomerProfile(id=1001, age=36, gender="MALE", height_cm=181.0)


def run_pc(
    family: Family, unit: FakeUnit, client: Any, card: str = "3220338716", cards: CardsConfig | None = None, **kw: Any
) -> list[MutableMapping[str, Any]]:
    """One conversation on a structlog logger, as the daemon builds it; returns the events it logged."""

    async def main() -> None:
        pc = PcMode(family, unit, client, cards or CardsConfig(), structlog.get_logger("pc_mode"), **kw)
        unit.pc = pc
        pc.card(card)
        await asyncio.wait_for(pc.wait_idle(), 20)
        assert not pc.active

    with capture_logs() as logs:
        asyncio.run(main())
    return logs


def gaps(unit: FakeUnit) -> list[float]:
    times = [t for t, _ in unit.sent]
    return [b - a for a, b in itertools.pairwise(times)]


def test_bc418_sequence_exact_bytes_paced_and_ends_with_g1() -> None:
    unit = FakeUnit()
    logs = run_pc(Family.BC418, unit, FakeClient({"3220338716": MALE_181}))
    assert [d for _, d in unit.sent] == [
        b"U0\r\n",
        b"D0000.0\r\n",
        b"D11\r\n",
        b"D20\r\n",
        b"D300181\r\n",
        b"D436\r\n",
        b"G1\r\n",
    ]
    assert min(gaps(unit)) >= MIN_COMMAND_GAP_S - 0.002  # >= 100 ms between real writes (timer slack)
    (done,) = events(logs, "pc_mode_done")
    assert done["commands"] == ["U0", "D0", "D1", "D2", "D3", "D4", "G1"] and done["next"] == "measuring"
    assert not events(logs, "pc_mode_failed")
    assert done["card"] == "******8716"  # masked


def test_mc980_sequence_enters_pc_mode_and_waits_for_the_member() -> None:
    unit = FakeUnit()
    female = CustomerProfile(id=1004, age=48, gender="FEMALE", height_cm=162.0)
    logs = run_pc(Family.MC980, unit, FakeClient({"1234567890123456": female}), card="1234567890123456")
    assert [d for _, d in unit.sent] == [b"M1\r\n", b"D000.0\r\n", b"D12\r\n", b"D20\r\n", b"D3162.0\r\n", b"D448\r\n"]
    assert events(logs, "pc_mode_done")[0]["next"] == "waiting for the member to step on"


@pytest.mark.parametrize(
    ("prefix", "reply", "code", "words"),
    [
        ("D3", "D3!", "D3!", "parameter error in D3"),
        ("D1", "!", "!", "unknown command"),
        ("D4", "E6", "E6", "incomplete set data"),
    ],
)
def test_unit_errors_end_the_conversation_with_its_code(prefix: str, reply: str, code: str, words: str) -> None:
    unit = FakeUnit(answer={prefix: reply})
    logs = run_pc(Family.BC418, unit, FakeClient({"3220338716": MALE_181}))
    (failed,) = events(logs, "pc_mode_failed")
    assert failed["stage"] == "conversation" and failed["code"] == code and words in failed["reason"]
    assert "181" not in failed["reason"]  # the value sent is not logged, only the command prefix
    assert unit.sent[-1][1].startswith(prefix.encode())  # nothing sent after the error
    assert not events(logs, "pc_mode_done")


def test_silent_unit_is_retried_then_reported() -> None:
    unit = FakeUnit(answer={"U0": ""})
    logs = run_pc(Family.BC418, unit, FakeClient({"3220338716": MALE_181}), reply_timeout_s=0.15)
    assert [d for _, d in unit.sent] == [b"U0\r\n"] * 3
    (failed,) = events(logs, "pc_mode_failed")
    assert "no reply after 3 attempts" in failed["reason"]


def test_out_of_step_echo_is_not_taken_for_the_answer() -> None:
    unit = FakeUnit(answer={"D2": "D1"})  # a stale echo: counted as noise, then timeouts
    logs = run_pc(Family.BC418, unit, FakeClient({"3220338716": MALE_181}), reply_timeout_s=0.1)
    assert not events(logs, "pc_mode_done")
    assert events(logs, "pc_mode_failed")[0]["reason"].startswith("D2")


def test_profile_problems_send_nothing() -> None:
    unisex = CustomerProfile(id=1003, age=26, gender="UNISEX", height_cm=175.0)
    no_height = CustomerProfile(id=1005, age=26, gender="MALE", height_cm=None)
    client = FakeClient({"6547886": unisex, "42": no_height})
    for card, words in (("6547886", "profile not sendable"), ("42", "no height"), ("999", "member not found")):
        unit = FakeUnit()
        logs = run_pc(Family.BC418, unit, client, card=card)
        (failed,) = events(logs, "pc_mode_failed")
        assert words in failed["reason"], failed
        assert unit.sent == []


def test_hanging_profile_fetch_is_bounded() -> None:
    unit = FakeUnit()
    started = time.monotonic()
    logs = run_pc(Family.BC418, unit, FakeClient({"3220338716": MALE_181}, hang_s=30), profile_timeout_s=0.3)
    assert time.monotonic() - started < 10  # failure guard: the 30 s hang is cut short
    (failed,) = events(logs, "pc_mode_failed")
    assert failed["stage"] == "profile" and "timed out" in failed["reason"]
    assert unit.sent == []


def test_fallback_card_queries_are_tried_after_404() -> None:
    cards = CardsConfig(format="hex", fallbacks=["hex_reversed"])
    from bridge.cardquery import platform_queries

    queries = platform_queries("C00FF8BF", cards)
    assert len(queries) >= 2
    client = FakeClient({queries[-1][0]: MALE_181})
    logs = run_pc(Family.BC418, FakeUnit(), client, card="C00FF8BF", cards=cards)
    assert client.calls == queries
    assert events(logs, "pc_mode_done")


def test_platform_failure_is_reported_not_raised() -> None:
    class Broken(FakeClient):
        async def customer_by_card(self, number: str, fmt: str = "DECIMAL") -> CustomerProfile:
            raise PlatformUnavailable("503 from the platform", status=503)

    logs = run_pc(Family.BC418, FakeUnit(), Broken({}))
    assert "profile fetch failed" in events(logs, "pc_mode_failed")[0]["reason"]


def test_new_card_supersedes_a_running_conversation() -> None:
    unit = FakeUnit(answer={"U0": ""})

    async def main() -> None:
        client = FakeClient({"3220338716": MALE_181, "1234567890123456": CustomerProfile(1004, 48, "FEMALE", 162.0)})
        pc = PcMode(Family.BC418, unit, client, CardsConfig(), structlog.get_logger("pc_mode"), reply_timeout_s=5)
        unit.pc = pc
        pc.card("3220338716")
        await wait_for_async(lambda: unit.sent, "the first conversation's U0", timeout_s=10, interval_s=0.01)
        unit.answer.clear()
        pc.card("1234567890123456")
        await asyncio.wait_for(pc.wait_idle(), 10)

    with capture_logs() as logs:
        asyncio.run(main())
    assert events(logs, "pc_mode_superseded")
    assert len(events(logs, "pc_mode_done")) == 1
    # the first member's exchange stopped at its unanswered U0; the second one ran in full
    assert [d for _, d in unit.sent] == [
        b"U0\r\n",
        b"U0\r\n",
        b"D0000.0\r\n",
        b"D12\r\n",
        b"D20\r\n",
        b"D300162\r\n",
        b"D448\r\n",
        b"G1\r\n",
    ]
    assert events(logs, "pc_mode_done")[0]["card"].endswith("3456")


# ---------------------------------------------------------------------------------------------- end to end


class FakeAnalyser(threading.Thread):
    """An MC-780 in PC mode on the pty master: echoes each command's prefix, records what it got."""

    def __init__(self, dev: PtyDevice) -> None:
        super().__init__(daemon=True)
        self.dev = dev
        self.commands: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        buf = b""
        while not self.stop.is_set():
            buf += self.dev.read_available(0.05)
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                text = line.decode()
                self.commands.append((time.monotonic(), text))
                time.sleep(0.01)
                os.write(self.dev.master, text[:2].encode() + b"\r\n")


def tap(sock_path: Path, card: str) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock_path))
        s.sendall(card.encode() + b"\n")


def log_events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_daemon_pc_mode_end_to_end(tmp_path: Path, simulator: Any) -> None:
    dev = PtyDevice()
    analyser = FakeAnalyser(dev)
    analyser.start()
    sock = tmp_path / "cards.sock"
    cfg = write_config(
        tmp_path / "config.toml",
        {
            "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1), "benefit_key": "BODY_SCAN"},
            "scale": {"name": "pc", "driver": "tanita", "port": dev.slave_path, "pc_mode": True},
            "cards": {"source": "socket", "device": str(sock)},
            "pairing": {"window_s": 60.0},
            "state": {"dir": str(tmp_path / "state")},
            "log": {"format": "json", "level": "debug"},
        },
    )
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(cfg, log_path)
    try:
        status = tmp_path / "state" / "status.json"
        wait_for(
            lambda: status.exists() and "connected" in status.read_text() and sock.exists(),
            "daemon ready", timeout_s=30,
        )
        # 1. card -> profile -> PC-mode exchange -> the member steps on -> weighing for 1001
        tap(sock, "3220338716")
        wait_for(lambda: any(e["event"] == "pc_mode_done" for e in log_events(log_path)), "pc_mode_done", timeout_s=20)
        dev.write(tanita_line(weight_kg=84.3))
        wait_for(
            lambda: simulator.call(lambda: len(simulator.state.weighings)) == 1,
            "weighing 1 uploaded", timeout_s=30,
        )
        sent = [c for _, c in analyser.commands]
        assert sent == ["M1", "D000.0", "D11", "D20", "D3181.0", "D436"]
        # (the 100 ms pacing is asserted on the real write times in the in-process tests above)

        # 2. the profile endpoint hangs: the weighing is not held up, still pairs with the card
        simulator.call(lambda: setattr(simulator.state.faults, "operations", ("getCustomerMeasurement",)))
        simulator.call(lambda: setattr(simulator.state.faults, "delay_s", 7.0))  # > the 5 s profile timeout
        simulator.call(lambda: simulator.state.faults.script.extend(["slow"]))
        tap(sock, "1234567890123456")
        wait_for(
            lambda: any(
                e["event"] == "pc_mode_started" and e.get("card", "").endswith("3456") for e in log_events(log_path)
            ),
            "the second conversation to start",
            timeout_s=20,
        )
        dev.write(tanita_line(weight_kg=61.7, time_hhmm="10:05"))
        got = wait_for(
            lambda: (
                simulator.call(lambda: [w for w in simulator.state.weighings])
                if simulator.call(lambda: len(simulator.state.weighings)) == 2
                else None
            ),
            "weighing 2",
            timeout_s=30,
        )
        wait_for(
            lambda: any(e["event"] == "pc_mode_failed" for e in log_events(log_path)),
            "pc_mode_failed", timeout_s=20,
        )
    finally:
        code = stop(proc)
        analyser.stop.set()
        dev.close()
    events = log_events(log_path)
    assert code == 0, log_path.read_text()[-3000:]
    assert [(w["customerId"], w["body"]["weight"]) for w in got] == [(1001, 84.3), (1004, 61.7)]
    failed = [e for e in events if e["event"] == "pc_mode_failed"]
    assert len(failed) == 1 and failed[0]["stage"] == "profile" and "timed out" in failed[0]["reason"]
    names = [e["event"] for e in events]
    # the echoes went to the conversation, not to the device_report log
    assert "device_report" not in names
    assert names.index("pc_mode_done") < names.index("weighing_captured")
    assert "3220338716" not in log_path.read_text()
