"""The uploader: drains the outbox. The one awaiting shell of the upload path.

It schedules due jobs (``concurrency`` at a time, in capture order) and runs each job's pass through
its steps (``steps.py``: resolve -> post -> use, each a sans-I/O conversation from ``journey.py``
performed by ``calls.py``). A failure goes to ``policy.decide``; ``decisions.py`` applies the decision:

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
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import Config, PlatformConfig
from ..errors import AuthRejected, PlatformError, StorageError
from ..logs import get_logger
from ..outbox import Job, JobState, Outbox, Stage, WaitReason
from ..pacing import Pacer
from ..platform import PlatformClient
from ..status import BenefitFigures
from . import decisions
from .calls import PlatformCalls
from .decisions import AuthHalt, DecisionApplier, OutageBreaker, UploadCounters
from .policy import Rules, decide
from .steps import JourneySteps

RESOLVE_MAX_AGE_S = 15 * 60.0
#: how many of the latest benefit checks health looks at
BENEFIT_WINDOW = 25
AUTH_PROBE_INTERVAL_S = decisions.AUTH_PROBE_INTERVAL_S
IDLE_POLL_S = 2.0

__all__ = ["AUTH_PROBE_INTERVAL_S", "OutageBreaker", "UploadCounters", "Uploader", "pool_size"]


def pool_size(concurrency: int) -> int:
    """HTTP connections for ``concurrency`` uploads: a resolve has two GETs in flight at once."""
    return max(4, 2 * concurrency)


def rules_of(cfg: Config) -> Rules:
    q = cfg.queue
    return Rules(q.backoff_base_s, q.backoff_cap_s, q.rate_limit_pause_s, q.max_conflict_retries)


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
        self.log = get_logger(component="uploader")
        self.counters = UploadCounters()
        self.breaker = OutageBreaker()
        self.halt = AuthHalt()
        self.pacer = Pacer(per_minute=cfg.platform.rate_limit_per_min)
        self.last_progress_at = monotonic()
        self.on_delivered: Callable[[Job], None] | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._inflight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = PlatformCalls(
            client,
            outbox,
            self.pacer,
            rules=lambda: self.rules,
            clock=lambda: self.clock(),  # noqa: PLW0108 - late binding: tests swap the clock and wrap _call
            monotonic=lambda: self.monotonic(),  # noqa: PLW0108 - late binding: tests swap the clock and wrap _call
            sleep=lambda s: self.sleep(s),  # noqa: PLW0108 - late binding: tests swap the clock and wrap _call
            answered=self._platform_answered,
            log=self.log,
            via=lambda endpoint, fn: self._call(endpoint, fn),  # noqa: PLW0108 - late binding: tests swap the clock and wrap _call
        )
        self.steps = JourneySteps(
            outbox,
            self.calls,
            counters=self.counters,
            benefit_results=deque(maxlen=BENEFIT_WINDOW),
            on_delivered=lambda: self.on_delivered,
            log=self.log,
        )
        self.decisions = DecisionApplier(
            outbox,
            counters=self.counters,
            breaker=self.breaker,
            halt=self.halt,
            rules=lambda: self.rules,
            clock=lambda: self.clock(),  # noqa: PLW0108 - late binding: tests swap the clock and wrap _call
            rng=lambda: self.rng,
            log=self.log,
        )
        self.calls.restore_rate_limits()

    @property
    def auth_error(self) -> AuthRejected | None:
        return self.halt.error

    @auth_error.setter
    def auth_error(self, value: AuthRejected | None) -> None:
        self.halt.error = value

    def benefit_figures(self) -> BenefitFigures:
        results = self.steps.benefit_results
        return BenefitFigures(key=self.platform.benefit_key, checked=len(results), valid=sum(results))

    @property
    def platform_down_until(self) -> float:
        return self.breaker.down_until

    # ---- control -------------------------------------------------------------------------------------

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
            await asyncio.wait_for(self._stop.wait(), timeout=decisions.AUTH_PROBE_INTERVAL_S)
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
        platform, cards, estimate = self.platform, self.cards, self.estimate  # this pass's snapshot
        halted = self.auth_error is not None
        stage = job.stage
        try:
            if stage is Stage.POST and self._benefit_check_stale(job, platform):
                job = self.outbox.reresolve(job.id, "benefit check is older than 15 min")
                stage = job.stage
            if stage is Stage.RESOLVE:
                job = await self.steps.resolve(job, platform, cards)
                stage = job.stage
            if job.state is JobState.PENDING and stage is Stage.POST:
                job = await self.steps.post(job, platform, estimate=estimate)
                stage = job.stage
            if job.state is JobState.PENDING and stage is Stage.USE:
                job = await self.steps.use(job, platform)
        except (asyncio.CancelledError, StorageError):
            raise
        except Exception as exc:  # a platform failure, or a bug / hostile answer: the policy decides
            current = self.outbox.get(job.id) or job
            if not isinstance(exc, PlatformError):
                self.log.exception("upload_crashed", weighing=job.id, stage=stage.value, error=str(exc))
            self.decisions.apply(decide(exc, stage, current, self.rules, now=self.clock(), rng=self.rng), current, exc)
            return
        if halted and self.auth_error is not None:
            self.halt.lift(self.outbox)

    def _benefit_check_stale(self, job: Job, platform: PlatformConfig) -> bool:
        return (
            bool(platform.benefit_key)
            and job.resolved_at is not None
            and self.clock() - job.resolved_at > RESOLVE_MAX_AGE_S
        )

    async def _call(self, endpoint: str, coro_fn: Callable[[], Any]) -> Any:
        """One paced request (``PlatformCalls.call``); kept here so that tests can wrap it."""
        return await self.calls.call(endpoint, coro_fn)

    def _platform_answered(self) -> None:
        now = self.clock()
        outage_s = self.breaker.close(now)
        if outage_s is None:
            return
        released = self.outbox.release_backoff(WaitReason.OUTAGE, now=now)
        self.log.info("platform_available_again", outage_s=round(outage_s, 1), jobs_due_now=released)
