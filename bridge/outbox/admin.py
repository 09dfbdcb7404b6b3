"""The outbox's read model and the operator's actions.

``ReadModel``: what a report or a health check reads (jobs, dead letters, a weighing's history, the
queue's figures as one ``QueueStats``, export rows, meta). ``open_read_only(path)`` gives one on a
read-only connection (``mode=ro``, ``PRAGMA query_only``) that never creates, upgrades or writes.
``Admin``: the operator's actions (``queue assign|retry|purge|ack-corruption``) on a writable store.
``AdminFacade``: both, as methods of ``Outbox`` (``outbox.stats()``, ``outbox.assign(...)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .schema import DeadLetter, Job, JobState, QueueStats
from .store import Store, Tx

_STATS_SQL = """
SELECT
    COUNT(*) FILTER (WHERE state = 'pending'),
    COUNT(*) FILTER (WHERE state = 'unidentified'),
    COUNT(*) FILTER (WHERE state = 'parked'),
    COUNT(*) FILTER (WHERE state = 'delivered'),
    COUNT(*) FILTER (WHERE state = 'dead'),
    COUNT(*) FILTER (WHERE ambiguous > 0),
    MIN(captured_at) FILTER (WHERE state = 'pending'),
    MIN(captured_at) FILTER (WHERE state IN ('unidentified', 'parked')),
    MAX(delivered_at),
    MAX(captured_at),
    (SELECT value FROM meta WHERE key = 'last_delivered_at')
FROM weighings
"""


class ReadModel:
    """Reads only. Each figure set (``stats``) comes from one statement, so from one snapshot."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def jobs(self, state: JobState | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        if state is None:
            rows = self._store.all("SELECT * FROM weighings ORDER BY id LIMIT ? OFFSET ?", (limit, offset))
        else:
            rows = self._store.all(
                "SELECT * FROM weighings WHERE state = ? ORDER BY id LIMIT ? OFFSET ?", (state.value, limit, offset)
            )
        return [Job.from_row(r) for r in rows]

    def export_rows(self, state: JobState | None = None, batch: int = 1000) -> Iterator[Job]:
        """Every weighing (of ``state``), in id order, read ``batch`` at a time (keyset paging: a row
        deleted or added meanwhile neither repeats nor hides another)."""
        after = 0
        while True:
            where = "id > ?" + ("" if state is None else " AND state = ?")
            params = (after,) if state is None else (after, state.value)
            rows = self._store.all(f"SELECT * FROM weighings WHERE {where} ORDER BY id LIMIT ?", (*params, batch))
            if not rows:
                return
            for r in rows:
                yield Job.from_row(r)
            after = int(rows[-1]["id"])

    def dead_letter(self, wid: int) -> DeadLetter | None:
        row = self._store.one("SELECT * FROM dead_letters WHERE weighing_id = ?", (wid,))
        return None if row is None else DeadLetter.from_row(row)

    def history(self, wid: int) -> list[tuple[float, str, str | None]]:
        """The weighing's journey: its capture (from its own row, not stored twice), then the journal."""
        row = self._store.one("SELECT captured_at FROM weighings WHERE id = ?", (wid,))
        if row is None:
            return []
        rows = self._store.all("SELECT at, event, detail FROM journal WHERE weighing_id = ? ORDER BY id", (wid,))
        return [(row["captured_at"], "captured", None), *((r["at"], r["event"], r["detail"]) for r in rows)]

    def stats(self) -> QueueStats:
        row = self._store.one(_STATS_SQL)
        assert row is not None  # an aggregate always has a row
        last_delivered = row[8] if row[8] is not None else (None if row[10] is None else float(row[10]))
        return QueueStats(
            pending=int(row[0]),
            unidentified=int(row[1]),
            parked=int(row[2]),
            delivered=int(row[3]),
            dead=int(row[4]),
            ambiguous_jobs=int(row[5]),
            oldest_pending_captured_at=row[6],
            oldest_waiting_for_staff_captured_at=row[7],
            last_delivered_at=last_delivered,
            last_captured_at=row[9],
        )

    def meta(self, key: str) -> str | None:
        return self._store.meta(key)

    def quick_check(self) -> str:
        return self._store.quick_check()

    def close(self) -> None:
        self._store.close()


