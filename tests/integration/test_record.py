"""``scale-bridge record``: a live pty recorded to a capture file, then ``decode`` and ``replay`` of that
file give the weighings that were sent; ``--redact`` leaves no original ID but still decodes; a killed
recorder leaves a valid file; MT-SICS polls are recorded as ``tx``. Plus the pure redaction pieces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.commands.record import Redactor
from drivers.capture import read_capture
from drivers.errors import CaptureError
from drivers.events import EventKind, LinkEvent
from drivers.redact import pseudonym
from drivers.tanita import checksum, parse, redact_line
from tests.fakes import bluez_fixture
from tests.fakes.bluez_fixture import FakeBluezProcess, PrivateBus
from tests.fakes.serial_fakes import PtyDevice, mt_sics_line, tanita_line
from tests.helpers import REPO, exited, run_cli, wait_for

MEMBER = "0000003220338716"
SERIAL_NO = "A1234567"
CARD_CC = "04A1B2C3D4E5F607"


def line_with_cc(weight_kg: float) -> bytes:
    body = (
        '{0,16,~0,1,~1,1,~2,1,MO,"MC-980",SN,"' + SERIAL_NO + '",ID,"' + MEMBER + '",CC,"' + CARD_CC + '",'
        f'Da,"22/11/2026",TI,"11:00",GE,2,AG,48,Hm,162.0,Wk,{weight_kg:.1f},FW,31.0,'
    )
    return (body + "CS," + checksum(body.encode()) + "\r\n").encode()


class Recorder:
    def __init__(self, tmp: Path, *args: str) -> None:
        self.err_path = tmp / "record.err"
        self.err = self.err_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "record", *args], cwd=REPO, stderr=self.err, stdout=subprocess.DEVNULL
        )

    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_connected(self) -> None:
        wait_for(lambda: "link connected" in self.stderr(), "the recorder to connect", timeout_s=30, interval_s=0.02,
                 alive=exited(self.proc, self.stderr))

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.err.close()


def capture_events(path: Path) -> tuple[Any, list[Any]]:
    header, events = read_capture(path.read_text(encoding="utf-8").splitlines())
    return header, list(events)


def rx_bytes(events: list[Any]) -> bytes:
    return b"".join(ce.event.payload for ce in events if ce.event.kind is EventKind.RX)


def wait_for_rx(path: Path, n_bytes: int) -> None:
    def recorded() -> bool:
        try:
            return len(rx_bytes(capture_events(path)[1])) >= n_bytes
        except (FileNotFoundError, CaptureError):  # not written yet
            return False

    wait_for(recorded, f"{n_bytes} bytes in the recording", timeout_s=20)


def decoded_weights(path: Path) -> list[float]:
    res = run_cli("decode", "--driver", "tanita", str(path))
    assert res.returncode == 0, res.stderr.decode()
    return [json.loads(x)["weight"] for x in res.stdout.decode().splitlines()]


def replayed(path: Path) -> list[dict[str, Any]]:
    res = run_cli("replay", "--quiet", "--json", str(path))
    assert res.returncode == 0, res.stderr.decode()
    return [json.loads(x) for x in res.stdout.decode().splitlines() if x.startswith("{")]


@pytest.fixture
def dev():  # type: ignore[no-untyped-def]
    d = PtyDevice()
    yield d
    d.close()


def test_record_then_decode_and_replay_give_the_same_weighings(tmp_path: Path, dev: PtyDevice) -> None:
    out = tmp_path / "site.capture.jsonl"
    lines = [tanita_line(MEMBER, 84.3, 21.4, "09:15"), tanita_line(MEMBER, 84.1, 21.2, "09:20")]
    rec = Recorder(
        tmp_path,
        "--port",
        dev.slave_path,
        "--driver",
        "tanita",
        str(out),
        "--seconds",
        "2.5",
        "--note",
        "reception MC-780, two weighings",
    )
    rec.wait_connected()
    dev.write(lines[0], chunk=13, pause_s=0.003)  # chunks, as a USB adapter delivers them
    time.sleep(0.3)
    dev.write(lines[1])
    assert rec.wait() == 0, rec.stderr()  # --seconds ended it

    header, events = capture_events(out)
    assert header.driver == "tanita" and header.link == f"serial:{dev.slave_path}"
    assert header.note == "reception MC-780, two weighings" and header.started_at is not None
    assert rx_bytes(events) == b"".join(lines)  # every byte, in order, nothing added
    ts = [ce.t_s for ce in events]
    assert ts == sorted(ts) and len(set(ts)) >= 3  # chunks keep their own arrival times

    assert decoded_weights(out) == [84.3, 84.1]
    rows = replayed(out)
    assert [(r["weight"], r["percentBodyFat"], r["device_time"]) for r in rows] == [
        (84.3, 21.4, "2026-11-22T09:15:00"),
        (84.1, 21.2, "2026-11-22T09:20:00"),
    ]
    assert "stopped after" in rec.stderr()


def test_redacted_recording_has_no_original_id_and_still_decodes(tmp_path: Path, dev: PtyDevice) -> None:
    out = tmp_path / "support.capture.jsonl"
    rec = Recorder(tmp_path, "--port", dev.slave_path, "--driver", "tanita", str(out), "--redact")
    rec.wait_connected()
    sent = line_with_cc(70.2) + b"E2\r\n" + line_with_cc(70.4)
    dev.write(sent, chunk=9)
    wait_for_rx(out, len(sent) - 4)  # held until each line's end: wait for the whole stream
    rec.proc.send_signal(signal.SIGTERM)
    assert rec.wait() == 0, rec.stderr()

    text = out.read_text()
    header, events = capture_events(out)
    data = rx_bytes(events)
    for secret in (MEMBER, SERIAL_NO, CARD_CC, MEMBER[-10:]):
        assert secret.encode() not in data and secret not in text
    assert header.extra.get("redacted") is True
    assert len(data) == len(sent)  # same lengths, same structure
    assert b"E2\r\n" in data  # device reports untouched
    readings = [parse(x) for x in data.split(b"\r\n") if x.startswith(b"{")]
    assert [r.measurement.weight_kg for r in readings] == [70.2, 70.4]  # type: ignore[union-attr]
    ids = {r.device_id for r in readings}  # type: ignore[union-attr]
    assert len(ids) == 1 and len(next(iter(ids))) == 16 and next(iter(ids)).isdigit()  # stable pseudonym
    assert decoded_weights(out) == [70.2, 70.4]


def test_killed_recorder_leaves_a_valid_file(tmp_path: Path, dev: PtyDevice) -> None:
    out = tmp_path / "crash.capture.jsonl"
    rec = Recorder(tmp_path, "--port", dev.slave_path, "--driver", "tanita", str(out))
    rec.wait_connected()
    dev.write(tanita_line(MEMBER, 77.7))
    wait_for_rx(out, len(tanita_line(MEMBER, 77.7)))
    rec.proc.kill()
    rec.wait()
    assert decoded_weights(out) == [77.7]


def test_mt_sics_polls_are_recorded_as_tx(tmp_path: Path, dev: PtyDevice) -> None:
    out = tmp_path / "balance.capture.jsonl"
    stop = threading.Event()

    def balance() -> None:  # answers each poll with a stable weight
        n = 0
        while not stop.is_set():
            got = dev.read_available(0.05)
            for _ in range(got.count(b"S\r\n")):
                dev.write(mt_sics_line(60.0 + n))
                n += 1

    rec = Recorder(tmp_path, "--port", dev.slave_path, "--driver", "mt_sics", str(out), "--seconds", "2.5")
    t = threading.Thread(target=balance, daemon=True)
    t.start()
    try:
        assert rec.wait() == 0, rec.stderr()
    finally:
        stop.set()
        t.join(2)
    _, events = capture_events(out)
    tx = [ce for ce in events if ce.event.kind is EventKind.TX]
    rx = [ce for ce in events if ce.event.kind is EventKind.RX]
    assert len(tx) >= 2 and all(ce.event.payload == b"S\r\n" for ce in tx)
    assert rx and events.index(tx[0]) < events.index(rx[0])  # the poll came first, then the answer
    res = run_cli("decode", "--driver", "mt_sics", str(out))
    assert res.returncode == 0, res.stderr.decode()
    weights = [json.loads(x)["weight"] for x in res.stdout.decode().splitlines()]
    assert weights[:2] == [60.0, 61.0]


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import main

    existing = tmp_path / "exists.jsonl"
    existing.write_text("keep me\n")
    for args in (
        ["--driver", "nope", str(tmp_path / "x")],
        ["--driver", "tanita", str(tmp_path / "x")],  # serial driver without --port
        ["--driver", "mi_scale", "--port", "/dev/null", str(tmp_path / "x")],  # BLE driver with a port
        ["--driver", "tanita", "--port", "/dev/null", str(existing)],  # would overwrite
    ):
        assert main(["record", *args]) == 64
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert existing.read_text() == "keep me\n"


# ---------------------------------------------------------------------------------------------- pure parts


def test_redact_line_recomputes_checksum_keeps_everything_else() -> None:
    key = os.urandom(32)
    original = line_with_cc(70.2)
    red = redact_line(original, lambda v: pseudonym(v, key))
    assert len(red) == len(original) and red.endswith(b"\r\n")
    before, after = parse(original.rstrip(b"\r\n")), parse(red.rstrip(b"\r\n"))
    assert after.measurement == before.measurement  # type: ignore[union-attr]
    assert after.fields["SN"] != SERIAL_NO and after.fields["CC"] != CARD_CC  # type: ignore[union-attr]
    assert redact_line(original, lambda v: pseudonym(v, key)) == red  # stable for one key
    assert redact_line(original, lambda v: pseudonym(v, os.urandom(32))) != red  # keyed per recording


def test_redact_line_leaves_unset_ids_reports_and_bad_records_decodable_as_before() -> None:
    key = b"k" * 32
    unset = tanita_line("0000000000000000", 80.0)
    assert redact_line(unset, lambda v: pseudonym(v, key)) == unset
    assert redact_line(b"E1\r\n", lambda v: pseudonym(v, key)) == b"E1\r\n"
    bad = line_with_cc(70.2).replace(b"CS,", b"CS,0")  # wrong checksum stays wrong
    red = redact_line(bad, lambda v: pseudonym(v, key))
    assert MEMBER.encode() not in red and red.split(b"CS,")[1] == bad.split(b"CS,")[1]
    torn = b'noise ID,"' + MEMBER.encode() + b'",Wk,70'  # no CS: still masked
    assert MEMBER.encode() not in redact_line(torn, lambda v: pseudonym(v, key))


def test_pseudonyms_keep_length_and_kind_and_are_never_unset() -> None:
    key = b"x" * 32
    for value in ("3220338716", "04a1b2c3", "04A1B2C3", "AB-12", "1"):
        p = pseudonym(value, key)
        assert len(p) == len(value) and p != value and set(p) != {"0"}
    assert pseudonym("3220338716", key).isdigit()


def test_redactor_masks_card_events_and_d5_and_holds_rx_until_line_end() -> None:
    r = Redactor(b"y" * 32)
    now = datetime.now(UTC)
    (card,) = r.event(LinkEvent(EventKind.CARD, b"3220338716", now))
    assert card.payload != b"3220338716" and len(card.payload) == 10 and card.payload.isdigit()
    (tx,) = r.event(LinkEvent(EventKind.TX, b"D50000003220338716\r\n", now))
    assert tx.payload.startswith(b"D5") and tx.payload.endswith(b"\r\n") and b"3220338716" not in tx.payload
    line = tanita_line(MEMBER, 80.0)
    assert r.event(LinkEvent(EventKind.RX, line[:50], now)) == []
    (rx,) = r.event(LinkEvent(EventKind.RX, line[50:], now))
    assert len(rx.payload) == len(line) and MEMBER.encode() not in rx.payload
    assert r.event(LinkEvent(EventKind.RX, b"tail without end", now)) == []
    (flushed,) = r.flush(now)
    assert flushed.payload == b"tail without end"


# ---------------------------------------------------------------------------------------------- BLE

private_bus = bluez_fixture.private_bus
fake_bluez = bluez_fixture.fake_bluez
MI_ADDR = "5C:CA:D3:00:00:01"
MI_V2 = "0226e607020e10293af7019a38"  # Mi Body Composition Scale v2 advert (as in test_ble_scan_cli)


@pytest.mark.ble
def test_record_ble_writes_what_the_link_yields(
    tmp_path: Path, fake_bluez: FakeBluezProcess, private_bus: PrivateBus
) -> None:
    out = tmp_path / "mi.capture.jsonl"
    err = tmp_path / "err"
    with err.open("wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge",
                "record",
                "--driver",
                "mi_scale",
                "--address",
                MI_ADDR,
                str(out),
                "--seconds",
                "3",
            ],
            cwd=REPO,
            stderr=fh,
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": private_bus.address},
        )
        fake_bluez.call("advertise", address=MI_ADDR, name="MIBFS", service_data={"181b": MI_V2}, rssi=-60)
        assert proc.wait(timeout=30) == 0, err.read_text()
    header, events = capture_events(out)
    assert header.driver == "mi_scale" and header.link.startswith("ble:")
    adv = [ce.event for ce in events if ce.event.kind is EventKind.ADV]
    assert adv and adv[0].payload.hex() == MI_V2 and adv[0].address == MI_ADDR
    assert adv[0].channel.startswith("0000181b")
    res = run_cli("decode", "--driver", "mi_scale", str(out))
    assert res.returncode == 0, res.stderr.decode()
    direct = run_cli("decode", "--driver", "mi_scale", input=f"181b {MI_V2}\n".encode())

    def bodies(out: bytes) -> list[dict[str, Any]]:
        return [{k: v for k, v in json.loads(x).items() if k != "rawResults"} for x in out.splitlines()]

    assert bodies(res.stdout)[0] == bodies(direct.stdout)[0]
    assert bodies(res.stdout)[0]["weight"] > 0
