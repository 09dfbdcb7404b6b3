"""``Store``: the outbox's one SQLite file and the only user of ``sqlite3`` in the outbox.

It opens the file (WAL with a bounded ``-wal`` file, ``synchronous=FULL``, foreign keys, a busy
timeout), refuses a file it may not
read and write (a permission problem is not corruption), moves a damaged file aside (``quick_check``)
and starts a fresh one that says so in its ``corruption`` meta key, creates or upgrades the schema, and
runs every write as one ``BEGIN IMMEDIATE`` transaction (``write``), translating SQLite's failures
into ``StorageError`` (disk full, I/O error: nothing was committed) or ``OutboxError``.

A read-only store (``read_only=True``: ``mode=ro`` and ``PRAGMA query_only``) is what health checks
and reports use: it never creates, upgrades, moves or writes anything.

The connection belongs to the thread that opened the store (``check_same_thread`` stays on):
``AsyncOutbox`` opens it on its own worker thread.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ..errors import OutboxError, StorageError
from .schema import MIGRATIONS, SCHEMA_VERSION, CorruptionEvent, Row, statements

T = TypeVar("T")
Params = Sequence[Any]

# The -wal file's bounds. SQLite checkpoints when a commit leaves the WAL over WAL_AUTOCHECKPOINT_PAGES
# (its default, said here: about 4 MiB of 4 KiB pages), and starts the file over at the next write once a
# checkpoint has copied everything. While a reader holds an old snapshot (a long ``sqlite3`` session, a
# slow ``quick_check`` beside the daemon) the file cannot start over and keeps growing; without a limit
# it then keeps its largest size for good (measured: 96 MiB after one held reader, on a 10 MiB outbox).
# With ``journal_size_limit`` SQLite truncates it back to this size when it starts over. Above the
# ordinary cycle's ~4 MiB, so the ordinary cycle is never truncated (an SD card is spared that churn).
WAL_AUTOCHECKPOINT_PAGES = 1000
JOURNAL_SIZE_LIMIT_BYTES = 6 * 2**20

_STORAGE_FAILURES = ("disk is full", "disk i/o error", "readonly", "unable to open", "out of memory")


def _is_storage_failure(exc: sqlite3.Error) -> bool:
    msg = str(exc).lower()
    return any(s in msg for s in _STORAGE_FAILURES)


def _translate(exc: sqlite3.Error, what: str) -> OutboxError:
    return (StorageError if _is_storage_failure(exc) else OutboxError)(f"{what}: {exc}")


def _utc_stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")


def refuse_if_not_ours(path: Path) -> None:
    """A permission problem is not corruption: moving a healthy file aside because it belongs to root
    (e.g. after someone ran the daemon as root once) would hide its queue. Refuse to start instead."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and not os.access(p, os.R_OK | os.W_OK):
            raise OutboxError(
                f"cannot read and write {p} (permission denied): fix its owner/mode; "
                "the outbox is not moved aside for this"
            )


def check_file(path: Path) -> str | None:
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


def move_aside(path: Path, reason: str, now: float) -> CorruptionEvent:
    """Rename a damaged file (and its -wal/-shm) to ``<name>.corrupt-<UTC time>``: kept for forensics."""
    target = path.with_name(f"{path.name}.corrupt-{_utc_stamp(now)}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{_utc_stamp(now)}-{n}")
        n += 1
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return CorruptionEvent(str(target), datetime.fromtimestamp(now, UTC).isoformat(), reason)


