"""The outbox's schema and its values: the DDL, the schema version and its migrations, the job states
and stages, why a pending job waits (``WaitReason``), and the frozen rows (``Job``, ``DeadLetter``,
``QueueStats``, ``CorruptionEvent``) built from database rows. No I/O here: ``store.py`` runs the SQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

SCHEMA_VERSION = 2


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
    """Why a pending job waits for its ``next_attempt_at``: the caller's decision, stored so that the
    wait can be ended for one reason (``Outbox.release_backoff``) without the store knowing why a
    request failed."""

    BACKOFF = "backoff"  # an ordinary retry after a failure
    OUTAGE = "outage"  # the platform or the network is down
    RATE_LIMIT = "rate_limit"  # the platform asked for a pause
    AUTH = "auth"  # the API key is rejected


# The tables as a version-2 file has them. A version-1 file is upgraded by MIGRATIONS[1].
DDL = """
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
    updated_at REAL NOT NULL,
    wait_reason TEXT
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
class Migration:
    """Upgrades a file from ``from_version`` to ``from_version + 1``. ``add_columns``: (table, column,
    declaration), each added only if the table lacks it (an interrupted upgrade can run again)."""

    from_version: int
    add_columns: tuple[tuple[str, str, str], ...]


# Version 1 -> 2: the reason a pending job waits. A job upgraded while it waits keeps its due time and
# has no reason (NULL): no release ends its wait early, it is due when its stored time comes.
MIGRATIONS: dict[int, Migration] = {1: Migration(1, (("weighings", "wait_reason", "TEXT"),))}


def statements(ddl: str = DDL) -> list[str]:
    return [s.strip() for s in ddl.split(";") if s.strip()]


class Row(Protocol):
    """What ``from_row`` needs of a database row (``sqlite3.Row`` is one)."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def keys(self) -> list[str]: ...


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _opt_json(v: Any) -> Any:
    return json.loads(v) if v else None


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
    wait_reason: WaitReason | None = None

    @classmethod
    def from_row(cls, row: Row) -> Job:
        # a read-only reader may look at a version-1 file that no writer has upgraded yet
        reason = row["wait_reason"] if "wait_reason" in row.keys() else None  # noqa: SIM118 (sqlite3.Row)
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
            profile=_opt_json(row["profile"]),
            card_query=_opt_json(row["card_query"]),
            benefit_valid=_opt_bool(row["benefit_valid"]),
            benefit_attached=_opt_bool(row["benefit_attached"]),
            benefit_used=_opt_bool(row["benefit_used"]),
            resolved_at=row["resolved_at"],
            attempts=row["attempts"],
            ambiguous=row["ambiguous"],
            inflight=row["inflight"],
            next_attempt_at=row["next_attempt_at"],
            last_status=row["last_status"],
            last_error=row["last_error"],
            note=row["note"],
            delivered_at=row["delivered_at"],
            wait_reason=None if reason is None else WaitReason(reason),
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

    @classmethod
    def from_row(cls, row: Row) -> DeadLetter:
        return cls(
            weighing_id=row["weighing_id"],
            at=row["at"],
            stage=row["stage"],
            status=row["status"],
            error_code=row["error_code"],
            error_message=row["error_message"],
            trace_id=row["trace_id"],
        )


def _age_s(captured_at: float | None, now: float) -> float:
    return 0.0 if captured_at is None else max(0.0, now - captured_at)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The queue's figures, from one read. ``oldest_pending_captured_at`` counts the ``pending`` state
    only (what the uploader still has to do); weighings waiting for staff (``unidentified`` and
    ``parked``) have their own ``oldest_waiting_for_staff_captured_at``."""

    pending: int
    unidentified: int
    parked: int
    delivered: int
    dead: int
    ambiguous_jobs: int
    oldest_pending_captured_at: float | None
    oldest_waiting_for_staff_captured_at: float | None
    last_delivered_at: float | None
    last_captured_at: float | None

    @property
    def waiting_for_staff(self) -> int:
        return self.unidentified + self.parked

    def oldest_pending_age_s(self, now: float) -> float:
        return _age_s(self.oldest_pending_captured_at, now)

    def oldest_waiting_for_staff_age_s(self, now: float) -> float:
        return _age_s(self.oldest_waiting_for_staff_captured_at, now)


@dataclass(frozen=True, slots=True)
class CorruptionEvent:
    moved_to: str
    at: str
    reason: str

    def to_json(self) -> str:
        return json.dumps({"moved_to": self.moved_to, "at": self.at, "reason": self.reason})
