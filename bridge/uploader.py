"""Drains the outbox: each job goes resolve -> post (-> use) with every step's result stored.

Failures are handled by kind (see ``bridge.errors``): retryable -> full-jitter backoff (``max`` with
Retry-After); 429 -> that endpoint paused >= 60 s; ambiguous -> retried and counted; 401/403 -> all
uploads stop, the queue is kept, and the key is probed until it works again; permanent refusals ->
dead letter with the server's status, errorCode, errorMessage and traceId.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .body import with_estimate
from .cardquery import platform_queries
from .config import Config, NotEligible, Usage
from .errors import AuthRejected, Conflict, NotFound, PlatformError, RateLimited, RequestRejected, StorageError
from .logs import get_logger
from .outbox import Job, JobState, Outbox, Stage
from .pacing import Pacer, retry_delay
from .platform import PlatformClient

RESOLVE_MAX_AGE_S = 15 * 60.0
AUTH_PROBE_INTERVAL_S = 60.0
IDLE_POLL_S = 2.0


@dataclass
class UploadCounters:
    delivered: int = 0
    retries: int = 0
    ambiguous: int = 0
    rate_limited: int = 0
    dead_letters: int = 0
    auth_failures: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


async def _settle(task: asyncio.Task[bool] | None) -> None:
    """Let a speculative call whose answer is no longer wanted finish, whatever it ends with."""
    if task is None:
        return
    if not task.done():
        try:
            await asyncio.wait({task})  # unlike ``await task``, does not raise the task's error
        except asyncio.CancelledError:
            task.cancel()
            raise
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" at exit


def pool_size(concurrency: int) -> int:
    """HTTP connections for ``concurrency`` uploads: a resolve has two GETs in flight at once."""
    return max(4, 2 * concurrency)


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
        self.cfg = cfg
        self.outbox = outbox
        self.client = client
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.sleep = sleep  # pacing waits (tests pass one that advances a fake clock)
        #: while the platform as a whole looks down (network failure, 502/503/504), no new job starts
        #: before this time (wall clock): one probe per backoff instead of every queued job failing
        self.platform_down_until = 0.0
        self.outage_since: float | None = None
        self.outage_failures = 0  # consecutive: the pause grows with them (full jitter, capped)
        self.pacer = Pacer(per_minute=cfg.platform.rate_limit_per_min)
        self.counters = UploadCounters()
        self.log = get_logger(component="uploader")
        self.auth_error: AuthRejected | None = None
        self.last_progress_at = monotonic()
        self.last_success_at: float | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_delivered: Callable[[Job], None] | None = None

    # ---- control -------------------------------------------------------------------------------------

    def notify(self) -> None:
        """A weighing was committed (or an operator changed the queue): look now."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    @property
    def busy(self) -> bool:
        return bool(self._inflight)

    async def run(self) -> None:
        sem = asyncio.Semaphore(self.cfg.platform.concurrency)
        try:
            while not self._stopping:
                self.last_progress_at = self.monotonic()
                if self.auth_error is not None:
                    await self._probe_key()
                    continue
                free = self.cfg.platform.concurrency - len(self._inflight)
                if self.clock() < self.platform_down_until:
                    free = 0
                jobs = (
                    self.outbox.due(self.clock(), limit=max(free, 0), exclude=frozenset(self._inflight)) if free else []
                )
                for job in jobs:
                    await sem.acquire()
                    self._inflight.add(job.id)
                    task = asyncio.create_task(self._run_job(job, sem))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if not jobs:
                    await self._idle()
                else:
                    await asyncio.sleep(0)
        finally:
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.cfg.platform.timeout_s + 5)

    def idle_wait_s(self, cap: float = IDLE_POLL_S) -> float:
        """How long the loop may sleep: until the next job is due (not before the platform-down
        pause ends), at most ``cap``."""
        nxt = self.outbox.next_due_at()
        if nxt is not None:
            nxt = max(nxt, self.platform_down_until)
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

    async def _probe_key(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=AUTH_PROBE_INTERVAL_S)
        self._wake.clear()
        if self._stopping:
            return
        try:
            await self.client.check_key()
        except AuthRejected:
            self.log.error("platform_key_still_rejected")
            return
        except PlatformError as exc:
            self.log.warning("platform_key_probe_failed", error=str(exc))
            return
        self.log.info("platform_key_accepted_again")
        self.auth_error = None
        self.outbox.set_meta("auth_failure", None)

    # ---- one job -------------------------------------------------------------------------------------

    async def _run_job(self, job: Job, sem: asyncio.Semaphore) -> None:
        try:
            await self.process(job)
        except StorageError as exc:
            self.log.critical("outbox_write_failed", weighing=job.id, error=str(exc))
            await asyncio.sleep(1.0)
        except Exception as exc:  # a bug must not kill the uploader; the job stays pending
            self.log.exception("upload_crashed", weighing=job.id, error=str(exc))
            try:
                self.outbox.retry_later(
                    job.id, next_attempt_at=self.clock() + 60, status=None, error=f"internal error: {exc}"
                )
            except Exception:
                self.log.exception("outbox_write_failed", weighing=job.id)
        finally:
            self._inflight.discard(job.id)
            sem.release()
            self.last_progress_at = self.monotonic()

    async def process(self, job: Job) -> None:
        stage = job.stage
        try:
            if stage is Stage.RESOLVE:
                job = await self._resolve(job)
                stage = job.stage
                if job.state is not JobState.PENDING:
                    return
            if (
                stage is Stage.POST
                and self.cfg.platform.benefit_key
                and job.resolved_at is not None
                and self.clock() - job.resolved_at > RESOLVE_MAX_AGE_S
            ):
                self.outbox.reresolve(job.id, "benefit check is older than 15 min")
                job = await self._resolve(self._reload(job))
                stage = job.stage
                if job.state is not JobState.PENDING:
                    return
            if stage is Stage.POST:
                job = await self._post(job)
                stage = job.stage
                if job.state is not JobState.PENDING:
                    return
            if stage is Stage.USE:
                await self._use(job)
        except PlatformError as exc:
            self._failed(self._reload(job), stage, exc)

    def _reload(self, job: Job) -> Job:
        return self.outbox.get(job.id) or job

    async def _call(self, endpoint: str, coro_fn: Callable[[], Any]) -> Any:
        while True:
            wait = self.pacer.delay(endpoint, self.monotonic())
            if wait <= 0:
                break
            await self.sleep(wait)
        self.pacer.take(endpoint, self.monotonic())
        try:
            result = await coro_fn()
        except RateLimited:
            self.pacer.pause(endpoint, self.monotonic() + self.cfg.queue.rate_limit_pause_s)
            raise
        except PlatformError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                self._platform_answered()  # a refusal is an answer: the platform is up
            raise
        self._platform_answered()
        return result

    def _platform_answered(self) -> None:
        if self.outage_since is None:
            return
        now = self.clock()
        released = self.outbox.release_backoff(now)
        self.log.info("platform_available_again", outage_s=round(now - self.outage_since, 1), jobs_due_now=released)
        self.outage_since = None
        self.outage_failures = 0
        self.platform_down_until = 0.0

    async def _resolve(self, job: Job) -> Job:
        if not job.card:
            self.outbox.park(job.id, "no member card", JobState.UNIDENTIFIED)
            return self._reload(job)
        p = self.cfg.platform
        queries = platform_queries(job.card, self.cfg.cards)
        profile = None
        used: tuple[str, str] | None = None
        # The benefit check by card does not depend on the member lookup, so for the first card format
        # both GETs go out together: one round trip fewer between the frame and the POST. If the
        # member is found another way, the speculative answer is dropped (an unknown card costs one
        # extra read on that endpoint, paced like any other).
        speculative: asyncio.Task[bool] | None = None
        if p.benefit_key and queries:
            speculative = asyncio.ensure_future(
                self._call(
                    "getBenefitsByCardNumber",
                    partial(self.client.benefit_valid_by_card, *queries[0], p.benefit_key),
                )
            )
        valid: bool | None = None
        cross = False
        home_studio = None
        try:
            for number, fmt in queries:
                try:
                    profile = await self._call(
                        "getCustomerMeasurement", partial(self.client.customer_by_card, number, fmt)
                    )
                    used = (number, fmt)
                    break
                except NotFound:
                    continue
            customer_id = profile.id if profile else None
            if customer_id is None and p.cross_studio:
                for number, fmt in queries:
                    try:
                        cs = await self._call(
                            "getCrossStudioCustomerBy", partial(self.client.cross_studio_customer, number, fmt)
                        )
                    except NotFound:
                        continue
                    customer_id, home_studio, used, cross = cs.id, cs.studio_id, (number, fmt), True
                    break
            if speculative is not None and used == queries[0] and not cross:
                valid = await speculative  # its errors are this job's errors, as if asked in turn
            else:
                await _settle(speculative)
        finally:
            if speculative is not None and not speculative.done():
                speculative.cancel()  # only when something above failed: its answer has no use now
        if customer_id is None or used is None:
            raise NotFound(
                f"no member found for this card (tried {len(queries)} format(s)"
                f"{' and the cross-studio lookup' if p.cross_studio else ''})",
                status=404,
            )
        if p.benefit_key and valid is None:
            if cross:
                valid = await self._call("getBenefits", lambda: self.client.benefit_valid(customer_id, p.benefit_key))
            else:
                valid = await self._call(
                    "getBenefitsByCardNumber",
                    lambda: self.client.benefit_valid_by_card(used[0], used[1], p.benefit_key),
                )
        prof = None
        if profile is not None:
            prof = {"age": profile.age, "gender": profile.gender, "height_cm": profile.height_cm}
        note = f"cross-studio member (home studio {home_studio})" if cross else None
        park = valid is False and p.not_eligible is NotEligible.PARK
        self.outbox.resolved(
            job.id,
            customer_id=customer_id,
            profile=prof,
            card_query=used,
            benefit_valid=valid,
            home_studio=home_studio,
            note=note,
            begin_post=not park,  # going straight on to POST: mark the attempt in the same commit
        )
        self.log.info(
            "member_resolved", weighing=job.id, customer_id=customer_id, benefit_valid=valid, cross_studio=cross
        )
        job = self._reload(job)
        if park:
            self.outbox.park(job.id, f"benefit {p.benefit_key} not valid for this member (policy: park)")
            self.log.warning("weighing_parked", weighing=job.id, reason="benefit_not_valid")
            return self._reload(job)
        return job

    async def _post(self, job: Job) -> Job:
        p = self.cfg.platform
        customer_id = job.customer_id
        assert customer_id is not None
        attach = bool(p.benefit_key) and job.benefit_valid is True and p.usage is Usage.WEIGHING
        body = job.body
        if self.cfg.scale.estimate_body_composition:
            body, why_not = with_estimate(body, job.profile)
            if why_not is not None:
                self.log.info("body_composition_not_estimated", weighing=job.id, reason=why_not)
        if job.inflight != Stage.POST.value:  # not already begun by the resolve that just ran
            self.outbox.begin(job.id, Stage.POST)
        try:
            status = await self._call(
                "createCustomerWeighing",
                partial(
                    self.client.post_weighing,
                    customer_id,
                    body,
                    benefit_key=p.benefit_key if attach else None,
                    idempotency_key=job.uid,
                ),
            )
        except RequestRejected as exc:
            if attach and exc.status == 400 and not isinstance(exc, Conflict):
                # The platform refused the benefit (e.g. used up since we checked): not eligible now.
                note = f"platform refused benefit key: {exc.message}"
                self.outbox.resolved(
                    job.id,
                    customer_id=customer_id,
                    profile=job.profile,
                    card_query=tuple(job.card_query) if job.card_query else None,  # type: ignore[arg-type]
                    benefit_valid=False,
                    home_studio=job.home_studio,
                    note=note,
                )
                self.log.warning("benefit_refused", weighing=job.id, status=exc.status, error=exc.message)
                if p.not_eligible is NotEligible.PARK:
                    self.outbox.park(job.id, note)
                return self._reload(job)
            raise
        nxt = Stage.USE if (p.usage is Usage.ENDPOINT and job.benefit_valid and p.benefit_key) else Stage.DONE
        self.outbox.posted(job.id, benefit_attached=attach, next_stage=nxt, status=status)
        self.log.info(
            "weighing_posted", weighing=job.id, customer_id=job.customer_id, benefit_attached=attach, status=status
        )
        job = self._reload(job)
        if nxt is Stage.DONE:
            self._delivered(job)
        return job

    async def _use(self, job: Job) -> None:
        p = self.cfg.platform
        customer_id = job.customer_id
        assert customer_id is not None
        self.outbox.begin(job.id, Stage.USE)
        try:
            status = await self._call(
                "useBenefit",
                partial(self.client.use_benefit, customer_id, p.benefit_key, idempotency_key=f"{job.uid}:use"),
            )
        except RequestRejected as exc:
            if exc.status == 400 and not isinstance(exc, Conflict):
                note = f"benefit not used: {exc.message}"
                if p.not_eligible is NotEligible.PARK:
                    self.outbox.retry_later(job.id, next_attempt_at=self.clock(), status=400, error=note)
                    self.outbox.park(job.id, note)
                else:
                    self.outbox.benefit_use_recorded(job.id, used=False, status=400, note=note)
                    self._delivered(self._reload(job))
                self.log.warning("benefit_use_refused", weighing=job.id, error=exc.message)
                return
            raise
        self.outbox.benefit_use_recorded(job.id, used=True, status=status)
        self.log.info("benefit_used", weighing=job.id, customer_id=job.customer_id)
        self._delivered(self._reload(job))

    def _delivered(self, job: Job) -> None:
        self.counters.delivered += 1
        self.last_success_at = self.clock()
        if self.on_delivered is not None:
            self.on_delivered(job)

    def _failed(self, job: Job, stage: Stage, exc: PlatformError) -> None:
        now = self.clock()
        key = str(exc.status or type(exc).__name__)
        self.counters.by_status[key] = self.counters.by_status.get(key, 0) + 1
        if isinstance(exc, AuthRejected):
            self.counters.auth_failures += 1
            self.auth_error = exc
            self.outbox.set_meta("auth_failure", json.dumps({"at": now, "status": exc.status, "message": exc.message}))
            self.outbox.retry_later(job.id, next_attempt_at=now, status=exc.status, error=exc.message)
            self.log.critical(
                "platform_key_rejected",
                status=exc.status,
                error=exc.message,
                action="uploads stopped; queue kept; probing the key every 60 s",
            )
            return
        if isinstance(exc, RateLimited):
            self.counters.rate_limited += 1
            until = now + max(self.cfg.queue.rate_limit_pause_s, exc.retry_after_s or 0.0)
            self.outbox.retry_later(job.id, next_attempt_at=until, status=429, error=exc.message)
            self.log.warning("upload_rate_limited", weighing=job.id, stage=stage.value, pause_s=until - now)
            return
        permanent = not exc.retryable or (
            isinstance(exc, Conflict) and job.attempts >= self.cfg.queue.max_conflict_retries
        )
        if permanent:
            self.counters.dead_letters += 1
            self.outbox.kill(
                job.id,
                stage=stage,
                status=exc.status,
                error_code=exc.error_code,
                error_message=exc.message,
                trace_id=exc.trace_id,
            )
            self.log.error(
                "weighing_dead_lettered",
                weighing=job.id,
                stage=stage.value,
                status=exc.status,
                error_code=exc.error_code,
                error=exc.message,
                trace_id=exc.trace_id,
            )
            return
        delay = retry_delay(
            job.attempts, self.cfg.queue.backoff_base_s, self.cfg.queue.backoff_cap_s, exc.retry_after_s, self.rng
        )
        self.counters.retries += 1
        if exc.ambiguous:
            self.counters.ambiguous += 1
        if exc.status is None or exc.status in (502, 503, 504):
            pause = retry_delay(
                self.outage_failures,
                self.cfg.queue.backoff_base_s,
                self.cfg.queue.backoff_cap_s,
                exc.retry_after_s,
                self.rng,
            )
            self.outage_failures += 1
            self.platform_down_until = max(self.platform_down_until, now + pause)
            if self.outage_since is None:
                self.outage_since = now
                self.log.warning(
                    "platform_unavailable",
                    status=exc.status,
                    error=exc.message,
                    action="one probe per backoff until it answers; then the backlog drains in order",
                )
        self.outbox.retry_later(
            job.id, next_attempt_at=now + delay, status=exc.status, error=exc.message, ambiguous=exc.ambiguous
        )
        self.log.warning(
            "upload_retry_scheduled",
            weighing=job.id,
            stage=stage.value,
            status=exc.status,
            error=exc.message,
            ambiguous=exc.ambiguous,
            delay_s=round(delay, 1),
        )
