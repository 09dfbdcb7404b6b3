"""Proof (issue 14, M2): a hypothesis fuzzer of capture files - headers and events - for the real
``decode`` and ``replay`` CLIs in subprocesses. Every outcome is a clean exit: 0, 65 (bad input, with
the line number when the capture itself is malformed) or 66 (missing file); a header naming a driver
this build does not have is the documented usage/config error (decode 64, replay 78). Never a
traceback, never a hang (each run has a guard timeout; a hang fails the example).

Default: a small example count (each example is two CLI runs). ``PROOF_CAPTURE_EXAMPLES=N`` runs more;
the long profile (``-m slow``) runs ``SLOW_EXAMPLES`` and is reported in docs/reliability.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.registry import registry
from drivers.tanita import checksum
from tests.helpers import REPO

DEFAULT_EXAMPLES = int(os.environ.get("PROOF_CAPTURE_EXAMPLES", "12"))
SLOW_EXAMPLES = 300
#: failure guard for one CLI run on a loaded 2-core machine (a hang is what it catches)
GUARD_S = 60.0
KNOWN = sorted(registry())
CAPTURE_LINE = re.compile(rb"^scale-bridge: .*?: line (\d+): ", re.M)


def tanita_record(weight: str) -> bytes:
    body = ('{0,16,MO,"MC-780",ID,"0000003220338716",Wk,' + weight + ',FW,20.1,').encode()
    return body + b"CS," + checksum(body).encode() + b"\r\n"


# ---- strategies ------------------------------------------------------------------------------------

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 0.5, 1e12, 1e308, 10**400, 86400 * 365 * 200]),
)
weird = st.one_of(
    st.none(), st.booleans(), numbers, st.text(max_size=12), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
hexes = st.one_of(
    st.binary(max_size=40).map(bytes.hex),
    st.sampled_from([tanita_record("70.5").hex(), tanita_record("1e308").hex(), "0224b2070101000000fc03ac3a"]),
    st.text(alphabet="0123456789abcdefzZ ", max_size=20),
    weird,
)
started = st.one_of(
    st.sampled_from([
        "2026-11-22T10:00:00+00:00", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+14:00", "yesterday",
        "2026-13-45T99:99:99", "",
    ]),
    weird,
)


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 19)) == 0:  # now and then: not a header at all
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    doc: dict[str, Any] = {
        "format": draw(st.sampled_from(["scale-bridge-capture"] * 8 + ["scale-bridge-captur", ""])),
        "version": draw(st.sampled_from([1] * 8 + [2, "1"])),
        "driver": draw(st.one_of(st.sampled_from(KNOWN), st.sampled_from(["seca", ""]), weird)),
        "link": draw(st.sampled_from(["serial", "ble", "cloud", "laser"])),
    }
    if draw(st.booleans()):
        doc["started_at"] = draw(started)
    if draw(st.integers(0, 9)) == 0:
        del doc[draw(st.sampled_from(sorted(doc)))]
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.text(max_size=6))] = draw(weird)
    return json.dumps(doc, allow_nan=True).encode()


@st.composite
def events(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 19))
    if choice == 0:  # raw junk, possibly not UTF-8
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    if choice == 1:  # truncated or deep JSON
        return draw(st.sampled_from([b'{"t":0,"kind":"rx","he', b"[" * 50_000, b"{" * 3000, b"", b"null", b"[]"]))
    ev: dict[str, Any] = {
        "t": draw(st.one_of(st.floats(min_value=0, max_value=3600), numbers, weird)),
        "kind": draw(st.sampled_from(["rx", "rx", "rx", "tx", "adv", "notify", "card", "http", "laser"])),
    }
    if ev["kind"] == "card":
        ev["value"] = draw(st.one_of(st.sampled_from(["0003220338716", "\u00e9\u0000"]), weird))
    else:
        ev["hex"] = draw(hexes)
    for key in ("address", "channel", "name", "scale", "rssi"):
        if draw(st.integers(0, 4)) == 0:
            ev[key] = draw(st.one_of(st.sampled_from(["C4:DD:57:00:00:01", "181b", "2a9c"]), weird))
    return json.dumps(ev, allow_nan=True).encode()


@st.composite
def captures(draw: st.DrawFn) -> bytes:
    lines = [draw(headers()), *draw(st.lists(events(), max_size=6))]
    data = b"\n".join(lines) + (b"\n" if draw(st.booleans()) else b"")
    if draw(st.integers(0, 14)) == 0:  # an invalid UTF-8 byte somewhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff" + data[at:]
    return data


# ---- the property ----------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "bridge", *args], cwd=REPO, capture_output=True, timeout=GUARD_S, check=False
        )
    except subprocess.TimeoutExpired as exc:  # the process was killed by subprocess.run
        raise AssertionError(f"hang: {' '.join(args)} ran for over {GUARD_S:g} s") from exc


def _header_driver(data: bytes) -> Any:
    try:
        return json.loads(data.split(b"\n", 1)[0]).get("driver")
    except (ValueError, AttributeError, RecursionError):
        return None


def check_outcome(cmd: str, r: subprocess.CompletedProcess[bytes], data: bytes) -> None:
    where = f"{cmd} rc={r.returncode}\nstderr: {r.stderr[-1500:]!r}\ninput: {data[:600]!r}"
    assert b"Traceback" not in r.stderr, where
    unknown_driver = _header_driver(data) not in KNOWN
    allowed = {0, 65, 66} | ({64 if cmd == "decode" else 78} if unknown_driver else set())
    if cmd == "decode" and b"scale-bridge-capture" not in data.split(b"\n", 1)[0]:
        allowed.add(64)  # not recognised as a capture: raw input, which needs --driver (a usage error)
    assert r.returncode in allowed, where
    n_lines = data.count(b"\n") + 1
    for m in CAPTURE_LINE.finditer(r.stderr):
        assert 1 <= int(m.group(1)) <= n_lines, where
    if r.returncode == 65 and cmd == "replay":  # replay's 65 is always a malformed capture: it names the line
        assert CAPTURE_LINE.search(r.stderr) or b"empty file" in r.stderr, where


def run_both(tmp: Path, data: bytes) -> None:
    path = tmp / "fuzz.capture.jsonl"
    path.write_bytes(data)
    check_outcome("decode", _cli("decode", str(path)), data)
    check_outcome("replay", _cli("replay", "--quiet", str(path)), data)


FUZZ = settings(
    max_examples=DEFAULT_EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(data=captures())
def test_capture_fuzz_decode_and_replay_end_cleanly(tmp_path: Path, data: bytes) -> None:
    run_both(tmp_path, data)


BAD_LINES = [
    b'{"t":0,"kind":"rx","he', b"[" * 50_000, b"null", b"[]", b"not json", b'{"t":NaN,"kind":"rx","hex":"00"}',
    b'{"t":1e308,"kind":"rx","hex":"00"}', b'{"t":-1,"kind":"rx","hex":"00"}', b'{"t":0,"kind":"laser","hex":"00"}',
    b'{"t":0,"kind":"rx","hex":"zz"}', b'{"t":0,"kind":"rx","hex":"0"}', b'{"t":0,"kind":"rx"}',
    b'{"t":0,"kind":"rx","hex":"00","x":"\xff\xfe"}',
    b'{"t":0,"kind":"card","value":"\\u0000"}', b'{"t":true,"kind":"rx","hex":"00"}',
]


@settings(FUZZ, max_examples=max(4, DEFAULT_EXAMPLES // 2))
@given(good=st.integers(0, 4), bad=st.sampled_from(BAD_LINES))
def test_a_malformed_line_after_good_ones_is_named(tmp_path: Path, good: int, bad: bytes) -> None:
    """Header and ``good`` valid events, then one line that is not an event: decode prints the good
    ones and both CLIs exit 65 naming exactly that line."""
    header = b'{"format":"scale-bridge-capture","version":1,"driver":"tanita","link":"serial"}'
    ok = [json.dumps({"t": i, "kind": "rx", "hex": tanita_record("70.5").hex()}).encode() for i in range(good)]
    data = b"\n".join([header, *ok, bad]) + b"\n"
    path = tmp_path / "c.jsonl"
    path.write_bytes(data)
    for cmd in ("decode", "replay"):
        r = _cli(cmd, *(["--quiet"] if cmd == "replay" else []), str(path))
        check_outcome(cmd, r, data)
        assert r.returncode == 65, r.stderr
        m = CAPTURE_LINE.search(r.stderr)
        assert m is not None and int(m.group(1)) == good + 2, r.stderr


def test_a_missing_capture_is_66() -> None:
    for cmd in (["decode"], ["replay", "--quiet"]):
        r = _cli(*cmd, str(REPO / "no" / "such.capture.jsonl"))
        assert r.returncode == 66 and b"Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
@settings(FUZZ, max_examples=SLOW_EXAMPLES)
@given(data=captures())
def test_capture_fuzz_long_profile(tmp_path: Path, data: bytes) -> None:
    run_both(tmp_path, data)
