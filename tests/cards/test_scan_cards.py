"""``scale-bridge scan --cards`` and the pure ``explain`` behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.cli import main
from drivers.cards.explain import explain
from drivers.cards.numbers import ByteOrder, ReaderFormat

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes


@pytest.fixture
def scan(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``scale-bridge scan --cards ARGS`` in-process with ``stdin`` fed through a real pipe."""

    def run(*args: str, stdin: bytes = b"") -> Result:
        r, w = os.pipe()
        os.write(w, stdin)
        os.close(w)
        with os.fdopen(r, "rb", buffering=0) as pipe:
            monkeypatch.setattr(sys, "stdin", pipe)
            code = main(["scan", "--cards", *args])
        out, err = capsys.readouterr()
        return Result(code, out.encode(), err.encode())

    return run


def test_explain_usb_wedge_number() -> None:
    got = {i.reader_format: i for i in explain("3220338716")}
    assert set(got) == {ReaderFormat.DECIMAL_LE, ReaderFormat.DECIMAL, ReaderFormat.EM4100}
    le = got[ReaderFormat.DECIMAL_LE]
    assert le.uid.hex == "1c78f2bf"
    assert le.renderings[ReaderFormat.DECIMAL10] == "0477688511"
    assert le.platform[ByteOrder.LSB] == ("3220338716", "DECIMAL")
    assert le.platform[ByteOrder.MSB] == ("477688511", "DECIMAL")


def test_explain_formats_by_shape() -> None:
    assert [i.reader_format for i in explain("1C78F2BF")] == [ReaderFormat.HEX, ReaderFormat.HEX_REVERSED]
    assert [i.reader_format for i in explain("142,27997")] == [ReaderFormat.W26]
    assert ReaderFormat.FIRST_CASCADE in [i.reader_format for i in explain("1002701960")]
    assert explain("hello") == []


def test_scan_cards_from_stdin_human(scan) -> None:  # type: ignore[no-untyped-def]
    r = scan("--source", "stdin", "--timeout", "30", stdin=b"3220338716\n04C43BC21C2680\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "tap 1  stdin sent '3220338716'" in out
    assert "decimal_le 3220338716" in out and "decimal10 0477688511" in out and "hex 1C78F2BF" in out
    assert 'byte_order="lsb" -> 3220338716 (DECIMAL)' in out
    assert "first_cascade 1002701960" in out  # the 7-byte UID's first cascade level
    assert "2 tap(s)" in out


def test_scan_cards_json_and_count(scan) -> None:  # type: ignore[no-untyped-def]
    r = scan("--source", "stdin", "--json", "--count", "1", stdin=b"0009334109\n0006547886\n")
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)["cards"]
    assert row["text"] == "0009334109"
    em = next(i for i in row["interpretations"] if i["format"] == "em4100")
    assert em == {
        "format": "em4100",
        "uid": "008e6d5d",
        "renderings": {
            "decimal": "9334109",
            "decimal_le": "1567460864",
            "decimal10": "0009334109",
            "hex": "008E6D5D",
            "hex_reversed": "5D6D8E00",
            "em4100": "0009334109",
        },
        "platform": {"msb": ["0009334109", "DECIMAL"]},
    }


def test_scan_cards_errors_are_one_line(scan) -> None:  # type: ignore[no-untyped-def]
    r = scan("--source", "nfc:/dev/x")
    assert r.returncode == 64  # a usage error (README)
    assert r.stderr.decode().count("\n") == 1 and "--source" in r.stderr.decode()
    r = scan("--config", "/nonexistent/config.toml")
    assert r.returncode == 69
    assert "no --source given" in r.stderr.decode()
    for source in ("evdev:/dev/input/event99", "serial:/dev/ttyUSB77"):  # installer audit I6: not exit 0
        r = scan("--source", source, "--timeout", "30")
        assert r.returncode == 66 and b"no such card reader" in r.stderr and r.stderr.count(b"\n") == 1


def test_plain_scan_does_not_wait_for_cards() -> None:
    from bridge.commands import scan as scan_cmd

    assert "cards" in scan_cmd.SCANNERS
    assert "cards" in scan_cmd.INTERACTIVE


def test_console_script_end_to_end() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bridge", "scan", "--cards", "--source", "stdin", "--json"],
        input=b"3220338716\n",
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)["cards"]
    assert row["interpretations"][0]["platform"]["lsb"] == ["3220338716", "DECIMAL"]
