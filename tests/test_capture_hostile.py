"""M2 (issue 14): hostile capture files give a CaptureError naming the line, never another exception;
``decode`` and ``replay`` exit 65 (bad input) or 66 (missing file) with one line, never a traceback
or a hang. The cases are the audit's (shared/reports/hostile-input-audit-2026-12.md, M2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.capture import read_capture, read_capture_bytes
from drivers.errors import CaptureError
from drivers.links.replay import ReplayLink
from tests.helpers import run_cli

HEADER = '{"format":"scale-bridge-capture","version":1,"driver":"tanita","link":"serial"}'
MI_HEADER = '{"format":"scale-bridge-capture","version":1,"driver":"mi_scale","link":"ble"}'
GOOD = '{"t":0,"kind":"rx","hex":"00"}'

BAD_EVENTS = {
    "t_nan": '{"t":NaN,"kind":"rx","hex":"00"}',
    "t_inf": '{"t":Infinity,"kind":"rx","hex":"00"}',
    "t_minus_inf": '{"t":-Infinity,"kind":"rx","hex":"00"}',
    "t_1e308": '{"t":1e308,"kind":"rx","hex":"00"}',
    "t_1e12": '{"t":1e12,"kind":"rx","hex":"00"}',
    "t_401_digits": '{"t":1' + "0" * 400 + ',"kind":"rx","hex":"00"}',
    "t_bool": '{"t":true,"kind":"rx","hex":"00"}',
    "deep_list": "[" * 100_000,
    "deep_in_key": '{"t":0,"kind":"rx","hex":"00","x":' + "[" * 100_000 + "]" * 100_000 + "}",
    "address_int": '{"t":0,"kind":"adv","hex":"0224b2070101000000fc03ac3a","address":5,"channel":"181b"}',
    "address_list": '{"t":0,"kind":"adv","hex":"00","address":["a"],"channel":"181b"}',
    "channel_obj": '{"t":0,"kind":"notify","hex":"00","channel":{"a":1}}',
    "name_int": '{"t":0,"kind":"adv","hex":"00","name":7}',
    "scale_list": '{"t":0,"kind":"rx","hex":"00","scale":[1]}',
    "kind_list": '{"t":0,"kind":["rx"],"hex":"00"}',
    "hex_int": '{"t":0,"kind":"rx","hex":5}',
    "value_nonascii": '{"t":0,"kind":"card","value":"\\u00e9\\u0000"}',
}


def _lines(*lines: str) -> list[str]:
    return [x + "\n" for x in lines]


@pytest.mark.parametrize("name", sorted(BAD_EVENTS))
def test_bad_event_is_a_capture_error_with_its_line(name: str) -> None:
    header = MI_HEADER if "address" in name else HEADER
    _, events = read_capture(_lines(header, GOOD, BAD_EVENTS[name]), start=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(CaptureError) as exc:
        list(events)
    assert exc.value.line_no == 3, str(exc.value)
    assert str(exc.value).startswith("line 3: ")


@pytest.mark.parametrize(
    ("started_at", "line_no"),
    [("9999-12-31T23:59:59+00:00", 2), ("8999-12-31T23:59:59+00:00", 2), ("0001-01-01T00:00:00+14:00", 1)],
)
def test_started_at_at_the_edge_of_time_is_a_capture_error(started_at: str, line_no: int) -> None:
    header = json.dumps(json.loads(HEADER) | {"started_at": started_at})
    with pytest.raises(CaptureError) as exc:
        _, events = read_capture(_lines(header, '{"t":5,"kind":"rx","hex":"00"}'))
        list(events)
    assert exc.value.line_no == line_no


@pytest.mark.parametrize(
    "header",
    [
        "[" * 100_000,
        '{"format":"scale-bridge-capture","version":NaN,"driver":"tanita","link":"serial"}',
        '{"format":"scale-bridge-capture","version":true,"driver":"tanita","link":"serial"}',
        HEADER[:-1] + ',"note":' + "[" * 50_000 + "]" * 50_000 + "}",
    ],
)
def test_bad_header_is_a_capture_error_on_line_1(header: str) -> None:
    with pytest.raises(CaptureError) as exc:
        read_capture(_lines(header))
    assert exc.value.line_no == 1


def test_rssi_of_the_wrong_type_is_dropped_not_taken() -> None:
    lines = _lines(HEADER, '{"t":0,"kind":"adv","hex":"00","rssi":true}', '{"t":0,"kind":"adv","hex":"00","rssi":-60}')
    _, events = read_capture(lines)
    assert [e.event.rssi for e in events] == [None, -60]


def test_invalid_utf8_names_its_line() -> None:
    data = [HEADER.encode() + b"\n", GOOD.encode() + b"\n", b'{"t":0,"kind":"rx","hex":"00","x":"\xff\xfe"}\n']
    _, events = read_capture_bytes(data)
    with pytest.raises(CaptureError) as exc:
        list(events)
    assert exc.value.line_no == 3 and "UTF-8" in str(exc.value)


def test_replay_link_reports_the_bad_line(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_bytes((HEADER + "\n" + GOOD + "\n").encode() + b'{"t":0,"kind":"rx","hex":"\xff"}\n')

    async def go() -> None:
        async for _ in ReplayLink(p).events():
            pass

    import asyncio

    with pytest.raises(CaptureError) as exc:
        asyncio.run(go())
    assert exc.value.line_no == 3 and "c.jsonl" in str(exc.value)


@pytest.mark.parametrize("name", ["t_nan", "t_1e12", "deep_list", "address_int"])
def test_decode_and_replay_exit_65_naming_the_line(tmp_path: Path, name: str) -> None:
    header = MI_HEADER if "address" in name else HEADER
    driver = "mi_scale" if "address" in name else "tanita"
    p = tmp_path / "bad.jsonl"
    p.write_text(HEADER if False else header + "\n" + BAD_EVENTS[name] + "\n")
    r = run_cli("decode", "--driver", driver, str(p), timeout=60)
    assert r.returncode == 65, r.stderr
    assert b"Traceback" not in r.stderr and b"line 2" in r.stderr
    r = run_cli("replay", "--quiet", str(p), timeout=60)
    assert r.returncode == 65, r.stderr
    assert b"Traceback" not in r.stderr and b"line 2" in r.stderr


def test_started_at_9999_through_the_cli(tmp_path: Path) -> None:
    p = tmp_path / "late.jsonl"
    head = json.loads(HEADER) | {"started_at": "9999-12-31T23:59:59+00:00"}
    p.write_text(json.dumps(head) + '\n{"t":5,"kind":"rx","hex":"00"}\n')
    for args in (("decode", "--driver", "tanita", str(p)), ("replay", "--quiet", str(p))):
        r = run_cli(*args, timeout=60)
        assert r.returncode == 65 and b"Traceback" not in r.stderr and b"line 2" in r.stderr, (args, r.stderr)


def test_invalid_utf8_and_missing_file_through_the_cli(tmp_path: Path) -> None:
    p = tmp_path / "u.jsonl"
    p.write_bytes(HEADER.encode() + b'\n{"t":0,"kind":"rx","hex":"00","x":"\xff"}\n')
    for args in (("decode", "--driver", "tanita", str(p)), ("replay", "--quiet", str(p))):
        r = run_cli(*args, timeout=60)
        assert r.returncode == 65 and b"Traceback" not in r.stderr and b"line 2" in r.stderr, (args, r.stderr)
    missing = str(tmp_path / "missing.jsonl")
    for args in (("decode", "--driver", "tanita", missing), ("replay", "--quiet", missing)):
        r = run_cli(*args, timeout=60)
        assert r.returncode == 66 and b"Traceback" not in r.stderr, (args, r.stderr)
