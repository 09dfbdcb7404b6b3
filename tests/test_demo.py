"""`scale-bridge demo` (what `make demo` runs): the shipped weighings reach the simulator with their
benefit keys, whatever the date of the capture or of the host (one clock per event stream)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.commands.demo import demo_capture_path
from tests.helpers import REPO, run_cli

FINAL = "queue: 3 delivered, 0 pending, 1 unidentified, 0 parked, 0 dead"


def redated(tmp_path: Path, started_at: datetime, *, expect: object = None) -> Path:
    """The shipped capture with its header's ``started_at`` (and optionally ``expect``) replaced."""
    lines = demo_capture_path().read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    header["started_at"] = started_at.isoformat()
    if expect is not None:
        header["expect"] = expect
    path = tmp_path / f"demo-{started_at:%Y%m%d%H%M}.capture.jsonl"
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n", encoding="utf-8")
    return path


def assert_story(out: str) -> None:
    blocks = out.split("\n\n")

    def block(n: int) -> str:
        found = [b for b in blocks if b.lstrip().startswith(f"weighing #{n}  ")]
        assert len(found) == 1, f"one block for weighing #{n}:\n{out}"
        return found[0]

    one = block(1)
    assert "member    1001" in one and "from the scale's ID field" in one
    assert "BODY_SCAN valid -> sent with the weighing (benefitKey)" in one
    assert "customer 1001 (home studio 1) via studio 1, benefitKey=BODY_SCAN" in one
    two = block(2)
    assert "member    1002" in two and "from a card read" in two
    assert "not valid for this member -> uploaded without it" in two and "benefitKey=-" in two
    three = block(3)
    assert "member    1003, cross-studio member (home studio 2)" in three
    assert "customer 1003 (home studio 2) via studio 1, benefitKey=BODY_SCAN" in three
    four = block(4)
    assert "unidentified" in four and "parked in the queue" in four
    starts = [out.index(f"weighing #{n}  ") for n in (1, 2, 3, 4)]
    assert starts == sorted(starts)
    assert "frames rejected by the driver (noise, bad checksums): 1" in out
    assert out.rstrip().splitlines()[-1] == FINAL


def test_demo_tells_its_story_with_an_outage_in_the_middle() -> None:
    r = run_cli("demo", timeout=180)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert_story(out)
    down = out.index("--- the platform goes down")
    waits = out.index("waits in the durable queue")
    back = out.index("--- the platform is back: the queue drains ---")
    # the outage comes after the first journey, the second weighing waits through it and drains after
    assert out.index("weighing #1  ") < down < waits < back < out.index("weighing #2  ")
    assert "weighing #2 (66.2 kg) waits in the durable queue" in out
    assert "attempts" in out.split("weighing #2  ")[1].split("\n\n")[0]  # it took more than one attempt
    assert "Traceback" not in r.stderr.decode()


@pytest.mark.parametrize(
    "started_at",
    [
        datetime(2019, 3, 1, 8, 0, tzinfo=UTC),  # years in the past
        datetime.now(UTC).replace(microsecond=0),  # today
        datetime(2031, 6, 15, 18, 30, tzinfo=UTC),  # years ahead
    ],
    ids=["past", "today", "future"],
)
def test_the_same_capture_re_dated_gives_the_same_journeys(tmp_path: Path, started_at: datetime) -> None:
    r = run_cli("demo", "--capture", str(redated(tmp_path, started_at)), "--outage-s", "0.5", timeout=180)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert_story(out)


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime (Debian package faketime) not installed")
@pytest.mark.parametrize("host_time", ["2019-03-01 10:00:00", "2031-06-15 18:30:00"])
def test_the_demo_on_a_host_clock_years_away(host_time: str) -> None:
    """The host clock itself set years before and after the capture (libfaketime)."""
    r = subprocess.run(
        ["faketime", host_time, sys.executable, "-m", "bridge", "demo", "--outage-s", "0.5"],
        cwd=REPO,
        capture_output=True,
        timeout=180,
        check=False,
    )
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert_story(out)


def test_demo_with_the_use_endpoint() -> None:
    r = run_cli("demo", "--usage", "endpoint", "--outage-s", "0", timeout=180)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "BODY_SCAN valid -> used via /use after the weighing" in out
    assert "benefitKey=-" in out and "benefitKey=BODY_SCAN" not in out
    assert "benefit uses recorded this month: 2" in out
    assert "the platform goes down" not in out


def test_the_demo_checks_itself_against_what_the_capture_declares(tmp_path: Path) -> None:
    wrong = {
        "journeys": [
            {"weighing": 1, "state": "delivered", "member": 1001},
            {"weighing": 2, "state": "delivered", "member": 4242},
            {"weighing": 3, "state": "delivered", "member": 1003},
            {"weighing": 4, "state": "delivered", "member": 1004},
        ]
    }
    capture = redated(tmp_path, datetime(2024, 1, 1, tzinfo=UTC), expect=wrong)
    r = run_cli("demo", "--capture", str(capture), "--outage-s", "0", timeout=180)
    err = r.stderr.decode()
    assert r.returncode == 70, r.stdout.decode() + err
    assert "weighing #2: expected member 4242, got 1002" in err
    assert "weighing #4: expected state 'delivered', got 'unidentified'" in err
    assert "weighing #1" not in err and "weighing #3" not in err
    assert r.stdout.decode().rstrip().splitlines()[-1] == FINAL  # the summary line stays as scripts read it


def test_the_queue_assign_hint_works_on_the_kept_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    r = run_cli("demo", "--state-dir", str(state), "--outage-s", "0", timeout=180)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    hint = next(line for line in out.splitlines() if line.startswith("attach a member later: "))
    command = hint.removeprefix("attach a member later: scale-bridge ").replace("NUMBER", "1173673668653440").split()
    r2 = run_cli(*command)
    assert r2.returncode == 0, r2.stderr.decode()
    listed = run_cli("queue", "list", "--json", "--state-dir", str(state))
    assert listed.returncode == 0, listed.stderr.decode()
    rows = [json.loads(line) for line in listed.stdout.decode().splitlines() if line.strip()]
    rows = rows[0] if len(rows) == 1 and isinstance(rows[0], list) else rows
    assert [(row["id"], row["state"]) for row in rows] == [(4, "pending")]


def test_a_missing_capture_exits_66_in_one_line(tmp_path: Path) -> None:
    r = run_cli("demo", "--capture", str(tmp_path / "nope.jsonl"))
    assert r.returncode == 66
    err = r.stderr.decode().strip().splitlines()
    assert len(err) == 1 and "nope.jsonl: no such file" in err[0]
