"""`scale-bridge check` against each state a monitoring system must tell apart, with a real daemon
(subprocess), the simulator and real outbox files. Nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bridge.outbox import Outbox, Stage
from drivers.tanita import checksum
from tests.helpers import REPO, exited, popen_logged, run_cli, wait_for, write_config


def capture(path: Path, card: str, started_at: str | None = None) -> Path:
    body = f'{{0,16,~0,1,~1,1,~2,1,MO,"MC-780",ID,"{card.zfill(16)}",Wk,77.7,FW,20.0,'
    line = body + "CS," + checksum(body.encode()) + "\r\n"
    header: dict[str, Any] = {"format": "scale-bridge-capture", "version": 1, "driver": "tanita", "link": "serial"}
    if started_at:
        header["started_at"] = started_at
    path.write_text(json.dumps(header) + "\n" + json.dumps({"t": 0, "kind": "rx", "hex": line.encode().hex()}) + "\n")
    return path


def config(tmp: Path, base_url: str, key: str, cap: Path, **health: Any) -> Path:
    return write_config(
        tmp / "config.toml",
        {
            "platform": {"base_url": base_url, "api_key": key, "benefit_key": "BODY_SCAN", "connect_timeout_s": 1},
            "scale": {"driver": "tanita", "capture": str(cap)},
            "state": {"dir": str(tmp / "state")},
            "health": {"pending_age_warning_s": 600, "pending_age_critical_s": 3600, **health},
            "log": {"format": "json"},
        },
    )


def check(cfg: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    r = run_cli("check", "--config", str(cfg), "--json", "--unit", "scale-bridge-test-absent.service", *extra)
    doc = json.loads(r.stdout)
    text = run_cli("check", "--config", str(cfg), "--unit", "scale-bridge-test-absent.service", *extra).stdout.decode()
    return r.returncode, doc, text


def components(doc: dict[str, Any]) -> dict[str, str]:
    return {c["component"]: c["status"] for c in doc["components"]}


class Daemon:
    def __init__(self, cfg: Path, tmp: Path) -> None:
        self.proc = popen_logged(
            [sys.executable, "-m", "bridge", "run", "--config", str(cfg)], tmp / "daemon.log", append=True, cwd=REPO
        )
        status = tmp / "state" / "status.json"
        wait_for(status.exists, "the daemon's status file", timeout_s=30, alive=exited(self.proc))

    def wait_log(self, tmp: Path, text: str) -> None:
        wait_for(lambda: text in (tmp / "daemon.log").read_text(), f"the daemon to log {text}", timeout_s=30,
                 alive=exited(self.proc))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0

    def wait_status(self, tmp: Path, what: str, ok: Any) -> dict[str, Any]:
        """The daemon's status file once ``ok(doc)`` holds (it is rewritten every few seconds)."""

        def doc() -> dict[str, Any] | None:
            try:
                d: dict[str, Any] = json.loads((tmp / "state" / "status.json").read_text())
            except (OSError, ValueError):
                return None
            return d if ok(d) else None

        found: dict[str, Any] = wait_for(doc, what, timeout_s=30, alive=exited(self.proc))
        return found


def test_healthy(tmp_path: Path, simulator: Any) -> None:
    cfg = config(tmp_path, simulator.url, simulator.api_key(1), capture(tmp_path / "c.jsonl", "3220338716"))
    d = Daemon(cfg, tmp_path)
    try:
        d.wait_log(tmp_path, "weighing_posted")
        d.wait_status(
            tmp_path,
            "the status file to show the weighing delivered",
            lambda st: st["uploads"]["delivered"] == 1 and st["queue"]["pending"] == 0,
        )
        code, doc, text = check(cfg)
    finally:
        d.stop()
    assert code == 0, text
    assert doc["status"] == "OK" and text.startswith("SCALE-BRIDGE OK: ")
    assert " | " in text.splitlines()[0] and "pending=0;" in text.splitlines()[0]
    assert components(doc)["platform"] == "OK" and components(doc)["daemon"] == "OK"


def test_daemon_not_running_is_critical(tmp_path: Path, simulator: Any) -> None:
    cfg = config(tmp_path, simulator.url, simulator.api_key(1), capture(tmp_path / "c.jsonl", "3220338716"))
    code, doc, _ = check(cfg)
    assert code == 2 and components(doc)["daemon"] == "CRITICAL"
    d = Daemon(cfg, tmp_path)
    d.wait_log(tmp_path, "weighing_posted")
    d.stop()
    code, doc, text = check(cfg)
    assert code == 2 and "daemon not running" in text


