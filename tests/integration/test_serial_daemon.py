"""The daemon subprocess on live serial links: a USB adapter unplugged and replugged behind its
``/dev/serial/by-id`` link (the next weighing still reaches the platform simulator), and an MT-SICS
balance that only answers polls (the daemon polls it)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.fakes.serial_fakes import PtyDevice, mt_sics_line, tanita_line
from tests.helpers import wait_for, write_config
from tests.integration.test_e2e_serial import start_daemon, stop

#: failure guard for the reconnect (the link's backoff is capped at [scale] reconnect_max_s = 5 s)
RECONNECT_DEADLINE_S = 20.0


def log_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.startswith("{")]


def connects(path: Path) -> list[dict[str, Any]]:
    return [e for e in log_events(path) if e["event"] == "link_connected" and e.get("link", "").startswith("scale:")]


def test_daemon_survives_unplug_and_replug(tmp_path: Path, simulator: Any) -> None:
    by_id = tmp_path / "serial" / "by-id"
    by_id.mkdir(parents=True)
    dev = PtyDevice(symlink=by_id / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0")
    cfg = write_config(
        tmp_path / "config.toml",
        {
            "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1), "benefit_key": "BODY_SCAN"},
            "scale": {"name": "plug", "driver": "tanita", "port": dev.path, "reconnect_max_s": 5.0},
            "state": {"dir": str(tmp_path / "state")},
            "log": {"format": "json", "level": "info"},
        },
    )
    log = tmp_path / "daemon.log"
    proc = start_daemon(cfg, log)
    try:
        wait_for(lambda: connects(log), "the daemon to open the port", timeout_s=30)
        dev.write(tanita_line("0000003220338716", 80.4, time_hhmm="08:00"))
        wait_for(lambda: simulator.call(lambda: len(simulator.state.weighings)) == 1, "weighing 1", timeout_s=30)

        dev.unplug()
        wait_for(lambda: any(e["event"] == "link_disconnected" for e in log_events(log)), "the unplug", timeout_s=10)
        time.sleep(1.5)  # the adapter stays away: the daemon retries with growing backoff
        assert len(connects(log)) == 1
        assert proc.poll() is None  # an unplugged scale is not a reason to exit

        dev.replug()
        back = time.monotonic()
        wait_for(lambda: len(connects(log)) == 2, "the reconnect after replug", timeout_s=RECONNECT_DEADLINE_S)
        seen_after_s = time.monotonic() - back
        dev.write(tanita_line("0000003220338716", 80.9, time_hhmm="08:05"))
        wait_for(
            lambda: simulator.call(lambda: len(simulator.state.weighings)) == 2,
            "weighing 2 after replug", timeout_s=30,
        )
    finally:
        code = stop(proc)
        dev.close()
    assert code == 0, log.read_text()[-3000:]
    got = simulator.call(lambda: [(w["customerId"], w["body"]["weight"]) for w in simulator.state.weighings])
    assert got == [(1001, 80.4), (1001, 80.9)]
    events = log_events(log)
    _, second = connects(log)
    gone = next(e for e in events if e["event"] == "link_disconnected")
    stamp = datetime.fromisoformat
    print(
        f"\ndaemon: reconnect seen {seen_after_s:.2f} s after replug; "
        f"logged {(stamp(second['timestamp']) - stamp(gone['timestamp'])).total_seconds():.2f} s after the unplug"
    )


def test_daemon_polls_mt_sics_balance(tmp_path: Path, simulator: Any) -> None:
    dev = PtyDevice()
    polls: list[bytes] = []
    stop_balance = threading.Event()

    def balance() -> None:  # answers S with a stable weight, once, then says "busy" (S I)
        answered = False
        while not stop_balance.is_set():
            got = dev.read_available(0.05)
            for _ in range(got.count(b"S\r\n")):
                polls.append(b"S\r\n")
                dev.write(b"S I\r\n" if answered else mt_sics_line(75.4))
                answered = True

    t = threading.Thread(target=balance, daemon=True)
    t.start()
    cfg = write_config(
        tmp_path / "config.toml",
        {
            "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1)},
            "scale": {"name": "balance", "driver": "mt_sics", "port": dev.slave_path},
            "pairing": {"unidentified": "park"},
            "state": {"dir": str(tmp_path / "state")},
            "log": {"format": "json", "level": "debug"},
        },
    )
    log = tmp_path / "daemon.log"
    proc = start_daemon(cfg, log)
    try:
        wait_for(
            lambda: any(e["event"] == "weighing_captured" for e in log_events(log)),
            "the polled weighing", timeout_s=30,
        )
        wait_for(lambda: len(polls) >= 2, "a second poll", timeout_s=10)
    finally:
        code = stop(proc)
        stop_balance.set()
        t.join(2)
        dev.close()
    assert code == 0, log.read_text()[-3000:]
    captured = [e for e in log_events(log) if e["event"] == "weighing_captured"]
    assert len(captured) == 1 and captured[0]["weight_kg"] == 75.4 and captured[0]["state"] == "unidentified"
