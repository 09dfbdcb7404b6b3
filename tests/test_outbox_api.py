"""The outbox package's contracts, on real SQLite files: every transition returns the job as committed;
``release_backoff`` ends the waits of one reason only; a version-1 file is upgraded with every row
kept; no HTTP status in ``bridge/outbox/``; the read model (``QueueStats``, the read-only connection)."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import bridge.outbox
from bridge.errors import OutboxError
from bridge.outbox import (
    SCHEMA_VERSION,
    DeadLetter,
    Job,
    JobNotFound,
    JobState,
    Outbox,
    QueueStats,
    Stage,
    WaitReason,
    open_read_only,
)

NOW = 1_800_000_000.0
OUTBOX_DIR = Path(bridge.outbox.__file__).parent


def _box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.db", clock=lambda: NOW)


def _capture(box: Outbox, card: str | None = "42", at: float = NOW) -> int:
    wid = box.capture(scale="s", driver="tanita", body={"weight": 70.0, "rawResults": "x"}, card=card,
                      card_source="scale_id" if card else None, now=at)
    assert wid is not None
    return wid


def _resolve(box: Outbox, wid: int, *, begin_post: bool = False) -> Job:
    return box.resolved(wid, customer_id=1001, profile={"age": 40}, card_query=("42", "DECIMAL"), benefit_valid=True,
                        home_studio=None, note=None, begin_post=begin_post, now=NOW)


# ---- every transition returns the committed job -------------------------------------------------

T1 = NOW + 5.0
# name -> (how to bring the job there, the transition, the journal event it writes or None, a check)
TRANSITIONS: dict[str, tuple[Callable[[Outbox, int], Any], Callable[[Outbox, int], Job], str | None,
                             Callable[[Job], bool]]] = {
    "begin": (_resolve, lambda b, w: b.begin(w, Stage.POST, now=T1), None,
              lambda j: j.inflight == "post" and j.attempts == 1),
    "resolved": (lambda b, w: None,
                 lambda b, w: b.resolved(w, customer_id=7, profile={"age": 33}, card_query=("42", "HEX"),
                                         benefit_valid=False, home_studio=12, note="cross-studio", begin_post=True,
                                         now=T1),
                 "resolved", lambda j: (j.stage, j.inflight, j.home_studio, j.benefit_valid) == ("post", "post", 12,
                                                                                                  False)),
    "benefit_refused": (lambda b, w: _resolve(b, w, begin_post=True),
                        lambda b, w: b.benefit_refused(w, note="platform refused benefit key", now=T1),
                        "benefit_refused",
                        lambda j: j.benefit_valid is False and j.inflight is None and j.stage is Stage.POST),
    "reresolve": (_resolve, lambda b, w: b.reresolve(w, "too old", now=T1), "resolve_again",
                  lambda j: j.stage is Stage.RESOLVE),
    "posted_done": (lambda b, w: _resolve(b, w, begin_post=True),
                    lambda b, w: b.posted(w, benefit_attached=True, next_stage=Stage.DONE, status=201, now=T1),
                    "delivered", lambda j: j.state is JobState.DELIVERED and j.delivered_at == T1 and j.benefit_used),
    "posted_use": (lambda b, w: _resolve(b, w, begin_post=True),
                   lambda b, w: b.posted(w, benefit_attached=False, next_stage=Stage.USE, status=201, now=T1),
                   "posted", lambda j: j.state is JobState.PENDING and j.stage is Stage.USE),
    "benefit_use_recorded": (lambda b, w: (_resolve(b, w, begin_post=True),
                                           b.posted(w, benefit_attached=False, next_stage=Stage.USE, status=201),
                                           b.begin(w, Stage.USE)),
                             lambda b, w: b.benefit_use_recorded(w, used=False, status=204, note="refused", now=T1),
                             "delivered", lambda j: j.state is JobState.DELIVERED and j.benefit_used is False),
    "retry_later": (lambda b, w: _resolve(b, w, begin_post=True),
                    lambda b, w: b.retry_later(w, next_attempt_at=T1 + 30, reason=WaitReason.OUTAGE, status=None,
                                               error="no answer", ambiguous=True, now=T1),
                    "ambiguous_attempt",
                    lambda j: j.wait_reason is WaitReason.OUTAGE and j.ambiguous == 1 and j.next_attempt_at == T1 + 30),
    "kill": (lambda b, w: None,
             lambda b, w: b.kill(w, stage=Stage.RESOLVE, status=None, error_code="X", error_message="refused",
                                 trace_id="t", now=T1),
             "dead_lettered", lambda j: j.state is JobState.DEAD),
    "park": (lambda b, w: _resolve(b, w, begin_post=True),
             lambda b, w: b.park(w, "benefit not valid", now=T1), "parked",
             lambda j: j.state is JobState.PARKED and j.inflight is None and j.note == "benefit not valid"),
}


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_every_transition_returns_the_job_a_fresh_get_reads(tmp_path: Path, name: str) -> None:
    prepare, transition, event, check = TRANSITIONS[name]
    box = _box(tmp_path)
    wid = _capture(box)
    prepare(box, wid)
    before = box.get(wid)
    got = transition(box, wid)
    assert isinstance(got, Job)
    assert got == box.get(wid)  # nothing left to read again
    assert got != before and got.id == wid and check(got)
    events = [e for _at, e, _d in box.history(wid)]
    if event is not None:
        assert events[-1] == event
    box.close()
    # and it is what was committed (a secondary open: it does not count the attempt in flight as interrupted)
    reopened = Outbox(tmp_path / "outbox.db", clock=lambda: NOW, primary=False)
    assert reopened.get(wid) == got
    reopened.close()


def test_a_transition_on_an_unknown_job_raises_and_writes_nothing(tmp_path: Path) -> None:
    box = _box(tmp_path)
    wid = _capture(box)
    with pytest.raises(JobNotFound, match="no weighing with id 99"):
        box.park(99, "x")
    assert isinstance(JobNotFound("x"), OutboxError)
    assert box.history(99) == [] and [e for _a, e, _d in box.history(wid)] == ["captured"]
    box.close()


def test_park_is_one_commit_from_an_attempt_in_flight(tmp_path: Path) -> None:
    """(Before, a refused benefit use was recorded as a retry and then parked: two commits.)"""
    box = _box(tmp_path)
    wid = _capture(box)
    _resolve(box, wid, begin_post=True)
    box.posted(wid, benefit_attached=False, next_stage=Stage.USE, status=201, now=NOW)
    box.begin(wid, Stage.USE, now=NOW)
    job = box.park(wid, "benefit not used: used up", now=T1)
    assert (job.state, job.inflight, job.attempts) == (JobState.PARKED, None, 2)
    assert [e for _a, e, _d in box.history(wid)][-2:] == ["posted", "parked"]
    box.close()


# ---- release_backoff by reason ------------------------------------------------------------------

@pytest.mark.parametrize("released", list(WaitReason))
def test_release_backoff_releases_exactly_the_jobs_waiting_for_that_reason(tmp_path: Path,
                                                                          released: WaitReason) -> None:
    box = _box(tmp_path)
    waiting = {}
    for reason in WaitReason:  # one job waiting for each reason, for 10 min
        wid = _capture(box)
        box.retry_later(wid, next_attempt_at=NOW + 600, reason=reason, status=None, error="e", now=NOW)
        waiting[reason] = wid
    already_due = _capture(box)  # waits for the same reason but is due already: not counted, not moved
    box.retry_later(already_due, next_attempt_at=NOW - 1, reason=released, status=None, error="e", now=NOW - 5)
    parked = _capture(box)  # was waiting for that reason, then held for staff: not released
    box.retry_later(parked, next_attempt_at=NOW + 600, reason=released, status=None, error="e", now=NOW)
    box.park(parked, "held", now=NOW)
    t = NOW + 10
    assert box.release_backoff(released, now=t) == 1
    for reason, wid in waiting.items():
        job = box.get(wid)
        assert job is not None
        if reason is released:
            assert (job.next_attempt_at, job.wait_reason) == (t, None)
        else:
            assert (job.next_attempt_at, job.wait_reason) == (NOW + 600, reason)
    assert box.get(already_due).next_attempt_at == NOW - 1  # type: ignore[union-attr]
    assert box.get(parked).state is JobState.PARKED  # type: ignore[union-attr]
    assert [j.id for j in box.due(t, limit=100)] == [waiting[released], already_due]
    assert box.release_backoff(released, now=t) == 0  # nothing waits for it any more
    box.close()


def test_retry_later_without_a_reason_is_an_ordinary_backoff(tmp_path: Path) -> None:
    box = _box(tmp_path)
    wid = _capture(box)
    job = box.retry_later(wid, next_attempt_at=NOW + 60, status=None, error="e", now=NOW)
    assert job.wait_reason is WaitReason.BACKOFF
    assert box.release_backoff(WaitReason.OUTAGE, now=NOW + 1) == 0
    assert box.release_backoff(WaitReason.BACKOFF, now=NOW + 1) == 1
    box.close()


# ---- no HTTP status in the outbox ---------------------------------------------------------------

def test_no_http_status_in_bridge_outbox() -> None:
    sources = sorted(OUTBOX_DIR.glob("*.py"))
    assert {p.name for p in sources} >= {"schema.py", "store.py", "jobs.py", "admin.py", "aio.py"}
    hits = [f"{p.name}:{n}: {line}" for p in sources for n, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"[45][0-9]{2}", line)]
    assert hits == []
    if shutil.which("grep"):  # the same check as the review's: grep -nE "[45][0-9]{2}" finds none
        res = subprocess.run(["grep", "-rnE", "[45][0-9]{2}", "--include=*.py", str(OUTBOX_DIR)],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 1 and res.stdout == ""
    # nor by name: the outbox never asks what a status means
    assert [p.name for p in sources if re.search(r"HTTPStatus|from http|import http", p.read_text())] == []


# ---- the v1 -> v2 upgrade -----------------------------------------------------------------------

V1_DDL = """
CREATE TABLE IF NOT EXISTS weighings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    captured_at REAL NOT NULL,
    scale TEXT NOT NULL,
    driver TEXT NOT NULL,
    card TEXT,
    card_source TEXT,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    stage TEXT NOT NULL,
    customer_id INTEGER,
    home_studio INTEGER,
    profile TEXT,
    card_query TEXT,
    benefit_valid INTEGER,
    benefit_attached INTEGER,
    benefit_used INTEGER,
    resolved_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    ambiguous INTEGER NOT NULL DEFAULT 0,
    inflight TEXT,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    note TEXT,
    delivered_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS weighings_due ON weighings (state, next_attempt_at, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    weighing_id INTEGER PRIMARY KEY REFERENCES weighings (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    stage TEXT NOT NULL,
    status INTEGER,
    error_code TEXT,
    error_message TEXT,
    trace_id TEXT
);
CREATE TABLE IF NOT EXISTS dedupe (
    key TEXT PRIMARY KEY,
    weighing_id INTEGER,
    seen_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    weighing_id INTEGER NOT NULL REFERENCES weighings (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS journal_weighing ON journal (weighing_id, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _v1_file(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """A version-1 outbox as the version-1 code wrote it (its DDL, its meta row), with a job in every
    state, a dead letter, journal entries and dedupe keys. Returns every table's rows."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_DDL)
    db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1'), ('last_delivered_at', '1799999000.0')")
    rows = [  # (uid, captured_at, card, state, stage, customer_id, inflight, next_attempt_at, last_status)
        ("u-pending", NOW - 100, "42", "pending", "post", 1001, None, NOW + 300, 503),
        ("u-inflight", NOW - 90, "42", "pending", "post", 1001, "post", NOW - 90, None),
        ("u-unident", NOW - 80, None, "unidentified", "resolve", None, None, NOW - 80, None),
        ("u-parked", NOW - 70, "43", "parked", "post", 1002, None, NOW - 70, None),
        ("u-delivered", NOW - 60, "44", "delivered", "done", 1003, None, NOW - 60, 201),
        ("u-dead", NOW - 50, "45", "dead", "resolve", None, None, NOW - 50, 404),
    ]
    for uid, cap, card, state, stage, cust, inflight, nxt, status in rows:
        db.execute(
            "INSERT INTO weighings (uid, captured_at, scale, driver, card, card_source, body, state, stage,"
            " customer_id, card_query, attempts, inflight, next_attempt_at, last_status, last_error, updated_at,"
            " delivered_at) VALUES (?, ?, 's', 'tanita', ?, 'scale_id', ?, ?, ?, ?, ?, 1, ?, ?, ?, 'e', ?, ?)",
            (uid, cap, card, '{"weight":70.5,"rawResults":"r"}', state, stage, cust,
             '["42","DECIMAL"]' if cust else None, inflight, nxt, status, cap,
             cap + 1 if state == "delivered" else None),
        )
    dead_id = db.execute("SELECT id FROM weighings WHERE uid = 'u-dead'").fetchone()[0]
    db.execute("INSERT INTO dead_letters VALUES (?, ?, 'resolve', 404, 'NOT_FOUND', 'no member', 't-9')",
               (dead_id, NOW - 49))
    db.execute("INSERT INTO journal (weighing_id, at, event, detail) SELECT id, captured_at + 1, 'retry_scheduled',"
               " 'HTTP 503' FROM weighings")
    db.execute("INSERT INTO dedupe VALUES ('tanita::a', 1, ?, ?)", (NOW - 100, NOW + 500))
    tables = {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
              for t in ("weighings", "dead_letters", "journal", "dedupe")}
    db.close()
    return tables


def test_a_version_1_file_is_upgraded_and_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    before = _v1_file(path)
    reader = open_read_only(path)  # a reader (check) on a file no writer has upgraded yet
    assert reader.stats().pending == 2 and reader.jobs(limit=10)[0].wait_reason is None
    reader.close()
    box = Outbox(path, clock=lambda: NOW)
    assert box.store.migrated_from == 1 and box.corruption is None
    assert box.meta("schema_version") == str(SCHEMA_VERSION) == "2"
    assert box.recovered_inflight == 1  # the v1 attempt in flight is counted as ambiguous, as before
    raw = sqlite3.connect(path)
    for table, rows in before.items():
        after = raw.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        if table == "weighings":  # the old columns unchanged but for the recovered attempt; the new one empty
            assert [r[-1] for r in after] == [None] * len(rows)
            old = [r[:-1] for r in after]
            assert [r for r in old if r[1] != "u-inflight"] == [r for r in rows if r[1] != "u-inflight"]
        elif table == "journal":
            assert after[: len(rows)] == rows and [r[3] for r in after[len(rows):]] == ["ambiguous_attempt"]
        else:
            assert after == rows, table
    raw.close()
    jobs = {j.uid: j for j in box.jobs(limit=100)}
    assert jobs["u-pending"].card_query == ["42", "DECIMAL"] and jobs["u-pending"].body["weight"] == 70.5
    assert jobs["u-inflight"].ambiguous == 1 and jobs["u-inflight"].inflight is None
    assert box.dead_letter(jobs["u-dead"].id) == DeadLetter(jobs["u-dead"].id, NOW - 49, "resolve", 404, "NOT_FOUND",
                                                            "no member", "t-9")
    assert box.seen("tanita::a", now=NOW)
    # the upgraded file works with the new API: a wait with a reason, released by that reason
    wid = jobs["u-pending"].id
    assert box.retry_later(wid, next_attempt_at=NOW + 60, reason=WaitReason.OUTAGE, status=None, error="e",
                           now=NOW).wait_reason is WaitReason.OUTAGE
    assert box.release_backoff(WaitReason.OUTAGE, now=NOW) == 1
    box.close()
    again = Outbox(path, clock=lambda: NOW)  # a second open is no upgrade
    assert again.store.migrated_from is None and len(again.jobs(limit=100)) == len(before["weighings"])
    again.close()


def test_a_file_from_a_newer_version_is_refused_not_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    _box(tmp_path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(OutboxError, match="schema version 3"):
        Outbox(path, clock=lambda: NOW)
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))


# ---- the read model ---------------------------------------------------------------------------

def test_queue_stats_keep_pending_apart_from_waiting_for_staff(tmp_path: Path) -> None:
    """Review D4: a 3-day-old unidentified weighing is not a 3-day-old pending upload."""
    box = _box(tmp_path)
    unidentified = _capture(box, card=None, at=NOW - 3 * 86400)
    box.park(unidentified, "no member card", JobState.UNIDENTIFIED, now=NOW)
    parked = _capture(box, at=NOW - 2 * 86400)
    box.park(parked, "benefit not valid", now=NOW)
    _capture(box, at=NOW - 3600)
    delivered = _capture(box, at=NOW - 7200)
    box.posted(delivered, benefit_attached=False, next_stage=Stage.DONE, status=201, now=NOW - 60)
    st = box.stats()
    assert st == QueueStats(pending=1, unidentified=1, parked=1, delivered=1, dead=0, ambiguous_jobs=0,
                            oldest_pending_captured_at=NOW - 3600,
                            oldest_waiting_for_staff_captured_at=NOW - 3 * 86400,
                            last_delivered_at=NOW - 60, last_captured_at=NOW - 3600)
    assert st.oldest_pending_age_s(NOW) == 3600
    assert st.oldest_waiting_for_staff_age_s(NOW) == 3 * 86400 and st.waiting_for_staff == 2
    reader = open_read_only(tmp_path / "outbox.db")  # health's view is the same figures
    assert reader.stats() == st
    reader.close()
    box.close()


def test_the_read_only_connection_cannot_write_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutboxError):
        open_read_only(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    box = _box(tmp_path)
    wid = _capture(box)
    reader = open_read_only(tmp_path / "outbox.db")
    assert [j.id for j in reader.export_rows()] == [wid] and reader.quick_check() == "ok"
    with pytest.raises(OutboxError, match="readonly"):
        reader._store.set_meta("x", "y")  # query_only: the connection refuses any write
    assert box.meta("x") is None
    reader.close()
    box.close()


def test_export_rows_pages_through_every_job_in_id_order(tmp_path: Path) -> None:
    box = _box(tmp_path)
    wids = [_capture(box) for _ in range(7)]
    box.kill(wids[3], stage=Stage.RESOLVE, status=None, error_code=None, error_message="m", trace_id=None)
    assert [j.id for j in box.export_rows(batch=2)] == wids
    assert [j.id for j in box.export_rows(JobState.DEAD, batch=2)] == [wids[3]]
    assert box.retry_dead(now=NOW) == 1 and box.get(wids[3]).state is JobState.PENDING  # type: ignore[union-attr]
    box.close()