def test_platform_down_warning_then_critical_by_age(tmp_path: Path) -> None:
    fresh = config(tmp_path, "http://127.0.0.1:9", "k" * 20, capture(tmp_path / "c.jsonl", "3220338716"))
    d = Daemon(fresh, tmp_path)
    try:
        d.wait_log(tmp_path, "upload_retry_scheduled")
        code, doc, _ = check(fresh)
        assert code == 1, doc
        assert components(doc)["platform"] == "WARNING" and components(doc)["queue"] == "OK"
    finally:
        d.stop()
    # a weighing committed two hours ago (on the host clock, as every queue age is) and still waiting
    old = tmp_path / "old"
    (old / "state").mkdir(parents=True)
    box = Outbox(old / "state" / "outbox.db")
    box.capture(scale="scale", driver="tanita", body={"rawResults": "{}", "weight": 77.7}, card="3220338716",
                card_source="scale_id", now=time.time() - 7200)
    box.close()
    cfg = config(old, "http://127.0.0.1:9", "k" * 20, capture(old / "c.jsonl", "3220338716"))
    d = Daemon(cfg, old)
    try:
        d.wait_log(old, "weighing_captured")
        code, doc, text = check(cfg)
    finally:
        d.stop()
    assert code == 2 and components(doc)["queue"] == "CRITICAL", text
    assert "oldest 120 min" in text or "oldest 119 min" in text


def test_bad_key_is_critical(tmp_path: Path, simulator: Any) -> None:
    cfg = config(tmp_path, simulator.url, "wrong-key-123456", capture(tmp_path / "c.jsonl", "3220338716"))
    d = Daemon(cfg, tmp_path)
    try:
        d.wait_log(tmp_path, "platform_key_rejected")
        code, doc, text = check(cfg)
    finally:
        d.stop()
    assert code == 2
    assert components(doc)["platform"] == "CRITICAL" and components(doc)["platform_key"] == "CRITICAL"
    assert "wrong-key-123456" not in text and "wrong-key-123456" not in (tmp_path / "daemon.log").read_text()


def test_dead_letters_warn(tmp_path: Path, simulator: Any) -> None:
    cfg = config(tmp_path, simulator.url, simulator.api_key(1), capture(tmp_path / "c.jsonl", "999"))  # unknown card
    d = Daemon(cfg, tmp_path)
    try:
        d.wait_log(tmp_path, "weighing_dead_lettered")
        code, doc, text = check(cfg)
    finally:
        d.stop()
    assert code == 1 and components(doc)["dead_letters"] == "WARNING", text
    assert "1 dead letter(s)" in text


def test_corrupt_db_is_critical_until_acknowledged(tmp_path: Path, simulator: Any) -> None:
    cfg = config(tmp_path, simulator.url, simulator.api_key(1), capture(tmp_path / "c.jsonl", "3220338716"))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "outbox.db").write_bytes(b"this is not an SQLite database" * 100)
    d = Daemon(cfg, tmp_path)
    try:
        d.wait_log(tmp_path, "weighing_posted")
        code, doc, text = check(cfg)
        assert code == 2 and components(doc)["db"] == "CRITICAL", text
        assert "moved aside" in text and list((tmp_path / "state").glob("outbox.db.corrupt-*"))
        r = run_cli("queue", "ack-corruption", "--config", str(cfg))
        assert r.returncode == 0 and b"acknowledged" in r.stdout
        code, doc, text = check(cfg)
    finally:
        d.stop()
    assert components(doc)["db"] == "OK" and code == 0, text


def test_invalid_config_is_critical(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[platform]\nbase_url = 'https://x'\n")
    code, doc, _ = check(bad)
    assert code == 2 and components(doc)["config"] == "CRITICAL"


def test_ambiguous_attempts_warn(tmp_path: Path, simulator: Any) -> None:
    cfg = config(tmp_path, simulator.url, simulator.api_key(1), capture(tmp_path / "c.jsonl", "3220338716"))
    (tmp_path / "state").mkdir()
    ob = Outbox(tmp_path / "state" / "outbox.db")
    wid = ob.capture(
        scale="s", driver="tanita", body={"weight": 1.0, "rawResults": "x"}, card="3220338716", card_source="reader"
    )
    assert wid is not None
    ob.begin(wid, Stage.POST)  # the process "dies" with the POST in flight
    ob.close()
    Outbox(tmp_path / "state" / "outbox.db").close()  # reopened: the unfinished attempt is counted
    _code, doc, text = check(cfg, "--no-platform")
    assert components(doc)["ambiguous"] == "WARNING", text
    assert "1 weighing(s) may exist twice" in text


def test_check_and_queue_without_a_readable_key(tmp_path: Path, simulator: Any) -> None:
    """Run by hand as a user who cannot read the credential: the local checks still run, the platform
    probe is reported as not done (UNKNOWN), and the queue commands work (they need no key)."""
    cap = capture(tmp_path / "c.jsonl", "3220338716")
    cfg = config(tmp_path, simulator.url, simulator.api_key(1), cap)
    d = Daemon(cfg, tmp_path)
    try:
        d.wait_log(tmp_path, "weighing_posted")
    finally:
        d.stop()
    keyless = tmp_path / "keyless.toml"
    keyless.write_text("\n".join(x for x in cfg.read_text().splitlines() if not x.startswith("api_key")))
    code, doc, text = check(keyless)
    assert components(doc)["platform"] == "UNKNOWN" and "no API key readable" in text
    assert components(doc)["db"] == "OK" and components(doc)["queue"] == "OK"
    assert code == 2  # the daemon is stopped: CRITICAL still wins
    r = run_cli("queue", "list", "--state", "all", "--config", str(keyless), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["state"] == "delivered"
