"""The durable outbox: what the uploader does with a weighing, one committed step at a time.

A weighing is *captured* when ``capture()`` returns: that commit is the durability point, made before
any network call. The uploader then moves each job through its stages (resolve -> post -> use ->
done), storing each step, so a restart resumes where it stopped. An attempt at a stage that writes to
the platform is bracketed by ``begin()`` (committed before the request) and its outcome; a job found
with an unfinished attempt when the file is opened is counted as *ambiguous* (the request may have
reached the platform) and retried: at-least-once, with the possible duplicates counted.

Every transition is one transaction that returns the job as it was committed (``UPDATE ... RETURNING``):
callers never read the row again. The store records decisions and never makes them: why a job waits is
the caller's ``WaitReason``, and ``release_backoff`` ends the waits for one reason. A platform status
given to a transition is kept for display (``last_status``), never interpreted.

The clock: ``Outbox`` takes a ``clock`` (epoch seconds, UTC; default ``time.time``). Every method takes
an optional ``now`` and uses the clock only when it is not given; ``capture`` stamps its commit time
(the job's first due time) from the clock. The class is synchronous and bound to the thread that made
it; ``AsyncOutbox`` (``aio.py``) runs one on a thread of its own.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import OutboxError
from .admin import AdminFacade
from .schema import WRITE_STAGES, CorruptionEvent, Job, JobState, Stage, WaitReason
from .store import Params, Store, Tx

ERROR_MAX_CHARS = 1000  # last_error
DETAIL_MAX_CHARS = 200  # an error quoted in the journal
DEAD_MESSAGE_MAX_CHARS = 2000  # the server's message in a dead letter


class JobNotFound(OutboxError):
    """A transition named a weighing that is not in the outbox (purged, or never captured)."""


def _update(tx: Tx, wid: int, assignments: str, params: Params, t: float) -> Job:
    row = tx.one(f"UPDATE weighings SET {assignments}, updated_at = ? WHERE id = ? RETURNING *", (*params, t, wid))
    if row is None:
        raise JobNotFound(f"no weighing with id {wid} in the outbox")
    return Job.from_row(row)


# The transitions' assignments (``_update`` adds ``updated_at`` and the row). Every step that takes a
# job up ends its wait (``wait_reason = NULL``); only ``retry_later`` sets one.
_BEGIN = "inflight = ?, attempts = attempts + 1, wait_reason = NULL"
_RESOLVED = (
    "customer_id = ?, profile = ?, card_query = ?, benefit_valid = ?, home_studio = ?, resolved_at = ?,"
    " stage = 'post', inflight = ?, attempts = attempts + ?, last_error = NULL, note = ?, wait_reason = NULL"
)
_BENEFIT_REFUSED = (
    "benefit_valid = 0, resolved_at = ?, stage = 'post', inflight = NULL, last_error = NULL, note = ?,"
    " wait_reason = NULL"
)
_RERESOLVE = "stage = 'resolve', inflight = NULL, wait_reason = NULL"
_POSTED = (
    "stage = ?, benefit_attached = ?, benefit_used = ?, inflight = NULL, last_status = ?, last_error = NULL,"
    " wait_reason = NULL, state = CASE WHEN ? THEN 'delivered' ELSE state END,"
    " delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END"
)
_USE_RECORDED = (
    "stage = 'done', benefit_used = ?, inflight = NULL, last_status = ?, note = COALESCE(?, note),"
    " wait_reason = NULL, state = 'delivered', delivered_at = ?"
)
_RETRY_LATER = (
    "attempts = attempts + (CASE WHEN inflight IS NULL THEN 1 ELSE 0 END), inflight = NULL,"
    " next_attempt_at = ?, wait_reason = ?, last_status = ?, last_error = ?, ambiguous = ambiguous + ?"
)
_KILL = "state = 'dead', inflight = NULL, wait_reason = NULL, last_status = ?, last_error = ?"
_PARK = "state = ?, inflight = NULL, wait_reason = NULL, note = ?"
_DEAD_LETTER = (
    "INSERT OR REPLACE INTO dead_letters (weighing_id, at, stage, status, error_code, error_message, trace_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _delivered(tx: Tx, *, wid: int, t: float) -> None:
    tx.set_meta("last_delivered_at", repr(t))
    tx.journal(wid, t, "delivered")


class Transitions:
    """The uploader's steps for one job: each one commit, each returning the job as committed."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _step(
        self,
        wid: int,
        t: float,
        assignments: str,
        params: Params,
        *,
        event: str | None = None,
        detail: str | None = None,
        then: Callable[[Tx], object] | None = None,
    ) -> Job:
        """One UPDATE (``assignments``) returning the row, its journal entry and ``then``: one commit."""

        def fn(tx: Tx) -> Job:
            job = _update(tx, wid, assignments, params, t)
            if event is not None:
                tx.journal(wid, t, event, detail)
            if then is not None:
                then(tx)
            return job

        return self._store.write(fn)

    def begin(self, wid: int, stage: Stage, *, now: float | None = None) -> Job:
        """Committed before a request that writes to the platform is sent."""
        return self._step(wid, self._now(now), _BEGIN, (stage.value,))

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
        t = self._now(now)
        profile_doc = json.dumps(profile) if profile else None
        query_doc = json.dumps(list(card_query)) if card_query else None
        valid = None if benefit_valid is None else int(benefit_valid)
        inflight = Stage.POST.value if begin_post else None
        params = (customer_id, profile_doc, query_doc, valid, home_studio, t, inflight, int(begin_post), note)
        benefit = {True: "valid", False: "not valid", None: "not checked"}[benefit_valid]
        detail = f"customer {customer_id}, benefit {benefit}" + (f"; {note}" if note else "")
        return self._step(wid, t, _RESOLVED, params, event="resolved", detail=detail)

    def benefit_refused(self, wid: int, *, note: str, now: float | None = None) -> Job:
        """The platform refused the benefit key attached to the POST (e.g. used up since it was checked):
        the benefit is not valid now (the newest verdict, so ``resolved_at`` is now). The job stays at
        the POST stage with no attempt in flight; what follows (post without the key, or park) is the
        caller's decision."""
        t = self._now(now)
        return self._step(wid, t, _BENEFIT_REFUSED, (t, note), event="benefit_refused", detail=note)

    def reresolve(self, wid: int, reason: str, *, now: float | None = None) -> Job:
        """Back to the member lookup (e.g. the benefit check is too old to attach the key on it)."""
        return self._step(wid, self._now(now), _RERESOLVE, (), event="resolve_again", detail=reason)

    def posted(
        self, wid: int, *, benefit_attached: bool, next_stage: Stage, status: int, now: float | None = None
    ) -> Job:
        """The POST was accepted. A benefit key attached to it is its use (``benefit_used``). With
        ``next_stage`` DONE the job is delivered in the same commit."""
        t = self._now(now)
        done = next_stage is Stage.DONE
        used = 1 if benefit_attached else None
        params = (next_stage.value, int(benefit_attached), used, status, done, done, t)
        detail = f"HTTP {status}" + (", benefit key attached" if benefit_attached else "")
        then = partial(_delivered, wid=wid, t=t) if done else None
        return self._step(wid, t, _POSTED, params, event="posted", detail=detail, then=then)

    def benefit_use_recorded(
        self, wid: int, *, used: bool, status: int, note: str | None = None, now: float | None = None
    ) -> Job:
        """The benefit's use was recorded (``used``) or refused (not ``used``): either way the job is done
        and delivered."""
        t = self._now(now)
        event = "benefit_used" if used else "benefit_not_used"
        then = partial(_delivered, wid=wid, t=t)
        return self._step(
            wid, t, _USE_RECORDED, (int(used), status, note, t), event=event, detail=note or f"HTTP {status}", then=then
        )

    def retry_later(
        self,
        wid: int,
        *,
        next_attempt_at: float,
        reason: WaitReason = WaitReason.BACKOFF,
        status: int | None,
        error: str,
        ambiguous: bool = False,
        now: float | None = None,
    ) -> Job:
        """The job waits until ``next_attempt_at`` for ``reason`` (the caller's failure policy decides
        it; default: an ordinary retry). An attempt that was not begun counts as one here. ``status``
        is kept for display only."""
        t = self._now(now)
        params = (next_attempt_at, reason.value, status, error[:ERROR_MAX_CHARS], int(ambiguous))
        event = "ambiguous_attempt" if ambiguous else "retry_scheduled"
        wait_s = max(0.0, next_attempt_at - t)
        detail = f"{error[:DETAIL_MAX_CHARS]}; next in {wait_s:.0f} s ({reason.value})"
        return self._step(wid, t, _RETRY_LATER, params, event=event, detail=detail)

    def release_backoff(self, reason: WaitReason, *, now: float | None = None) -> int:
        """End the wait of every pending job that waits for ``reason`` (e.g. the platform answers again
        after an outage): each is due now, so the backlog drains in capture order (``due()`` orders by
        id) instead of in the random order of its jittered retry times. Jobs waiting for another reason
        are left alone. Returns how many were released."""
        t = self._now(now)
        sql = (
            "UPDATE weighings SET next_attempt_at = ?, wait_reason = NULL"
            " WHERE state = 'pending' AND next_attempt_at > ? AND wait_reason = ?"
        )
        return self._store.write(lambda tx: tx.execute(sql, (t, t, reason.value)))

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
        t = self._now(now)
        letter = (wid, t, stage.value, status, error_code, error_message[:DEAD_MESSAGE_MAX_CHARS], trace_id)
        detail = f"{stage.value}: HTTP {status} {error_code or ''} {error_message[:DETAIL_MAX_CHARS]}"
        params = (status, error_message[:ERROR_MAX_CHARS])
        return self._step(
            wid,
            t,
            _KILL,
            params,
            event="dead_lettered",
            detail=detail,
            then=lambda tx: tx.execute(_DEAD_LETTER, letter),
        )

    def park(self, wid: int, reason: str, state: JobState = JobState.PARKED, *, now: float | None = None) -> Job:
        """Hold a job for staff (``parked``, or ``unidentified`` when there is no member), in one commit:
        any attempt in flight is over and no wait remains."""
        return self._step(wid, self._now(now), _PARK, (state.value, reason), event="parked", detail=reason)


