"""A hypothesis state machine over the synchronous outbox core (``bridge.outbox.Outbox``) on a real
SQLite file, including crashes.

A *crash* copies the database files (``outbox.db`` and ``outbox.db-wal``; the ``-shm`` index is
rebuilt by SQLite) exactly as they are on disk at that moment -- optionally while another connection
holds an uncommitted write transaction (a capture that was being committed when the power went) --
and reopens the copy with a fresh ``Outbox``. The old connection is abandoned without ``close()``.
That is what a SIGKILL or a power cut leaves behind for a process whose every acknowledged step was
a committed transaction with ``synchronous=FULL``.

Invariants, checked after every step:
- nothing lost: every acknowledged capture is in the file, with the state and stage the model expects;
- nothing delivered twice: a job is delivered by exactly one transition and ``due()`` never offers
  a job that is not pending;
- attempts never go down; a dead letter exists only for a job the model refused permanently;
- for every job, ``ambiguous`` >= the number of crashes that happened while it had a write attempt
  in flight (after ``begin()``, before its outcome), plus the ambiguous failures reported for it;
- every transition returns the job exactly as a fresh ``get()`` reads it after the commit;
- a pending job waits for the reason of its last ``retry_later`` until a transition takes it up, and
  ``release_backoff(reason)`` ends exactly the waits for that reason.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bridge.outbox import Job, JobState, Outbox, Stage, WaitReason

DEDUPE_KEYS = ["tanita::a", "tanita::b", "mi::c"]
TTL_S = 600.0


@dataclass
class ModelJob:
    wid: int
    uid: str
    state: JobState = JobState.PENDING
    stage: Stage = Stage.RESOLVE
    inflight: Stage | None = None
    attempts: int = 0
    ambiguous_min: int = 0  # crashes during a write attempt + ambiguous failures reported
    next_attempt_at: float = 0.0
    delivered: int = 0
    killed: bool = False
    last_status: int | None = None
    wait_reason: WaitReason | None = None


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="outbox-sm-"))
        self.generation = 0
        self.now = 1_800_000_000.0
        self.jobs: dict[int, ModelJob] = {}
        self.dedupe: dict[str, float] = {}  # key -> expires_at
        self.crashes = 0
        self.crashes_in_write = 0
        self.torn_captures = 0
        self.box = self._open()
        self._seen_attempts: dict[int, int] = {}

    # ---- plumbing ------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.tmp / f"gen{self.generation}" / "outbox.db"

    def _open(self) -> Outbox:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return Outbox(self.path, clock=lambda: self.now)

    def teardown(self) -> None:
        self.box.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _pending(self, pred=lambda j: True) -> list[ModelJob]:  # type: ignore[no-untyped-def]
        return [j for j in self.jobs.values() if j.state is JobState.PENDING and pred(j)]

    def _returned(self, job: Job) -> None:
        """A transition's result is the committed row: nobody needs to read it again."""
        assert job == self.box.get(job.id)

    # ---- captures ------------------------------------------------------------------------------

    @rule(key=st.one_of(st.none(), st.sampled_from(DEDUPE_KEYS)), back_s=st.sampled_from([0.0, 5.0]))
    def capture(self, key: str | None, back_s: float) -> None:
        t = self.now - back_s
        wid = self.box.capture(scale="s1", driver="tanita", body={"weight": 70.0, "rawResults": "x"}, card="42",
                               card_source="scale_id", dedupe_key=key, dedupe_ttl_s=TTL_S, now=t)
        if key is not None and self.dedupe.get(key, float("-inf")) > t:
            assert wid is None, "a reading seen within its dedupe window was captured twice"
            return
        assert wid is not None and wid not in self.jobs
        job = self.box.get(wid)
        assert job is not None
        self.jobs[wid] = ModelJob(wid, job.uid, next_attempt_at=self.now)
        if key is not None:
            self.dedupe[key] = t + TTL_S

    # ---- the uploader's transitions -----------------------------------------------------------

    @rule(data=st.data())
    @precondition(lambda self: any(j.stage is Stage.RESOLVE and j.inflight is None for j in self._pending()))
    def resolved(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._pending(lambda j: j.stage is Stage.RESOLVE and j.inflight is None)))
        self._returned(self.box.resolved(job.wid, customer_id=1001, profile=None, card_query=("42", "DECIMAL"),
                                         benefit_valid=True, home_studio=None, note=None, now=self.now))
        job.stage = Stage.POST
        job.wait_reason = None

    @rule(data=st.data())
    @precondition(lambda self: any(j.stage in (Stage.POST, Stage.USE) and j.inflight is None
                                   for j in self._pending()))
    def begin(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._pending(lambda j: j.stage in (Stage.POST, Stage.USE)
                                                      and j.inflight is None)))
        self._returned(self.box.begin(job.wid, job.stage, now=self.now))
        job.inflight = job.stage
        job.attempts += 1
        job.wait_reason = None

    @rule(data=st.data(), use=st.booleans())
    @precondition(lambda self: any(j.inflight is Stage.POST for j in self._pending()))
    def posted(self, data: st.DataObject, use: bool) -> None:
        job = data.draw(st.sampled_from(self._pending(lambda j: j.inflight is Stage.POST)))
        nxt = Stage.USE if use else Stage.DONE
        self._returned(self.box.posted(job.wid, benefit_attached=not use, next_stage=nxt, status=200, now=self.now))
        job.inflight = None
        job.wait_reason = None
        job.stage = nxt
        job.last_status = 200
        if nxt is Stage.DONE:
            job.state = JobState.DELIVERED
            job.delivered += 1

    @rule(data=st.data())
    @precondition(lambda self: any(j.inflight is Stage.USE for j in self._pending()))
    def benefit_used(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self._pending(lambda j: j.inflight is Stage.USE)))
        self._returned(self.box.benefit_use_recorded(job.wid, used=True, status=200, now=self.now))
        job.inflight = None
        job.wait_reason = None
        job.stage = Stage.DONE
        job.last_status = 200
        job.state = JobState.DELIVERED
        job.delivered += 1

    @rule(data=st.data(), ambiguous=st.booleans(), delay_s=st.sampled_from([0.0, 1.0, 30.0, 900.0]),
          reason=st.sampled_from(WaitReason))
    @precondition(lambda self: bool(self._pending()))
    def retry_later(self, data: st.DataObject, ambiguous: bool, delay_s: float, reason: WaitReason) -> None:
        job = data.draw(st.sampled_from(self._pending()))
        # Only an attempt that was sent can be ambiguous (the uploader never says so otherwise).
        ambiguous = ambiguous and job.inflight is not None
        self._returned(self.box.retry_later(
            job.wid, next_attempt_at=self.now + delay_s, reason=reason, status=None if ambiguous else 503,
            error="read timeout" if ambiguous else "HTTP 503", ambiguous=ambiguous, now=self.now))
        job.wait_reason = reason
        if job.inflight is None:
            job.attempts += 1
        job.inflight = None
        job.next_attempt_at = self.now + delay_s
        job.ambiguous_min += int(ambiguous)
        job.last_status = None if ambiguous else 503

    @rule(data=st.data())
    @precondition(lambda self: bool(self._pending()))
    def kill(self, data: st.DataObject) -> None:
        """A permanent refusal (400/404/409 after retries)."""
        job = data.draw(st.sampled_from(self._pending()))
        self._returned(self.box.kill(job.wid, stage=job.stage, status=400, error_code="VALIDATION_FAILED",
                                     error_message="bad request", trace_id="t-1", now=self.now))
        job.inflight = None
        job.wait_reason = None
        job.state = JobState.DEAD
        job.killed = True
        job.last_status = 400

    @rule(data=st.data())
    @precondition(lambda self: any(j.inflight is Stage.POST for j in self._pending()))
    def benefit_refused(self, data: st.DataObject) -> None:
        """The POST with the benefit key was refused: the job stays at POST, nothing in flight."""
        job = data.draw(st.sampled_from(self._pending(lambda j: j.inflight is Stage.POST)))
        got = self.box.benefit_refused(job.wid, note="platform refused benefit key", now=self.now)
        self._returned(got)
        assert got.benefit_valid is False
        job.inflight = None
        job.wait_reason = None

    @rule(data=st.data(), unidentified=st.booleans())
    @precondition(lambda self: bool(self._pending()))
    def park(self, data: st.DataObject, unidentified: bool) -> None:
        job = data.draw(st.sampled_from(self._pending()))
        state = JobState.UNIDENTIFIED if unidentified else JobState.PARKED
        self._returned(self.box.park(job.wid, "held for staff", state, now=self.now))
        job.state = state
        job.inflight = None
        job.wait_reason = None

    @rule(data=st.data())
    @precondition(lambda self: any(j.state in (JobState.DEAD, JobState.PARKED) for j in self.jobs.values()))
    def operator_retry(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from([j for j in self.jobs.values()
                                         if j.state in (JobState.DEAD, JobState.PARKED)]))
        assert self.box.retry(job.wid, now=self.now)
        job.state = JobState.PENDING
        job.killed = False
        job.next_attempt_at = self.now
        job.wait_reason = None

    @rule(dt=st.sampled_from([0.5, 10.0, 120.0, 700.0, 3600.0]))
    def advance_clock(self, dt: float) -> None:
        self.now += dt

    @rule()
    def due(self) -> None:
        got = self.box.due(self.now, limit=1000)
        for job in got:
            assert job.state is JobState.PENDING, "due() offered a job that is not pending"
            assert self.jobs[job.id].state is JobState.PENDING
        expected = {j.wid for j in self._pending(lambda j: j.next_attempt_at <= self.now)}
        assert [j.id for j in got] == sorted(expected)  # oldest capture first

    @rule(reason=st.sampled_from(WaitReason))
    def release_backoff(self, reason: WaitReason) -> None:
        """``release_backoff(reason)``: the jobs still waiting for that reason are due now; others untouched."""
        released = self._pending(lambda j: j.next_attempt_at > self.now and j.wait_reason is reason)
        assert self.box.release_backoff(reason, now=self.now) == len(released)
        for j in released:
            j.next_attempt_at = self.now
            j.wait_reason = None

    # ---- crashes -------------------------------------------------------------------------------

    @rule(torn_capture=st.booleans(), copy_wal=st.just(True))
    def crash_and_reopen(self, torn_capture: bool, copy_wal: bool) -> None:
        """Copy the files as they are on disk (optionally while a capture is mid-transaction) and
        reopen the copy; the old connection is abandoned, never closed."""
        old = self.path
        raw = None
        if torn_capture:
            raw = sqlite3.connect(str(old), isolation_level=None, timeout=5)
            raw.execute("BEGIN IMMEDIATE")
            raw.execute(
                "INSERT INTO weighings (uid, captured_at, scale, driver, body, state, stage, updated_at)"
                " VALUES ('torn', 0, 's1', 'tanita', '{}', 'pending', 'resolve', 0)"
            )
            self.torn_captures += 1
        self.generation += 1
        new = self.path
        new.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal"):
            src = Path(str(old) + suffix)
            if src.exists():
                shutil.copyfile(src, Path(str(new) + suffix))
        if raw is not None:
            raw.execute("ROLLBACK")
            raw.close()
        self.crashes += 1
        in_write = [j for j in self.jobs.values() if j.inflight is not None and j.state is JobState.PENDING]
        self.crashes_in_write += len(in_write)
        self.box = self._open()  # the old Outbox is abandoned (a SIGKILL does not close anything)
        assert self.box.corruption is None
        assert self.box.recovered_inflight == len(in_write)
        for j in in_write:
            j.inflight = None
            j.ambiguous_min += 1

    # ---- invariants ----------------------------------------------------------------------------

    @invariant()
    def nothing_lost_and_states_match(self) -> None:
        rows = {j.id: j for j in self.box.jobs(limit=100_000)}
        assert set(rows) == set(self.jobs), "a captured weighing is missing (or an unacknowledged one appeared)"
        assert all(j.uid != "torn" for j in rows.values())
        for wid, m in self.jobs.items():
            j = rows[wid]
            assert j.uid == m.uid
            assert j.state is m.state, (wid, j.state, m.state)
            assert j.stage is m.stage, (wid, j.stage, m.stage)
            assert j.inflight == (m.inflight.value if m.inflight else None)
            assert j.attempts == m.attempts
            assert j.attempts >= self._seen_attempts.get(wid, 0), "attempts went down"
            self._seen_attempts[wid] = j.attempts
            assert j.ambiguous >= m.ambiguous_min
            assert j.next_attempt_at == m.next_attempt_at or j.state is not JobState.PENDING
            assert j.wait_reason is m.wait_reason or j.state is not JobState.PENDING
            assert m.delivered <= 1
            assert (j.state is JobState.DELIVERED) == (m.delivered == 1)
            dl = self.box.dead_letter(wid)
            assert (dl is not None) == m.killed, "dead letter without a permanent refusal (or missing)"
            if dl is not None:
                assert (dl.status, dl.error_code, dl.trace_id) == (400, "VALIDATION_FAILED", "t-1")

    @invariant()
    def ambiguous_total_covers_crashes(self) -> None:
        total = sum(j.ambiguous for j in self.box.jobs(limit=100_000))
        assert total >= self.crashes_in_write


TestOutboxStateMachine = OutboxMachine.TestCase
TestOutboxStateMachine.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.slow
def test_outbox_state_machine_long() -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(OutboxMachine, settings=settings(
        max_examples=600, stateful_step_count=80, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
