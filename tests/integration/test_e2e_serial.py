"""End to end: bytes on a pty (the daemon opens the slave with pyserial) -> daemon subprocess ->
platform simulator (real HTTP server). The simulator must receive the right body with the benefit key."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

from drivers.tanita import checksum
from tests.helpers import REPO, popen_logged, wait_for, write_config


def tanita_line(card_id: str, weight_kg: float, fat_pct: float, time_hhmm: str) -> bytes:
    fields = (
        f'MO,"MC-780",ID,"{card_id}",St,0,Da,"22/11/2026",TI,"{time_hhmm}",Bt,0,GE,1,AG,36,Hm,181.0,'
        f"Wk,{weight_kg:.1f},FW,{fat_pct:.1f},fW,18.0,MW,66.3,mW,63.0,wW,48.5,MI,25.7,IF,9,rB,1870,"
        f"FR,19.1,fR,2.4,MR,10.2,mR,9.6,ZF,512.3,"
    )
    body = "{0,16,~0,1,~1,1,~2,1," + fields
    return (body + "CS," + checksum(body.encode()) + "\r\n").encode()


@pytest.fixture
def pty_pair():  # type: ignore[no-untyped-def]
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def start_daemon(cfg_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    return popen_logged(
        [sys.executable, "-m", "bridge", "run", "--config", str(cfg_path)],
        log_path,
        cwd=REPO,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def test_pty_weighing_reaches_simulator_with_benefit_key(tmp_path: Path, simulator, pty_pair) -> None:  # type: ignore[no-untyped-def]
    master, slave_path = pty_pair
    cfg = write_config(
        tmp_path / "config.toml",
        {
            "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1), "benefit_key": "BODY_SCAN"},
            "scale": {"name": "e2e", "driver": "tanita", "port": slave_path},
            "state": {"dir": str(tmp_path / "state")},
            "log": {"format": "json", "level": "debug"},
        },
    )
    proc = start_daemon(cfg, tmp_path / "daemon.log")
    try:
        status = tmp_path / "state" / "status.json"
        wait_for(
            lambda: status.exists() and "connected" in status.read_text(),
            "the daemon to open the pty", timeout_s=30,
        )
        line = tanita_line("0000003220338716", 84.3, 21.4, "09:15")
        rng = random.Random(7)
        pos = 0
        while pos < len(line):  # arbitrary chunks, as a USB-serial adapter delivers them
            n = rng.randint(1, 40)
            os.write(master, line[pos : pos + n])
            pos += n
            time.sleep(rng.choice((0, 0, 0.01)))
        got = wait_for(
            lambda: simulator.call(lambda: list(simulator.state.weighings)),
            "the weighing upload", timeout_s=30,
        )
    finally:
        code = stop(proc)
    log_text = (tmp_path / "daemon.log").read_text()
    assert code == 0, log_text[-3000:]
    assert len(got) == 1
    w = got[0]
    assert w["customerId"] == 1001
    assert w["benefitKey"] == "BODY_SCAN"
    body = w["body"]
    assert body["weight"] == 84.3 and body["percentBodyFat"] == 21.4 and body["bodyFatMass"] == 18.0
    assert body["fatFreeMass"] == 66.3 and body["totalBodyWater"] == 48.5 and body["visceralFatLevel"] == 9
    assert body["basalMetabolicRate"] == 1870 and body["height"] == 181.0
    assert body["bfmPercentRightLeg"] == 19.1 and body["bfmRightLeg"] == 2.4 and body["ffmRightLeg"] == 10.2
    assert "skeletalMuscleMass" not in body  # Tanita muscle mass is not skeletal muscle mass
    raw = json.loads(body["rawResults"])
    # the scale's ID field is the member's card number: it leaves the box masked (hostile audit M6)
    assert raw["raw"] == line.decode().strip().replace("0000003220338716", "************8716")
    assert "3220338716" not in body["rawResults"]
    assert raw["driver"] == "tanita" and raw["deviceTime"] == "2026-11-22T09:15:00"
    assert raw["unmapped"]["muscle_mass_kg"] == 63.0
    # privacy: the API key never appears in the logs, nor the full card number
    assert simulator.api_key(1) not in log_text
    assert "3220338716" not in log_text
    events = [json.loads(x)["event"] for x in log_text.splitlines() if x.startswith("{")]
    assert "weighing_captured" in events and "weighing_posted" in events


def test_restart_continues_with_pending_weighings(tmp_path: Path, simulator, pty_pair) -> None:  # type: ignore[no-untyped-def]
    """Platform unreachable while the weighing is read: it waits on disk; a restarted daemon pointed at
    the platform delivers it."""
    master, slave_path = pty_pair
    sections = {
        "platform": {"base_url": "http://127.0.0.1:9", "api_key": simulator.api_key(1), "benefit_key": "BODY_SCAN"},
        "scale": {"name": "e2e", "driver": "tanita", "port": slave_path},
        "state": {"dir": str(tmp_path / "state")},
        "log": {"format": "json"},
    }
    cfg = write_config(tmp_path / "config.toml", sections)
    proc = start_daemon(cfg, tmp_path / "d1.log")
    try:
        status = tmp_path / "state" / "status.json"
        wait_for(
            lambda: status.exists() and "connected" in status.read_text(),
            "the daemon to open the pty", timeout_s=30,
        )
        os.write(master, tanita_line("0000003220338716", 80.0, 20.0, "10:00"))
        wait_for(lambda: "weighing_captured" in (tmp_path / "d1.log").read_text(), "the capture", timeout_s=30)
    finally:
        assert stop(proc) == 0
    sections["platform"]["base_url"] = simulator.url
    write_config(cfg, sections)
    proc = start_daemon(cfg, tmp_path / "d2.log")
    try:
        got = wait_for(
            lambda: simulator.call(lambda: list(simulator.state.weighings)),
            "the upload after restart", timeout_s=30,
        )
    finally:
        assert stop(proc) == 0
    assert [w["body"]["weight"] for w in got] == [80.0]
    assert got[0]["benefitKey"] == "BODY_SCAN"