class Outbox(Transitions, AdminFacade):
    """Synchronous outbox core on a ``Store``. One instance per process; the CLI may open a second one
    beside the daemon (WAL readers never block; writers wait up to ``busy_timeout``).

    ``primary``: the daemon's own instance. A secondary one (the CLI beside a running daemon) neither
    moves a file aside nor treats the daemon's in-flight attempts as interrupted, and does not
    checkpoint. ``check=False`` skips the start-up file checks. ``recovered_inflight``: how many
    unfinished attempts this open found (and counted as ambiguous for the write stages)."""

    def __init__(
        self, path: str | Path, *, clock: Callable[[], float] | None = None, check: bool = True, primary: bool = True
    ) -> None:
        tick: Callable[[], float] = clock or time.time
        store = Store(path, clock=tick, check=check, primary=primary)
        Transitions.__init__(self, store, tick)
        AdminFacade.__init__(self, store, tick)
        self.path = store.path
        self.corruption: CorruptionEvent | None = store.corruption
        self.recovered_inflight = 0
        if not primary:
            return
        self.recovered_inflight = self._recover_inflight()
        # Move everything (the schema of a new file included) from the WAL into the main file: a
        # lost -wal file can then cost at most what was committed since this start, and the file
        # is never "valid and empty" (see docs/reliability.md). A busy reader only makes it partial.
        self._store.checkpoint()

    @property
    def store(self) -> Store:
        return self._store

    @property
    def _db(self) -> Any:
        """The raw sqlite3 connection, for tests and benchmarks that set pragmas."""
        return self._store.connection

    def _recover_inflight(self) -> int:
        now = self._clock()

        def fn(tx: Tx) -> int:
            rows = tx.all("SELECT id, inflight FROM weighings WHERE inflight IS NOT NULL")
            for row in rows:
                if row["inflight"] in WRITE_STAGES:
                    tx.execute("UPDATE weighings SET ambiguous = ambiguous + 1 WHERE id = ?", (row["id"],))
                    tx.journal(
                        row["id"], now, "ambiguous_attempt", f"{row['inflight']} was in flight when the bridge stopped"
                    )
            tx.execute("UPDATE weighings SET inflight = NULL WHERE inflight IS NOT NULL")
            return len(rows)

        return self._store.write(fn)

    def close(self) -> None:
        self._store.close()

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
        due at once (at the clock's time). ``dedupe_at``: the reading's time on its event stream's clock
        (a replay's is the recording's), against which the dedupe TTL is kept; default ``now``."""
        wall = self._clock()
        captured = wall if now is None else now
        t = captured if dedupe_at is None else dedupe_at
        uid = str(uuid.uuid4())
        doc = json.dumps(body, separators=(",", ":"))

        def fn(tx: Tx) -> int | None:
            if dedupe_key is not None:
                row = tx.one("SELECT expires_at FROM dedupe WHERE key = ?", (dedupe_key,))
                if row is not None and row["expires_at"] > t:
                    return None
            wid = tx.insert(
                "INSERT INTO weighings (uid, captured_at, scale, driver, card, card_source, body, state, stage,"
                " next_attempt_at, updated_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uid,
                    captured,
                    scale,
                    driver,
                    card,
                    card_source,
                    doc,
                    state.value,
                    Stage.RESOLVE.value,
                    wall,
                    wall,
                    note,
                ),
            )
            if dedupe_key is not None:
                tx.execute(
                    "INSERT INTO dedupe (key, weighing_id, seen_at, expires_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET weighing_id = excluded.weighing_id,"
                    " seen_at = excluded.seen_at, expires_at = excluded.expires_at",
                    (dedupe_key, wid, t, t + dedupe_ttl_s),
                )
            return wid

        return self._store.write(fn)

    def seen(self, dedupe_key: str, now: float | None = None) -> bool:
        row = self._store.one("SELECT expires_at FROM dedupe WHERE key = ?", (dedupe_key,))
        return row is not None and row["expires_at"] > self._now(now)

    # ---- reading ----------------------------------------------------------------------------------

    def get(self, wid: int) -> Job | None:
        row = self._store.one("SELECT * FROM weighings WHERE id = ?", (wid,))
        return None if row is None else Job.from_row(row)

    def due(self, now: float | None = None, limit: int = 16, exclude: frozenset[int] = frozenset()) -> list[Job]:
        rows = self._store.all(
            # oldest capture first among the due: a backlog (after an outage, a restart) drains in
            # capture order, whatever the jittered retry times of its jobs
            "SELECT * FROM weighings WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (self._now(now), limit + len(exclude)),
        )
        return [j for j in (Job.from_row(r) for r in rows) if j.id not in exclude][:limit]

    def next_due_at(self) -> float | None:
        row = self._store.one("SELECT MIN(next_attempt_at) FROM weighings WHERE state = 'pending'")
        return None if row is None or row[0] is None else float(row[0])
