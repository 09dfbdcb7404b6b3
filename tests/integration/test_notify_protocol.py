"""The daemon speaks the sd_notify protocol to a NOTIFY_SOCKET the test binds (as systemd would):
READY=1 only after the outbox is open and links started, WATCHDOG=1 pings at half the interval while
the pipeline is alive, STATUS= lines, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import REPO, exited, wait_for, write_config


def test_ready_watchdog_status_stopping(tmp_path: Path, simulator: Any) -> None:
    master, slave = os.openpty()
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    cfg = write_config(
        tmp_path / "config.toml",
        {
            "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1)},
            "scale": {"driver": "tanita", "port": os.ttyname(slave)},
            "state": {"dir": str(tmp_path / "state")},
            "log": {"format": "json"},
        },
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--config", str(cfg)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    messages: list[tuple[float, str]] = []

    def received(enough: Callable[[], bool]) -> Callable[[], bool]:
        def step() -> bool:  # one datagram (or the socket's 0.2 s timeout) per round
            with contextlib.suppress(TimeoutError):
                messages.append((time.monotonic(), sock.recv(4096).decode()))
            return enough()

        return step

    try:
        wait_for(received(lambda: sum("WATCHDOG=1" in m for _, m in messages) >= 4), "four WATCHDOG=1 pings",
                 timeout_s=30, interval_s=0, alive=exited(proc))
        ready_at = next(t for t, m in messages if "READY=1" in m)
        assert (tmp_path / "state" / "outbox.db").exists()  # READY came after the outbox was opened
        proc.send_signal(signal.SIGTERM)
        wait_for(received(lambda: any("STOPPING=1" in m for _, m in messages)), "STOPPING=1", timeout_s=30,
                 interval_s=0)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        os.close(master)
        os.close(slave)
    pings = [t for t, m in messages if "WATCHDOG=1" in m]
    assert len(pings) >= 4 and all(t >= ready_at for t in pings)
    status = [m for _, m in messages if m.startswith("STATUS=")]
    assert status and "pending" in status[0] and "links" in status[0]
    assert any("STOPPING=1" in m for _, m in messages)
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < 2.0  # always pinged within WatchdogSec=2 s (a missed interval means a restart)