class Tx:
    """One open write transaction, handed to the function given to ``Store.write``."""

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; the number of rows it changed."""
        return self._db.execute(sql, params).rowcount

    def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT; the new row's id."""
        return int(self._db.execute(sql, params).lastrowid or 0)

    def one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query or of an ``UPDATE ... RETURNING``; the statement is run to its end
        (SQLite finishes a RETURNING statement's changes only then)."""
        rows: list[Row] = self._db.execute(sql, params).fetchall()
        return rows[0] if rows else None

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = self._db.execute(sql, params).fetchall()
        return rows

    def journal(self, wid: int, at: float, event: str, detail: str | None = None) -> None:
        self._db.execute(
            "INSERT INTO journal (weighing_id, at, event, detail) VALUES (?, ?, ?, ?)", (wid, at, event, detail)
        )

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


class Store:
    """The outbox file. ``primary``: the daemon's own store, the only one that moves a damaged file
    aside and checkpoints; ``check=False`` skips the start-up checks (tests, the CLI beside a daemon).
    ``clock`` (epoch seconds) names a moved-aside file. ``corruption`` is set when this open moved the
    file aside; ``migrated_from`` is the version this open upgraded, if it did."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float],
        check: bool = True,
        primary: bool = True,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.corruption: CorruptionEvent | None = None
        self.migrated_from: int | None = None
        if read_only:
            self._db = self._connect(f"file:{self.path}?mode=ro", uri=True)
            self._pragma("PRAGMA query_only=ON")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if check and primary and self.path.exists() and self.path.stat().st_size > 0:
            refuse_if_not_ours(self.path)
            reason = check_file(self.path)
            if reason is not None:
                self.corruption = move_aside(self.path, reason, clock())
        self._db = self._connect(str(self.path))
        for pragma in (
            "journal_mode=WAL",
            f"wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}",
            f"journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=10000",
        ):
            self._pragma(f"PRAGMA {pragma}")
        self.write(self._create_or_upgrade)

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(target, uri=uri, timeout=10, isolation_level=None)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from None
        db.row_factory = sqlite3.Row
        return db

    def _pragma(self, sql: str) -> None:
        try:
            self._db.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from None

    def _create_or_upgrade(self, tx: Tx) -> None:
        tables = {r["name"] for r in tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
        had_tables = "weighings" in tables
        version = SCHEMA_VERSION
        if had_tables:  # a file without a version row predates the versioning: version 1
            row = tx.one("SELECT value FROM meta WHERE key = 'schema_version'") if "meta" in tables else None
            version = int(row[0]) if row is not None else 1
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"{self.path} has schema version {version}; this scale-bridge knows up to {SCHEMA_VERSION}"
                " (written by a newer release: upgrade scale-bridge, do not delete the file)"
            )
        if had_tables and version < SCHEMA_VERSION:
            self.migrated_from = version
            for v in range(version, SCHEMA_VERSION):
                for table, column, decl in MIGRATIONS[v].add_columns:
                    have = {r["name"] for r in tx.all(f"PRAGMA table_info({table})")}
                    if column not in have:
                        tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        for stmt in statements():
            tx.execute(stmt)
        tx.set_meta("schema_version", str(SCHEMA_VERSION))
        if self.corruption is not None:
            tx.set_meta("corruption", self.corruption.to_json())

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection: for tests and benchmarks that set pragmas; the outbox never uses it."""
        return self._db

    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc, "outbox") from None
        try:
            yield Tx(self._db)
        except BaseException:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise _translate(exc, "outbox commit failed") from None

    def write(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in one transaction and commit it; an exception rolls everything back."""
        try:
            with self._tx() as tx:
                return fn(tx)
        except sqlite3.Error as exc:
            raise _translate(exc, "outbox") from None

    def one(self, sql: str, params: Params = ()) -> Row | None:
        """A read outside any write transaction (WAL: it never waits for a writer)."""
        try:
            row: Row | None = self._db.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, "outbox read") from None
        return row

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            rows: list[Row] = self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, "outbox read") from None
        return rows

    def meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        self.write(lambda tx: tx.set_meta(key, value))

    def quick_check(self) -> str:
        rows = self.all("PRAGMA quick_check")
        return "ok" if [tuple(r) for r in rows] == [("ok",)] else "; ".join(str(r[0]) for r in rows[:5])

    def checkpoint(self) -> None:
        """Move everything from the WAL into the main file (partial if a reader is busy)."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, "outbox checkpoint") from None

    def close(self) -> None:
        with suppress(sqlite3.Error):
            self._db.close()
