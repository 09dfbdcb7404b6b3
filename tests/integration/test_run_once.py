"""``run --once`` (issue 13 theme 8, installer-audit I14): one weighing from the configured link, what
would be posted, exit. A real pty for the scale, the real socket card source, the real CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.commands.demo import demo_capture_path
from tests.fakes.serial_fakes import PtyDevice, tanita_line
from tests.helpers import REPO, run_cli, wait_for, write_config

CARD = "5550001234"


@pytest.fixture
def dev():  # type: ignore[no-untyped-def]
    d = PtyDevice()
    yield d
    d.close()


def config(tmp_path: Path, scale: dict[str, object], cards: dict[str, object] | None = None) -> Path:
    return write_config(
        tmp_path / "config.toml",
        {
            "platform": {"base_url": "http://127.0.0.1:9", "api_key": "k" * 16, "benefit_key": "BODY_SCAN"},
            "scale": {"driver": "tanita", **scale},
            "cards": cards or {"source": "scale_id"},
            "state": {"dir": str(tmp_path / "state")},
        },
    )


def body_of(stdout: str) -> dict[str, object]:
    start = stdout.index("\n{") + 1
    return json.loads(stdout[start:])  # type: ignore[no-any-return]


def test_live_scale_and_card_reader(tmp_path: Path, dev: PtyDevice) -> None:
    sock = tmp_path / "cards.sock"
    cfg = config(tmp_path, {"port": dev.slave_path}, {"source": "socket", "device": str(sock)})
    err_path = tmp_path / "err"
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--once", "--timeout", "120", "-c", str(cfg)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        try:
            wait_for(
                lambda: "card reader connected" in err_path.read_text(),
                "the card socket",
                timeout_s=60,
                alive=lambda: proc.poll() is not None and err_path.read_text(),
            )
            wait_for(lambda: "scale connected" in err_path.read_text(), "the scale link", timeout_s=60)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
                s.sendall(CARD.encode() + b"\n")
            wait_for(lambda: "card ******1234 read" in err_path.read_text(), "the tap", timeout_s=60)
            dev.write(tanita_line(weight_kg=82.4))
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stdout = out.decode()
    assert proc.returncode == 0, stdout + err_path.read_text()
    assert "weighing  82.4 kg" in stdout
    assert "card      ******1234 from a card read" in stdout and CARD not in stdout
    assert "plausible yes" in stdout and "would post  POST /v1/customers/{member}/weighing" in stdout
    assert body_of(stdout)["weight"] == 82.4
    assert not (tmp_path / "state").exists()  # nothing queued, the state dir untouched


def test_a_capture(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"capture": str(demo_capture_path())}, {"source": "capture"})
    r = run_cli("run", "--once", "-c", str(cfg), timeout=120)
    stdout = r.stdout.decode()
    assert r.returncode == 0, stdout + r.stderr.decode()
    assert "weighing  84.3 kg" in stdout and "from the scale's ID field" in stdout
    assert "DECIMAL ************8716" in stdout  # what the platform would be asked, masked
    assert body_of(stdout)["weight"] == 84.3
    assert "3220338716" not in stdout


def test_an_implausible_weighing_says_it_would_be_parked(tmp_path: Path) -> None:
    path = tmp_path / "c.capture.jsonl"
    header = {
        "format": "scale-bridge-capture",
        "version": 1,
        "driver": "tanita",
        "link": "serial",
        "started_at": "2026-11-22T09:00:00+00:00",
    }
    line = tanita_line(member_id="0000000000012345", weight_kg=999.0)
    path.write_text(json.dumps(header) + "\n" + json.dumps({"t": 0, "kind": "rx", "hex": line.hex()}) + "\n")
    cfg = config(tmp_path, {"capture": str(path)}, {"source": "capture"})
    r = run_cli("run", "--once", "-c", str(cfg), timeout=120)
    stdout = r.stdout.decode()
    assert r.returncode == 0, r.stderr
    assert "plausible no: implausible: weight_kg" in stdout and "would not post" in stdout


def test_a_missing_device_is_66(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"port": str(tmp_path / "ttyUSB9")})
    r = run_cli("run", "--once", "-c", str(cfg), timeout=60)
    assert r.returncode == 66, r.stderr
    assert b"ttyUSB9" in r.stderr and b"Traceback" not in r.stderr


def test_a_missing_capture_is_66(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"capture": str(tmp_path / "gone.jsonl")}, {"source": "capture"})
    r = run_cli("run", "--once", "-c", str(cfg), timeout=60)
    assert r.returncode == 66 and b"gone.jsonl" in r.stderr


def test_no_weighing_within_the_timeout_is_1(tmp_path: Path, dev: PtyDevice) -> None:
    cfg = config(tmp_path, {"port": dev.slave_path})
    r = run_cli("run", "--once", "--timeout", "1", "-c", str(cfg), timeout=60)
    assert r.returncode == 1, r.stderr
    assert b"no weighing within 1 s" in r.stderr and r.stdout == b""


def test_a_capture_without_a_weighing_is_1(tmp_path: Path) -> None:
    path = tmp_path / "c.capture.jsonl"
    header = {"format": "scale-bridge-capture", "version": 1, "driver": "tanita", "link": "serial"}
    path.write_text(json.dumps(header) + "\n" + json.dumps({"t": 0, "kind": "card", "value": CARD}) + "\n")
    cfg = config(tmp_path, {"capture": str(path)}, {"source": "capture"})
    r = run_cli("run", "--once", "-c", str(cfg), timeout=60)
    assert r.returncode == 1 and b"ended without a weighing" in r.stderr
