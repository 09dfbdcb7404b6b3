"""The uploader: drains the outbox. The one awaiting shell of the upload path.

It schedules due jobs (``concurrency`` at a time, in capture order), runs each job's journey
(``bridge/upload/journey.py``: resolve -> post -> use, sans-I/O conversations) by performing their
requests through the pacer, stores each outcome in the outbox (every transition returns the new
``Job``), and applies what ``bridge/upload/policy.py`` decides about a failure:

* ``Retry`` - stored with its reason; an outage opens the ``OutageBreaker`` (no new job starts
  before its pause ends: one probe per backoff instead of every queued job failing). The first answer
  from the platform closes it and makes every job waiting out the outage due at once (in capture order).
* ``PauseEndpoint`` - 429: that endpoint is paused (and the pause survives a restart).
* ``DeadLetter`` - kept with the server's status, errorCode, message and traceId.
* ``StopAll`` - 401/403: uploads halt, the queue is kept. Every ``AUTH_PROBE_INTERVAL_S`` one due job
  is tried for real; the halt lifts only when that job's calls are accepted (a HEAD probe checks only
  the key, not its scopes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..body import with_estimate
from ..cardquery import platform_queries
from ..config import Config, NotEligible, PlatformConfig, Usage
from ..errors import AuthRejected, PlatformError, RateLimited, StorageError
from ..logs import get_logger
from ..outbox import Job, JobState, Outbox, Stage, WaitReason
from ..pacing import Pacer, retry_delay
from ..platform import PlatformClient
from ..status import BenefitFigures
from . import journey as j
from .policy import DeadLetter, Decision, Park, PauseEndpoint, Retry, Rules, StopAll, decide, retry_after_s

RESOLVE_MAX_AGE_S = 15 * 60.0
#: how many of the latest benefit checks health looks at
BENEFIT_WINDOW = 25
AUTH_PROBE_INTERVAL_S = 60.0
IDLE_POLL_S = 2.0
#: outbox meta key of the persisted 429 pauses: {endpoint: until (epoch s)}
RATE_LIMIT_META = "rate_limit_pauses"


@dataclass
class UploadCounters:
    delivered: int = 0
    retries: int = 0
    ambiguous: int = 0
    rate_limited: int = 0
    dead_letters: int = 0
    auth_failures: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def pool_size(concurrency: int) -> int:
    """HTTP connections for ``concurrency`` uploads: a resolve has two GETs in flight at once."""
    return max(4, 2 * concurrency)


def rules_of(cfg: Config) -> Rules:
    q = cfg.queue
    return Rules(q.backoff_base_s, q.backoff_cap_s, q.rate_limit_pause_s, q.max_conflict_retries)


@dataclass
class OutageBreaker:
    """While the platform as a whole looks down, no new job starts before ``down_until`` (wall s)."""

    down_until: float = 0.0
    since: float | None = None
    failures: int = 0  # consecutive: the pause grows with them (full jitter, capped)

    def holds(self, now: float) -> bool:
        return now < self.down_until

    def open(self, now: float, rules: Rules, hint_s: float | None, rng: random.Random) -> bool:
        """Record one more outage failure; True if this starts an outage."""
        pause = retry_delay(self.failures, rules.backoff_base_s, rules.backoff_cap_s, hint_s, rng)
        self.failures += 1
        self.down_until = max(self.down_until, now + pause)
        started = self.since is None
        if started:
            self.since = now
        return started

    def close(self, now: float) -> float | None:
        """The platform answered: the outage's length if one was open."""
        if self.since is None:
            return None
        length = now - self.since
        self.since, self.failures, self.down_until = None, 0, 0.0
        return length


