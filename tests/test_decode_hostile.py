"""decode with hostile or unusual input (issue 14: H2 through the CLI, M1, L9, I8)."""

from __future__ import annotations

import json
from pathlib import Path

from drivers.tanita import checksum
from tests.helpers import SHARED, run_cli


def test_a_control_byte_is_one_rejected_frame_and_the_stream_goes_on() -> None:
    r = run_cli("decode", "--driver", "ad_indicator", "-", input=b"ST,GS,+\t075.40kg\r\nST,GS,+0080.20kg\r\n")
    assert r.returncode == 65 and b"Traceback" not in r.stderr and b"rejected frame" in r.stderr
    assert [json.loads(x)["weight"] for x in r.stdout.splitlines()] == [80.2]


def test_an_implausible_reading_is_rejected_not_printed() -> None:
    b = b'{0,16,MO,"MC-780",ID,"0000003220338716",Wk,10000.0,FW,150.0,Hm,999.0,IF,99999,rB,-2000,'
    r = run_cli("decode", "--driver", "tanita", "-", input=b + b"CS," + checksum(b).encode() + b"\r\n")
    assert r.returncode == 65 and r.stdout == b""
    assert b"rejected reading: implausible: weight_kg = 10000" in r.stderr and b"0 weighings" in r.stderr


def test_a_non_weighing_is_marked() -> None:
    r = run_cli("decode", "--driver", "ad_indicator", "-", input=b"ST,GS,-0005.00kg\r\n")
    doc = json.loads(r.stdout)
    assert doc["weighing"] is False and "not a weighing" in doc["note"] and r.returncode == 0


def test_discarded_bytes_are_reported_and_memory_stays_bounded(tmp_path: Path) -> None:
    p = tmp_path / "a.bin"
    p.write_bytes(b"A" * 10_000_000)
    r = run_cli("decode", "--driver", "tanita", str(p))
    assert r.returncode == 65 and b"discarded 10000000 bytes" in r.stderr and r.stdout == b""


def test_empty_input_says_0_weighings() -> None:
    r = run_cli("decode", "--driver", "tanita", "-", input=b"")
    assert r.returncode == 0 and r.stderr.strip() == b"0 weighings"


def test_the_shared_vector_format_is_recognised() -> None:
    path = SHARED / "vectors" / "tanita.jsonl"
    r = run_cli("decode", str(path))  # no --driver: each vector names its own
    assert b"Traceback" not in r.stderr and b"test-vector file" in r.stderr
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert out and all("vector" in d for d in out)
    names = {json.loads(x)["name"] for x in path.read_text().splitlines() if x.strip()}
    assert {d["vector"] for d in out} <= names


def test_driver_defaults_to_the_capture_header_and_a_mismatch_is_warned(tmp_path: Path) -> None:
    line = b"ST,GS,+0075.40kg\r\n"
    p = tmp_path / "c.jsonl"
    head = {"format": "scale-bridge-capture", "version": 1, "driver": "ad_indicator", "link": "serial"}
    p.write_text(json.dumps(head) + "\n" + json.dumps({"t": 0, "kind": "rx", "hex": line.hex()}) + "\n")
    r = run_cli("decode", str(p))
    assert r.returncode == 0 and json.loads(r.stdout)["weight"] == 75.4 and b"warning" not in r.stderr
    r = run_cli("decode", "--driver", "mt_sics", str(p))
    assert b"warning: the capture header says driver 'ad_indicator'" in r.stderr and b"Traceback" not in r.stderr


def test_raw_input_without_a_driver_is_a_usage_error() -> None:
    r = run_cli("decode", "-", input=b"ST,GS,+0075.40kg\r\n")
    assert r.returncode == 64 and b"--driver is required" in r.stderr