def open_read_only(path: str | Path) -> ReadModel:
    """A read model on a read-only connection, for ``check`` and reports beside a running daemon.
    Raises ``OutboxError`` if the file cannot be opened."""
    return ReadModel(Store(path, clock=time.time, read_only=True))


class Admin(ReadModel):
    """The operator's actions. ``clock`` (epoch seconds) is used when a call gives no ``now``."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        super().__init__(store)
        self._clock = clock

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def set_meta(self, key: str, value: str | None) -> None:
        self._store.set_meta(key, value)

    def assign(self, wid: int, card: str, now: float | None = None) -> bool:
        """Attach a member card to a weighing (unidentified, parked, dead or pending) and queue it again
        from the member lookup."""
        t = self._now(now)

        def fn(tx: Tx) -> bool:
            n = tx.execute(
                "UPDATE weighings SET card = ?, card_source = 'assigned', state = 'pending', stage = 'resolve',"
                " customer_id = NULL, card_query = NULL, next_attempt_at = ?, wait_reason = NULL, note = NULL,"
                " updated_at = ? WHERE id = ? AND state IN ('unidentified', 'parked', 'dead', 'pending')",
                (card, t, t, wid),
            )
            if n:
                tx.execute("DELETE FROM dead_letters WHERE weighing_id = ?", (wid,))
                tx.journal(wid, t, "assigned", "card assigned by operator")
            return n > 0

        return self._store.write(fn)

    def retry(self, wid: int, now: float | None = None) -> bool:
        """Queue a pending, parked or dead weighing again, due now."""
        t = self._now(now)

        def fn(tx: Tx) -> bool:
            n = tx.execute(
                "UPDATE weighings SET state = 'pending', next_attempt_at = ?, wait_reason = NULL, updated_at = ?"
                " WHERE id = ? AND state IN ('pending', 'parked', 'dead')",
                (t, t, wid),
            )
            if n:
                tx.execute("DELETE FROM dead_letters WHERE weighing_id = ?", (wid,))
                tx.journal(wid, t, "retry_requested", "by operator")
            return n > 0

        return self._store.write(fn)

    def retry_dead(self, now: float | None = None) -> int:
        ids = [j.id for j in self.export_rows(JobState.DEAD)]
        return sum(self.retry(i, now) for i in ids)

    def purge_delivered(self, older_than: float, now: float | None = None) -> int:
        """Delete delivered weighings delivered before ``older_than``; expired dedupe keys too."""
        t = self._now(now)

        def fn(tx: Tx) -> int:
            n = tx.execute("DELETE FROM weighings WHERE state = 'delivered' AND delivered_at < ?", (older_than,))
            tx.execute("DELETE FROM dedupe WHERE expires_at < ?", (t,))
            return n

        return self._store.write(fn)

    def acknowledge_corruption(self) -> bool:
        def fn(tx: Tx) -> bool:
            had = tx.one("SELECT 1 FROM meta WHERE key = 'corruption'") is not None
            tx.set_meta("corruption", None)
            return had

        return self._store.write(fn)


class AdminFacade:
    """``Admin``'s methods on ``Outbox``, so that callers keep writing ``outbox.stats()``."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.admin = Admin(store, clock)

    def jobs(self, state: JobState | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        return self.admin.jobs(state, limit, offset)

    def export_rows(self, state: JobState | None = None, batch: int = 1000) -> Iterator[Job]:
        return self.admin.export_rows(state, batch)

    def dead_letter(self, wid: int) -> DeadLetter | None:
        return self.admin.dead_letter(wid)

    def history(self, wid: int) -> list[tuple[float, str, str | None]]:
        return self.admin.history(wid)

    def stats(self) -> QueueStats:
        return self.admin.stats()

    def meta(self, key: str) -> str | None:
        return self.admin.meta(key)

    def set_meta(self, key: str, value: str | None) -> None:
        self.admin.set_meta(key, value)

    def quick_check(self) -> str:
        return self.admin.quick_check()

    def assign(self, wid: int, card: str, now: float | None = None) -> bool:
        return self.admin.assign(wid, card, now)

    def retry(self, wid: int, now: float | None = None) -> bool:
        return self.admin.retry(wid, now)

    def retry_dead(self, now: float | None = None) -> int:
        return self.admin.retry_dead(now)

    def purge_delivered(self, older_than: float, now: float | None = None) -> int:
        return self.admin.purge_delivered(older_than, now)

    def acknowledge_corruption(self) -> bool:
        return self.admin.acknowledge_corruption()