class Uploader:
    def __init__(
        self,
        cfg: Config,
        outbox: Outbox,
        client: PlatformClient,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.platform: PlatformConfig = cfg.platform
        self.rules = rules_of(cfg)
        self.cards = cfg.cards
        self.estimate = cfg.scale.estimate_body_composition
        self.outbox = outbox
        self.client = client
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.sleep = sleep  # pacing waits (tests pass one that advances a fake clock)
        self.breaker = OutageBreaker()
        self.pacer = Pacer(per_minute=cfg.platform.rate_limit_per_min)
        self.counters = UploadCounters()
        self.log = get_logger(component="uploader")
        self.auth_error: AuthRejected | None = None
        self.last_progress_at = monotonic()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._inflight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_delivered: Callable[[Job], None] | None = None
        #: the benefit's validity for the last members checked (health: a typo in the key shows here)
        self._benefit_results: deque[bool] = deque(maxlen=BENEFIT_WINDOW)
        self._restore_rate_limits()

    # ---- control -------------------------------------------------------------------------------------

    def benefit_figures(self) -> BenefitFigures:
        results = self._benefit_results
        return BenefitFigures(key=self.platform.benefit_key, checked=len(results), valid=sum(results))

    @property
    def platform_down_until(self) -> float:
        return self.breaker.down_until

    def apply(self, cfg: Config) -> None:
        """A reload: swap the frozen sub-configs a job reads (each job snapshots them when it starts)."""
        self.platform = cfg.platform
        self.rules = rules_of(cfg)
        self.cards = cfg.cards
        self.estimate = cfg.scale.estimate_body_composition
        self.notify()

    def notify(self) -> None:
        """A weighing was committed (or an operator changed the queue): look now."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._stop.set()
        self._wake.set()

    @property
    def busy(self) -> bool:
        return bool(self._inflight)

    async def run(self) -> None:
        try:
            while not self._stopping:
                self.last_progress_at = self.monotonic()
                if self.auth_error is not None:
                    await self._probe_with_a_real_job()
                    continue
                free = self.platform.concurrency - len(self._inflight)
                if self.breaker.holds(self.clock()):
                    free = 0
                jobs = self.outbox.due(self.clock(), limit=free, exclude=frozenset(self._inflight)) if free > 0 else []
                for job in jobs:
                    self._start(job)
                if not jobs:
                    await self._idle()
                else:
                    await asyncio.sleep(0)
        finally:
            await self._finish_tasks()

    def _start(self, job: Job) -> asyncio.Task[None]:
        self._inflight.add(job.id)
        task = asyncio.create_task(self._run_job(job), name=f"upload {job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _finish_tasks(self) -> None:
        """Stop: in-flight jobs get one request deadline to end; what is still running then is
        cancelled (its attempt is recovered as ambiguous at the next start if it was a write)."""
        if not self._tasks:
            return
        _, running = await asyncio.wait(self._tasks, timeout=self.platform.timeout_s + 5)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def idle_wait_s(self, cap: float = IDLE_POLL_S) -> float:
        """How long the loop may sleep: until the next job is due (not before the platform-down
        pause ends), at most ``cap``."""
        nxt = self.outbox.next_due_at()
        if nxt is not None:
            nxt = max(nxt, self.breaker.down_until)
        wait = cap if nxt is None else min(cap, max(0.0, nxt - self.clock()))
        if self._inflight:
            wait = min(wait, 0.05)
        return wait

    async def _idle(self) -> None:
        wait = self.idle_wait_s()
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.01))

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until nothing is due now or later (pending = 0 and nothing in flight)."""
        deadline = None if timeout_s is None else self.monotonic() + timeout_s
        while True:
            if not self._inflight and self.outbox.stats().pending == 0:
                return True
            if self.auth_error is not None or (deadline is not None and self.monotonic() > deadline):
                return False
            await asyncio.sleep(0.05)

    async def _probe_with_a_real_job(self) -> None:
        """Halted by 401/403: wait one probe interval (new weighings do not shorten it), then try one
        due job for real. Its journey lifts the halt only if the platform accepts its calls."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=AUTH_PROBE_INTERVAL_S)
        if self._stopping or self._inflight:
            return
        due = self.outbox.due(self.clock(), limit=1)
        if not due:
            return
        await self._start(due[0])
        if self.auth_error is None:
            self.log.info("platform_key_accepted_again", probe_weighing=due[0].id)
        else:
            self.log.error("platform_key_still_rejected", status=self.auth_error.status)

    # ---- one job -------------------------------------------------------------------------------------

    async def _run_job(self, job: Job) -> None:
        try:
            await self.process(job)
        except StorageError as exc:
            self.log.critical("outbox_write_failed", weighing=job.id, error=str(exc))
            await asyncio.sleep(1.0)
        finally:
            self._inflight.discard(job.id)
            self.last_progress_at = self.monotonic()

    async def process(self, job: Job) -> None:
        """One pass of a job's journey from its stored stage; a failure goes to the policy."""
        platform, halted = self.platform, self.auth_error is not None
        stage = job.stage
        try:
            if stage is Stage.POST and self._benefit_check_stale(job, platform):
                job = self.outbox.reresolve(job.id, "benefit check is older than 15 min")
                stage = job.stage
            if stage is Stage.RESOLVE:
                job = await self._resolve(job, platform)
                stage = job.stage
            if job.state is JobState.PENDING and stage is Stage.POST:
                job = await self._post(job, platform)
                stage = job.stage
            if job.state is JobState.PENDING and stage is Stage.USE:
                job = await self._use(job, platform)
        except (asyncio.CancelledError, StorageError):
            raise
        except Exception as exc:  # a platform failure, or a bug / hostile answer: the policy decides
            current = self.outbox.get(job.id) or job
            if not isinstance(exc, PlatformError):
                self.log.exception("upload_crashed", weighing=job.id, stage=stage.value, error=str(exc))
            self._apply(decide(exc, stage, current, self.rules, now=self.clock(), rng=self.rng), current, exc)
            return
        if halted and self.auth_error is not None:
            self._lift_auth_halt()

    def _benefit_check_stale(self, job: Job, platform: PlatformConfig) -> bool:
        return (
            bool(platform.benefit_key)
            and job.resolved_at is not None
            and self.clock() - job.resolved_at > RESOLVE_MAX_AGE_S
        )

    # ---- the journey's steps: conversations performed, outcomes stored -------------------------------

    async def _resolve(self, job: Job, platform: PlatformConfig) -> Job:
        if not job.card:
            return self.outbox.park(job.id, "no member card", JobState.UNIDENTIFIED)
        conv = j.ResolveMember(
            platform_queries(job.card, self.cards), benefit_key=platform.benefit_key, cross_studio=platform.cross_studio
        )
        outcome = await self._converse(conv)
        if isinstance(outcome, j.NoMember):
            last = outcome.last
            self.counters.dead_letters += 1
            job = self.outbox.kill(
                job.id,
                stage=Stage.RESOLVE,
                status=last.status if last else None,
                error_code=last.error_code if last else None,
                error_message=outcome.message,
                trace_id=last.trace_id if last else None,
            )
            self.log.error(
                "weighing_dead_lettered",
                weighing=job.id,
                stage="resolve",
                reason="member_not_found",
                error=outcome.message,
                error_code=last.error_code if last else None,
                trace_id=last.trace_id if last else None,
            )
            return job
        assert isinstance(outcome, j.Resolved)
        if outcome.benefit_valid is not None:
            self._benefit_results.append(outcome.benefit_valid)
        park = outcome.benefit_valid is False and platform.not_eligible is NotEligible.PARK
        job = self.outbox.resolved(
            job.id,
            customer_id=outcome.customer_id,
            profile=outcome.profile,
            card_query=outcome.card_query,
            benefit_valid=outcome.benefit_valid,
            home_studio=outcome.home_studio,
            note=outcome.note,
            begin_post=not park,  # going straight on to POST: mark the attempt in the same commit
        )
        self.log.info(
            "member_resolved",
            weighing=job.id,
            customer_id=outcome.customer_id,
            benefit_valid=outcome.benefit_valid,
            cross_studio=outcome.cross_studio,
        )
        if park:
            self.log.warning("weighing_parked", weighing=job.id, reason="benefit_not_valid")
            return self.outbox.park(job.id, f"benefit {platform.benefit_key} not valid for this member (policy: park)")
        return job

    async def _post(self, job: Job, platform: PlatformConfig) -> Job:
        customer_id = job.customer_id
        assert customer_id is not None
        attach = bool(platform.benefit_key) and job.benefit_valid is True and platform.usage is Usage.WEIGHING
        then_use = platform.usage is Usage.ENDPOINT and bool(job.benefit_valid) and bool(platform.benefit_key)
        body = job.body
        if self.estimate:
            body, why_not = with_estimate(body, job.profile)
            if why_not is not None:
                self.log.info("body_composition_not_estimated", weighing=job.id, reason=why_not)
        if job.inflight != Stage.POST.value:  # not already begun by the resolve that just ran
            job = self.outbox.begin(job.id, Stage.POST)
        request = j.PostWeighing(customer_id, body, platform.benefit_key if attach else None, job.uid)
        outcome = await self._converse(j.PostTheWeighing(request, then_use=then_use))
        if isinstance(outcome, j.BenefitRefused):
            self.log.warning("benefit_refused", weighing=job.id, error=outcome.note)
            job = self.outbox.benefit_refused(job.id, note=outcome.note)
            if platform.not_eligible is NotEligible.PARK:
                return self.outbox.park(job.id, outcome.note)
            return job
        assert isinstance(outcome, j.Posted)
        job = self.outbox.posted(
            job.id, benefit_attached=outcome.benefit_attached, next_stage=outcome.next_stage, status=outcome.status
        )
        self.log.info(
            "weighing_posted",
            weighing=job.id,
            customer_id=job.customer_id,
            benefit_attached=outcome.benefit_attached,
            status=outcome.status,
            idempotency_key=job.uid,
        )
        if outcome.next_stage is Stage.DONE:
            self._delivered(job)
        return job

    async def _use(self, job: Job, platform: PlatformConfig) -> Job:
        customer_id = job.customer_id
        assert customer_id is not None
        job = self.outbox.begin(job.id, Stage.USE)
        request = j.UseBenefit(customer_id, platform.benefit_key, f"{job.uid}:use")
        outcome = await self._converse(j.UseTheBenefit(request))
        if isinstance(outcome, j.UseRefused):
            self.log.warning("benefit_use_refused", weighing=job.id, error=outcome.note)
            if platform.not_eligible is NotEligible.PARK:
                return self.outbox.park(job.id, outcome.note)
            job = self.outbox.benefit_use_recorded(job.id, used=False, status=400, note=outcome.note)
            self._delivered(job)
            return job
        assert isinstance(outcome, j.Used)
        job = self.outbox.benefit_use_recorded(job.id, used=True, status=outcome.status)
        self.log.info("benefit_used", weighing=job.id, customer_id=job.customer_id)
        self._delivered(job)
        return job

    def _delivered(self, job: Job) -> None:
        self.counters.delivered += 1
        if self.on_delivered is not None:
            self.on_delivered(job)

    # ---- performing requests ---------------------------------------------------------------------------

    async def _converse(self, conv: j.Conversation) -> j.Step:
        step = conv.start()
        while isinstance(step, j.Requests):
            answers = await self._perform_all(step.requests)
            step = conv.advance(list(zip(step.requests, answers, strict=True)))
        if isinstance(step, j.Failed):
            raise step.error
        return step

    async def _perform_all(self, requests: Sequence[j.Request]) -> list[Any]:
        """Requests made together; each ends with a value or a PlatformError. All of them are waited
        for (a 429 on one that is no longer needed still pauses its endpoint; nothing is left running
        unretrieved). Anything else (a bug) is raised once all have ended."""
        if len(requests) == 1:
            return [await self._answer(requests[0])]
        results = await asyncio.gather(*(self._answer(r) for r in requests), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, PlatformError):
                raise result
        return list(results)

    async def _answer(self, request: j.Request) -> Any:
        try:
            return await self._call(request.endpoint, lambda: self._send(request))
        except PlatformError as exc:
            return exc

    def _send(self, r: j.Request) -> Awaitable[Any]:
        c = self.client
        if isinstance(r, j.MemberByCard):
            return c.customer_by_card(r.number, r.card_format)
        if isinstance(r, j.CrossStudioByCard):
            return c.cross_studio_customer(r.number, r.card_format)
        if isinstance(r, j.BenefitByCard):
            return c.benefit_valid_by_card(r.number, r.card_format, r.key)
        if isinstance(r, j.BenefitById):
            return c.benefit_valid(r.customer_id, r.key)
        if isinstance(r, j.PostWeighing):
            return c.post_weighing(r.customer_id, r.body, benefit_key=r.benefit_key, idempotency_key=r.idempotency_key)
        return c.use_benefit(r.customer_id, r.key, idempotency_key=r.idempotency_key)

    async def _call(self, endpoint: str, coro_fn: Callable[[], Any]) -> Any:
        """One paced request. Any answer from the platform (a refusal too) closes the outage breaker;
        a 429 pauses its endpoint at once (persisted: a restart does not walk into the lock-out)."""
        while True:
            wait = self.pacer.delay(endpoint, self.monotonic())
            if wait <= 0:
                break
            await self.sleep(wait)
        self.pacer.take(endpoint, self.monotonic())
        try:
            result = await coro_fn()
        except RateLimited as exc:
            self._pause_endpoint(endpoint, exc)
            self._platform_answered()
            raise
        except PlatformError as exc:
            if exc.status is not None and exc.status < 500:
                self._platform_answered()  # a refusal is an answer: the platform is up
            raise
        self._platform_answered()
        return result

    def _pause_endpoint(self, endpoint: str, exc: RateLimited) -> None:
        pause_s = max(self.rules.rate_limit_pause_s, retry_after_s(exc.retry_after_s) or 0.0)
        self.pacer.pause(endpoint, self.monotonic() + pause_s)
        pauses = self._rate_limit_pauses()
        pauses[endpoint] = self.clock() + pause_s
        with contextlib.suppress(StorageError):
            self.outbox.set_meta(RATE_LIMIT_META, json.dumps(pauses))

    def _rate_limit_pauses(self) -> dict[str, float]:
        try:
            doc = json.loads(self.outbox.meta(RATE_LIMIT_META) or "{}")
        except ValueError:
            return {}
        now = self.clock()
        if not isinstance(doc, dict):
            return {}
        return {str(k): float(v) for k, v in doc.items() if isinstance(v, int | float) and v > now}

    def _restore_rate_limits(self) -> None:
        now, mono = self.clock(), self.monotonic()
        for endpoint, until in self._rate_limit_pauses().items():
            self.pacer.pause(endpoint, mono + (retry_after_s(until - now) or 0.0))
            self.log.info("rate_limit_pause_restored", endpoint=endpoint, remaining_s=round(until - now, 1))

    def _platform_answered(self) -> None:
        now = self.clock()
        outage_s = self.breaker.close(now)
        if outage_s is None:
            return
        released = self.outbox.release_backoff(WaitReason.OUTAGE, now=now)
        self.log.info("platform_available_again", outage_s=round(outage_s, 1), jobs_due_now=released)

    # ---- decisions ---------------------------------------------------------------------------------------

    def _apply(self, decision: Decision, job: Job, exc: BaseException) -> None:
        key = str(exc.status or type(exc).__name__) if isinstance(exc, PlatformError) else type(exc).__name__
        self.counters.by_status[key] = self.counters.by_status.get(key, 0) + 1
        if isinstance(decision, StopAll):
            assert isinstance(exc, AuthRejected)
            already = self.auth_error is not None  # a probe, or a job that was in flight: one halt
            self.auth_error = exc
            self._retry(job, decision.retry)
            if already:
                return
            self.counters.auth_failures += 1
            self.outbox.set_meta(
                "auth_failure", json.dumps({"at": self.clock(), "status": decision.status, "message": decision.message})
            )
            self.log.critical(
                "platform_key_rejected",
                status=decision.status,
                error=decision.message,
                action=f"uploads stopped; queue kept; one weighing retried every {AUTH_PROBE_INTERVAL_S:g} s",
            )
        elif isinstance(decision, PauseEndpoint):
            self.counters.rate_limited += 1
            self._retry(job, decision.retry)
            pause_s = round(decision.until - self.clock())
            self.log.warning("upload_rate_limited", weighing=job.id, stage=job.stage.value, pause_s=pause_s)
        elif isinstance(decision, DeadLetter):
            self.counters.dead_letters += 1
            self.outbox.kill(
                job.id,
                stage=decision.stage,
                status=decision.status,
                error_code=decision.error_code,
                error_message=decision.message,
                trace_id=decision.trace_id,
            )
            self.log.error(
                "weighing_dead_lettered",
                weighing=job.id,
                stage=decision.stage.value,
                status=decision.status,
                error_code=decision.error_code,
                error=decision.message,
                trace_id=decision.trace_id,
            )
        elif isinstance(decision, Park):
            self.outbox.park(job.id, decision.reason)
            self.log.warning("weighing_parked", weighing=job.id, reason=decision.reason)
        else:
            self.counters.retries += 1
            if decision.outage:
                hint = exc.retry_after_s if isinstance(exc, PlatformError) else None
                if self.breaker.open(self.clock(), self.rules, retry_after_s(hint), self.rng):
                    self.log.warning(
                        "platform_unavailable",
                        status=decision.status,
                        error=decision.message,
                        action="one probe per backoff until it answers; then the backlog drains in order",
                    )
            self._retry(job, decision)
            self.log.warning(
                "upload_retry_scheduled",
                weighing=job.id,
                stage=job.stage.value,
                status=decision.status,
                error=decision.message,
                ambiguous=decision.ambiguous,
                delay_s=round(max(0.0, decision.at - self.clock()), 1),
            )

    def _retry(self, job: Job, retry: Retry) -> None:
        if retry.ambiguous:
            self.counters.ambiguous += 1
        self.outbox.retry_later(
            job.id,
            next_attempt_at=retry.at,
            reason=retry.reason,
            status=retry.status,
            error=retry.message,
            ambiguous=retry.ambiguous,
        )

    def _lift_auth_halt(self) -> None:
        self.auth_error = None
        with contextlib.suppress(StorageError):
            self.outbox.set_meta("auth_failure", None)
