"""Signals on a running daemon (subprocess): SIGHUP reloads a valid config and keeps the old one (and
says why) when the new one is invalid; SIGTERM exits 0 with every weighing read committed."""

from __future__ import annotations

import json
import os
import signal
import sys
import tty
from pathlib import Path
from typing import Any

from bridge.outbox import Outbox
from drivers.tanita import checksum
from tests.helpers import REPO, popen_logged, wait_for, write_config


def wait_log(path: Path, text: str, timeout_s: float = 30) -> str:
    """The log's text once ``text`` is in it (a subprocess's JSON lines)."""

    def logged() -> str | None:
        content = path.read_text() if path.exists() else ""
        return content if text in content else None

    return wait_for(logged, f"the log to show {text!r}", timeout_s=timeout_s)  # type: ignore[no-any-return]


def line(card: str, weight: float) -> bytes:
    body = f'{{0,16,~0,1,~1,1,~2,1,MO,"MC-780",ID,"{card.zfill(16)}",Wk,{weight:.1f},FW,20.0,'
    return (body + "CS," + checksum(body.encode()) + "\r\n").encode()


def test_sighup_reload_and_sigterm_commit(tmp_path: Path, simulator: Any) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    sections: dict[str, dict[str, Any]] = {
        "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1), "benefit_key": "BODY_SCAN"},
        "scale": {"driver": "tanita", "port": os.ttyname(slave)},
        "state": {"dir": str(tmp_path / "state")},
        "log": {"format": "json"},
    }
    cfg = write_config(tmp_path / "config.toml", sections)
    log = tmp_path / "daemon.log"
    proc = popen_logged([sys.executable, "-m", "bridge", "run", "--config", str(cfg)], log, cwd=REPO)
    try:
        wait_log(log, "link_connected")
        sections["pairing"] = {"window_s": 15}
        write_config(cfg, sections)
        proc.send_signal(signal.SIGHUP)
        wait_log(log, "config_reloaded")
        cfg.write_text("[platform]\nbase_url = 'https://x'\nmystery = 1\n")
        proc.send_signal(signal.SIGHUP)
        content = wait_log(log, "reload_rejected")
        rejected = next(json.loads(x) for x in content.splitlines() if '"reload_rejected"' in x)
        assert any("platform.mystery: unknown key" in p for p in rejected["problems"])
        assert proc.poll() is None  # still running on the old config
        # weighings written right before SIGTERM are committed before exit
        os.write(master, line("3220338716", 70.1) + line("1173673668653440", 60.2))
        wait_log(log, '"weighing_captured"')
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)
    ob = Outbox(tmp_path / "state" / "outbox.db")
    try:
        weights = sorted(j.body["weight"] for j in ob.jobs(limit=10))
    finally:
        ob.close()
    assert weights == [60.2, 70.1]
    content = log.read_text()
    assert "daemon_stopped" in content
    assert simulator.api_key(1) not in content
