"""`record` and `scan --port` refuse a serial port a scale-bridge daemon reads (two readers split the
stream: installer audit I2), and fail on a port that does not exist instead of exiting 0 with an empty
capture (I6). Real pty, real `scale-bridge run`, real flock holder."""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import sys
from pathlib import Path

from bridge.portcheck import daemons_holding
from tests.helpers import REPO, exited, run_cli, wait_for, write_config


def test_record_on_a_missing_port_is_66_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "rec.jsonl"
    r = run_cli("record", "--port", str(tmp_path / "ttyUSB5"), "--driver", "tanita", "--seconds", "30", str(out))
    assert r.returncode == 66, r.stderr
    assert b"no such device" in r.stderr and r.stderr.count(b"\n") == 1
    assert not out.exists()
    r = run_cli("scan", "--serial", "--port", str(tmp_path / "ttyUSB5"), "--seconds", "1")
    assert r.returncode == 66


def test_a_port_locked_by_another_program_is_refused(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    holder = os.open(name, os.O_RDWR | os.O_NOCTTY)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what pyserial's exclusive=True does
    try:
        r = run_cli("record", "--port", name, "--driver", "tanita", "--seconds", "30", str(tmp_path / "r.jsonl"))
        assert r.returncode == 69, r.stderr
        assert b"locked by another program" in r.stderr
        r = run_cli("scan", "--serial", "--port", name, "--seconds", "1")
        assert r.returncode == 69 and b"locked" in r.stderr
    finally:
        for fd in (holder, slave, master):
            os.close(fd)


def test_record_refuses_the_port_of_a_running_daemon(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    cfg = write_config(tmp_path / "c.toml", {
        "platform": {"base_url": "http://127.0.0.1:9", "api_key": "sk_test_0123456789"},
        "scale": {"driver": "tanita", "port": name},
        "state": {"dir": str(tmp_path / "state")},
        "log": {"format": "json"},
    })
    daemon = subprocess.Popen([sys.executable, "-m", "bridge", "run", "-c", str(cfg)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: daemon.pid in daemons_holding(name), "the daemon to open the port", alive=exited(daemon))
        r = run_cli("record", "--port", name, "--driver", "tanita", "--seconds", "30", str(tmp_path / "r.jsonl"))
        assert r.returncode == 69, r.stderr
        assert f"in use by scale-bridge (pid {daemon.pid})".encode() in r.stderr
        assert b"systemctl stop scale-bridge" in r.stderr
        # and a second daemon on the same state dir is refused by the state-dir lock
        r = run_cli("run", "-c", str(cfg), timeout=60)
        assert r.returncode == 75 and f"(pid {daemon.pid})".encode() in r.stderr
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        os.close(slave)
        os.close(master)
