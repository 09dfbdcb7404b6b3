"""``record --cards SRC``: the card reader recorded beside the scale, on one clock in one capture, so
that ``replay`` pairs them as the daemon did (issue 13 theme 7, installer-audit S2). A real pty for
the scale, the real socket card source, the real CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.fakes.serial_fakes import PtyDevice, tanita_line
from tests.helpers import run_cli, wait_for
from tests.integration.test_record import Recorder, capture_events

CARD = "5550001234"


@pytest.fixture
def dev():  # type: ignore[no-untyped-def]
    d = PtyDevice()
    yield d
    d.close()


def tap(path: Path, number: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(path))
        s.sendall(number.encode() + b"\n")


def test_scale_and_card_reader_in_one_capture_replay_paired(tmp_path: Path, dev: PtyDevice) -> None:
    out = tmp_path / "site.capture.jsonl"
    sock = tmp_path / "cards.sock"
    rec = Recorder(tmp_path, "--port", dev.slave_path, "--driver", "tanita", "--cards", f"socket:{sock}", str(out))
    rec.wait_connected()
    wait_for(lambda: "card reader connected" in rec.stderr(), "the card reader listening", timeout_s=30)
    tap(sock, CARD)
    wait_for(lambda: out.exists() and '"card"' in out.read_text(), "the card event in the capture", timeout_s=30)
    dev.write(tanita_line(weight_kg=81.5), chunk=17, pause_s=0.002)
    wait_for(lambda: '"rx"' in out.read_text(), "the scale's bytes in the capture", timeout_s=30)
    rec.proc.send_signal(2)
    assert rec.wait() == 0, rec.stderr()

    header, events = capture_events(out)
    assert header.extra["cards"] == f"socket:{sock}"
    kinds = [ce.event.kind.value for ce in events]
    assert kinds[0] == "card" and "rx" in kinds  # interleaved in the order they arrived
    ts = [ce.t_s for ce in events]
    assert ts == sorted(ts)  # one clock
    assert events[0].event.payload == CARD.encode()
    assert "and the card reader socket:" in rec.stderr()

    r = run_cli("replay", "--quiet", "--json", str(out), timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    (doc,) = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert doc["card"] == "******1234" and doc["state"] == "pending" and doc["weight"] == 81.5


def test_redacted_card_taps_are_pseudonyms(tmp_path: Path, dev: PtyDevice) -> None:
    out = tmp_path / "site.capture.jsonl"
    sock = tmp_path / "cards.sock"
    rec = Recorder(
        tmp_path, "--port", dev.slave_path, "--driver", "tanita", "--cards", f"socket:{sock}", "--redact", str(out)
    )
    rec.wait_connected()
    wait_for(lambda: "card reader connected" in rec.stderr(), "the card reader listening", timeout_s=30)
    tap(sock, CARD)
    wait_for(lambda: out.exists() and '"card"' in out.read_text(), "the card event in the capture", timeout_s=30)
    rec.proc.send_signal(2)
    assert rec.wait() == 0, rec.stderr()
    _, events = capture_events(out)
    (card,) = [ce.event.payload for ce in events if ce.event.kind.value == "card"]
    assert card != CARD.encode() and len(card) == len(CARD) and CARD not in out.read_text()


def test_a_missing_card_reader_fails_before_recording(tmp_path: Path, dev: PtyDevice) -> None:
    out = tmp_path / "x.capture.jsonl"
    r = run_cli(
        "record",
        "--port",
        dev.slave_path,
        "--driver",
        "tanita",
        "--cards",
        "evdev:/dev/input/nope",
        str(out),
        timeout=60,
    )
    assert r.returncode == 66, r.stderr
    assert b"/dev/input/nope" in r.stderr and b"Traceback" not in r.stderr
    assert not out.exists()


def test_a_bogus_card_source_is_a_usage_error(tmp_path: Path, dev: PtyDevice) -> None:
    r = run_cli("record", "--port", dev.slave_path, "--driver", "tanita", "--cards", "usb:x", str(tmp_path / "o"))
    assert r.returncode == 64 and b"evdev:PATH" in r.stderr
