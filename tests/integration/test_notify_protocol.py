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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.runtime.housekeeping import STATUS_EVERY_S
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
    # WatchdogSec = the housekeeping loop's status period (2 s): each span between two STATUS= lines is
    # one watchdog interval on the daemon's own clock
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": str(round(STATUS_EVERY_S * 1e6))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--config", str(cfg)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    messages: list[str] = []

    def received(enough: Callable[[], bool]) -> Callable[[], bool]:
        def step() -> bool:  # one datagram (or the socket's 0.2 s timeout) per round
            with contextlib.suppress(TimeoutError):
                messages.append(sock.recv(4096).decode())
            return enough()

        return step

    def enough() -> bool:
        return sum("WATCHDOG=1" in m for m in messages) >= 4 and sum(m.startswith("STATUS=") for m in messages) >= 4

    try:
        wait_for(received(enough), "four WATCHDOG=1 pings and four STATUS= lines", timeout_s=30, interval_s=0,
                 alive=exited(proc))
        running = list(messages)  # before SIGTERM
        assert (tmp_path / "state" / "outbox.db").exists()  # READY came after the outbox was opened
        proc.send_signal(signal.SIGTERM)
        wait_for(received(lambda: any("STOPPING=1" in m for m in messages)), "STOPPING=1", timeout_s=30,
                 interval_s=0)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        os.close(master)
        os.close(slave)
    ready_at = next(i for i, m in enumerate(running) if "READY=1" in m)
    pings = [i for i, m in enumerate(running) if "WATCHDOG=1" in m]
    assert len(pings) >= 4 and all(i > ready_at for i in pings)
    status = [i for i, m in enumerate(running) if m.startswith("STATUS=")]
    assert "pending" in running[status[0]] and "links" in running[status[0]]
    assert any("STOPPING=1" in m for m in messages)
    # Always pinged within WatchdogSec (a missed interval means a restart), asserted on the order of the
    # datagrams, not on this test's clock: the daemon sends STATUS= once per watchdog interval by its own
    # clock, and every interval between two of them holds a WATCHDOG=1.
    for a, b in itertools.pairwise(status):
        assert any("WATCHDOG=1" in m for m in running[a + 1 : b]), f"no ping between two STATUS=: {running[a : b + 1]}"
