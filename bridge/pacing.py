"""Request pacing per platform endpoint (token bucket under the platform's 1000/min limit), 429
lock-outs, and full-jitter backoff. Pure: callers pass the monotonic time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    updated_at: float
    paused_until: float = 0.0


@dataclass
class Pacer:
    """``delay(endpoint, now)`` says how long to wait before the next request to that endpoint may go
    out; ``take(endpoint, now)`` spends a token. The burst is small so a catch-up after an outage
    streams at the configured rate instead of bursting into the platform's limit."""

    per_minute: int = 900
    burst: int = 5
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0

    def _bucket(self, endpoint: str, now: float) -> _Bucket:
        b = self._buckets.get(endpoint)
        if b is None:
            b = self._buckets[endpoint] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, now - b.updated_at)
        b.tokens = min(float(self.burst), b.tokens + elapsed * self.per_second)
        b.updated_at = now
        return b

    def delay(self, endpoint: str, now: float) -> float:
        b = self._bucket(endpoint, now)
        wait = max(0.0, b.paused_until - now)
        if b.tokens < 1.0:
            wait = max(wait, (1.0 - b.tokens) / self.per_second)
        return wait

    def take(self, endpoint: str, now: float) -> None:
        b = self._bucket(endpoint, now)
        b.tokens -= 1.0

    def pause(self, endpoint: str, until: float) -> None:
        b = self._buckets.setdefault(endpoint, _Bucket(0.0, until))
        b.paused_until = max(b.paused_until, until)
        b.tokens = 0.0

    def paused_until(self, endpoint: str) -> float:
        b = self._buckets.get(endpoint)
        return 0.0 if b is None else b.paused_until


def full_jitter_backoff(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """AWS-style full jitter: uniform(0, min(cap, base * 2**attempt)), attempt counted from 0."""
    r = rng or random
    ceiling = min(cap_s, base_s * (2 ** min(attempt, 32)))
    return r.uniform(0.0, ceiling)


def retry_delay(
    attempt: int, base_s: float, cap_s: float, retry_after_s: float | None, rng: random.Random | None = None
) -> float:
    """``max(backoff, Retry-After)``; never below base/2 so a hot loop is impossible."""
    delay = max(full_jitter_backoff(attempt, base_s, cap_s, rng), base_s / 2)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay
