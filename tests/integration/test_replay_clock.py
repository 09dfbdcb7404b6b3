"""A replay runs on the capture's clock: a site capture reproduces its card pairings whatever its date
(installer audit N1/S1: the host clock ticked into pairing expired every replayed card on arrival)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.test_demo import redated

DATES = [
    datetime(2016, 2, 29, 23, 59, tzinfo=UTC),  # years in the past (a leap day, just before midnight)
    datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10),  # today, older than the window
    datetime.now(UTC).replace(microsecond=0),
    datetime(2033, 12, 31, 23, 58, tzinfo=UTC),  # years ahead, across a year boundary
]


def journeys(stdout: str) -> list[tuple[str, str | None, float]]:
    docs = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [(d["state"], d["card"], d["weight"]) for d in docs]


@pytest.mark.parametrize("started_at", DATES, ids=["past", "today-10min", "now", "future"])
def test_replay_keeps_every_card_pairing_at_any_date(tmp_path: Path, started_at: datetime) -> None:
    r = run_cli("replay", "--quiet", "--json", str(redated(tmp_path, started_at)), timeout=120)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert journeys(r.stdout.decode()) == [
        ("pending", "************8716", 84.3),  # the scale's own ID field
        ("pending", "************3440", 66.2),  # the card read 20 s before
        ("pending", "***7886", 70.4),  # the card read 15 s before
        ("unidentified", None, 91.0),  # two minutes after the last card: nobody's
    ]
    assert "card_expired_without_weighing" not in r.stderr.decode()


def test_a_card_nobody_stood_on_expires_on_the_capture_clock(tmp_path: Path) -> None:
    """Within the capture the window is measured between events: a weighing 130 s after a card (the
    demo's window is 120 s) is unidentified, one 100 s after it is paired, at any host date."""
    header = {"format": "scale-bridge-capture", "version": 1, "driver": "tanita", "link": "serial",
              "started_at": "2020-01-01T00:00:00+00:00"}
    line = demo_line(weight_kg=70.0)
    events = [
        {"t": 0.0, "kind": "card", "value": "5550001"},
        {"t": 130.0, "kind": "rx", "hex": line.hex()},
        {"t": 200.0, "kind": "card", "value": "5550002"},
        {"t": 300.0, "kind": "rx", "hex": demo_line(weight_kg=71.0).hex()},
    ]
    path = tmp_path / "window.capture.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in [header, *events]) + "\n", encoding="utf-8")
    config = tmp_path / "c.toml"
    config.write_text(
        '[platform]\nbase_url = "http://127.0.0.1:9"\napi_key = "-"\n'
        '[scale]\ndriver = "tanita"\nport = "/dev/ttyUSB0"\n'
        '[cards]\nsource = "capture"\n[pairing]\nwindow_s = 120\n',
        encoding="utf-8",
    )
    r = run_cli("replay", "--quiet", "--json", "--config", str(config), str(path), timeout=120)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert journeys(r.stdout.decode()) == [("unidentified", None, 70.0), ("pending", "***0002", 71.0)]


def demo_line(*, weight_kg: float) -> bytes:
    from tests.fakes.serial_fakes import tanita_line

    return tanita_line(member_id="0" * 16, weight_kg=weight_kg)


def test_a_live_daemon_rebases_its_capture_to_the_host_clock_beside_a_live_card_reader(tmp_path: Path) -> None:
    """The one mixed case: `run` with `[scale] capture` and a live socket card reader. The capture
    (dated 2020) is played in real time with each event stamped by the host clock when it is played,
    so a card tapped now pairs with the weighing the capture plays a few seconds later."""
    import os
    import signal
    import socket
    import sqlite3
    import subprocess
    import sys

    from tests.helpers import REPO, wait_for, write_config

    header = {"format": "scale-bridge-capture", "version": 1, "driver": "tanita", "link": "serial",
              "started_at": "2020-01-01T00:00:00+00:00"}
    path = tmp_path / "live.capture.jsonl"
    weighing = {"t": 8.0, "kind": "rx", "hex": demo_line(weight_kg=72.5).hex()}
    path.write_text("\n".join(json.dumps(d) for d in [header, weighing]) + "\n", encoding="utf-8")
    sock = tmp_path / "cards.sock"
    state = tmp_path / "state"
    config = write_config(tmp_path / "c.toml", {
        "platform": {"base_url": "http://127.0.0.1:9", "api_key": "k"},
        "scale": {"driver": "tanita", "capture": str(path)},
        "cards": {"source": "socket", "device": str(sock)},
        "pairing": {"window_s": 60},
        "state": {"dir": str(state)},
        "log": {"format": "json"},
    })
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "run", "--config", str(config)], cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ})

    def gone() -> str:
        return "" if proc.poll() is None else f"daemon exited {proc.returncode}"

    try:
        wait_for(sock.exists, "the card socket", alive=gone)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(sock))
            s.sendall(b"4711\n")

        def card_of_first_weighing() -> list[tuple[str | None, str]]:
            if not (state / "outbox.db").exists():
                return []
            db = sqlite3.connect(state / "outbox.db")
            try:
                return list(db.execute("SELECT card, state FROM weighings"))
            except sqlite3.OperationalError:
                return []
            finally:
                db.close()

        wait_for(lambda: bool(card_of_first_weighing()), "the replayed weighing", alive=gone)
        assert card_of_first_weighing() == [("4711", "pending")]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
