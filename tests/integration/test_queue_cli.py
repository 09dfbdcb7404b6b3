"""``scale-bridge queue ...`` as a subprocess on an outbox with every kind of job in it (built with the
outbox API: delivered long ago and recently, pending with an ambiguous attempt, dead-lettered with the
platform's errorCode/traceId, unidentified), beside a "daemon" that holds an attempt in flight."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.outbox import JobState, Outbox, Stage
from tests.helpers import run_cli, write_config

DAY = 86400.0


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "config.toml", {
        "platform": {"base_url": "http://127.0.0.1:9", "api_key": "unused"},
        "scale": {"driver": "tanita", "port": "/dev/null"},
        "state": {"dir": str(state)},
    })
    now = time.time()
    box = Outbox(state / "outbox.db", clock=lambda: now)
    ids: dict[str, int] = {}

    def cap(name: str, *, card: str | None = "3220338716", at: float = now,
            state_: JobState = JobState.PENDING) -> int:
        wid = box.capture(scale="s", driver="tanita", body={"weight": 70.0 + len(ids), "rawResults": f"syn {name}"},
                          card=card, card_source="scale_id" if card else None, state=state_, now=at)
        assert wid is not None
        ids[name] = wid
        return wid

    for name, at in (("old_delivered", now - 40 * DAY), ("new_delivered", now - 1 * DAY)):
        wid = cap(name, at=at)
        box.resolved(wid, customer_id=1001, profile=None, card_query=("3220338716", "DECIMAL"), benefit_valid=None,
                     now=at)
        box.begin(wid, Stage.POST, now=at)
        box.posted(wid, benefit_attached=False, next_stage=Stage.DONE, status=200, now=at)
    wid = cap("ambiguous")
    box.resolved(wid, customer_id=1001, profile=None, card_query=("3220338716", "DECIMAL"), benefit_valid=None)
    box.begin(wid, Stage.POST)
    box.retry_later(wid, next_attempt_at=now + 30, status=None, error="no answer after the request was sent",
                    ambiguous=True)
    wid = cap("dead")
    box.kill(wid, stage=Stage.POST, status=400, error_code="VALIDATION_FAILED", error_message="weight: not a number",
             trace_id="5f1e0c0ffee")
    cap("unidentified", card=None, state_=JobState.UNIDENTIFIED)
    wid = cap("inflight")  # the running daemon is posting this one right now
    box.resolved(wid, customer_id=1001, profile=None, card_query=("3220338716", "DECIMAL"), benefit_valid=None)
    box.begin(wid, Stage.POST)
    return {"cfg": str(cfg), "box": box, "ids": ids, "state": state}


def q(setup: dict[str, Any], *args: str) -> Any:
    return run_cli("queue", "--config", setup["cfg"], *args)


def test_list_show_export_and_the_running_daemon_is_not_disturbed(setup: dict[str, Any]) -> None:
    ids, box = setup["ids"], setup["box"]
    r = q(setup, "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = {d["id"]: d for d in json.loads(r.stdout)}
    assert set(rows) == {ids["ambiguous"], ids["dead"], ids["unidentified"], ids["inflight"]}  # not delivered
    assert rows[ids["ambiguous"]]["ambiguous"] == 1
    assert rows[ids["dead"]]["state"] == "dead" and rows[ids["unidentified"]]["state"] == "unidentified"
    assert "3220338716" not in r.stdout.decode()  # cards are masked
    r = q(setup, "list")
    assert r.returncode == 0 and "AMB" in r.stdout.decode()

    r = q(setup, "show", str(ids["dead"]), "--json")
    doc = json.loads(r.stdout)
    assert doc["dead_letter"] == {**doc["dead_letter"], "status": 400, "errorCode": "VALIDATION_FAILED",
                                  "traceId": "5f1e0c0ffee", "errorMessage": "weight: not a number", "stage": "post"}
    r = q(setup, "show", str(ids["ambiguous"]), "--json")
    doc = json.loads(r.stdout)
    assert doc["ambiguous"] == 1 and "twice" in doc["warning"]
    assert doc["idempotency_key"] == box.get(ids["ambiguous"]).uid
    assert "ambiguous_attempt" in [h["event"] for h in doc["history"]]
    r = q(setup, "show", "99999")
    assert r.returncode == 66 and r.stderr.decode().count("\n") == 1 and "Traceback" not in r.stderr.decode()

    r = q(setup, "export")
    lines = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert len(lines) == len(ids) and all("body" in d for d in lines)
    assert "3220338716" not in r.stdout.decode()  # masked unless --unmasked (audit S5)
    r = q(setup, "export", "--unmasked")
    assert {json.loads(x)["card"] for x in r.stdout.decode().splitlines()} == {"3220338716", None}

    # the CLI opened the outbox three times beside the "daemon": its in-flight attempt is untouched
    job = box.get(ids["inflight"])
    assert job.inflight == "post" and job.ambiguous == 0


def test_retry_assign_purge(setup: dict[str, Any]) -> None:
    ids, box = setup["ids"], setup["box"]
    r = q(setup, "retry", str(ids["dead"]))
    assert r.returncode == 0, r.stderr
    assert box.get(ids["dead"]).state is JobState.PENDING and box.dead_letter(ids["dead"]) is None
    box.kill(ids["dead"], stage=Stage.POST, status=409, error_code="CONFLICT", error_message="again", trace_id="t")
    r = q(setup, "retry", "--dead")
    assert r.returncode == 0 and "1 dead letter" in r.stdout.decode()
    r = q(setup, "retry")
    assert r.returncode == 64

    r = q(setup, "assign", str(ids["unidentified"]), "--card", "1234567890123456")
    assert r.returncode == 0, r.stderr
    job = box.get(ids["unidentified"])
    assert job.state is JobState.PENDING and job.card == "1234567890123456" and job.stage is Stage.RESOLVE
    r = q(setup, "assign", str(ids["old_delivered"]), "--card", "1")
    assert r.returncode == 64  # delivered: nothing to assign

    box.kill(ids["ambiguous"], stage=Stage.POST, status=400, error_code="X", error_message="m", trace_id="t")
    r = q(setup, "purge", "--delivered", "--older-than-days", "30")
    assert r.returncode == 0 and r.stdout.decode().startswith("1 ")
    assert box.get(ids["old_delivered"]) is None and box.get(ids["new_delivered"]) is not None
    r = q(setup, "purge", "--delivered")
    assert r.stdout.decode().startswith("1 ")
    assert box.get(ids["new_delivered"]) is None
    assert box.get(ids["ambiguous"]).state is JobState.DEAD  # dead letters are kept
    assert box.dead_letter(ids["ambiguous"]) is not None


def test_ack_corruption(tmp_path: Path, setup: dict[str, Any]) -> None:
    setup["box"].close()
    db: Path = setup["state"] / "outbox.db"
    for side in ("-wal", "-shm"):
        Path(str(db) + side).unlink(missing_ok=True)
    db.write_bytes(b"\x00garbage" * 1000)
    box = Outbox(db)  # what the daemon does at start
    assert box.corruption is not None
    box.close()
    r = q(setup, "ack-corruption")
    assert r.returncode == 0 and "acknowledged" in r.stdout.decode() and "corrupt-" in r.stdout.decode()
    r = q(setup, "ack-corruption")
    assert r.returncode == 0 and "no corruption" in r.stdout.decode()
    assert list(db.parent.glob("outbox.db.corrupt-*"))  # the damaged file is kept for forensics


def test_retention_purges_delivered_only(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    box = Outbox(tmp_path / "outbox.db", clock=lambda: now)
    kept = []
    for i, state in enumerate((JobState.PENDING, JobState.UNIDENTIFIED, JobState.PARKED)):
        kept.append(box.capture(scale="s", driver="t", body={"rawResults": str(i)}, card=None, card_source=None,
                                state=state, now=now - 90 * DAY))
    dead = box.capture(scale="s", driver="t", body={"rawResults": "d"}, card="1", card_source="x", now=now - 90 * DAY)
    box.kill(dead, stage=Stage.RESOLVE, status=404, error_code=None, error_message="no member", trace_id=None,
             now=now - 90 * DAY)
    old = box.capture(scale="s", driver="t", body={"rawResults": "o"}, card="1", card_source="x", now=now - 90 * DAY)
    box.posted(old, benefit_attached=False, next_stage=Stage.DONE, status=200, now=now - 31 * DAY)
    assert box.purge_delivered(now - 30 * DAY) == 1
    assert box.get(old) is None
    assert all(box.get(w) is not None for w in [*kept, dead])
    box.close()


def test_ids_ages_and_missing_things_exit_as_the_readme_says(setup: dict[str, Any], tmp_path: Path) -> None:
    """Hostile-input audit L5, installer audit I6."""
    for args in (("show", str(2**63)), ("retry", "-1"), ("assign", "9223372036854775808", "--card", "1"),
                 ("purge", "--delivered", "--older-than-days=-1"), ("purge", "--delivered", "--older-than-days=-inf"),
                 ("purge", "--delivered", "--older-than-days=nan"), ("list", "--limit", "-1"), ("show", "abc"),
                 ("bogus",), ()):
        r = q(setup, *args)
        assert r.returncode == 64, (args, r.stderr)
        assert b"Traceback" not in r.stderr
    assert setup["box"].get(setup["ids"]["new_delivered"]) is not None  # nothing was purged
    r = q(setup, "retry", "99999")
    assert r.returncode == 66 and b"no weighing with id 99999" in r.stderr
    empty = write_config(tmp_path / "empty.toml", {
        "platform": {"base_url": "http://127.0.0.1:9", "api_key": "unused"},
        "scale": {"driver": "tanita", "port": "/dev/null"},
        "state": {"dir": str(tmp_path / "nothing-here")},
    })
    r = run_cli("queue", "list", "-c", str(empty))
    assert r.returncode == 66 and b"no outbox at" in r.stderr


def test_list_words_json_and_iso_times(setup: dict[str, Any]) -> None:
    """Installer audit I10: human words, ISO 8601 in JSON, [] when empty, "nothing waiting"."""
    ids, box = setup["ids"], setup["box"]
    r = q(setup, "list", "--json")
    rows = json.loads(r.stdout)
    assert all(row["captured_at"].endswith("Z") and "T" in row["captured_at"] for row in rows)
    r = q(setup, "show", str(ids["unidentified"]))
    text = r.stdout.decode()
    assert "card: -" in text and "None" not in text and "False" not in text and "['" not in text
    for name in ("ambiguous", "dead", "unidentified", "inflight"):  # deliver everything
        wid = ids[name]
        if name in ("unidentified", "dead"):
            assert box.assign(wid, "1")
        box.begin(wid, Stage.POST)
        box.posted(wid, benefit_attached=False, next_stage=Stage.DONE, status=200)
    r = q(setup, "list")
    assert r.returncode == 0 and r.stdout.decode().strip() == "nothing waiting (6 delivered kept)", r.stdout
    r = q(setup, "list", "--json")
    assert r.stdout.decode().strip() == "[]"


def test_export_from_a_moved_aside_corrupt_outbox(setup: dict[str, Any], tmp_path: Path) -> None:
    """Installer audit S7: salvage what is readable from a damaged file, read-only."""
    box, ids = setup["box"], setup["ids"]
    box.close()
    db: Path = setup["state"] / "outbox.db"
    import sqlite3
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("UPDATE weighings SET body = '{not json' WHERE id = ?", (ids["dead"],))
    con.commit()
    con.close()
    aside = tmp_path / "outbox.db.corrupt-20261201T101500Z"
    aside.write_bytes(db.read_bytes())
    before = aside.read_bytes()
    r = q(setup, "export", "--from", str(aside))
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert {d["id"] for d in got} == set(ids.values()) - {ids["dead"]}
    assert b"1 unreadable" in r.stderr
    assert "3220338716" not in r.stdout.decode()
    assert aside.read_bytes() == before  # read-only
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00garbage" * 1000)
    r = q(setup, "export", "--from", str(garbage))
    assert r.returncode == 65 and b"Traceback" not in r.stderr
    r = q(setup, "export", "--from", str(tmp_path / "absent.db"))
    assert r.returncode == 66
