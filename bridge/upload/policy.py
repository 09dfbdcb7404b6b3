"""The one place that decides what a failed upload step means: retry, dead letter, pause, stop.

Pure: ``decide(error, stage, job, rules, now=..., rng=...)`` looks at the classified platform error
(``bridge.platform`` turns HTTP answers and transport failures into the ``PlatformError`` tree; that is
the only other place that looks at statuses) and at the job, and returns a ``Decision``. The uploader
applies it; the outbox stores it under a ``WaitReason`` and never looks at an HTTP status.

Rules (each row is in tests/test_upload_policy.py):

- 401 / 403 (``AuthRejected``) -> ``StopAll``: uploads halt, the queue is kept; the job waits
  for the key (reason ``auth``).
- 429 (``RateLimited``) -> ``PauseEndpoint`` for ``max(rate_limit_pause_s, Retry-After)``; the job
  waits for it (``rate_limit``).
- no answer, 502 / 503 / 504 -> ``Retry`` with backoff and ``outage=True``: the breaker holds new
  jobs until the platform answers (``outage``).
- other 5xx, 409 (fewer than ``max_conflict_retries`` times) -> ``Retry`` with backoff (``backoff``).
- 409 after ``max_conflict_retries``, 400, 404, other permanent refusals -> ``DeadLetter`` with the
  server's message.
- anything that is not a ``PlatformError`` (a bug, a hostile body) -> ``Retry`` in 60 s as an
  internal error.

Ambiguity: a retry is *ambiguous* (the write may have been applied, a duplicate is possible) when the
transport says so (timeout/reset after sending), and **always** when the failed step is a write that
was sent and answered with a 5xx, or failed in an unexpected way after it began: whatever the body of a
2xx, it is delivered (``bridge.platform``); whatever went wrong after a write was sent, a retry is
counted.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..errors import AuthRejected, Conflict, PlatformError, RateLimited
from ..outbox import WRITE_STAGES, Job, Stage, WaitReason
from ..pacing import retry_delay

#: an unexpected failure (a bug, an unreadable answer) is retried this much later
INTERNAL_ERROR_RETRY_S = 60.0
#: a Retry-After beyond this is not believed (inf, 1e308, a date in year 9999)
MAX_RETRY_AFTER_S = 3600.0
#: gateway-class answers: the platform (or what is in front of it) is down, not this request
_OUTAGE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Rules:
    """The ``[queue]`` settings the policy reads (a frozen copy: a reload swaps the whole value)."""

    backoff_base_s: float = 2.0
    backoff_cap_s: float = 900.0
    rate_limit_pause_s: float = 60.0
    max_conflict_retries: int = 5


@dataclass(frozen=True, slots=True)
class Retry:
    at: float
    reason: WaitReason
    ambiguous: bool
    #: the platform as a whole looks down: hold new jobs (one probe per backoff) until it answers
    outage: bool
    status: int | None
    message: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    stage: Stage
    status: int | None
    error_code: str | None
    message: str
    trace_id: str | None


@dataclass(frozen=True, slots=True)
class Park:
    reason: str


@dataclass(frozen=True, slots=True)
class PauseEndpoint:
    until: float
    retry: Retry


@dataclass(frozen=True, slots=True)
class StopAll:
    status: int | None
    message: str
    retry: Retry


Decision = Retry | DeadLetter | Park | PauseEndpoint | StopAll


def retry_after_s(value: float | None) -> float | None:
    """A server's Retry-After, believed only when finite and not negative, and capped."""
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return min(value, MAX_RETRY_AFTER_S)


def is_outage(error: PlatformError) -> bool:
    """No answer at all, or a gateway-class answer: the platform is down, not this request wrong."""
    return error.retryable and (error.status is None or error.status in _OUTAGE_STATUSES)


def write_was_sent(error: BaseException, stage: Stage, job: Job) -> bool:
    """Could this failed step have written to the platform?"""
    if stage not in WRITE_STAGES:
        return False
    if isinstance(error, PlatformError):
        if error.ambiguous:
            return True
        # an answer in the 5xx range to a write: the server may have applied it before failing
        return error.status is not None and error.status >= 500
    return job.inflight is not None  # an unexpected failure after begin(): we cannot know


def decide(
    error: BaseException, stage: Stage, job: Job, rules: Rules, *, now: float, rng: random.Random
) -> Decision:
    if not isinstance(error, PlatformError):
        return Retry(
            at=now + INTERNAL_ERROR_RETRY_S,
            reason=WaitReason.BACKOFF,
            ambiguous=write_was_sent(error, stage, job),
            outage=False,
            status=None,
            message=f"internal error: {type(error).__name__}: {str(error)[:200]}",
        )
    ambiguous = write_was_sent(error, stage, job)
    hint = retry_after_s(error.retry_after_s)
    if isinstance(error, AuthRejected):
        retry = Retry(now, WaitReason.AUTH, ambiguous, False, error.status, error.message)
        return StopAll(error.status, error.message, retry)
    if isinstance(error, RateLimited):
        until = now + max(rules.rate_limit_pause_s, hint or 0.0)
        return PauseEndpoint(until, Retry(until, WaitReason.RATE_LIMIT, ambiguous, False, 429, error.message))
    exhausted = isinstance(error, Conflict) and job.attempts >= rules.max_conflict_retries
    if not error.retryable or exhausted:
        return DeadLetter(stage, error.status, error.error_code, error.message, error.trace_id)
    delay = retry_delay(job.attempts, rules.backoff_base_s, rules.backoff_cap_s, hint, rng)
    outage = is_outage(error)
    return Retry(
        at=now + delay,
        reason=WaitReason.OUTAGE if outage else WaitReason.BACKOFF,
        ambiguous=ambiguous,
        outage=outage,
        status=error.status,
        message=error.message,
    )
