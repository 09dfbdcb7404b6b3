"""Applying what the failure policy decided: the one place that turns a ``Decision`` into outbox
writes, counters, the outage breaker, the auth halt and a log line."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AuthRejected, PlatformError, StorageError
from ..outbox import Job
from ..pacing import retry_delay
from ..status import UploadFigures
from .policy import DeadLetter, Decision, Park, PauseEndpoint, Retry, Rules, StopAll, retry_after_s
from .store import UploadStore

AUTH_PROBE_INTERVAL_S = 60.0


@dataclass
class UploadCounters:
    delivered: int = 0
    retries: int = 0
    ambiguous: int = 0
    rate_limited: int = 0
    dead_letters: int = 0
    auth_failures: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def figures(self) -> UploadFigures:
        """The published (frozen) figures of these counters, for the daemon's status."""
        return UploadFigures(
            self.delivered, self.retries, self.ambiguous, self.rate_limited, self.dead_letters, self.auth_failures
        )


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


@dataclass
class AuthHalt:
    """401/403: every upload halts (the queue is kept) until a probe job's calls are accepted."""

    error: AuthRejected | None = None

    async def lift(self, store: UploadStore) -> None:
        self.error = None
        with contextlib.suppress(StorageError):
            await store.set_meta("auth_failure", None)


class DecisionApplier:
    def __init__(
        self,
        store: UploadStore,
        *,
        counters: UploadCounters,
        breaker: OutageBreaker,
        halt: AuthHalt,
        rules: Callable[[], Rules],
        clock: Callable[[], float],
        rng: Callable[[], random.Random],
        log: Any,
    ) -> None:
        self.store = store
        self.counters = counters
        self.breaker = breaker
        self.halt = halt
        self._rules = rules
        self._clock = clock
        self._rng = rng
        self.log = log

    async def apply(self, decision: Decision, job: Job, exc: BaseException) -> None:
        key = str(exc.status or type(exc).__name__) if isinstance(exc, PlatformError) else type(exc).__name__
        self.counters.by_status[key] = self.counters.by_status.get(key, 0) + 1
        if isinstance(decision, StopAll):
            assert isinstance(exc, AuthRejected)
            already = self.halt.error is not None  # a probe, or a job that was in flight: one halt
            self.halt.error = exc
            await self._retry(job, decision.retry)
            if already:
                return
            self.counters.auth_failures += 1
            failure = {"at": self._clock(), "status": decision.status, "message": decision.message}
            await self.store.set_meta("auth_failure", json.dumps(failure))
            self.log.critical(
                "platform_key_rejected",
                status=decision.status,
                error=decision.message,
                action=f"uploads stopped; queue kept; one weighing retried every {AUTH_PROBE_INTERVAL_S:g} s",
            )
        elif isinstance(decision, PauseEndpoint):
            self.counters.rate_limited += 1
            await self._retry(job, decision.retry)
            pause_s = round(decision.until - self._clock())
            self.log.warning("upload_rate_limited", weighing=job.id, stage=job.stage.value, pause_s=pause_s)
        elif isinstance(decision, DeadLetter):
            self.counters.dead_letters += 1
            await self.store.kill(
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
            await self.store.park(job.id, decision.reason)
            self.log.warning("weighing_parked", weighing=job.id, reason=decision.reason)
        else:
            self.counters.retries += 1
            if decision.outage:
                hint = exc.retry_after_s if isinstance(exc, PlatformError) else None
                if self.breaker.open(self._clock(), self._rules(), retry_after_s(hint), self._rng()):
                    self.log.warning(
                        "platform_unavailable",
                        status=decision.status,
                        error=decision.message,
                        action="one probe per backoff until it answers; then the backlog drains in order",
                    )
            await self._retry(job, decision)
            self.log.warning(
                "upload_retry_scheduled",
                weighing=job.id,
                stage=job.stage.value,
                status=decision.status,
                error=decision.message,
                ambiguous=decision.ambiguous,
                delay_s=round(max(0.0, decision.at - self._clock()), 1),
            )

    async def _retry(self, job: Job, retry: Retry) -> None:
        if retry.ambiguous:
            self.counters.ambiguous += 1
        await self.store.retry_later(
            job.id,
            next_attempt_at=retry.at,
            reason=retry.reason,
            status=retry.status,
            error=retry.message,
            ambiguous=retry.ambiguous,
        )
