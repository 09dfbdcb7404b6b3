"""The durable outbox: one SQLite file, WAL, ``synchronous=FULL``.

A weighing is *captured* when ``capture()`` returns: that commit is the durability point, made before
any network call. The uploader then moves each job through its stages (resolve -> post -> use ->
done), storing each step, so a restart resumes where it stopped. An attempt at a stage that writes to
the platform is bracketed by ``begin()`` (committed before the request) and its outcome; a job found
with an unfinished attempt when the file is opened is counted as *ambiguous* (the request may have
reached the platform) and retried: at-least-once, with the possible duplicates counted.

This module is synchronous and owns no clock: callers pass ``now`` (epoch seconds, UTC).
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import OutboxError, StorageError

SCHEMA_VERSION = 1


class JobState(StrEnum):
    PENDING = "pending"  # waiting for upload (maybe after a backoff)
    UNIDENTIFIED = "unidentified"  # no member: parked until `queue assign`
    PARKED = "parked"  # held for staff (e.g. benefit not valid and policy = park)
    DELIVERED = "delivered"
    DEAD = "dead"  # permanent refusal: see dead_letters


class Stage(StrEnum):
    RESOLVE = "resolve"
    POST = "post"
    USE = "use"
    DONE = "done"


WRITE_STAGES = (Stage.POST, Stage.USE)


class WaitReason(StrEnum):
    BACKOFF = "backoff"
    OUTAGE = "outage"
    RATE_LIMIT = "rate_limit"
    AUTH = "auth"

_DDL = """
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


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    uid: str
    captured_at: float
    scale: str
    driver: str
    card: str | None
    card_source: str | None
    body: dict[str, Any]
    state: JobState
    stage: Stage
    customer_id: int | None
    home_studio: int | None
    profile: dict[str, Any] | None
    card_query: list[str] | None
    benefit_valid: bool | None
    benefit_attached: bool | None
    benefit_used: bool | None
    resolved_at: float | None
    attempts: int
    ambiguous: int
    inflight: str | None
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    note: str | None
    delivered_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        def opt_bool(v: Any) -> bool | None:
            return None if v is None else bool(v)

        return cls(
            id=row["id"],
            uid=row["uid"],
            captured_at=row["captured_at"],
            scale=row["scale"],
            driver=row["driver"],
            card=row["card"],
            card_source=row["card_source"],
            body=json.loads(row["body"]),
            state=JobState(row["state"]),
            stage=Stage(row["stage"]),
            customer_id=row["customer_id"],
            home_studio=row["home_studio"],
            profile=json.loads(row["profile"]) if row["profile"] else None,
            card_query=json.loads(row["card_query"]) if row["card_query"] else None,
            benefit_valid=opt_bool(row["benefit_valid"]),
            benefit_attached=opt_bool(row["benefit_attached"]),
            benefit_used=opt_bool(row["benefit_used"]),
            resolved_at=row["resolved_at"],
            attempts=row["attempts"],
            ambiguous=row["ambiguous"],
            inflight=row["inflight"],
            next_attempt_at=row["next_attempt_at"],
            last_status=row["last_status"],
            last_error=row["last_error"],
            note=row["note"],
            delivered_at=row["delivered_at"],
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    weighing_id: int
    at: float
    stage: str
    status: int | None
    error_code: str | None
    error_message: str | None
    trace_id: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    unidentified: int
    parked: int
    delivered: int
    dead: int
    ambiguous_jobs: int
    oldest_pending_captured_at: float | None
    last_delivered_at: float | None
    last_captured_at: float | None

    def oldest_pending_age_s(self, now: float) -> float:
        return 0.0 if self.oldest_pending_captured_at is None else max(0.0, now - self.oldest_pending_captured_at)


@dataclass(frozen=True, slots=True)
class CorruptionEvent:
    moved_to: str
    at: str
    reason: str


def _is_storage_failure(exc: sqlite3.Error) -> bool:
    msg = str(exc).lower()
    return any(s in msg for s in ("disk is full", "disk i/o error", "readonly", "unable to open", "out of memory"))


def _utc_stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")


def _refuse_if_not_ours(path: Path) -> None:
    """A permission problem is not corruption: moving a healthy file aside because it belongs to root
    (e.g. after someone ran the daemon as root once) would hide its queue. Refuse to start instead."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and not os.access(p, os.R_OK | os.W_OK):
            raise OutboxError(
                f"cannot read and write {p} (permission denied): fix its owner/mode; "
                "the outbox is not moved aside for this"
            )


def _check_file(path: Path) -> str | None:
    """None if the file is a healthy outbox, else the reason it is not."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return f"cannot open: {exc}"
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            return "quick_check: " + "; ".join(str(r[0]) for r in rows[:5])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "weighings" not in tables:
            return "not a scale-bridge outbox (no weighings table)"
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    return None


class Outbox:
    """Synchronous outbox core. One instance per process; the CLI may open a second one beside the
    daemon (WAL readers never block; writers wait up to ``busy_timeout``)."""

    def __init__(
        self, path: str | Path, *, clock: Callable[[], float] | None = None, check: bool = True, primary: bool = True
    ) -> None:
        """``primary``: the daemon's own instance. A secondary one (the CLI beside a running daemon)
        neither moves a file aside nor treats the daemon's in-flight attempts as interrupted, and
        does not checkpoint."""
        import time

        self.path = Path(path)
        self._clock = clock or time.time
        self.corruption: CorruptionEvent | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if check and primary and self.path.exists() and self.path.stat().st_size > 0:
            _refuse_if_not_ours(self.path)
            reason = _check_file(self.path)
            if reason is not None:
                self.corruption = self._move_aside(reason)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=10, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=10000")
            with self._tx():
                for stmt in _DDL.split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
                if self.corruption is not None:
                    c = self.corruption
                    self._set_meta("corruption", json.dumps({"moved_to": c.moved_to, "at": c.at, "reason": c.reason}))
            self.recovered_inflight = 0
            if not primary:
                return
            self.recovered_inflight = self._recover_inflight()
            # Move everything (the schema of a new file included) from the WAL into the main file: a
            # lost -wal file can then cost at most what was committed since this start, and the file
            # is never "valid and empty" (see docs/reliability.md). A busy reader only makes it partial.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from None

    # ---- plumbing -------------------------------------------------------------------------------

    def _move_aside(self, reason: str) -> CorruptionEvent:
        now = self._clock()
        target = self.path.with_name(f"{self.path.name}.corrupt-{_utc_stamp(now)}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{_utc_stamp(now)}-{n}")
            n += 1
        os.replace(self.path, target)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.replace(side, target.with_name(target.name + suffix))
        return CorruptionEvent(str(target), datetime.fromtimestamp(now, UTC).isoformat(), reason)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise (StorageError if _is_storage_failure(exc) else OutboxError)(f"outbox: {exc}") from None
        try:
            yield self._db
        except BaseException:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise (StorageError if _is_storage_failure(exc) else OutboxError)(f"outbox commit failed: {exc}") from None

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            with self._tx() as db:
                return fn(db)
        except sqlite3.Error as exc:
            raise (StorageError if _is_storage_failure(exc) else OutboxError)(f"outbox: {exc}") from None

    def _journal(self, db: sqlite3.Connection, wid: int, now: float, event: str, detail: str | None = None) -> None:
        db.execute(
            "INSERT INTO journal (weighing_id, at, event, detail) VALUES (?, ?, ?, ?)", (wid, now, event, detail)
        )

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?", (key, value, value)
        )

    def _recover_inflight(self) -> int:
        now = self._clock()

        def fn(db: sqlite3.Connection) -> int:
            rows = db.execute("SELECT id, inflight FROM weighings WHERE inflight IS NOT NULL").fetchall()
            for row in rows:
                if row["inflight"] in WRITE_STAGES:
                    db.execute("UPDATE weighings SET ambiguous = ambiguous + 1 WHERE id = ?", (row["id"],))
                    self._journal(
                        db,
                        row["id"],
                        now,
                        "ambiguous_attempt",
                        f"{row['inflight']} was in flight when the bridge stopped",
                    )
            db.execute("UPDATE weighings SET inflight = NULL WHERE inflight IS NOT NULL")
            return len(rows)

        return int(self._write(fn))

    def close(self) -> None:
        with suppress(sqlite3.Error):
            self._db.close()

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        def fn(db: sqlite3.Connection) -> None:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._set_meta(key, value)

        self._write(fn)

    # ---- capture ----------------------------------------------------------------------------------

    def capture(
        self,
        *,
        scale: str,
        driver: str,
        body: dict[str, Any],
        card: str | None,
        card_source: str | None,
        state: JobState = JobState.PENDING,
        dedupe_key: str | None = None,
        dedupe_ttl_s: float = 600.0,
        note: str | None = None,
        now: float | None = None,
        dedupe_at: float | None = None,
    ) -> int | None:
        """Commit one weighing. Returns its id, or None if ``dedupe_key`` was seen within its TTL.

        ``now``: when it is committed (default: the store's clock; tests pass older times). The job is
        due at once. ``dedupe_at``: the reading's time on its event stream's clock (a replay's is the
        recording's), against which the dedupe TTL is kept; default ``now``."""
        wall = self._clock()
        captured = wall if now is None else now
        t = captured if dedupe_at is None else dedupe_at
        uid = str(uuid.uuid4())

        def fn(db: sqlite3.Connection) -> int | None:
            if dedupe_key is not None:
                row = db.execute("SELECT expires_at FROM dedupe WHERE key = ?", (dedupe_key,)).fetchone()
                if row is not None and row["expires_at"] > t:
                    return None
            cur = db.execute(
                "INSERT INTO weighings (uid, captured_at, scale, driver, card, card_source, body, state, stage,"
                " next_attempt_at, updated_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uid,
                    captured,
                    scale,
                    driver,
                    card,
                    card_source,
                    json.dumps(body, separators=(",", ":")),
                    state.value,
                    Stage.RESOLVE.value,
                    wall,
                    wall,
                    note,
                ),
            )
            wid = int(cur.lastrowid or 0)
            if dedupe_key is not None:
                db.execute(
                    "INSERT INTO dedupe (key, weighing_id, seen_at, expires_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET weighing_id = excluded.weighing_id,"
                    " seen_at = excluded.seen_at, expires_at = excluded.expires_at",
                    (dedupe_key, wid, t, t + dedupe_ttl_s),
                )
            return wid

        result: int | None = self._write(fn)
        return result

    def seen(self, dedupe_key: str, now: float | None = None) -> bool:
        t = self._clock() if now is None else now
        row = self._db.execute("SELECT expires_at FROM dedupe WHERE key = ?", (dedupe_key,)).fetchone()
        return row is not None and row["expires_at"] > t

    # ---- reading ----------------------------------------------------------------------------------

    def _must(self, wid: int) -> Job:
        job = self.get(wid)
        if job is None:
            raise OutboxError(f"weighing {wid} does not exist")
        return job

    def get(self, wid: int) -> Job | None:
        row = self._db.execute("SELECT * FROM weighings WHERE id = ?", (wid,)).fetchone()
        return None if row is None else Job.from_row(row)

    def due(self, now: float | None = None, limit: int = 16, exclude: frozenset[int] = frozenset()) -> list[Job]:
        t = self._clock() if now is None else now
        rows = self._db.execute(
            # oldest capture first among the due: a backlog (after an outage, a restart) drains in
            # capture order, whatever the jittered retry times of its jobs
            "SELECT * FROM weighings WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (t, limit + len(exclude)),
        ).fetchall()
        return [j for j in (Job.from_row(r) for r in rows) if j.id not in exclude][:limit]

    def next_due_at(self) -> float | None:
        row = self._db.execute("SELECT MIN(next_attempt_at) FROM weighings WHERE state = 'pending'").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def jobs(self, state: JobState | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        if state is None:
            rows = self._db.execute("SELECT * FROM weighings ORDER BY id LIMIT ? OFFSET ?", (limit, offset))
        else:
            rows = self._db.execute(
                "SELECT * FROM weighings WHERE state = ? ORDER BY id LIMIT ? OFFSET ?", (state.value, limit, offset)
            )
        return [Job.from_row(r) for r in rows.fetchall()]

    def dead_letter(self, wid: int) -> DeadLetter | None:
        row = self._db.execute("SELECT * FROM dead_letters WHERE weighing_id = ?", (wid,)).fetchone()
        return None if row is None else DeadLetter(**dict(row))

    def history(self, wid: int) -> list[tuple[float, str, str | None]]:
        """The weighing's journey: its capture (from its own row, not stored twice), then the journal."""
        row = self._db.execute("SELECT captured_at FROM weighings WHERE id = ?", (wid,)).fetchone()
        if row is None:
            return []
        rows = self._db.execute("SELECT at, event, detail FROM journal WHERE weighing_id = ? ORDER BY id", (wid,))
        return [(row["captured_at"], "captured", None), *((r["at"], r["event"], r["detail"]) for r in rows.fetchall())]

    def stats(self) -> QueueStats:
        counts = {s.value: 0 for s in JobState}
        for row in self._db.execute("SELECT state, COUNT(*) FROM weighings GROUP BY state"):
            counts[row[0]] = row[1]
        amb = self._db.execute("SELECT COUNT(*) FROM weighings WHERE ambiguous > 0").fetchone()[0]
        oldest = self._db.execute(
            "SELECT MIN(captured_at) FROM weighings WHERE state IN ('pending', 'unidentified', 'parked')"
        ).fetchone()[0]
        last_del = self._db.execute("SELECT MAX(delivered_at) FROM weighings").fetchone()[0]
        last_cap = self._db.execute("SELECT MAX(captured_at) FROM weighings").fetchone()[0]
        last_del_meta = self.meta("last_delivered_at")
        if last_del is None and last_del_meta is not None:
            last_del = float(last_del_meta)
        return QueueStats(
            pending=counts["pending"],
            unidentified=counts["unidentified"],
            parked=counts["parked"],
            delivered=counts["delivered"],
            dead=counts["dead"],
            ambiguous_jobs=int(amb),
            oldest_pending_captured_at=oldest,
            last_delivered_at=last_del,
            last_captured_at=last_cap,
        )

    # ---- the uploader's transitions ------------------------------------------------------------------

    def begin(self, wid: int, stage: Stage, now: float | None = None) -> Job:
        """Committed before a request that writes to the platform is sent."""
        t = self._clock() if now is None else now
        self._write(
            lambda db: db.execute(
                "UPDATE weighings SET inflight = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (stage.value, t, wid),
            )
        )
        return self._must(wid)

    def resolved(
        self,
        wid: int,
        *,
        customer_id: int,
        profile: dict[str, Any] | None,
        card_query: tuple[str, str] | None,
        benefit_valid: bool | None,
        home_studio: int | None = None,
        note: str | None = None,
        begin_post: bool = False,
        now: float | None = None,
    ) -> Job:
        """Store the member resolution; the job moves to the POST stage. ``begin_post`` also marks the
        POST attempt as started (what ``begin(wid, Stage.POST)`` does) in the same commit, when the
        uploader goes straight on to post: one fsync fewer per weighing."""
        t = self._clock() if now is None else now
        inflight = Stage.POST.value if begin_post else None

        def fn(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE weighings SET customer_id = ?, profile = ?, card_query = ?, benefit_valid = ?,"
                " home_studio = ?, resolved_at = ?, stage = ?, inflight = ?, attempts = attempts + ?,"
                " last_error = NULL, note = ?, updated_at = ? WHERE id = ?",
                (
                    customer_id,
                    json.dumps(profile) if profile else None,
                    json.dumps(list(card_query)) if card_query else None,
                    None if benefit_valid is None else int(benefit_valid),
                    home_studio,
                    t,
                    Stage.POST.value,
                    inflight,
                    int(begin_post),
                    note,
                    t,
                    wid,
                ),
            )
            benefit = {True: "valid", False: "not valid", None: "not checked"}[benefit_valid]
            detail = f"customer {customer_id}, benefit {benefit}"
            self._journal(db, wid, t, "resolved", detail + (f"; {note}" if note else ""))

        self._write(fn)
        return self._must(wid)

    def benefit_refused(self, wid: int, *, note: str, now: float | None = None) -> Job:
        """The platform refused the benefit key on the POST (e.g. used up since the check)."""
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE weighings SET benefit_valid = 0, inflight = NULL, note = ?, updated_at = ? WHERE id = ?",
                (note, t, wid),
            )
            self._journal(db, wid, t, "benefit_refused", note)

        self._write(fn)
        return self._must(wid)

    def reresolve(self, wid: int, reason: str, now: float | None = None) -> Job:
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> None:
            db.execute("UPDATE weighings SET stage = 'resolve', inflight = NULL, updated_at = ? WHERE id = ?", (t, wid))
            self._journal(db, wid, t, "resolve_again", reason)

        self._write(fn)
        return self._must(wid)

    def posted(
        self, wid: int, *, benefit_attached: bool, next_stage: Stage, status: int, now: float | None = None
    ) -> Job:
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE weighings SET stage = ?, benefit_attached = ?, benefit_used = ?, inflight = NULL,"
                " last_status = ?, last_error = NULL, updated_at = ? WHERE id = ?",
                (next_stage.value, int(benefit_attached), 1 if benefit_attached else None, status, t, wid),
            )
            self._journal(
                db, wid, t, "posted", f"HTTP {status}" + (", benefit key attached" if benefit_attached else "")
            )
            if next_stage is Stage.DONE:
                self._deliver(db, wid, t)

        self._write(fn)
        return self._must(wid)

    def benefit_use_recorded(
        self, wid: int, *, used: bool, status: int, note: str | None = None, now: float | None = None
    ) -> Job:
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE weighings SET stage = 'done', benefit_used = ?, inflight = NULL, last_status = ?,"
                " note = COALESCE(?, note), updated_at = ? WHERE id = ?",
                (int(used), status, note, t, wid),
            )
            self._journal(db, wid, t, "benefit_used" if used else "benefit_not_used", note or f"HTTP {status}")
            self._deliver(db, wid, t)

        self._write(fn)
        return self._must(wid)

    def _deliver(self, db: sqlite3.Connection, wid: int, t: float) -> None:
        db.execute("UPDATE weighings SET state = 'delivered', stage = 'done', delivered_at = ? WHERE id = ?", (t, wid))
        self._set_meta("last_delivered_at", repr(t))
        self._journal(db, wid, t, "delivered")

    def retry_later(
        self,
        wid: int,
        *,
        next_attempt_at: float,
        status: int | None,
        error: str,
        ambiguous: bool = False,
        reason: WaitReason = WaitReason.BACKOFF,
        now: float | None = None,
    ) -> Job:
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE weighings SET attempts = attempts + (CASE WHEN inflight IS NULL THEN 1 ELSE 0 END),"
                " inflight = NULL, next_attempt_at = ?, last_status = ?, last_error = ?,"
                " ambiguous = ambiguous + ?, updated_at = ? WHERE id = ?",
                (next_attempt_at, status, error[:500], int(ambiguous), t, wid),
            )
            self._journal(
                db,
                wid,
                t,
                "ambiguous_attempt" if ambiguous else "retry_scheduled",
                f"{error[:200]}; next in {max(0.0, next_attempt_at - t):.0f} s",
            )

        self._write(fn)
        return self._must(wid)

    def release_backoff(self, reason: WaitReason = WaitReason.OUTAGE, now: float | None = None) -> int:
        """The platform answers again after an outage: every job waiting out a backoff for a server or
        network failure is due now, so the backlog drains in capture order (``due()`` orders by due
        time, then id) instead of in the random order of its jittered retry times. Jobs that wait for
        a 429 lock-out are left alone."""
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "UPDATE weighings SET next_attempt_at = ? WHERE state = 'pending' AND next_attempt_at > ?"
                " AND (last_status IS NULL OR last_status >= 500 OR last_status IN (408, 425))",
                (t, t),
            )
            return cur.rowcount

        return int(self._write(fn))

    def kill(
        self,
        wid: int,
        *,
        stage: Stage,
        status: int | None,
        error_code: str | None,
        error_message: str,
        trace_id: str | None,
        now: float | None = None,
    ) -> Job:
        """Dead-letter a job: a permanent refusal, with the server's message. Kept until handled."""
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE weighings SET state = 'dead', inflight = NULL, last_status = ?, last_error = ?, updated_at = ?"
                " WHERE id = ?",
                (status, error_message[:500], t, wid),
            )
            db.execute(
                "INSERT OR REPLACE INTO dead_letters (weighing_id, at, stage, status, error_code, error_message,"
                " trace_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (wid, t, stage.value, status, error_code, error_message[:2000], trace_id),
            )
            self._journal(
                db, wid, t, "dead_lettered", f"{stage.value}: HTTP {status} {error_code or ''} {error_message[:200]}"
            )

        self._write(fn)
        return self._must(wid)

    def park(self, wid: int, reason: str, state: JobState = JobState.PARKED, now: float | None = None) -> Job:
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE weighings SET state = ?, inflight = NULL, note = ?, updated_at = ? WHERE id = ?",
                (state.value, reason, t, wid),
            )
            self._journal(db, wid, t, "parked", reason)

        self._write(fn)

    # ---- operator actions ---------------------------------------------------------------------------
        return self._must(wid)

    def assign(self, wid: int, card: str, now: float | None = None) -> bool:
        """Attach a member card to a weighing (unidentified, parked or dead) and queue it again."""
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE weighings SET card = ?, card_source = 'assigned', state = 'pending', stage = 'resolve',"
                " customer_id = NULL, card_query = NULL, next_attempt_at = ?, note = NULL, updated_at = ?"
                " WHERE id = ? AND state IN ('unidentified', 'parked', 'dead', 'pending')",
                (card, t, t, wid),
            )
            if cur.rowcount:
                db.execute("DELETE FROM dead_letters WHERE weighing_id = ?", (wid,))
                self._journal(db, wid, t, "assigned", "card assigned by operator")
            return cur.rowcount > 0

        return bool(self._write(fn))

    def retry(self, wid: int, now: float | None = None) -> bool:
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE weighings SET state = 'pending', next_attempt_at = ?, updated_at = ?"
                " WHERE id = ? AND state IN ('pending', 'parked', 'dead') ",
                (t, t, wid),
            )
            if cur.rowcount:
                db.execute("DELETE FROM dead_letters WHERE weighing_id = ?", (wid,))
                self._journal(db, wid, t, "retry_requested", "by operator")
            return cur.rowcount > 0

        return bool(self._write(fn))

    def retry_dead(self, now: float | None = None) -> int:
        ids = [j.id for j in self.jobs(JobState.DEAD, limit=1_000_000)]
        return sum(self.retry(i, now) for i in ids)

    def purge_delivered(self, older_than: float, now: float | None = None) -> int:
        """Delete delivered weighings delivered before ``older_than``; expired dedupe keys too."""
        t = self._clock() if now is None else now

        def fn(db: sqlite3.Connection) -> int:
            cur = db.execute("DELETE FROM weighings WHERE state = 'delivered' AND delivered_at < ?", (older_than,))
            db.execute("DELETE FROM dedupe WHERE expires_at < ?", (t,))
            return cur.rowcount

        return int(self._write(fn))

    def acknowledge_corruption(self) -> bool:
        had = self.meta("corruption") is not None
        self.set_meta("corruption", None)
        return had

    def quick_check(self) -> str:
        rows = self._db.execute("PRAGMA quick_check").fetchall()
        return "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:5])
